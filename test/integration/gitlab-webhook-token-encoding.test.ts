/**
 * A secret token with non-ASCII characters (GitLab accepts any text without a newline) is sent by
 * GitLab as its UTF-8 bytes. Neither HTTP layer hands the app those bytes as the configured string:
 * Node's parser reads header bytes as Latin-1, and hono/aws-lambda percent-encodes a non-ASCII
 * header value. Both must still match the configured token, and a wrong one must still fail.
 */

import { request } from "node:http";
import type { AddressInfo } from "node:net";
import { serve } from "@hono/node-server";
import { handle } from "hono/aws-lambda";
import { afterAll, describe, expect, it } from "vitest";
import { loadFixture, sendFixture } from "../../cli/send.js";
import { createGitlabWebhookApp } from "../../functions/gitlab-webhook/app.js";
import { createWebhookCredentials } from "../../shared/domain/webhook-auth.js";
import { MemoryDedupeStore } from "../../shared/local/memory-dedupe-store.js";
import { FixedClock, RecordingAuditLog, RecordingPublisher, sequentialIds } from "../fakes/index.js";

const TOKEN = "Geheimnis-für-Kubler-✓";

function createApp() {
  const clock = new FixedClock();
  const publisher = new RecordingPublisher(sequentialIds("evt"));
  const app = createGitlabWebhookApp({
    credentials: createWebhookCredentials({ signingKeys: [], tokens: ["ascii-token", TOKEN] }),
    maxBodyBytes: 5 * 1024 * 1024,
    publisher,
    dedupe: new MemoryDedupeStore(clock),
    audit: new RecordingAuditLog(),
    logError: () => undefined,
    clock,
    newId: sequentialIds("corr"),
  });
  return { app, publisher };
}

const push = loadFixture("push");

describe("a non-ASCII X-Gitlab-Token over a real HTTP server (the local runtime)", () => {
  const { app, publisher } = createApp();
  const server = serve({ port: 0, hostname: "127.0.0.1", fetch: app.fetch });
  afterAll(() => new Promise<void>((resolve) => server.close(() => resolve())));

  /** Posts with the token's UTF-8 bytes on the wire, as GitLab sends it. */
  const post = (token: string) =>
    new Promise<{ status: number; body: string }>((resolve, reject) => {
      const { port } = server.address() as AddressInfo;
      const body = Buffer.from(push.body);
      const req = request(
        {
          host: "127.0.0.1",
          port,
          method: "POST",
          path: "/webhooks/gitlab",
          headers: {
            "content-type": "application/json",
            "content-length": body.length,
            "x-gitlab-event": push.eventHeader,
            // Node writes a header string as Latin-1: this puts the UTF-8 bytes on the wire.
            "x-gitlab-token": Buffer.from(token, "utf8").toString("latin1"),
          },
        },
        (res) => {
          let text = "";
          res.setEncoding("utf8");
          res.on("data", (chunk: string) => {
            text += chunk;
          });
          res.on("end", () => resolve({ status: res.statusCode ?? 0, body: text }));
        },
      );
      req.on("error", reject);
      req.end(body);
    });

  it("accepts the configured token", async () => {
    const res = await post(TOKEN);
    expect(res.status, res.body).toBe(202);
    expect(publisher.entries.map((e) => e.detailType)).toEqual(["Push"]);
  });

  it("still refuses a wrong non-ASCII token", async () => {
    const res = await post("Geheimnis-für-Kubler-✗");
    expect(res.status).toBe(401);
  });

  it("is sent by `kubler send --token` as GitLab sends it (fetch threw on a character above U+00FF)", async () => {
    const { port } = server.address() as AddressInfo;
    const res = await sendFixture(push, { url: `http://127.0.0.1:${port}`, token: TOKEN });
    expect(res.status, await res.text()).toBe(202);
  });
});

describe("a non-ASCII X-Gitlab-Token through the Lambda handler (Function URL event)", () => {
  const event = (token: string) => ({
    version: "2.0",
    rawPath: "/webhooks/gitlab",
    rawQueryString: "",
    headers: {
      "content-type": "application/json",
      "x-gitlab-event": push.eventHeader,
      "x-gitlab-token": token,
    },
    requestContext: { http: { method: "POST", path: "/webhooks/gitlab" }, domainName: "example.on.aws" },
    body: Buffer.from(push.body).toString("base64"),
    isBase64Encoded: true,
  });

  it("accepts the configured token, whichever way the header's bytes were decoded", async () => {
    const { app, publisher } = createApp();
    const handler = handle(app);
    const utf8 = TOKEN;
    const latin1 = Buffer.from(TOKEN, "utf8").toString("latin1");
    for (const token of [utf8, latin1]) {
      // biome-ignore lint/suspicious/noExplicitAny: a hand-built Function URL event
      const result = (await handler(event(token) as any, {} as any)) as { statusCode: number };
      expect(result.statusCode, token).toBe(202);
    }
    expect(publisher.entries).toHaveLength(2);
  });

  it("still refuses a wrong non-ASCII token", async () => {
    const handler = handle(createApp().app);
    // biome-ignore lint/suspicious/noExplicitAny: a hand-built Function URL event
    const result = (await handler(event("Geheimnis-für-Kubler-✗") as any, {} as any)) as {
      statusCode: number;
    };
    expect(result.statusCode).toBe(401);
  });
});
