/**
 * A server for the HTTP benchmark, run as its own process (pinned to its own core by the runner):
 * `webhook` is the gitlab-webhook function with the local runtime's bus, dedupe and audit; `bare` is
 * the baseline, a @hono/node-server route that reads and parses the body and answers 202; `floor`
 * reads the body as the webhook does, checks its signature and parses it: what DESIGN §4 asks of any
 * ingress before it dedupes, normalizes, publishes or audits; `floor-node` does the same reading the
 * headers and body from Node's request directly, past Hono's Request (the cheapest any Node server
 * can read them). Prints its URL on the first line.
 */
import { mkdtempSync } from "node:fs";
import type { IncomingMessage } from "node:http";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { type HttpBindings, serve } from "@hono/node-server";
import { Hono } from "hono";
import { createGitlabWebhookApp } from "../../functions/gitlab-webhook/app.js";
import { logErrorToStderr } from "../../shared/adapters/stdout-audit-log.js";
import { randomId, systemClock } from "../../shared/clock.js";
import { loadWebhookConfig } from "../../shared/config.js";
import { ROUTES } from "../../shared/domain/catalog.js";
import { verifyWebhook } from "../../shared/domain/webhook-auth.js";
import { JsonlAuditLog } from "../../shared/local/jsonl-audit-log.js";
import { JsonlFile } from "../../shared/local/jsonl-file.js";
import { LocalBus } from "../../shared/local/local-bus.js";
import { MemoryDedupeStore } from "../../shared/local/memory-dedupe-store.js";

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
} else if (mode === "floor") {
  const { credentials } = loadWebhookConfig(process.env, { requireSecret: true });
  const app = new Hono();
  app.post("/webhooks/gitlab", async (c) => {
    const body = new Uint8Array(await c.req.arrayBuffer());
    verifyWebhook(credentials, c.req.header.bind(c.req), body, new Date());
    JSON.parse(Buffer.from(body.buffer, body.byteOffset, body.byteLength).toString("utf8"));
    return c.json({ ok: true }, 202);
  });
  const server = serve({ fetch: app.fetch, port: 0, hostname: "127.0.0.1" }, (info) =>
    console.log(`http://127.0.0.1:${info.port}`),
  );
  process.on("SIGTERM", () => server.close(() => process.exit(0)));
} else if (mode === "floor-node") {
  const { credentials } = loadWebhookConfig(process.env, { requireSecret: true });
  const app = new Hono<{ Bindings: HttpBindings }>();
  app.post("/webhooks/gitlab", async (c) => {
    const { incoming } = c.env;
    const body = await readBody(incoming);
    const header = (name: string) => {
      const value = incoming.headers[name];
      return Array.isArray(value) ? value.join(", ") : value;
    };
    verifyWebhook(credentials, header, body, new Date());
    JSON.parse(body.toString("utf8"));
    return c.json({ ok: true }, 202);
  });
  const server = serve({ fetch: app.fetch, port: 0, hostname: "127.0.0.1" }, (info) =>
    console.log(`http://127.0.0.1:${info.port}`),
  );
  process.on("SIGTERM", () => server.close(() => process.exit(0)));
} else if (mode === "webhook") {
  // The gitlab-webhook function alone, as Lambda runs it: verify, dedupe, publish on the bus
  // (events.jsonl), audit (audit.jsonl). The bus's consumers (plan-steps, ...) are other functions
  // in AWS; in `npm start` they would share this core and be counted as the webhook's cost.
  const dataDir = mkdtempSync(join(tmpdir(), "kubler-bench-"));
  const config = loadWebhookConfig(process.env, { requireSecret: true });
  const file = (name: string) => new JsonlFile(join(dataDir, name));
  const audit = new JsonlAuditLog(file("audit.jsonl"), undefined, { secrets: config.secrets.signingKeys });
  const bus = new LocalBus({
    routes: ROUTES,
    consumers: {},
    events: file("events.jsonl"),
    deadLetters: file("dead-letters.jsonl"),
    audit,
    clock: systemClock,
    newId: randomId,
  });
  const app = createGitlabWebhookApp({
    credentials: config.credentials,
    maxBodyBytes: config.maxBodyBytes,
    publisher: bus,
    dedupe: new MemoryDedupeStore(systemClock),
    audit,
    logError: logErrorToStderr("gitlab-webhook"),
    clock: systemClock,
    newId: randomId,
  });
  const server = serve({ fetch: app.fetch, port: 0, hostname: "127.0.0.1" }, (info) =>
    console.log(`http://127.0.0.1:${info.port}`),
  );
  process.on("SIGTERM", () => server.close(() => process.exit(0)));
} else {
  console.error("usage: http-server.ts bare|floor|floor-node|webhook  (env: KUBLER_WEBHOOK_SIGNING_KEY)");
  process.exit(2);
}

function readBody(incoming: IncomingMessage): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    incoming.on("data", (chunk: Buffer) => chunks.push(chunk));
    incoming.on("end", () => resolve(Buffer.concat(chunks)));
    incoming.on("error", reject);
  });
}
