/**
 * `POST /local/events` in-process: every request is one `local.event` audit line (deny, failure or
 * success), never with the token; a real 500 goes to the operator's stderr, not to the caller.
 */
import { beforeEach, describe, expect, it } from "vitest";
import {
  createLocalEventsApp,
  LOCAL_EVENTS_MAX_BODY_BYTES,
  LOCAL_EVENTS_PATH,
} from "../../cli/local-events-app.js";
import { environmentStopKey, isRefusedByStop } from "../../shared/domain/plan-steps.js";
import { createWebhookCredentials } from "../../shared/domain/webhook-auth.js";
import { MemoryEnvironmentStops } from "../../shared/local/memory-environment-stops.js";
import { FixedClock, RecordingAuditLog, RecordingPublisher, sequentialIds } from "../fakes/index.js";

const TOKEN = "local-events-secret-token-1234";
const deploy = {
  detailType: "Deploy Requested",
  detail: {
    correlationId: "cli-1",
    gitlab: { instance: "https://gitlab.example.com", projectId: 2, projectPath: "group/app" },
    environment: "staging",
    sha: "abcdef0123456789abcdef0123456789abcdef01",
    ref: "main",
    pipelineId: null,
    mrIid: null,
  },
};

let audit: RecordingAuditLog;
let publisher: RecordingPublisher;
let errors: unknown[];
let app: ReturnType<typeof createLocalEventsApp>;

beforeEach(() => {
  audit = new RecordingAuditLog();
  publisher = new RecordingPublisher(sequentialIds("event"));
  errors = [];
  app = createLocalEventsApp({
    credentials: createWebhookCredentials({ tokens: [TOKEN], signingKeys: [] }),
    publisher,
    audit,
    logError: (error) => errors.push(error),
    clock: new FixedClock(),
  });
});

const post = (body: unknown, token = TOKEN) =>
  app.request(LOCAL_EVENTS_PATH, {
    method: "POST",
    headers: { "content-type": "application/json", "x-gitlab-token": token },
    body: typeof body === "string" ? body : JSON.stringify(body),
  });

describe("POST /local/events body size", () => {
  const tooLarge = "x".repeat(LOCAL_EVENTS_MAX_BODY_BYTES + 1);

  it("refuses a declared length over the limit (413) before reading it or checking the secret, audited", async () => {
    const response = await app.request(LOCAL_EVENTS_PATH, {
      method: "POST",
      headers: {
        "content-type": "application/json",
        "content-length": String(tooLarge.length),
        "x-gitlab-token": "not-the-right-token-0000",
      },
      body: tooLarge,
    });
    expect(response.status).toBe(413);
    expect(audit.records).toEqual([
      expect.objectContaining({
        action: "local.event",
        outcome: "failure",
        reason: `body is larger than the ${LOCAL_EVENTS_MAX_BODY_BYTES} byte limit`,
        subject: { status: 413 },
      }),
    ]);
    expect(publisher.entries).toEqual([]);
  });

  it("refuses a chunked body once it grows over the limit (413)", async () => {
    const chunk = new TextEncoder().encode("x".repeat(64 * 1024));
    let sent = 0;
    const body = new ReadableStream<Uint8Array>({
      pull(controller) {
        if (sent > LOCAL_EVENTS_MAX_BODY_BYTES * 4) return controller.close();
        sent += chunk.length;
        controller.enqueue(chunk);
      },
    });
    const response = await app.request(LOCAL_EVENTS_PATH, {
      method: "POST",
      headers: {
        "content-type": "application/json",
        "x-gitlab-token": TOKEN,
        "transfer-encoding": "chunked",
      },
      body,
      duplex: "half",
    } as RequestInit);
    expect(response.status).toBe(413);
    expect(sent).toBeLessThan(LOCAL_EVENTS_MAX_BODY_BYTES * 2);
    expect(publisher.entries).toEqual([]);
  });
});

