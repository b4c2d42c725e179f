/**
 * Fuzzing of the GitLab webhook endpoint, shared by `npm test` (a few thousand inputs) and
 * `npm run bench` (100,000+): real GitLab payloads mutated, random bodies, hostile headers,
 * encodings, sizes, and credentials that are right, nearly right or absent. Every answer is checked
 * against what the design promises (DESIGN §4, §12); a broken promise throws, naming the input.
 */
import { randomUUID } from "node:crypto";
import fc from "fast-check";
import { listFixtures, loadFixture } from "../../cli/send.js";
import { createGitlabWebhookApp } from "../../functions/gitlab-webhook/app.js";
import type { AuditRecord } from "../../shared/domain/audit.js";
import { type BusEntry, validateDetail } from "../../shared/domain/catalog.js";
import { createWebhookCredentials, signWebhook } from "../../shared/domain/webhook-auth.js";
import { MemoryDedupeStore } from "../../shared/local/memory-dedupe-store.js";
import type { EventPublisher } from "../../shared/ports.js";
import { FixedClock, sequentialIds } from "../fakes/index.js";
import {
  byteDamage,
  encodeDamaged,
  hostileValue,
  type Mutation,
  mutate,
  mutation,
  prototypePolluted,
  toJsonText,
} from "./hostile-json.js";

export const FUZZ_SIGNING_KEY = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
export const FUZZ_TOKEN = "fuzz-s3cret-token";
const OTHER_KEY = "whsec_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA";
/** Small, so oversized bodies stay cheap to make; the limit logic is the same at any size. */
export const FUZZ_MAX_BODY_BYTES = 32 * 1024;

const FIXTURES = listFixtures().map((name) => {
  const fixture = loadFixture(name);
  return { ...fixture, payload: JSON.parse(fixture.body) as unknown };
});

/** One request, and whether its credential is one the server accepts. */
export interface WebhookCase {
  label: string;
  headers: Record<string, string>;
  body: Buffer;
  authentic: boolean;
  oversized: boolean;
}

const TOKEN_CHARS = "!#$%&'*+-.^_`|~0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ".split("");
const headerName = fc.string({ unit: fc.constantFrom(...TOKEN_CHARS), minLength: 1, maxLength: 24 });
/** What `Headers` accepts: latin-1 without NUL, CR, LF. */
const headerValue = fc.oneof(
  fc.string({
    unit: fc
      .integer({ min: 0x20, max: 0xff })
      .filter((c) => c !== 0x7f)
      .map((c) => String.fromCharCode(c)),
    maxLength: 60,
  }),
  fc.integer({ min: 1_000, max: 8_000 }).map((n) => "k".repeat(n)),
);

type BodyPlan =
  | { kind: "fixture"; fixture: number }
  | { kind: "mutated"; fixture: number; mutations: Mutation[] }
  | { kind: "random-json"; value: unknown }
  | { kind: "random-bytes"; bytes: Uint8Array }
  | { kind: "oversized"; fixture: number; extra: number };

/** The events Kubler acts on (published when intact and authentic), drawn as often as all the rest. */
const ACTED_ON = ["push", "tag_push", "merge_request", "pipeline", "job", "deployment", "release"];
const fixtureIndex = fc.oneof(
  fc.constantFrom(...FIXTURES.flatMap((f, i) => (ACTED_ON.includes(f.name) ? [i] : []))),
  fc.nat({ max: FIXTURES.length - 1 }),
);
const bodyPlan: fc.Arbitrary<BodyPlan> = fc.oneof(
  { weight: 6, arbitrary: fc.record({ kind: fc.constant("fixture" as const), fixture: fixtureIndex }) },
  {
    weight: 10,
    arbitrary: fc.record({
      kind: fc.constant("mutated" as const),
      fixture: fixtureIndex,
      mutations: fc.array(mutation, { minLength: 1, maxLength: 4 }),
    }),
  },
  {
    weight: 2,
    arbitrary: fc.record({
      kind: fc.constant("random-json" as const),
      value: fc.oneof(fc.jsonValue({ maxDepth: 4 }), hostileValue),
    }),
  },
  {
    weight: 2,
    arbitrary: fc.record({
      kind: fc.constant("random-bytes" as const),
      bytes: fc.uint8Array({ maxLength: 512 }),
    }),
  },
  {
    weight: 1,
    arbitrary: fc.record({
      kind: fc.constant("oversized" as const),
      fixture: fixtureIndex,
      extra: fc.integer({ min: 1, max: FUZZ_MAX_BODY_BYTES }),
    }),
  },
);

