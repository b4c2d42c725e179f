import { readdirSync } from "node:fs";
import { EventBridgeClient, PutEventsCommand } from "@aws-sdk/client-eventbridge";
import { mockClient } from "aws-sdk-client-mock";
import { describe, expect, it, vi } from "vitest";
import { FIXTURES_DIR as FIXTURES, loadFixture } from "../../cli/send.js";
import { createGitlabWebhookApp } from "../../functions/gitlab-webhook/app.js";
import { EventBridgePublisher } from "../../shared/adapters/eventbridge-publisher.js";
import { createWebhookCredentials, signWebhook } from "../../shared/domain/webhook-auth.js";
import { PublishError } from "../../shared/errors.js";
import { MemoryDedupeStore } from "../../shared/local/memory-dedupe-store.js";
import type { DedupeStore } from "../../shared/ports.js";
import { DEDUPE_LEASE_SECONDS, IN_FLIGHT_MESSAGE } from "../../shared/services/receive-webhook.js";
import { FixedClock, RecordingAuditLog, RecordingPublisher, sequentialIds } from "../fakes/index.js";

const SIGNING_KEY = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
const TOKEN = "s3cret-token";

const fixture = loadFixture;

function setup(options: { dedupe?: DedupeStore; maxBodyBytes?: number } = {}) {
  const clock = new FixedClock();
  const logged: unknown[] = [];
  const publisher = new RecordingPublisher(sequentialIds("evt"));
  const audit = new RecordingAuditLog();
  const app = createGitlabWebhookApp({
    credentials: createWebhookCredentials({ signingKeys: [SIGNING_KEY], tokens: [TOKEN] }),
    maxBodyBytes: options.maxBodyBytes ?? 5 * 1024 * 1024,
    publisher,
    dedupe: options.dedupe ?? new MemoryDedupeStore(clock),
    audit,
    logError: (error) => logged.push(error),
    clock,
    newId: sequentialIds("corr"),
  });
  const post = (body: string, headers: Record<string, string>) =>
    app.request("/webhooks/gitlab", {
      method: "POST",
      headers: { "content-type": "application/json", ...headers },
      body,
    });
  /** A chunked request: no Content-Length, the body only known as it streams. */
  const postChunked = (stream: ReadableStream<Uint8Array>) =>
    app.request("/webhooks/gitlab", {
      method: "POST",
      headers: { "x-gitlab-event": "Push Hook", "x-gitlab-token": TOKEN, "transfer-encoding": "chunked" },
      body: stream,
      duplex: "half",
    } as RequestInit);
  const send = (name: string, extra: Record<string, string> = {}) => {
    const { eventHeader, body } = fixture(name);
    return post(body, { "x-gitlab-event": eventHeader, "x-gitlab-token": TOKEN, ...extra });
  };
  return { app, clock, publisher, audit, logged, post, postChunked, send };
}

const ACTED_ON: Record<string, string> = {
  push: "Push",
  tag_push: "Tag Push",
  merge_request: "Merge Request",
  pipeline: "Pipeline",
  job: "Job",
  deployment: "Deployment",
  release: "Release",
};

describe("POST /webhooks/gitlab with every GitLab fixture", () => {
  const names = readdirSync(FIXTURES)
    .filter((f) => f.endsWith(".json"))
    .map((f) => f.replace(/\.json$/, ""));

  it.each(names)("%s", async (name) => {
    const { send, publisher, audit } = setup();
    const res = await send(name);
    const body = await res.json();
    const detailType = ACTED_ON[name];
    if (detailType) {
      expect(res.status).toBe(202);
      expect(body).toEqual({ published: true, correlationId: "corr-1", eventIds: ["evt-1"] });
      expect(publisher.entries.map((e) => e.detailType)).toEqual([detailType]);
      expect(audit.last()).toMatchObject({ action: "webhook.receive", outcome: "success" });
    } else if (name.startsWith("merge_request_partial")) {
      // Documented fragments, not whole deliveries: a 400 naming what is missing, never a 5xx.
      expect(res.status).toBe(400);
      expect(body).toMatchObject({ error: "bad_request", message: expect.stringMatching(/is missing/) });
      expect(publisher.entries).toEqual([]);
    } else {
      expect(res.status).toBe(200);
      expect(body).toMatchObject({ ignored: true, reason: expect.any(String) });
      expect(publisher.entries).toEqual([]);
      expect(audit.last()).toMatchObject({
        outcome: "ignored",
        gitlab: { event: fixture(name).eventHeader },
      });
    }
  });
});

