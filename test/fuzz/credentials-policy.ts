/**
 * Fuzzing of the credentials policy parser (DESIGN §5): the same YAML mutations as kubler.yaml,
 * from valid policies. The only exception allowed out of `parseCredentialsPolicy` is `PolicyError`.
 */
import { readFileSync } from "node:fs";
import { join } from "node:path";
import type fc from "fast-check";
import { PolicyError, parseCredentialsPolicy } from "../../shared/domain/credentials-policy.js";
import { DESIGN_POLICY } from "../fixtures/design-examples.js";
import { yamlTextFrom } from "./kubler-manifest.js";

export const VALID_POLICIES = [
  readFileSync(join(import.meta.dirname, "../../examples/policy.yaml"), "utf8"),
  DESIGN_POLICY,
];

export const policyText: fc.Arbitrary<string> = yamlTextFrom(VALID_POLICIES);

export interface PolicyFuzzCounts {
  inputs: number;
  accepted: number;
  refused: number;
}

/**
 * Parses one text; throws when anything but `PolicyError` escapes.
 *
 * @example
 * fc.assert(fc.property(policyText, (text) => checkPolicy(text, counts)));
 */
export function checkPolicy(text: string, counts: PolicyFuzzCounts): void {
  counts.inputs++;
  try {
    parseCredentialsPolicy(text);
    counts.accepted++;
  } catch (error) {
    if (!(error instanceof PolicyError)) {
      throw new Error(
        `parseCredentialsPolicy threw ${(error as Error)?.name}: ${(error as Error)?.message} for ${JSON.stringify(text.slice(0, 300))}`,
      );
    }
    counts.refused++;
  }
}
