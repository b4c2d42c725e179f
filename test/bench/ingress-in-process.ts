/**
 * In-process ingress of a real ~10 KB push (verify + dedupe + normalize + publish to an in-memory
 * publisher + audit line) against a loop that only JSON.parses the same body.
 */
import { StdoutAuditLog } from "../../shared/adapters/stdout-audit-log.js";
import { randomId, systemClock } from "../../shared/clock.js";
import { createWebhookCredentials, signWebhook, verifyWebhook } from "../../shared/domain/webhook-auth.js";
import { MemoryDedupeStore } from "../../shared/local/memory-dedupe-store.js";
import { receiveWebhook } from "../../shared/services/receive-webhook.js";
import { type Figure, fmt, median, pushBody10k, rate } from "./support.js";

const SIGNING_KEY = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
const TOKEN = "bench-secret-token";

export async function benchIngressInProcess(rounds = 5, ms = 1000): Promise<Figure[]> {
  return [...(await measure("signature", rounds, ms)), ...(await measure("token", rounds, ms))];
}

/** GitLab 19+ signs (HMAC over the body); older hooks send a secret token (no pass over the body). */
/**
 * Each mode also prints its floor: verifying the delivery and parsing its body, which DESIGN §4
 * requires of every ingress before anything else. What the target leaves above the floor is the
 * budget for dedupe, normalize, publish and the audit line.
 */
async function measure(auth: "signature" | "token", rounds: number, ms: number): Promise<Figure[]> {
  const text = pushBody10k();
  const body = Buffer.from(text);
  const deps = {
    credentials: createWebhookCredentials({ signingKeys: [SIGNING_KEY], tokens: [TOKEN] }),
    dedupe: new MemoryDedupeStore(systemClock),
    publisher: { publish: async (entries: readonly unknown[]) => entries.map((_, i) => `evt-${i}`) },
    // Serialized like the stdout writer does, then dropped: the cost is counted, the terminal is spared.
    audit: new StdoutAuditLog(() => undefined),
    clock: systemClock,
    newId: randomId,
  };
  // Credentials prepared up front (the client's work, not the server's): 1024 signed deliveries, whose
  // signatures cover webhook-id + body; dedupe keys on Idempotency-Key, fresh for every request.
  const now = new Date();
  const credentials = Array.from({ length: 1024 }, (_, i) =>
    auth === "signature" ? signWebhook(SIGNING_KEY, `k-${i}`, now, body) : { "x-gitlab-token": TOKEN },
  );
  let run = 0;
  const ingress = (i: number) => {
    const headers: Record<string, string> = {
      ...credentials[i % 1024],
      "x-gitlab-event": "Push Hook",
      "x-gitlab-instance": "https://gitlab.example.com",
      "idempotency-key": `r${run}-${i}`,
    };
    return receiveWebhook(deps, { header: (name) => headers[name], body });
  };
  const floor = (i: number) => {
    const headers: Record<string, string> = { ...credentials[i % 1024] };
    verifyWebhook(deps.credentials, (name) => headers[name], body, now);
    return JSON.parse(body.toString("utf8"));
  };
  // Warm both loops first (JIT tiers, inline caches), as the HTTP bench does: without it the first
  // auth mode measured paid for warming the code both modes share.
  run = -1;
  await rate(ms, () => JSON.parse(body.toString("utf8")));
  await rate(ms, ingress);
  await rate(ms, floor);
  const parses: number[] = [];
  const ingresses: number[] = [];
  const floors: number[] = [];
  for (let r = 0; r < rounds; r++) {
    run = r;
    parses.push(await rate(ms, () => JSON.parse(body.toString("utf8"))));
    ingresses.push(await rate(ms, ingress));
    floors.push(await rate(ms, floor));
  }
  const parse = median(parses);
  const ingressRate = median(ingresses);
  const floorRate = median(floors);
  const ingressFigure: Figure = {
    name: `ingress of a ${fmt(body.length / 1024, 1)} KB push, in-process, ${auth === "signature" ? "signed (GitLab 19+)" : "secret token"}`,
    value: `${fmt(ingressRate)} /s (${fmt(1e6 / ingressRate, 1)} µs)`,
    baseline: `JSON.parse only: ${fmt(parse)} /s (${fmt(1e6 / parse, 1)} µs)`,
    ratio: `${fmt(ingressRate / parse, 2)}×`,
    target: "≥ 0.6×",
    met: ingressRate / parse >= 0.6,
  };
  return [
    ingressFigure,
    {
      name: `… its floor: ${auth === "signature" ? "signature check" : "token check"} + JSON.parse, nothing else`,
      value: `${fmt(floorRate)} /s (${fmt(1e6 / floorRate, 1)} µs)`,
      baseline: `JSON.parse only: ${fmt(parse)} /s`,
      ratio: `${fmt(floorRate / parse, 2)}×`,
      target: "— (printed: the ratio no ingress can pass)",
      met: true,
    },
  ];
}