describe("answers", () => {
  it("202 with a signed delivery; the correlation id is the Idempotency-Key", async () => {
    const { post, publisher, audit, clock } = setup();
    const { eventHeader, body } = fixture("push");
    const headers = {
      "x-gitlab-event": eventHeader,
      "idempotency-key": "key-1",
      "x-gitlab-instance": "https://gitlab.example.com",
      "x-gitlab-webhook-uuid": "uuid-1",
      ...signWebhook(SIGNING_KEY, "key-1", clock.now(), Buffer.from(body)),
    };
    const res = await post(body, headers);
    expect(res.status).toBe(202);
    expect(await res.json()).toEqual({ published: true, correlationId: "key-1", eventIds: ["evt-1"] });
    expect(publisher.entries[0]?.detail.correlationId).toBe("key-1");
    expect(audit.last()).toMatchObject({
      audit: true,
      action: "webhook.receive",
      outcome: "success",
      reason: "published Push mike/diaspora master 95790bf→da15608",
      correlationId: "key-1",
      gitlab: {
        instance: "https://gitlab.example.com",
        event: "Push Hook",
        idempotencyKey: "key-1",
        webhookUuid: "uuid-1",
      },
      subject: { project: "mike/diaspora", projectId: 15, detailType: "Push", eventIds: ["evt-1"] },
      function: "gitlab-webhook",
      at: "2026-11-21T10:00:00.000Z",
    });
  });

  it("200 duplicate for a repeated Idempotency-Key, publishing once", async () => {
    const { send, publisher, audit } = setup();
    expect((await send("push", { "idempotency-key": "k" })).status).toBe(202);
    const again = await send("push", { "idempotency-key": "k" });
    expect(again.status).toBe(200);
    expect(await again.json()).toEqual({ duplicate: true, correlationId: "k" });
    expect(publisher.entries).toHaveLength(1);
    expect(audit.last()).toMatchObject({ outcome: "ignored", reason: expect.stringMatching(/duplicate/) });
  });

  it("publishes every delivery of old GitLab (no Idempotency-Key) with a fresh correlation id", async () => {
    const { send, publisher } = setup();
    await send("push");
    await send("push");
    expect(publisher.entries.map((e) => e.detail.correlationId)).toEqual(["corr-1", "corr-2"]);
  });

  it("401 for a wrong or missing credential, audited as deny, nothing published", async () => {
    const { send, publisher, audit } = setup();
    const wrong = await send("push", { "x-gitlab-token": "nope" });
    expect(wrong.status).toBe(401);
    expect(await wrong.json()).toEqual({
      error: "unauthorized",
      message: "X-Gitlab-Token does not match any configured secret",
    });
    expect(audit.last()).toMatchObject({ outcome: "deny" });
    expect(JSON.stringify(audit.records)).not.toContain("nope");
    const { post } = setup();
    expect((await post(fixture("push").body, { "x-gitlab-event": "Push Hook" })).status).toBe(401);
    expect(publisher.entries).toEqual([]);
  });

  it("checks the credential before anything else: an unauthenticated bad body is 401, not 400", async () => {
    const { post } = setup();
    expect((await post("{not json", {})).status).toBe(401);
  });

  it("400 for an unparseable body or a missing X-Gitlab-Event", async () => {
    const { post, audit } = setup();
    const bad = await post("{not json", { "x-gitlab-event": "Push Hook", "x-gitlab-token": TOKEN });
    expect(bad.status).toBe(400);
    expect(await bad.json()).toEqual({ error: "bad_request", message: "body is not valid JSON" });
    const noEvent = await post(fixture("push").body, { "x-gitlab-token": TOKEN });
    expect(noEvent.status).toBe(400);
    expect(await noEvent.json()).toMatchObject({ message: "missing X-Gitlab-Event header" });
    expect(audit.records.map((r) => r.outcome)).toEqual(["failure", "failure"]);
  });

  it("400 naming the field when a body lacks what a decision needs", async () => {
    const { post } = setup();
    const res = await post(JSON.stringify({ object_kind: "push", ref: "refs/heads/main" }), {
      "x-gitlab-event": "Push Hook",
      "x-gitlab-token": TOKEN,
    });
    expect(res.status).toBe(400);
    expect(((await res.json()) as { message: string }).message).toMatch(/Push Hook payload/);
  });

  it("413 for a body over the limit, audited", async () => {
    const { send, audit, publisher } = setup({ maxBodyBytes: 1024 });
    const res = await send("push");
    expect(res.status).toBe(413);
    expect(await res.json()).toMatchObject({ error: "payload_too_large" });
    expect(audit.last()).toMatchObject({
      outcome: "failure",
      reason: expect.stringMatching(/1024 byte limit/),
    });
    expect(publisher.entries).toEqual([]);
  });

  it("413 from the declared Content-Length, before the body is read", async () => {
    const { post, audit } = setup({ maxBodyBytes: 1024 });
    const body = fixture("push").body;
    const res = await post(body, { "x-gitlab-event": "Push Hook", "content-length": String(body.length) });
    expect(res.status).toBe(413);
    expect(audit.last()).toMatchObject({ outcome: "failure", gitlab: { event: "Push Hook" } });
  });

  it("413 for a chunked body (no Content-Length) that grows past the limit while streaming", async () => {
    const { postChunked, publisher } = setup({ maxBodyBytes: 1024 });
    let sent = 0;
    const stream = new ReadableStream<Uint8Array>({
      pull(controller) {
        if (sent++ < 100) controller.enqueue(new Uint8Array(100).fill(32));
        else controller.close();
      },
    });
    const res = await postChunked(stream);
    expect(res.status).toBe(413);
    expect(sent).toBeLessThan(100);
    expect(publisher.entries).toEqual([]);
  });

  it("accepts a chunked body under the limit", async () => {
    const { postChunked } = setup();
    const bytes = new TextEncoder().encode(fixture("push").body);
    const stream = new ReadableStream<Uint8Array>({
      start(controller) {
        controller.enqueue(bytes);
        controller.close();
      },
    });
    const res = await postChunked(stream);
    expect(res.status).toBe(202);
  });

  it("503 when publishing fails, and the key is released so GitLab's resend is accepted", async () => {
    const { send, publisher } = setup();
    publisher.failNext = 1;
    const failed = await send("push", { "idempotency-key": "k" });
    expect(failed.status).toBe(503);
    expect(await failed.json()).toMatchObject({ error: "unavailable" });
    const resent = await send("push", { "idempotency-key": "k" });
    expect(resent.status).toBe(202);
    expect(publisher.entries).toHaveLength(1);
  });

  it("503 when the dedupe store is down, never a 500", async () => {
    // (and nothing logged as a bug: an outage is expected)
    const down = async (): Promise<never> => {
      throw new Error("ECONNRESET");
    };
    const broken: DedupeStore = { claim: down, reserve: down, confirm: down, release: down };
    const { send, publisher, logged } = setup({ dedupe: broken });
    const res = await send("push", { "idempotency-key": "k" });
    expect(res.status).toBe(503);
    expect(logged).toEqual([]);
    expect(JSON.stringify(await res.json())).not.toContain("ECONNRESET");
    expect(publisher.entries).toEqual([]);
  });

  it("500 with no detail for a bug, logged for on-call and audited", async () => {
    const { send, audit, logged, publisher } = setup();
    publisher.publish = async () => {
      throw new TypeError("Cannot read properties of undefined (reading 'secret-ish internals')");
    };
    const res = await send("push", { "idempotency-key": "k" });
    expect(res.status).toBe(500);
    expect(await res.json()).toEqual({ error: "internal", message: "internal error" });
    expect(logged).toHaveLength(1);
    expect(logged[0]).toBeInstanceOf(TypeError);
    expect(audit.last()).toMatchObject({ outcome: "failure", reason: "internal error", correlationId: "k" });
  });

  it("audits a 413 with the delivery's Idempotency-Key as correlation id", async () => {
    const { send, audit } = setup({ maxBodyBytes: 10 });
    expect((await send("push", { "idempotency-key": "big-1" })).status).toBe(413);
    expect(audit.last()).toMatchObject({ correlationId: "big-1", gitlab: { idempotencyKey: "big-1" } });
  });

  it("GET /healthz answers, unknown routes are a JSON 404", async () => {
    const { app } = setup();
    expect(await (await app.request("/healthz")).json()).toEqual({ ok: true });
    const missing = await app.request("/nope");
    expect(missing.status).toBe(404);
    expect(await missing.json()).toMatchObject({ error: "not_found" });
  });
});

