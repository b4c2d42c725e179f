/**
 * In-process ingress of a real ~10 KB push (verify + dedupe + normalize + publish to an in-memory
 * publisher + audit line) against a loop that only JSON.parses the same body.
 *
 * Each auth mode runs in a fresh process pinned to one core (`pinned.ts`): measured one after the
 * other in one process, the second paid for collecting the first one's garbage (its dedupe map held
 * every key of its run), which put the token figure ≈ 7 µs (20 %) above a run of its own. Run as a
 * script (`ingress-in-process.ts signature|token [rounds] [ms]`) it prints that mode's medians as JSON.
 */
import { StdoutAuditLog } from "../../shared/adapters/stdout-audit-log.js";
import { randomId, systemClock } from "../../shared/clock.js";
import { createWebhookCredentials, signWebhook, verifyWebhook } from "../../shared/domain/webhook-auth.js";
import { MemoryDedupeStore } from "../../shared/local/memory-dedupe-store.js";
import { receiveWebhook } from "../../shared/services/receive-webhook.js";
import { canPin, runPinnedJson } from "./pinned.js";
import { type Figure, fmt, median, pushBody10k, rate } from "./support.js";

const SIGNING_KEY = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
const TOKEN = "bench-secret-token";

type Auth = "signature" | "token";

/** Medians, in operations per second, of one auth mode's three interleaved loops. */
export interface IngressRates {
  parse: number;
  ingress: number;
  floor: number;
  bodyBytes: number;
}

export async function benchIngressInProcess(rounds = 5, ms = 1000): Promise<Figure[]> {
  const figures: Figure[] = [];
  for (const auth of ["signature", "token"] as const) {
    const rates = await runPinnedJson<IngressRates>(import.meta.filename, [auth, String(rounds), String(ms)]);
    figures.push(...toFigures(auth, rates));
  }
  return figures;
}

/**
 * GitLab 19+ signs (HMAC over the body); older hooks send a secret token (no pass over the body).
 * Each mode also prints its floor: verifying the delivery and parsing its body, which DESIGN §4
 * requires of every ingress before anything else. What the target leaves above the floor is the
 * budget for dedupe, normalize, publish and the audit line.
 */
export async function measureIngress(auth: Auth, rounds: number, ms: number): Promise<IngressRates> {
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
  // signatures cover webhook-id + body, for the floor. The ingress needs a fresh delivery every request:
  // a signed one dedupes on its webhook-id (equal to its Idempotency-Key, as GitLab sends them), so
  // each round signs its own, as many as the floor's rate says the round can use.
  const now = new Date();
  const credentials = Array.from({ length: 1024 }, (_, i) =>
    auth === "signature" ? signWebhook(SIGNING_KEY, `k-${i}`, now, body) : { "x-gitlab-token": TOKEN },
  );
  let run = 0;
  let signed: Record<string, string>[] = [];
  const presign = (count: number) => {
    signed = [];
    const at = new Date();
    if (auth === "signature") {
      for (let i = 0; i < count; i++) signed.push(signWebhook(SIGNING_KEY, `r${run}-${i}`, at, body));
    }
  };
  const ingress = (i: number) => {
    const key = `r${run}-${i}`;
    const headers: Record<string, string> = {
      ...(auth === "signature"
        ? (signed[i] ?? signWebhook(SIGNING_KEY, key, now, body))
        : credentials[i % 1024]),
      "x-gitlab-event": "Push Hook",
      "x-gitlab-instance": "https://gitlab.example.com",
      "idempotency-key": key,
    };
    return receiveWebhook(deps, { header: (name) => headers[name], body });
  };
  const floor = (i: number) => {
    const headers: Record<string, string> = { ...credentials[i % 1024] };
    verifyWebhook(deps.credentials, (name) => headers[name], body, now);
    return JSON.parse(body.toString("utf8"));
  };
  // Warm every loop first (JIT tiers, inline caches), as the HTTP bench does.
  run = -1;
  presign(1024);
  await rate(ms, () => JSON.parse(body.toString("utf8")));
  await rate(ms, ingress);
  // The floor (verify + parse) outruns any ingress: its rate bounds how many deliveries a round uses.
  const deliveriesPerRound = Math.ceil(((await rate(ms, floor)) * ms * 1.2) / 1000);
  const parses: number[] = [];
  const ingresses: number[] = [];
  const floors: number[] = [];
  for (let r = 0; r < rounds; r++) {
    run = r;
    presign(deliveriesPerRound);
    parses.push(await rate(ms, () => JSON.parse(body.toString("utf8"))));
    ingresses.push(await rate(ms, ingress));
    floors.push(await rate(ms, floor));
  }
  return { parse: median(parses), ingress: median(ingresses), floor: median(floors), bodyBytes: body.length };
}

function toFigures(
  auth: Auth,
  { parse, ingress: ingressRate, floor: floorRate, bodyBytes }: IngressRates,
): Figure[] {
  const where = canPin() ? "own process, one core" : "own process, unpinned: taskset unavailable";
  const ingressFigure: Figure = {
    name: `ingress of a ${fmt(bodyBytes / 1024, 1)} KB push, in-process, ${auth === "signature" ? "signed (GitLab 19+)" : "secret token"} (${where})`,
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

if (process.argv[1] === import.meta.filename) {
  const [auth = "signature", rounds = "5", ms = "1000"] = process.argv.slice(2);
  if (auth !== "signature" && auth !== "token")
    throw new Error(`auth mode must be signature or token, not ${auth}`);
  console.log(JSON.stringify(await measureIngress(auth, Number(rounds), Number(ms))));
}
