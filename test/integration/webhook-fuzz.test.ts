/**
 * Hostile input at the webhook endpoint (DESIGN §4, §12): mutated real GitLab payloads, random
 * bodies, hostile headers, encodings and sizes, with right, nearly right and missing credentials.
 * Never a 5xx, never an unhandled rejection, never a publish without a valid credential, one audit
 * line per delivery. `npm run bench` runs the same target over 100,000+ inputs.
 */
import fc from "fast-check";
import { afterAll, describe, expect, it } from "vitest";
import { createWebhookFuzzTarget, webhookCase } from "../fuzz/webhook.js";

const RUNS = 2_000;

describe("webhook endpoint under fuzzing", () => {
  const target = createWebhookFuzzTarget();
  afterAll(() => target.close());

  it(`keeps every promise over ${RUNS} generated deliveries`, async () => {
    await fc.assert(
      fc.asyncProperty(webhookCase, (input) => target.check(input)),
      { numRuns: RUNS },
    );
    const { counts } = target;
    expect(counts.inputs).toBeGreaterThanOrEqual(RUNS);
    expect(counts.unhandledRejections).toBe(0);
    // The generator must reach every kind of answer, or the properties above prove little.
    expect(counts.authentic).toBeGreaterThan(RUNS / 4);
    expect(counts.unauthenticated).toBeGreaterThan(RUNS / 4);
    expect(counts.published).toBeGreaterThan(0);
    for (const status of [200, 202, 400, 401, 413]) expect(counts.byStatus[status]).toBeGreaterThan(0);
  });
});
