/**
 * Hostile ID tokens at POST /v1/credentials (DESIGN §5, §12): mutated headers, claims and
 * signatures, alg swaps, embedded keys, broken base64 and structure, odd Authorization headers and
 * bodies. Never a 5xx, never an unhandled rejection, only 200/400/401/403/413, and never
 * credentials for a token the issuer did not sign. `npm run bench` runs 50,000+ of them.
 */
import fc from "fast-check";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createJwtFuzzTarget, jwtCase } from "../fuzz/jwt.js";

const RUNS = 2_000;

describe("credentials endpoint under fuzzing", () => {
  let target: Awaited<ReturnType<typeof createJwtFuzzTarget>>;
  beforeAll(async () => {
    target = await createJwtFuzzTarget();
  });
  afterAll(() => target.close());

  it(`keeps every promise over ${RUNS} generated requests`, async () => {
    await fc.assert(
      fc.asyncProperty(jwtCase, (input) => target.check(input)),
      { numRuns: RUNS },
    );
    const { counts } = target;
    expect(counts.inputs).toBeGreaterThanOrEqual(RUNS);
    expect(counts.unhandledRejections).toBe(0);
    // Valid tokens get through, or the refusals above prove little.
    expect(counts.byStatus[200]).toBeGreaterThan(0);
    expect(counts.issued).toBe(counts.byStatus[200]);
    for (const status of [400, 401]) expect(counts.byStatus[status]).toBeGreaterThan(0);
  });
});
