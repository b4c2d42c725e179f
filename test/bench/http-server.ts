/**
 * A server for the HTTP benchmark, run as its own process (pinned to its own core by the runner):
 * `kubler` is the real local runtime; `bare` is the baseline, a @hono/node-server route that reads
 * and parses the body and answers 202. Prints its URL on the first line.
 */
import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { serve } from "@hono/node-server";
import { Hono } from "hono";
import { startLocalRuntime } from "../../cli/local-runtime.js";
import { loadLocalConfig } from "../../shared/config.js";

const mode = process.argv[2];
if (mode === "bare") {
  const app = new Hono();
  app.post("/webhooks/gitlab", async (c) => {
    JSON.parse(await c.req.text());
    return c.json({ ok: true }, 202);
  });
  const server = serve({ fetch: app.fetch, port: 0, hostname: "127.0.0.1" }, (info) =>
    console.log(`http://127.0.0.1:${info.port}`),
  );
  process.on("SIGTERM", () => server.close(() => process.exit(0)));
} else if (mode === "kubler") {
  const dataDir = mkdtempSync(join(tmpdir(), "kubler-bench-"));
  const runtime = await startLocalRuntime(
    loadLocalConfig({ ...process.env, PORT: "0", KUBLER_DATA_DIR: dataDir }),
  );
  console.log(runtime.url);
  process.on("SIGTERM", () => runtime.close().then(() => process.exit(0)));
} else {
  console.error("usage: http-server.ts bare|kubler  (env: KUBLER_WEBHOOK_SIGNING_KEY)");
  process.exit(2);
}