describe("POST /local/events audit", () => {
  it("audits a published event with its detail-type, correlation id and event id", async () => {
    expect((await post(deploy)).status).toBe(202);
    expect(audit.records).toEqual([
      expect.objectContaining({
        action: "local.event",
        outcome: "success",
        reason: "published Deploy Requested",
        function: "local-events",
        correlationId: "cli-1",
        subject: {
          project: "group/app",
          projectId: 2,
          detailType: "Deploy Requested",
          environment: "staging",
          eventId: "event-1",
        },
      }),
    ]);
  });

  it("audits a wrong token as deny (401), without the token", async () => {
    const response = await post(deploy, "not-the-right-token-0000");
    expect(response.status).toBe(401);
    expect(audit.records).toEqual([
      expect.objectContaining({
        action: "local.event",
        outcome: "deny",
        reason: "X-Gitlab-Token does not match any configured secret",
        correlationId: null,
        subject: { status: 401 },
      }),
    ]);
    expect(JSON.stringify(audit.records)).not.toContain("not-the-right-token");
    expect(publisher.entries).toEqual([]);
  });

  it("audits bad input as failure (400) with what is known of it", async () => {
    expect((await post("{not json")).status).toBe(400);
    expect((await post({ detailType: "Nope", detail: {} })).status).toBe(400);
    expect((await post({ ...deploy, detail: { ...deploy.detail, sha: 7 } })).status).toBe(400);
    expect(audit.records.map((r) => [r.outcome, r.subject.detailType, r.correlationId])).toEqual([
      ["failure", undefined, null],
      ["failure", "Nope", null],
      ["failure", "Deploy Requested", "cli-1"],
    ]);
    expect(audit.records[0]?.reason).toBe("body is not valid JSON");
    expect(audit.records[1]?.reason).toBe('detailType "Nope" is not in the event catalog');
  });

  it("audits a bus that is down (503) and logs a real 500 to stderr", async () => {
    publisher.failNext = 1;
    expect((await post(deploy)).status).toBe(503);
    expect(audit.last()).toMatchObject({ outcome: "failure", subject: { status: 503 } });
    expect(errors).toEqual([]);
    publisher.publish = async () => {
      throw new TypeError("a bug");
    };
    const response = await post(deploy);
    expect(response.status).toBe(500);
    expect(await response.json()).toEqual({ error: "internal", message: "internal error" });
    expect(audit.last()).toMatchObject({
      outcome: "failure",
      reason: "internal error (a bug)",
      correlationId: "cli-1",
      subject: { status: 500 },
    });
    expect(errors).toEqual([new TypeError("a bug")]);
  });
});

describe("POST /local/events stops", () => {
  it("records a stop before publishing it (kubler stop), so builds and deploys asked for earlier are refused", async () => {
    const clock = new FixedClock(new Date("2026-11-21T10:00:00Z"));
    const stops = new MemoryEnvironmentStops(clock);
    const order: string[] = [];
    const recording = {
      record: async (key: string, at: Date, ttl: number) => {
        order.push("record");
        await stops.record(key, at, ttl);
      },
      stoppedAt: (key: string) => stops.stoppedAt(key),
    };
    const publishing = {
      publish: async (entries: readonly unknown[]) => {
        order.push("publish");
        return entries.map(() => "event-1");
      },
    };
    const withStops = createLocalEventsApp({
      credentials: createWebhookCredentials({ tokens: [TOKEN], signingKeys: [] }),
      publisher: publishing,
      audit,
      logError: (error) => errors.push(error),
      clock,
      stops: recording,
    });
    const gitlab = deploy.detail.gitlab;
    const response = await withStops.request(LOCAL_EVENTS_PATH, {
      method: "POST",
      headers: { "content-type": "application/json", "x-gitlab-token": TOKEN },
      body: JSON.stringify({
        detailType: "Environment Stop Requested",
        detail: { correlationId: "kubler-stop-1", gitlab, environment: "staging", reason: "stopped" },
      }),
    });
    expect(response.status).toBe(202);
    expect(order).toEqual(["record", "publish"]);
    const stoppedAt = await stops.stoppedAt(environmentStopKey(gitlab, "staging"));
    expect(stoppedAt?.toISOString()).toBe("2026-11-21T10:00:00.000Z");
    expect(isRefusedByStop(new Date("2026-11-21T09:59:00Z"), stoppedAt as Date)).toBe(true);
    expect(isRefusedByStop(new Date("2026-11-21T10:01:00Z"), stoppedAt as Date)).toBe(false);
    // Other events record nothing.
    expect(
      (
        await withStops.request(LOCAL_EVENTS_PATH, {
          method: "POST",
          headers: { "content-type": "application/json", "x-gitlab-token": TOKEN },
          body: JSON.stringify(deploy),
        })
      ).status,
    ).toBe(202);
    expect(order).toEqual(["record", "publish", "publish"]);
  });
});
