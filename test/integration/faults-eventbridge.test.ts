/**
 * EventBridge partial failures and throttling during a burst of webhook deliveries: the real
 * webhook app publishing through the real EventBridgePublisher, whose client is faked at the
 * transport with aws-sdk-client-mock. A seeded random source decides which calls are throttled and
 * which entries fail, so a run is reproducible. GitLab's behaviour is played too: resends of the
 * same delivery (same Idempotency-Key), and a retry of each delivery answered 503.
 */
import {
  EventBridgeClient,
  EventBridgeServiceException,
  PutEventsCommand,
  type PutEventsResultEntry,
} from "@aws-sdk/client-eventbridge";
import { mockClient } from "aws-sdk-client-mock";
import { afterEach, describe, expect, it } from "vitest";
import { gitlabHeaders, loadFixture } from "../../cli/send.js";
import { createGitlabWebhookApp } from "../../functions/gitlab-webhook/app.js";
import { EventBridgePublisher } from "../../shared/adapters/eventbridge-publisher.js";
import { createWebhookCredentials } from "../../shared/domain/webhook-auth.js";
import { MemoryDedupeStore } from "../../shared/local/memory-dedupe-store.js";
import { FixedClock, RecordingAuditLog, sequentialIds } from "../fakes/index.js";

const TOKEN = "burst-token";
const ACTED_ON = ["push", "tag_push", "merge_request", "pipeline", "job", "deployment", "release"];
const DELIVERIES = 300;

const eventBridge = mockClient(EventBridgeClient);
afterEach(() => eventBridge.reset());

/** mulberry32: small, seeded, good enough to pick faults. */
function seeded(seed: number): () => number {
  let a = seed;
  return () => {
    a = (a + 0x6d2b79f5) | 0;
    let t = Math.imul(a ^ (a >>> 15), 1 | a);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

function throttled(): EventBridgeServiceException {
  return new EventBridgeServiceException({
    name: "ThrottlingException",
    $fault: "client",
    $metadata: { httpStatusCode: 400 },
    message: "Rate exceeded",
  });
}

/**
 * An EventBridge that throttles whole calls and fails single entries at the given rates, and keeps
 * the correlation id of every entry it accepted: what reached the bus.
 */
function flakyEventBridge(random: () => number, rates: { call: number; entry: number }) {
  const accepted: string[] = [];
  let faults = true;
  eventBridge.on(PutEventsCommand).callsFake(async (input: { Entries?: { Detail?: string }[] }) => {
    if (faults && random() < rates.call) throw throttled();
    const entries: PutEventsResultEntry[] = (input.Entries ?? []).map((entry) => {
      if (faults && random() < rates.entry) {
        const code = random() < 0.5 ? "ThrottlingException" : "InternalFailure";
        return { ErrorCode: code, ErrorMessage: `${code} (injected)` };
      }
      const { correlationId } = JSON.parse(entry.Detail ?? "{}") as { correlationId: string };
      accepted.push(correlationId);
      return { EventId: `evt-${accepted.length}` };
    });
    return { FailedEntryCount: entries.filter((e) => e.ErrorCode).length, Entries: entries };
  });
  return {
    accepted,
    heal() {
      faults = false;
    },
  };
}

function webhook(random: () => number) {
  const clock = new FixedClock();
  const audit = new RecordingAuditLog();
  const logged: unknown[] = [];
  const app = createGitlabWebhookApp({
    credentials: createWebhookCredentials({ signingKeys: [], tokens: [TOKEN] }),
    maxBodyBytes: 1024 * 1024,
    publisher: new EventBridgePublisher({
      client: new EventBridgeClient({
        region: "eu-west-1",
        credentials: { accessKeyId: "test", secretAccessKey: "test" },
      }),
      busName: "kubler",
      sleep: async () => {},
      random,
    }),
    dedupe: new MemoryDedupeStore(clock),
    audit,
    logError: (error) => logged.push(error),
    clock,
    newId: sequentialIds("corr"),
  });
  return { app, audit, logged };
}

interface Delivery {
  key: string;
  fixture: ReturnType<typeof loadFixture>;
}

function send(app: ReturnType<typeof webhook>["app"], delivery: Delivery) {
  return app.request("/webhooks/gitlab", {
    method: "POST",
    headers: gitlabHeaders(delivery.fixture, {
      url: "http://local",
      token: TOKEN,
      idempotencyKey: delivery.key,
    }),
    body: delivery.fixture.body,
  });
}

describe("a burst of deliveries while EventBridge throttles and fails entries", () => {
  it("publishes every delivery exactly once in the end, duplicates never, and audits every 503", async () => {
    const random = seeded(8);
    const bus = flakyEventBridge(random, { call: 0.15, entry: 0.35 });
    const { app, audit, logged } = webhook(random);
    const deliveries: Delivery[] = Array.from({ length: DELIVERIES }, (_, i) => ({
      key: `delivery-${i}`,
      fixture: loadFixture(ACTED_ON[i % ACTED_ON.length] as string),
    }));
    // GitLab resends about one in ten, with the same key, sometimes while the first is in flight.
    const resends = deliveries.filter((_, i) => i % 10 === 3);

    const statuses = new Map<string, number[]>();
    const record = (key: string, status: number) => statuses.set(key, [...(statuses.get(key) ?? []), status]);
    for (let i = 0; i < deliveries.length; i += 25) {
      const firsts = deliveries.slice(i, i + 25);
      const wave = [...firsts, ...resends.filter((d) => firsts.includes(d))];
      const answers = await Promise.all(wave.map((d) => send(app, d)));
      answers.forEach((res, n) => {
        record(wave[n]?.key as string, res.status);
      });
    }

    const all = [...statuses.values()].flat();
    expect(all.every((status) => status === 202 || status === 200 || status === 503)).toBe(true);
    const unavailable = [...statuses]
      .filter(([, s]) => s.includes(503) && !s.includes(202))
      .map(([key]) => key);
    // The faults bit, and the bounded retries absorbed most of them.
    expect(unavailable.length).toBeGreaterThan(0);
    expect(unavailable.length).toBeLessThan(DELIVERIES / 10);
    // Each 503 is in the audit trail, with the delivery's key and why.
    for (const key of unavailable) {
      expect(audit.records).toContainEqual(
        expect.objectContaining({
          action: "webhook.receive",
          outcome: "failure",
          correlationId: key,
          reason: expect.stringMatching(/failed to publish to bus kubler after 4 attempt/),
        }),
      );
    }
    // Nothing accepted for a delivery refused with 503, nothing accepted twice.
    for (const key of unavailable) expect(bus.accepted).not.toContain(key);
    expect(new Set(bus.accepted).size).toBe(bus.accepted.length);

    // GitLab retries what got a 503, with the same key, once EventBridge has recovered.
    bus.heal();
    for (const key of unavailable) {
      const delivery = deliveries.find((d) => d.key === key) as Delivery;
      expect((await send(app, delivery)).status).toBe(202);
    }
    // And resends everything once more: all duplicates now.
    for (const delivery of resends) expect((await send(app, delivery)).status).toBe(200);

    expect([...bus.accepted].sort()).toEqual(deliveries.map((d) => d.key).sort());
    expect(logged).toEqual([]);
  });
});
