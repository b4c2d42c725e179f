/**
 * Fuzzing of the credentials policy parser (DESIGN §5): the same YAML mutations as kubler.yaml,
 * from valid policies. The only exception allowed out of `parseCredentialsPolicy` is `PolicyError`.
 */
import { readFileSync } from "node:fs";
import { join } from "node:path";
import type fc from "fast-check";
import { PolicyError, parseCredentialsPolicy } from "../../shared/domain/credentials-policy.js";
import { yamlTextFrom } from "./kubler-manifest.js";

export const VALID_POLICIES = [
  readFileSync(join(import.meta.dirname, "../../examples/policy.yaml"), "utf8"),
  `issuer: https://gitlab.example.com
audience: kubler
rules:
  - name: review-apps
    match: { project_path: "group/*", environment: "review/*" }
    aws: { roleArn: "arn:aws:iam::123456789012:role/kubler-review", maxDurationSeconds: 3600 }
    kubernetes: { namespace: environment, role: kubler-deployer }
  - name: production
    match: { project_path: "group/app", environment: production, ref_protected: true }
    aws: { roleArn: "arn:aws:iam::123456789012:role/app-prod", maxDurationSeconds: 900 }
    kubernetes: { namespace: app-production, role: kubler-deployer }
`,
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
