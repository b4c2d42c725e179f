/**
 * Hostile credentials policies (DESIGN §5): whatever the text, parseCredentialsPolicy answers with a
 * policy or a PolicyError, never another exception (alias bombs, unresolved aliases and deep
 * nesting included). `npm run bench` runs more inputs. And whatever the pattern, an accepted rule's
 * project patterns stay inside their own top-level group and name literal ids.
 */
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import {
  type CredentialsPolicy,
  compileGlob,
  matchesGlob,
  PolicyError,
  parseCredentialsPolicy,
} from "../../shared/domain/credentials-policy.js";
import {
  checkPolicy,
  type PolicyFuzzCounts,
  policyText,
  VALID_POLICIES,
} from "../fuzz/credentials-policy.js";

const RUNS = 1_000;

function parsed(text: string): CredentialsPolicy | null {
  try {
    return parseCredentialsPolicy(text);
  } catch (error) {
    if (error instanceof PolicyError) return null;
    throw error;
  }
}

const topLevelGroup = (path: string) => path.split("/")[0];
const hasWildcard = (text: string) => /[*?]/.test(text);

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

describe("project patterns an accepted rule holds", () => {
  const char = fc.constantFrom("a", "b", "-", "/", "*", "?");
  const pattern = fc.array(char, { minLength: 1, maxLength: 8 }).map((cs) => cs.join(""));
  // What a wildcard may stand for in a real path: "groupevil", "x/y", nothing.
  const filler = fc
    .array(fc.constantFrom("a", "evil", "/", "-", "b"), { maxLength: 4 })
    .map((cs) => cs.join(""));
  const rule = (key: string, value: string) =>
    `rules:\n  - name: r\n    match: { ${key}: ${JSON.stringify(value)} }\n    aws: { roleArn: "arn:aws:iam::123456789012:role/r" }\n`;

  it("every path an accepted project_path or namespace_path matches is in the pattern's own top-level group", () => {
    fc.assert(
      fc.property(
        fc.constantFrom("project_path", "namespace_path"),
        pattern,
        fc.array(filler, { minLength: 8, maxLength: 8 }),
        fc.array(fc.constantFrom("a", "/", "-"), { minLength: 8, maxLength: 8 }),
        (key, glob, stars, singles) => {
          const policy = parsed(rule(key, glob));
          const group = topLevelGroup(glob) as string;
          // A literal top-level group is accepted (unless the pattern is all wildcards and slashes).
          expect(policy !== null).toBe(!hasWildcard(group) && !/^[*?/]*$/.test(glob));
          if (!policy) return;
          // A path the pattern matches, each wildcard filled in.
          let i = 0;
          const path = glob.replace(/[*?]/g, (w) => (w === "*" ? (stars[i++] ?? "") : (singles[i++] ?? "a")));
          expect(matchesGlob(compileGlob(glob), path)).toBe(true);
          expect(topLevelGroup(path)).toBe(group);
        },
      ),
      { numRuns: 2000 },
    );
  });

  it("a project_id pattern is accepted only without a wildcard: a literal id", () => {
    fc.assert(
      fc.property(
        fc.array(fc.constantFrom("1", "2", "0", "*", "?"), { minLength: 1, maxLength: 6 }),
        (cs) => {
          const id = cs.join("");
          const policy = parsed(rule("project_id", id));
          expect(policy !== null).toBe(!hasWildcard(id));
        },
      ),
    );
  });
});