describe("replayed signed deliveries", () => {
  const INSTANCE = "https://gitlab.example.com";
  /** One delivery as GitLab 19+ signs it: Idempotency-Key equals webhook-id. */
  function signedPush(clock: FixedClock, id = "msg-1") {
    const { eventHeader, body } = fixture("push");
    const headers = {
      "x-gitlab-event": eventHeader,
      "x-gitlab-instance": INSTANCE,
      "idempotency-key": id,
      ...signWebhook(SIGNING_KEY, id, clock.now(), Buffer.from(body)),
    };
    return { body, headers };
  }

  it("401 for a captured delivery resent with a new Idempotency-Key, audited as deny", async () => {
    const { post, publisher, audit, clock } = setup();
    const { body, headers } = signedPush(clock);
    expect((await post(body, headers)).status).toBe(202);
    const replay = await post(body, { ...headers, "idempotency-key": "fresh-key" });
    expect(replay.status).toBe(401);
    expect(await replay.json()).toEqual({
      error: "unauthorized",
      message: "Idempotency-Key differs from the signed webhook-id",
    });
    expect(audit.last()).toMatchObject({
      outcome: "deny",
      reason: "Idempotency-Key differs from the signed webhook-id",
      correlationId: "msg-1",
    });
    expect(publisher.entries).toHaveLength(1);
  });

  it("200 duplicate for a captured delivery resent with another X-Gitlab-Instance, nothing published", async () => {
    const { post, publisher, clock } = setup();
    const { body, headers } = signedPush(clock);
    expect((await post(body, headers)).status).toBe(202);
    const replay = await post(body, { ...headers, "x-gitlab-instance": "https://elsewhere.example.com" });
    expect(replay.status).toBe(200);
    expect(await replay.json()).toEqual({ duplicate: true, correlationId: "msg-1" });
    expect(publisher.entries).toHaveLength(1);
  });

  it("dedupes a signed delivery without Idempotency-Key on its webhook-id", async () => {
    const { post, publisher, clock } = setup();
    const { body, headers } = signedPush(clock);
    const { "idempotency-key": _, ...withoutKey } = headers;
    expect((await post(body, withoutKey)).status).toBe(202);
    const again = await post(body, { ...withoutKey, "x-gitlab-instance": "https://elsewhere.example.com" });
    expect(await again.json()).toEqual({ duplicate: true, correlationId: "msg-1" });
    expect(publisher.entries).toHaveLength(1);
  });

  it("token deliveries keep their key: instance and Idempotency-Key", async () => {
    const { send, publisher } = setup();
    await send("push", { "idempotency-key": "k", "x-gitlab-instance": INSTANCE });
    expect((await send("push", { "idempotency-key": "k", "x-gitlab-instance": INSTANCE })).status).toBe(200);
    expect(
      (await send("push", { "idempotency-key": "k", "x-gitlab-instance": "https://other.example.com" }))
        .status,
    ).toBe(202);
    expect(publisher.entries).toHaveLength(2);
  });
});

