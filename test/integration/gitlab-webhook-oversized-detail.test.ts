/**
 * An event whose catalog detail would exceed the bus's 8 KB limit (a branch name of several KB, which
 * any developer can push) is not a misconfiguration: answering 4xx would count toward GitLab
 * disabling the project's hook (DESIGN §4 "Answers"), and every later event would be lost. It is
 * answered 200 ignored with the reason, audited, and nothing is published.
 */
import { EventBridgeClient, PutEventsCommand } from "@aws-sdk/client-eventbridge";
import { mockClient } from "aws-sdk-client-mock";
import { afterEach, describe, expect, it } from "vitest";
import { loadFixture } from "../../cli/send.js";
import { createGitlabWebhookApp } from "../../functions/gitlab-webhook/app.js";
import { EventBridgePublisher } from "../../shared/adapters/eventbridge-publisher.js";
import { createWebhookCredentials } from "../../shared/domain/webhook-auth.js";
import { MemoryDedupeStore } from "../../shared/local/memory-dedupe-store.js";
import { FixedClock, RecordingAuditLog, sequentialIds } from "../fakes/index.js";

const TOKEN = "s3cret-token";
const LONG_BRANCH = "b".repeat(9000);

/** The app over the real EventBridge publisher, its client faked at the transport. */
function setup() {
  const client = new EventBridgeClient({
    region: "eu-west-1",
    credentials: { accessKeyId: "test", secretAccessKey: "test" },
  });
  const eventBridge = mockClient(client);
  eventBridge.on(PutEventsCommand).callsFake((input: { Entries?: unknown[] }) => ({
    FailedEntryCount: 0,
    Entries: (input.Entries ?? []).map((_, i) => ({ EventId: `evt-${i + 1}` })),
  }));
  const clock = new FixedClock();
  const audit = new RecordingAuditLog();
  const app = createGitlabWebhookApp({
    credentials: createWebhookCredentials({ signingKeys: [], tokens: [TOKEN] }),
    maxBodyBytes: 1024 * 1024,
    publisher: new EventBridgePublisher({ client, busName: "kubler-ingress" }),
    dedupe: new MemoryDedupeStore(clock),
    audit,
    logError: () => undefined,
    clock,
    newId: sequentialIds("corr"),
  });
  cleanups.push(() => eventBridge.restore());
  const post = (eventHeader: string, payload: unknown, key: string) =>
    app.request("/webhooks/gitlab", {
      method: "POST",
      headers: {
        "content-type": "application/json",
        "x-gitlab-event": eventHeader,
        "x-gitlab-token": TOKEN,
        "idempotency-key": key,
      },
      body: JSON.stringify(payload),
    });
  const putEvents = () => eventBridge.commandCalls(PutEventsCommand);
  return { post, audit, putEvents };
}

const cleanups: (() => void)[] = [];
afterEach(() => {
  for (const cleanup of cleanups.splice(0)) cleanup();
});

function payloadOf(name: string): Record<string, unknown> {
  return JSON.parse(loadFixture(name).body) as Record<string, unknown>;
}

describe("an event whose detail would be over the bus's 8 KB", () => {
  it("a push with a 9,000-character branch name: 200 ignored naming the field, audited, nothing published", async () => {
    const { post, audit, putEvents } = setup();
    const ref = `refs/heads/${LONG_BRANCH}`;
    const res = await post("Push Hook", { ...payloadOf("push"), ref }, "k-1");

    expect(res.status).toBe(200);
    const body = (await res.json()) as { ignored: boolean; reason: string; correlationId: string };
    expect(body).toMatchObject({ ignored: true, correlationId: "k-1" });
    expect(body.reason).toMatch(/a field is too long/);
    expect(body.reason).toContain(`the Push detail's "ref" is ${ref.length} characters`);
    // The reason names the field; it never echoes the value into the answer or the audit line.
    expect(body.reason.length).toBeLessThan(300);
    expect(putEvents()).toHaveLength(0);
    expect(audit.records).toHaveLength(1);
    expect(audit.last()).toMatchObject({
      action: "webhook.receive",
      outcome: "ignored",
      reason: body.reason,
      correlationId: "k-1",
      gitlab: { event: "Push Hook", idempotencyKey: "k-1" },
    });
  });

  it("keeps the hook working: the next ordinary push is published", async () => {
    const { post, putEvents } = setup();
    for (const key of ["k-1", "k-2", "k-3"]) {
      const res = await post("Push Hook", { ...payloadOf("push"), ref: `refs/heads/${LONG_BRANCH}` }, key);
      expect(res.status).toBe(200);
    }
    const res = await post("Push Hook", payloadOf("push"), "k-4");
    expect(res.status).toBe(202);
    expect(putEvents()).toHaveLength(1);
  });

  it("a merge request from a branch of several KB: 200 ignored naming its source branch", async () => {
    const { post, audit, putEvents } = setup();
    const payload = payloadOf("merge_request");
    payload.object_attributes = {
      ...(payload.object_attributes as object),
      source_branch: LONG_BRANCH,
    };
    const res = await post("Merge Request Hook", payload, "k-1");

    expect(res.status).toBe(200);
    const body = (await res.json()) as { reason: string };
    expect(body.reason).toContain(`the Merge Request detail's "sourceBranch" is 9000 characters`);
    expect(putEvents()).toHaveLength(0);
    expect(audit.last()).toMatchObject({ outcome: "ignored", reason: body.reason });
  });

  it("a body that lacks a field a decision needs is still 400 (the sender is misconfigured)", async () => {
    const { post, audit, putEvents } = setup();
    const payload = payloadOf("push");
    delete payload.ref;
    const res = await post("Push Hook", payload, "k-1");

    expect(res.status).toBe(400);
    expect(await res.json()).toMatchObject({ error: "bad_request", message: expect.stringMatching(/"ref"/) });
    expect(putEvents()).toHaveLength(0);
    expect(audit.last()).toMatchObject({ outcome: "failure", reason: 'Push Hook payload: "ref" is missing' });
  });
});
