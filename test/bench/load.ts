/**
 * Load (issue 8): autocannon over loopback against the real local runtime, in its own process on
 * its own core, for 60 s (`KUBLER_BENCH_LOAD_SECONDS` shortens it), as fast as it answers. A mixed
 * stream of GitLab's own payloads: ~10 % resends of a delivery already accepted (same
 * Idempotency-Key), ~5 % bad credentials (wrong token, or a signature that does not verify), the
 * rest fresh deliveries. Afterwards events.jsonl and audit.jsonl are counted: every accepted
 * delivery published exactly one fact, every resend and every bad one none. The baseline is a bare
 * @hono/node-server route that only parses the same bodies, loaded the same way for a shorter time.
 */
import type { ChildProcess } from "node:child_process";
import { randomUUID } from "node:crypto";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import autocannon, { type Request } from "autocannon";
import { gitlabHeaders, loadFixture } from "../../cli/send.js";
import { startPinnedServer } from "./pinned.js";
import { type Figure, fmt } from "./support.js";

const SIGNING_KEY = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
const TOKEN = "load-token";
const HERE = import.meta.dirname;
const ACTED_ON = ["push", "tag_push", "merge_request", "pipeline", "job", "deployment", "release"];
const FIXTURES = ACTED_ON.map((name) => {
  const fixture = loadFixture(name);
  return { fixture, bytes: Buffer.from(fixture.body) };
});

type Kind = "fresh" | "resend" | "bad";

interface Tally {
  sent: Record<Kind, number>;
  byStatus: Record<number, number>;
  /** Keys answered 202: each must have exactly one fact. */
  accepted: Set<string>;
  /** Keys of resends answered 200 duplicate. */
  resent: string[];
  /** Keys only ever sent with bad credentials: none may have a fact. */
  bad: Set<string>;
  /** Answers that were not what the request's kind should get. */
  unexpected: string[];
}

interface Context {
  key?: string;
  kind?: Kind;
}

export async function benchLoad(
  seconds = Number(process.env.KUBLER_BENCH_LOAD_SECONDS ?? 60),
): Promise<Figure[]> {
  const baselineSeconds = Math.max(3, Math.min(10, Math.round(seconds / 6)));
  const bare = await startPinnedServer(join(HERE, "http-server.ts"), ["bare"], {});
  let baseline: autocannon.Result;
  try {
    baseline = await load(bare.url, baselineSeconds, newTally(), { bare: true });
  } finally {
    await stop(bare.child);
  }

  const dataDir = mkdtempSync(join(tmpdir(), "kubler-load-"));
  const projectsDir = mkdtempSync(join(tmpdir(), "kubler-load-projects-"));
  const tally = newTally();
  let result: autocannon.Result;
  const server = await startPinnedServer(join(HERE, "load-server.ts"), [], {
    KUBLER_DATA_DIR: dataDir,
    // No project opts in: the facts are published and planned as ignored, nothing deploys.
    KUBLER_PROJECTS_DIR: projectsDir,
    KUBLER_WEBHOOK_SIGNING_KEY: SIGNING_KEY,
    KUBLER_WEBHOOK_SECRET: TOKEN,
  });
  try {
    result = await load(server.url, seconds, tally, { bare: false });
  } finally {
    await stop(server.child);
  }
  const counted = count(dataDir, tally);
  rmSync(dataDir, { recursive: true, force: true });
  rmSync(projectsDir, { recursive: true, force: true });

  const fivexx = Object.entries(tally.byStatus)
    .filter(([status]) => Number(status) >= 500)
    .reduce((sum, [, n]) => sum + n, 0);
  const rps = result.requests.average;
  const ratio = rps / baseline.requests.average;
  const answered = Object.values(tally.byStatus).reduce((a, b) => a + b, 0);
  const pct = (n: number) => `${fmt((100 * n) / Math.max(1, answered), 1)} %`;
  const ok =
    fivexx === 0 &&
    counted.lost === 0 &&
    counted.duplicated === 0 &&
    counted.badPublished === 0 &&
    counted.auditMismatch.length === 0 &&
    tally.unexpected.length === 0 &&
    result.errors + result.timeouts === 0;
  return [
    {
      name: `webhook load, ${seconds} s, 10 connections, mixed GitLab payloads (${pct(tally.sent.resend)} resends, ${pct(tally.sent.bad)} bad credentials)`,
      value: `${fmt(rps)} req/s (${fmt(answered)} answered), p50 ${result.latency.p50} ms, p99 ${result.latency.p99} ms, 5xx ${fivexx}, errors ${result.errors + result.timeouts}`,
      baseline: `bare hono parse+202: ${fmt(baseline.requests.average)} req/s, p99 ${baseline.latency.p99} ms (${baselineSeconds} s)`,
      ratio: `${fmt(ratio, 2)}×`,
      target: "0 5xx, 0 errors",
      met: fivexx === 0 && result.errors + result.timeouts === 0,
    },
    {
      name: "load: effects counted from events.jsonl and audit.jsonl",
      value:
        `accepted ${fmt(tally.accepted.size)} → facts ${fmt(counted.factsForAccepted)}; ` +
        `resends ${fmt(tally.resent.length)} → facts 0 (${fmt(counted.duplicated)} extra); ` +
        `bad ${fmt(tally.bad.size)} → facts ${fmt(counted.badPublished)}; lost ${counted.lost}; ` +
        `audit success/ignored-duplicate/deny ${counted.audit.success}/${counted.audit.duplicate}/${counted.audit.deny}` +
        (counted.auditMismatch.length ? ` (mismatch: ${counted.auditMismatch.join("; ")})` : "") +
        (tally.unexpected.length
          ? `; unexpected answers ${tally.unexpected.length}: ${tally.unexpected.slice(0, 3).join(", ")}`
          : ""),
      baseline: `${fmt(counted.inFlight)} requests in flight at the stop, counted apart (each ≤ 1 fact)`,
      ratio: "—",
      target: "0 lost, 0 duplicated, 0 published for bad credentials, audit = answers",
      met: ok,
    },
  ];
}