type AuthPlan =
  | { kind: "token" | "none" | "signature-and-wrong-token" }
  | { kind: "signature"; skewSeconds: number }
  | { kind: "wrong-token"; token: string }
  | {
      kind: "bad-signature";
      how: "flip" | "other-body" | "other-key" | "other-id" | "no-id" | "no-timestamp" | "v2" | "stale";
      at: number;
      skewSeconds: number;
      withValidToken: boolean;
    };

const nearToken = fc.oneof(
  headerValue,
  fc.nat().map((n) => FUZZ_TOKEN.slice(0, 1 + (n % (FUZZ_TOKEN.length - 1)))),
  fc.nat().map((n) => {
    const i = n % FUZZ_TOKEN.length;
    return `${FUZZ_TOKEN.slice(0, i)}${FUZZ_TOKEN[i] === "X" ? "Y" : "X"}${FUZZ_TOKEN.slice(i + 1)}`;
  }),
  fc.constant(`${FUZZ_TOKEN}x`),
  fc.constant(FUZZ_TOKEN.toUpperCase()),
);
const authPlan: fc.Arbitrary<AuthPlan> = fc.oneof(
  {
    weight: 3,
    arbitrary: fc.constantFrom<AuthPlan>({ kind: "token" }, { kind: "signature-and-wrong-token" }),
  },
  {
    weight: 3,
    arbitrary: fc.record({
      kind: fc.constant("signature" as const),
      skewSeconds: fc.integer({ min: -290, max: 290 }),
    }),
  },
  { weight: 1, arbitrary: fc.constant<AuthPlan>({ kind: "none" }) },
  {
    weight: 2,
    arbitrary: fc.record({
      kind: fc.constant("wrong-token" as const),
      token: nearToken.filter((t) => t.trim() !== FUZZ_TOKEN),
    }),
  },
  {
    weight: 3,
    arbitrary: fc.record({
      kind: fc.constant("bad-signature" as const),
      how: fc.constantFrom(
        "flip",
        "other-body",
        "other-key",
        "other-id",
        "no-id",
        "no-timestamp",
        "v2",
        "stale",
      ),
      at: fc.nat(),
      skewSeconds: fc.oneof(
        fc.integer({ min: 301, max: 10_000_000 }),
        fc.integer({ min: -10_000_000, max: -301 }),
      ),
      withValidToken: fc.boolean(),
    }),
  },
);

interface HeaderPlan {
  event: string | null;
  contentType: string | null;
  contentEncoding: string | null;
  contentLength: "absent" | "true" | string;
  idempotencyKey: string | null;
  instance: string | null;
  extra: Record<string, string>;
}

const headerPlan: fc.Arbitrary<HeaderPlan> = fc.record({
  event: fc.oneof(
    { weight: 6, arbitrary: fc.constant("<fixture>") },
    { weight: 1, arbitrary: fc.constantFrom(...new Set(FIXTURES.map((f) => f.eventHeader))) },
    { weight: 1, arbitrary: fc.constant(null) },
    { weight: 1, arbitrary: headerValue },
    {
      weight: 1,
      arbitrary: fc.constantFrom(
        "push hook",
        "PUSH HOOK",
        "Push Hook ",
        "System Hook",
        "constructor",
        "__proto__",
      ),
    },
  ),
  contentType: fc.oneof(
    fc.constant("application/json"),
    fc.constant(null),
    fc.constantFrom(
      "text/plain",
      "application/json; charset=utf-16",
      "application/x-www-form-urlencoded",
      "multipart/form-data; boundary=x",
    ),
    headerValue,
  ),
  contentEncoding: fc.oneof(
    { weight: 5, arbitrary: fc.constant(null) },
    { weight: 1, arbitrary: fc.constantFrom("gzip", "br", "deflate", "identity", "gzip, gzip") },
    { weight: 1, arbitrary: headerValue },
  ),
  contentLength: fc.oneof(
    { weight: 4, arbitrary: fc.constant("absent") },
    { weight: 4, arbitrary: fc.constant("true") },
    { weight: 1, arbitrary: fc.constantFrom("-1", "abc", "1e3", "0x10", "99999999999999999999", "0", " 1") },
  ),
  idempotencyKey: fc.oneof(
    { weight: 6, arbitrary: fc.constant("<uuid>") },
    { weight: 1, arbitrary: fc.constant(null) },
    { weight: 1, arbitrary: fc.constantFrom("dup-1", "dup-2", "__proto__", "constructor") },
    { weight: 1, arbitrary: headerValue },
  ),
  instance: fc.oneof(fc.constant("https://gitlab.example.com"), fc.constant(null), headerValue),
  extra: fc.dictionary(headerName, headerValue, { maxKeys: 4 }),
});

/** The credential and body headers are set last and win over random extras of the same name. */
const RESERVED = /^(x-gitlab-|webhook-|idempotency-key|content-|transfer-encoding|host)/i;

