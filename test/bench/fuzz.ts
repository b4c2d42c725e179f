/**
 * Fuzzing at volume (issue 8): the targets of `npm test` over 100,000+ webhook deliveries
 * (`KUBLER_BENCH_FUZZ_INPUTS` changes it), 50,000+ ID tokens at POST /v1/credentials, and 20,000+
 * kubler.yaml and policy texts, in seeded chunks so memory stays flat. Baselines from the same run:
 * a bare Hono route reading the same bodies, a plain bad-signature refusal, yaml's own parse.
 */
import fc from "fast-check";
import { Hono } from "hono";
import { parse as parseYaml } from "yaml";
import { checkPolicy, policyText } from "../fuzz/credentials-policy.js";
import { createJwtFuzzTarget, jwtCase } from "../fuzz/jwt.js";
import { checkManifest, manifestText } from "../fuzz/kubler-manifest.js";
import { createWebhookFuzzTarget, type WebhookCase, webhookCase } from "../fuzz/webhook.js";
import { type Figure, fmt } from "./support.js";

const CHUNK = 1_000;

export async function benchFuzz(
  webhookInputs = Number(process.env.KUBLER_BENCH_FUZZ_INPUTS ?? 100_000),
  manifestInputs = Math.max(1_000, Math.round(webhookInputs / 5)),
  jwtInputs = Math.max(1_000, Math.round(webhookInputs / 2)),
): Promise<Figure[]> {
  return [
    await fuzzWebhook(webhookInputs),
    await fuzzJwt(jwtInputs),
    fuzzYaml(
      "kubler.yaml",
      manifestText,
      (text, counts) => checkManifest(text, counts),
      "ManifestError",
      manifestInputs,
    ),
    fuzzYaml(
      "credentials policy",
      policyText,
      (text, counts) => checkPolicy(text, counts),
      "PolicyError",
      manifestInputs,
    ),
  ];
}

async function fuzzJwt(total: number): Promise<Figure> {
  const target = await createJwtFuzzTarget();
  const failures: string[] = [];
  const started = performance.now();
  try {
    for (let seed = 0; target.counts.inputs < total; seed++) {
      for (const input of fc.sample(jwtCase, { numRuns: CHUNK, seed })) {
        await target.check(input).catch((error: Error) => failures.push(error.message));
      }
    }
  } finally {
    await target.close();
  }
  const seconds = (performance.now() - started) / 1000;
  const { counts } = target;
  const fivexx = Object.entries(counts.byStatus)
    .filter(([status]) => Number(status) >= 500)
    .reduce((sum, [, n]) => sum + n, 0);
  const statuses = Object.entries(counts.byStatus)
    .map(([status, n]) => `${status}: ${fmt(n)}`)
    .join(", ");
  // Baseline: the cheapest honest refusal, a well-formed token with a bad signature, timed alone.
  const baseline = await refusalRate();
  const rate = counts.inputs / seconds;
  return {
    name: `credentials fuzzing: ${fmt(counts.inputs)} mutated ID tokens at POST /v1/credentials (signing included)`,
    value: `${fmt(rate)} inputs/s; ${statuses}; issued ${fmt(counts.issued)}; 5xx ${fivexx}; unhandled rejections ${counts.unhandledRejections}; broken promises ${failures.length}${failures.length ? ` (${failures[0]?.slice(0, 160)})` : ""}`,
    baseline: `a bad-signature token refused: ${fmt(baseline)} req/s`,
    ratio: `${fmt(rate / baseline, 2)}×`,
    target: "≥ 50,000 inputs, 0 5xx, 0 unhandled rejections, never credentials for an unsigned token",
    met: counts.inputs >= 50_000 && fivexx === 0 && counts.unhandledRejections === 0 && failures.length === 0,
  };
}

async function refusalRate(): Promise<number> {
  const target = await createJwtFuzzTarget();
  const input = {
    label: "baseline",
    plan: { kind: "signature", how: "flip", at: 7 },
    authorization: "Bearer <t>",
    body: "",
  } as const;
  try {
    for (let i = 0; i < 200; i++) await target.check(input);
    const start = performance.now();
    for (let i = 0; i < 2_000; i++) await target.check(input);
    return 2_000 / ((performance.now() - start) / 1000);
  } finally {
    await target.close();
  }
}