function newTally(): Tally {
  return {
    sent: { fresh: 0, resend: 0, bad: 0 },
    byStatus: {},
    accepted: new Set(),
    resent: [],
    bad: new Set(),
    unexpected: [],
  };
}

/** Deterministic mix: of every 100 requests, 10 resends and 5 bad, spread out. */
function kindOf(n: number): Kind {
  const slot = n % 20;
  if (slot === 7 || slot === 17) return "resend";
  if (slot === 12) return "bad";
  return "fresh";
}

async function load(
  url: string,
  seconds: number,
  tally: Tally,
  { bare }: { bare: boolean },
): Promise<autocannon.Result> {
  let n = 0;
  const acceptedList: { key: string; fixture: number }[] = [];
  return autocannon({
    url: `${url}/webhooks/gitlab`,
    connections: 10,
    method: "POST",
    duration: seconds,
    requests: [
      {
        setupRequest: (request: Request, context: object): Request => {
          const ctx = context as Context;
          let kind = kindOf(n++);
          // A resend needs an accepted delivery to resend; the first few requests have none yet.
          if (kind === "resend" && acceptedList.length === 0) kind = "fresh";
          const pick =
            kind === "resend"
              ? (acceptedList[Math.floor(Math.random() * acceptedList.length)] as {
                  key: string;
                  fixture: number;
                })
              : { key: randomUUID(), fixture: n % FIXTURES.length };
          const { fixture, bytes } = FIXTURES[pick.fixture] as (typeof FIXTURES)[number];
          const headers =
            kind === "bad"
              ? badHeaders(fixture, pick.key, bytes, n)
              : gitlabHeaders(fixture, { url, signingKey: SIGNING_KEY, idempotencyKey: pick.key });
          ctx.key = pick.key;
          ctx.kind = kind;
          (ctx as { fixture?: number }).fixture = pick.fixture;
          tally.sent[kind]++;
          return { ...request, method: "POST", headers, body: bytes as unknown as string };
        },
        onResponse: (status: number, body: string, context: object) => {
          const ctx = context as Context & { fixture?: number };
          tally.byStatus[status] = (tally.byStatus[status] ?? 0) + 1;
          const key = ctx.key as string;
          const expected = { fresh: 202, resend: 200, bad: 401 }[ctx.kind as Kind];
          // The bare baseline answers 202 to everything: only the shape of the load matters there.
          if (bare) return;
          if (status !== expected) tally.unexpected.push(`${ctx.kind} → ${status} ${body.slice(0, 80)}`);
          if (ctx.kind === "fresh" && status === 202) {
            tally.accepted.add(key);
            acceptedList.push({ key, fixture: ctx.fixture ?? 0 });
          }
          if (ctx.kind === "resend" && status === 200 && body.includes('"duplicate":true'))
            tally.resent.push(key);
          if (ctx.kind === "bad") tally.bad.add(key);
        },
      },
    ],
  });
}