describe("a delivery's key while it publishes", () => {
  /** A publish that waits until the test settles it. */
  function holdPublishes(publisher: RecordingPublisher) {
    const held: { resolve: () => void; reject: (error: Error) => void }[] = [];
    const publish = publisher.publish.bind(publisher);
    publisher.publish = (entries) =>
      new Promise<void>((resolve, reject) => held.push({ resolve, reject })).then(() => publish(entries));
    return held;
  }

  it("503 (retry later), never duplicate, for a resend while the first publish is in flight", async () => {
    const { send, publisher, audit } = setup();
    const held = holdPublishes(publisher);
    const first = send("push", { "idempotency-key": "k" });
    await vi.waitFor(() => expect(held).toHaveLength(1));

    const resend = await send("push", { "idempotency-key": "k" });
    expect(resend.status).toBe(503);
    expect(await resend.json()).toEqual({
      error: "unavailable",
      message: "a delivery with this Idempotency-Key is being processed; retry later",
    });
    expect(audit.last()).toMatchObject({ outcome: "failure", reason: IN_FLIGHT_MESSAGE, correlationId: "k" });

    held[0]?.resolve();
    expect((await first).status).toBe(202);
    expect((await send("push", { "idempotency-key": "k" })).status).toBe(200);
    expect(publisher.entries).toHaveLength(1);
  });

  it("the event is not lost when the first publish fails after a resend was turned away", async () => {
    const { send, publisher } = setup();
    const held = holdPublishes(publisher);
    const first = send("push", { "idempotency-key": "k" });
    await vi.waitFor(() => expect(held).toHaveLength(1));
    expect((await send("push", { "idempotency-key": "k" })).status).toBe(503);

    held[0]?.reject(new PublishError("1 of 1 events failed to publish", [0]));
    expect((await first).status).toBe(503);
    const retried = send("push", { "idempotency-key": "k" });
    await vi.waitFor(() => expect(held).toHaveLength(2));
    held[1]?.resolve();
    expect((await retried).status).toBe(202);
    expect(publisher.entries).toHaveLength(1);
  });

  it("a delivery that died mid-publish blocks its key for the lease only, not the 3-day TTL", async () => {
    const { send, publisher, clock } = setup();
    const held = holdPublishes(publisher);
    // Never settled: a Lambda killed while PutEvents hung.
    void send("push", { "idempotency-key": "k" });
    await vi.waitFor(() => expect(held).toHaveLength(1));

    clock.advance(DEDUPE_LEASE_SECONDS * 1000 - 1);
    expect((await send("push", { "idempotency-key": "k" })).status).toBe(503);
    clock.advance(1);
    const resent = send("push", { "idempotency-key": "k" });
    await vi.waitFor(() => expect(held).toHaveLength(2));
    held[1]?.resolve();
    expect((await resent).status).toBe(202);
  });

  it("202 when the event is out but the key could not be confirmed, and the audit line says so", async () => {
    const dedupe = new MemoryDedupeStore(new FixedClock());
    dedupe.confirm = async () => {
      throw new Error("ProvisionedThroughputExceededException");
    };
    const { send, audit } = setup({ dedupe });
    expect((await send("push", { "idempotency-key": "k" })).status).toBe(202);
    expect(audit.last()).toMatchObject({
      outcome: "success",
      reason: expect.stringMatching(/could not be confirmed .* would publish it again$/),
    });
  });
});

