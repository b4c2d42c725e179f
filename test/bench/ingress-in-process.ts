/**
 * In-process ingress of a real ~10 KB push (verify + dedupe + normalize + publish to an in-memory
 * publisher + audit line) against a loop that only JSON.parses the same body.
 */
import { StdoutAuditLog } from "../../shared/adapters/stdout-audit-log.js";
import { randomId, systemClock } from "../../shared/clock.js";
import { createWebhookCredentials, signWebhook } from "../../shared/domain/webhook-auth.js";
import { MemoryDedupeStore } from "../../shared/local/memory-dedupe-store.js";
import { receiveWebhook } from "../../shared/services/receive-webhook.js";
import { type Figure, fmt, median, pushBody10k, rate } from "./support.js";

const SIGNING_KEY = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";

export async function benchIngressInProcess(rounds = 5, ms = 1000): Promise<Figure[]> {
  const text = pushBody10k();
  const body = Buffer.from(text);
  const deps = {
    credentials: createWebhookCredentials({ signingKeys: [SIGNING_KEY], tokens: [] }),
    dedupe: new MemoryDedupeStore(systemClock),
    publisher: { publish: async (entries: readonly unknown[]) => entries.map((_, i) => `evt-${i}`) },
    // Serialized like the stdout writer does, then dropped: the cost is counted, the terminal is spared.
    audit: new StdoutAuditLog(() => undefined),
    clock: systemClock,
    newId: randomId,
  };
  // Signed once per run: a fresh key per request is what dedupe sees, the signature covers id + body.
  const now = new Date();
  const signatures = Array.from({ length: 1024 }, (_, i) => signWebhook(SIGNING_KEY, `k-${i}`, now, body));
  let run = 0;
  const ingress = (i: number) => {
    const headers: Record<string, string> = {
      ...(signatures[i % 1024] as Record<string, string>),
      "x-gitlab-event": "Push Hook",
      "idempotency-key": `r${run}-${i}`,
    };
    headers["webhook-id"] = `k-${i % 1024}`;
    return receiveWebhook(deps, { header: (name) => headers[name], body });
  };
  const parses: number[] = [];
  const ingresses: number[] = [];
  for (let r = 0; r < rounds; r++) {
    run = r;
    parses.push(await rate(ms, () => JSON.parse(body.toString("utf8"))));
    ingresses.push(await rate(ms, ingress));
  }
  const parse = median(parses);
  const ingressRate = median(ingresses);
  return [
    {
      name: `ingress of a ${fmt(body.length / 1024, 1)} KB push, in-process`,
      value: `${fmt(ingressRate)} /s (${fmt(1e6 / ingressRate, 1)} µs)`,
      baseline: `JSON.parse only: ${fmt(parse)} /s (${fmt(1e6 / parse, 1)} µs)`,
      ratio: `${fmt(ingressRate / parse, 2)}×`,
      target: "≥ 0.6×",
      met: ingressRate / parse >= 0.6,
    },
  ];
}
