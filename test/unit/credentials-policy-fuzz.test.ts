/**
 * Hostile credentials policies (DESIGN §5): whatever the text, parseCredentialsPolicy answers with a
 * policy or a PolicyError, never another exception (alias bombs, unresolved aliases and deep
 * nesting included). `npm run bench` runs more inputs.
 */
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { PolicyError, parseCredentialsPolicy } from "../../shared/domain/credentials-policy.js";
import {
  checkPolicy,
  type PolicyFuzzCounts,
  policyText,
  VALID_POLICIES,
} from "../fuzz/credentials-policy.js";

const RUNS = 1_000;

describe("parseCredentialsPolicy under fuzzing", () => {
  it("accepts the unmutated policies the generator starts from", () => {
    for (const text of VALID_POLICIES) expect(parseCredentialsPolicy(text).rules.length).toBeGreaterThan(0);
  });

  it("reports an alias to no anchor, an alias bomb and deep nesting as a PolicyError", () => {
    const bomb = [
      'a: &a ["x","x","x","x","x","x","x","x","x"]',
      "b: &b [*a,*a,*a,*a,*a,*a,*a,*a,*a]",
      "c: &c [*b,*b,*b,*b,*b,*b,*b,*b,*b]",
      "d: [*c,*c,*c,*c,*c,*c,*c,*c,*c]",
    ];
    for (const text of ["rules: *nowhere", bomb.join("\n"), `rules: ${"[".repeat(10_000)}`]) {
      expect(() => parseCredentialsPolicy(text)).toThrow(PolicyError);
    }
  });

  it(`throws only PolicyError over ${RUNS} generated texts`, () => {
    const counts: PolicyFuzzCounts = { inputs: 0, accepted: 0, refused: 0 };
    fc.assert(
      fc.property(policyText, (text) => checkPolicy(text, counts)),
      { numRuns: RUNS },
    );
    expect(counts.accepted).toBeGreaterThan(0);
    expect(counts.refused).toBeGreaterThan(RUNS / 2);
  });
});