describe("503 answers", () => {
  it("tell GitLab to retry without naming the bus or the AWS error; the audit line has both", async () => {
    const client = new EventBridgeClient({
      region: "eu-west-1",
      credentials: { accessKeyId: "test", secretAccessKey: "test" },
    });
    const eventBridge = mockClient(client);
    eventBridge.on(PutEventsCommand).resolves({
      FailedEntryCount: 1,
      Entries: [{ ErrorCode: "NotAuthorizedForSourceException", ErrorMessage: "not authorized" }],
    });
    try {
      const clock = new FixedClock();
      const audit = new RecordingAuditLog();
      const app = createGitlabWebhookApp({
        credentials: createWebhookCredentials({ signingKeys: [], tokens: [TOKEN] }),
        maxBodyBytes: 1024 * 1024,
        publisher: new EventBridgePublisher({ client, busName: "kubler-prod-ingress-bus" }),
        dedupe: new MemoryDedupeStore(clock),
        audit,
        logError: () => undefined,
        clock,
        newId: sequentialIds("corr"),
      });
      const { eventHeader, body } = fixture("push");
      const res = await app.request("/webhooks/gitlab", {
        method: "POST",
        headers: { "x-gitlab-event": eventHeader, "x-gitlab-token": TOKEN, "idempotency-key": "k" },
        body,
      });
      expect(res.status).toBe(503);
      const answer = await res.text();
      expect(JSON.parse(answer)).toEqual({
        error: "unavailable",
        message: "could not publish the event; retry later",
      });
      expect(answer).not.toMatch(/kubler-prod-ingress-bus|NotAuthorized/);
      expect(audit.last()).toMatchObject({
        outcome: "failure",
        reason: expect.stringMatching(/bus kubler-prod-ingress-bus .*NotAuthorizedForSourceException/),
      });
    } finally {
      eventBridge.restore();
    }
  });
});