function badHeaders(
  fixture: (typeof FIXTURES)[number]["fixture"],
  key: string,
  bytes: Buffer,
  n: number,
): Record<string, string> {
  if (n % 2) return gitlabHeaders(fixture, { url: "", token: "not-the-token", idempotencyKey: key });
  // Signed over another body: the signature does not verify.
  const headers = gitlabHeaders(
    { ...fixture, body: `${bytes.toString()} ` },
    { url: "", signingKey: SIGNING_KEY, idempotencyKey: key },
  );
  return headers;
}

interface Counted {
  factsForAccepted: number;
  lost: number;
  duplicated: number;
  badPublished: number;
  inFlight: number;
  audit: { success: number; duplicate: number; deny: number };
  auditMismatch: string[];
}

function readJsonl(path: string): Record<string, unknown>[] {
  return readFileSync(path, "utf8")
    .split("\n")
    .filter(Boolean)
    .map((line) => JSON.parse(line));
}

function count(dataDir: string, tally: Tally): Counted {
  const facts = new Map<string, number>();
  for (const event of readJsonl(join(dataDir, "events.jsonl"))) {
    if (event.source !== "kubler.gitlab") continue;
    const key = (event.detail as { correlationId: string }).correlationId;
    facts.set(key, (facts.get(key) ?? 0) + 1);
  }
  let factsForAccepted = 0;
  let lost = 0;
  let duplicated = 0;
  for (const key of tally.accepted) {
    const n = facts.get(key) ?? 0;
    factsForAccepted += Math.min(n, 1);
    if (n === 0) lost++;
    if (n > 1) duplicated += n - 1;
  }
  let badPublished = 0;
  for (const key of tally.bad) badPublished += facts.get(key) ?? 0;
  // Sent when the run stopped, never answered: the server may or may not have handled them.
  let inFlight = 0;
  for (const [key, n] of facts) {
    if (tally.accepted.has(key) || tally.bad.has(key)) continue;
    inFlight++;
    if (n > 1) duplicated += n - 1;
  }

  const audit = { success: 0, duplicate: 0, deny: 0 };
  for (const line of readJsonl(join(dataDir, "audit.jsonl"))) {
    if (line.action !== "webhook.receive") continue;
    if (line.outcome === "success") audit.success++;
    if (line.outcome === "deny") audit.deny++;
    if (line.outcome === "ignored" && String(line.reason).startsWith("duplicate")) audit.duplicate++;
  }
  const mismatch: string[] = [];
  // In-flight requests may add an audit line each beyond the answers counted.
  const within = (name: string, audited: number, answered: number) => {
    if (audited < answered || audited > answered + inFlight + 10) {
      mismatch.push(`${name}: ${audited} audited, ${answered} answered`);
    }
  };
  within("success", audit.success, tally.accepted.size);
  within("duplicate", audit.duplicate, tally.resent.length);
  within("deny", audit.deny, tally.bad.size);
  return { factsForAccepted, lost, duplicated, badPublished, inFlight, audit, auditMismatch: mismatch };
}

function stop(child: ChildProcess): Promise<void> {
  return new Promise((resolve) => {
    if (child.exitCode !== null) return resolve();
    child.once("exit", () => resolve());
    child.kill("SIGTERM");
  });
}