export const webhookCase: fc.Arbitrary<WebhookCase> = fc
  .record({ body: bodyPlan, damage: byteDamage, headers: headerPlan, auth: authPlan })
  .map(({ body: plan, damage, headers: h, auth }) => buildCase(plan, damage, h, auth));

function buildCase(
  plan: BodyPlan,
  damage: Parameters<typeof encodeDamaged>[1],
  h: HeaderPlan,
  auth: AuthPlan,
): WebhookCase {
  const fixture = "fixture" in plan ? FIXTURES[plan.fixture % FIXTURES.length] : undefined;
  let body: Buffer;
  switch (plan.kind) {
    case "fixture":
      // Half intact, so that authentic deliveries of real events reach the publisher.
      body = encodeDamaged(fixture?.body ?? "{}", plan.fixture % 2 ? damage : { kind: "none" });
      break;
    case "mutated":
      body = encodeDamaged(toJsonText(mutate(fixture?.payload, plan.mutations)), damage);
      break;
    case "random-json":
      body = encodeDamaged(toJsonText(plan.value), damage);
      break;
    case "random-bytes":
      body = Buffer.from(plan.bytes);
      break;
    case "oversized": {
      const text = fixture?.body ?? "{}";
      // Still valid JSON: only the size is wrong.
      const padding = " ".repeat(Math.max(0, FUZZ_MAX_BODY_BYTES - Buffer.byteLength(text)) + plan.extra);
      body = Buffer.from(`${text}${padding}`);
      break;
    }
  }
  const oversized = body.length > FUZZ_MAX_BODY_BYTES;
  const headers: Record<string, string> = {};
  for (const [name, value] of Object.entries(h.extra)) if (!RESERVED.test(name)) headers[name] = value;
  const event = h.event === "<fixture>" ? (fixture?.eventHeader ?? "Push Hook") : h.event;
  if (event !== null) headers["x-gitlab-event"] = event;
  if (h.contentType !== null) headers["content-type"] = h.contentType;
  if (h.contentEncoding !== null) headers["content-encoding"] = h.contentEncoding;
  // A lying Content-Length cannot enlarge a body over a real socket (Node frames by it), so an
  // oversized body carries its true length or none.
  if (h.contentLength === "true" || (oversized && h.contentLength !== "absent")) {
    headers["content-length"] = String(body.length);
  } else if (h.contentLength !== "absent") {
    headers["content-length"] = h.contentLength;
  }
  const key = h.idempotencyKey === "<uuid>" ? randomUUID() : h.idempotencyKey;
  if (key !== null) headers["idempotency-key"] = key;
  if (h.instance !== null) headers["x-gitlab-instance"] = h.instance;

  const now = FUZZ_NOW;
  const id = key?.trim() || `msg_${randomUUID()}`;
  let authentic = false;
  switch (auth.kind) {
    case "token":
      headers["x-gitlab-token"] = FUZZ_TOKEN;
      authentic = true;
      break;
    case "wrong-token":
      headers["x-gitlab-token"] = auth.token;
      break;
    case "none":
      break;
    case "signature":
    case "signature-and-wrong-token": {
      const skew = auth.kind === "signature" ? auth.skewSeconds : 0;
      Object.assign(headers, signWebhook(FUZZ_SIGNING_KEY, id, new Date(now.getTime() + skew * 1000), body));
      if (auth.kind === "signature-and-wrong-token") headers["x-gitlab-token"] = "not-the-token";
      authentic = true;
      break;
    }
    case "bad-signature": {
      const at = auth.how === "stale" ? new Date(now.getTime() + auth.skewSeconds * 1000) : now;
      const signingKey = auth.how === "other-key" ? OTHER_KEY : FUZZ_SIGNING_KEY;
      const signedBody = auth.how === "other-body" ? Buffer.concat([body, Buffer.from(" ")]) : body;
      const signed = signWebhook(signingKey, id, at, signedBody);
      if (auth.how === "flip") {
        const mac = Buffer.from(signed["webhook-signature"].slice(3), "base64");
        mac[auth.at % mac.length] = (mac[auth.at % mac.length] ?? 0) ^ (1 << (auth.at % 8));
        signed["webhook-signature"] = `v1,${mac.toString("base64")}`;
      }
      if (auth.how === "v2") signed["webhook-signature"] = signed["webhook-signature"].replace("v1,", "v2,");
      if (auth.how === "other-id") signed["webhook-id"] = `${id}-other`;
      Object.assign(headers, signed);
      if (auth.how === "no-id") delete headers["webhook-id"];
      if (auth.how === "no-timestamp") delete headers["webhook-timestamp"];
      // The signature is checked first: a valid token beside a bad signature must not let it in.
      if (auth.withValidToken) headers["x-gitlab-token"] = FUZZ_TOKEN;
      break;
    }
  }
  return {
    label: `${plan.kind}${fixture ? `:${fixture.name}` : ""}, damage ${damage.kind}, auth ${auth.kind}${"how" in auth ? `:${auth.how}` : ""}`,
    headers,
    body,
    authentic,
    oversized,
  };
}

