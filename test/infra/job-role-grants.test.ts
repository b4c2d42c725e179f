import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { buildStack, templateOf, testConfig } from "./stack-fixture.js";

// biome-ignore lint/suspicious/noExplicitAny: template JSON, read field by field in assertions
type Cfn = any;

/** IAM's limits on what a role's policies hold, in characters without whitespace. */
const IAM_INLINE_LIMIT = 10_240;
const IAM_MANAGED_POLICY_LIMIT = 6_144;
const ASSUME_ACTIONS = ["sts:AssumeRole", "sts:SetSourceIdentity", "sts:TagSession"];

/** A credentials policy with one rule, and one role, per project: roles that many. */
function policyWithRoles(count: number): { file: string; arns: string[] } {
  const arns = Array.from(
    { length: count },
    (_, i) => `arn:aws:iam::123456789012:role/gitlab-deploy-group-project-${i}-production`,
  );
  const rules = arns.map(
    (arn, i) =>
      `  - name: project-${i}\n    match: { project_path: "group/project-${i}", environment: production }\n` +
      `    aws: { roleArn: "${arn}" }`,
  );
  const file = join(mkdtempSync(join(tmpdir(), "kubler-policy-")), "policy.yaml");
  writeFileSync(file, `issuer: https://gitlab.example.com\naudience: kubler\nrules:\n${rules.join("\n")}\n`);
  return { file, arns };
}

describe("job-credentials' role, for a credentials policy naming many roles", () => {
  it("fits IAM's policy size limits, each role still assumable with exactly the three actions", () => {
    const { file, arns } = policyWithRoles(250);
    const resources: Record<string, Cfn> = templateOf(
      buildStack({ config: testConfig({ policyFile: file }) }),
    ).toJSON().Resources;
    const [fn] = Object.values(resources).filter(
      (r) => r.Type === "AWS::Lambda::Function" && r.Properties.FunctionName === "kubler-job-credentials",
    );
    const role = fn.Properties.Role["Fn::GetAtt"][0] as string;
    const attached = (type: string) =>
      Object.entries(resources).filter(
        ([, r]) =>
          r.Type === type && JSON.stringify(r.Properties.Roles ?? []).includes(JSON.stringify({ Ref: role })),
      );
    const size = (document: unknown) => JSON.stringify(document).length;

    // Past them, CloudFormation's deploy fails ("Cannot exceed quota for PolicySize") long after synth.
    const inline = attached("AWS::IAM::Policy").map(([, p]) => size(p.Properties.PolicyDocument));
    expect(inline.reduce((a, b) => a + b, 0)).toBeLessThanOrEqual(IAM_INLINE_LIMIT);
    for (const [id, managed] of attached("AWS::IAM::ManagedPolicy")) {
      expect(size(managed.Properties.PolicyDocument), id).toBeLessThanOrEqual(IAM_MANAGED_POLICY_LIMIT);
    }

    const assume = [...attached("AWS::IAM::Policy"), ...attached("AWS::IAM::ManagedPolicy")]
      .flatMap(([, p]) => p.Properties.PolicyDocument.Statement as Cfn[])
      .filter((s) => [s.Action].flat().includes("sts:AssumeRole"));
    for (const statement of assume) {
      expect([statement.Action].flat().sort()).toEqual(ASSUME_ACTIONS);
      expect(statement.Condition).toBeUndefined();
    }
    expect(assume.flatMap((s) => [s.Resource].flat()).sort()).toEqual([...arns].sort());
  });
});