async function fuzzWebhook(total: number): Promise<Figure> {
  const target = createWebhookFuzzTarget();
  const bare = new Hono();
  bare.post("/webhooks/gitlab", async (c) => {
    await c.req.arrayBuffer();
    return c.json({ ok: true });
  });
  const failures: string[] = [];
  let checkMs = 0;
  let bareMs = 0;
  const started = performance.now();
  try {
    for (let seed = 0; target.counts.inputs + failures.length < total; seed++) {
      const cases: WebhookCase[] = fc.sample(webhookCase, { numRuns: CHUNK, seed });
      // Alternate which goes first, so drift on the shared machine hits both.
      const order = seed % 2 ? ["bare", "check"] : ["check", "bare"];
      for (const what of order) {
        const t = performance.now();
        for (const input of cases) {
          if (what === "bare") {
            await (
              await bare.request("/webhooks/gitlab", {
                method: "POST",
                headers: input.headers,
                body: input.body,
              })
            ).text();
          } else {
            await target.check(input).catch((error: Error) => failures.push(error.message));
          }
        }
        if (what === "bare") bareMs += performance.now() - t;
        else checkMs += performance.now() - t;
      }
    }
  } finally {
    target.close();
  }
  const { counts } = target;
  const inputs = counts.inputs;
  const rate = inputs / (checkMs / 1000);
  const bareRate = inputs / (bareMs / 1000);
  const fivexx = Object.entries(counts.byStatus)
    .filter(([status]) => Number(status) >= 500)
    .reduce((sum, [, n]) => sum + n, 0);
  const statuses = Object.entries(counts.byStatus)
    .map(([status, n]) => `${status}: ${fmt(n)}`)
    .join(", ");
  return {
    name: `webhook fuzzing: ${fmt(inputs)} generated deliveries (${fmt(counts.unauthenticated)} without a valid credential) in ${fmt((performance.now() - started) / 1000)} s`,
    value: `${fmt(rate)} inputs/s; ${statuses}; published ${fmt(counts.published)}; 5xx ${fivexx}; unhandled rejections ${counts.unhandledRejections}; broken promises ${failures.length}${failures.length ? ` (${failures[0]?.slice(0, 160)})` : ""}`,
    baseline: `bare Hono route reading the same bodies: ${fmt(bareRate)} inputs/s`,
    ratio: `${fmt(rate / bareRate, 2)}×`,
    target: "≥ 100,000 inputs, 0 5xx, 0 unhandled rejections, 0 broken promises",
    met: inputs >= 100_000 && fivexx === 0 && counts.unhandledRejections === 0 && failures.length === 0,
  };
}

function fuzzYaml(
  what: string,
  arbitrary: fc.Arbitrary<string>,
  check: (text: string, counts: { inputs: number; accepted: number; refused: number }) => void,
  named: string,
  total: number,
): Figure {
  const counts = { inputs: 0, accepted: 0, refused: 0 };
  const failures: string[] = [];
  let checkMs = 0;
  let yamlMs = 0;
  for (let seed = 0; counts.inputs < total; seed++) {
    const texts = fc.sample(arbitrary, { numRuns: CHUNK, seed });
    let t = performance.now();
    for (const text of texts) {
      try {
        parseYaml(text, { logLevel: "error" });
      } catch {
        // the baseline only measures the parse
      }
    }
    yamlMs += performance.now() - t;
    t = performance.now();
    for (const text of texts) {
      try {
        check(text, counts);
      } catch (error) {
        failures.push((error as Error).message);
      }
    }
    checkMs += performance.now() - t;
  }
  const rate = counts.inputs / (checkMs / 1000);
  const yamlRate = counts.inputs / (yamlMs / 1000);
  return {
    name: `${what} fuzzing: ${fmt(counts.inputs)} generated texts`,
    value: `${fmt(rate)} inputs/s; accepted ${fmt(counts.accepted)}, ${named} ${fmt(counts.refused)}, any other exception ${failures.length}${failures.length ? ` (${failures[0]?.slice(0, 160)})` : ""}`,
    baseline: `yaml's own parse of the same texts: ${fmt(yamlRate)} inputs/s`,
    ratio: `${fmt(rate / yamlRate, 2)}×`,
    target: `only ${named}`,
    met: failures.length === 0,
  };
}