/** The fuzz target's fixed time: signatures are made against it. */
export const FUZZ_NOW = new Date("2026-11-21T10:00:00Z");

export interface WebhookFuzzCounts {
  inputs: number;
  authentic: number;
  unauthenticated: number;
  byStatus: Record<number, number>;
  published: number;
  unhandledRejections: number;
}

/**
 * The real webhook app with in-memory ports that count; `check(case)` sends one input in-process
 * and throws when the answer breaks a promise. `close()` stops listening for unhandled rejections.
 *
 * @example
 * const target = createWebhookFuzzTarget();
 * await fc.assert(fc.asyncProperty(webhookCase, (c) => target.check(c)), { numRuns: 2_000 });
 */
export function createWebhookFuzzTarget() {
  const clock = new FixedClock(FUZZ_NOW);
  let published = 0;
  let audits = 0;
  let lastAudit: AuditRecord | undefined;
  const errors: unknown[] = [];
  const publisher: EventPublisher = {
    async publish(entries: readonly BusEntry[]) {
      for (const entry of entries) validateDetail(entry.detailType, entry.detail);
      published += entries.length;
      return entries.map((_, i) => `evt-${published}-${i}`);
    },
  };
  const app = createGitlabWebhookApp({
    credentials: createWebhookCredentials({ signingKeys: [FUZZ_SIGNING_KEY], tokens: [FUZZ_TOKEN] }),
    maxBodyBytes: FUZZ_MAX_BODY_BYTES,
    publisher,
    dedupe: new MemoryDedupeStore(clock),
    audit: {
      record(record) {
        audits++;
        lastAudit = record;
      },
    },
    logError: (error) => errors.push(error),
    clock,
    newId: sequentialIds("corr"),
  });
  const counts: WebhookFuzzCounts = {
    inputs: 0,
    authentic: 0,
    unauthenticated: 0,
    byStatus: {},
    published: 0,
    unhandledRejections: 0,
  };
  const onUnhandled = () => {
    counts.unhandledRejections++;
  };
  process.on("unhandledRejection", onUnhandled);

  async function check(input: WebhookCase): Promise<void> {
    const before = { published, audits };
    const res = await app.request("/webhooks/gitlab", {
      method: "POST",
      headers: input.headers,
      body: input.body,
    });
    const text = await res.text();
    counts.inputs++;
    counts[input.authentic ? "authentic" : "unauthenticated"]++;
    counts.byStatus[res.status] = (counts.byStatus[res.status] ?? 0) + 1;
    counts.published += published - before.published;

    const fail = (why: string) => {
      throw new Error(`${why} — ${input.label}: ${res.status} ${text.slice(0, 200)}`);
    };
    if (res.status >= 500) fail("a 5xx");
    if (errors.length > 0) fail(`an unexpected error reached logError: ${String(errors[0])}`);
    const newPublishes = published - before.published;
    if (!input.authentic && newPublishes > 0) fail("published for an unauthenticated request");
    if (newPublishes !== (res.status === 202 ? 1 : 0)) fail(`${newPublishes} publishes for a ${res.status}`);
    // Refused on its word: a Content-Length over the limit is 413 before the body is read.
    const tooLarge = input.oversized || Number(input.headers["content-length"]) > FUZZ_MAX_BODY_BYTES;
    if (input.oversized && res.status !== 413) fail("an oversized body was not refused with 413");
    if (!tooLarge && res.status === 413) fail("413 for a body within the limit");
    if (!input.authentic && !tooLarge && res.status !== 401) fail("unauthenticated, yet not 401");
    if (audits - before.audits !== 1) fail(`${audits - before.audits} audit lines for one delivery`);
    if (res.status >= 400 && lastAudit?.outcome !== (res.status === 401 ? "deny" : "failure")) {
      fail(`a refusal audited as ${lastAudit?.outcome}`);
    }
    let answer: unknown;
    try {
      answer = JSON.parse(text);
    } catch {
      fail("the answer is not JSON");
    }
    if (typeof answer !== "object" || answer === null) fail("the answer is not a JSON object");
    if (/\bat \S+ \(\S+:\d+:\d+\)/.test(text) || text.includes(FUZZ_TOKEN))
      fail("a stack trace or secret in the answer");
    if (prototypePolluted()) fail("Object.prototype was polluted");
  }

  return {
    counts,
    check,
    close() {
      process.off("unhandledRejection", onUnhandled);
    },
  };
}
