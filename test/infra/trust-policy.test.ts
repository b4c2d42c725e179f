import { readFileSync } from "node:fs";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { JOB_CREDENTIALS_ROLE_PREFIX } from "../../infra/kubler-stack.js";
import { type JobClaims, readJobClaims } from "../../shared/domain/job-claims.js";
import { buildAssumeRoleRequest } from "../../shared/domain/sts-session.js";
import fixture from "../fixtures/gitlab/id-token/example_payload.json" with { type: "json" };
import { ROOT } from "./stack-fixture.js";

type Statement = { Action: string; Principal: unknown; Condition: Record<string, Record<string, unknown>> };
const policy = JSON.parse(readFileSync(join(ROOT, "docs/aws/job-role-trust-policy.json"), "utf8")) as {
  Statement: Statement[];
};

describe("the documented trust policy of a role jobs assume", () => {
  it("allows exactly AssumeRole, TagSession and SetSourceIdentity, to Kubler's job-credentials role only", () => {
    expect(policy.Statement.map((s) => s.Action).sort()).toEqual([
      "sts:AssumeRole",
      "sts:SetSourceIdentity",
      "sts:TagSession",
    ]);
    for (const statement of policy.Statement) {
      expect(statement.Condition.ArnEquals?.["aws:PrincipalArn"]).toBe(
        `arn:aws:iam::123456789012:role/${JOB_CREDENTIALS_ROLE_PREFIX}eu-west-1`,
      );
    }
  });

  it("lets Kubler attach every session tag it sets", () => {
    const now = new Date("2026-11-21T10:00:00Z");
    const request = buildAssumeRoleRequest({
      aws: {
        roleArn: "arn:aws:iam::123456789012:role/app-prod",
        maxDurationSeconds: 3600,
        sessionPolicy: null,
      },
      claims: { ...readJobClaims({ ...fixture.payload, aud: "kubler" }), exp: now.getTime() / 1000 + 3600 },
      environment: "production",
      namespace: null,
      now,
    });
    const tagging = policy.Statement.find((s) => s.Action === "sts:TagSession") as Statement;
    const allowed = tagging.Condition["ForAllValues:StringEquals"]?.["aws:TagKeys"] as string[];
    for (const tag of request.tags) expect(allowed).toContain(tag.key);
    expect(request.sourceIdentity).toMatch(/^gl-/);
    expect(request.roleSessionName).toMatch(/^gl-/);
  });

  it("lets group/app's own production deploy tag the session, never a fork's MR pipeline run in group/app", () => {
    const now = new Date("2026-11-21T10:00:00Z");
    const base = {
      ...readJobClaims({ ...fixture.payload, aud: "kubler" }),
      exp: now.getTime() / 1000 + 3600,
      project_path: "group/app",
      namespace_path: "group",
      ref_protected: "true",
    };
    const tagsOf = (claims: JobClaims) =>
      buildAssumeRoleRequest({
        aws: {
          roleArn: "arn:aws:iam::123456789012:role/app-prod",
          maxDurationSeconds: 900,
          sessionPolicy: null,
        },
        claims,
        environment: "production",
        namespace: null,
        now,
      }).tags;
    const own = tagsOf({ ...base, job_project_path: "group/app", job_namespace_path: "group" });
    // Were a policy rule for forks to grant this role by mistake: the tags name group/app all the same.
    const fork = tagsOf({
      ...base,
      project_path: "contributor/app",
      namespace_path: "contributor",
      job_project_path: "group/app",
      job_namespace_path: "group",
    });
    expect(fork).toContainEqual({ key: "project_path", value: "group/app" });
    expect(fork).toContainEqual({ key: "source_project_path", value: "contributor/app" });
    const tagging = policy.Statement.find((s) => s.Action === "sts:TagSession") as Statement;
    expect(tagging.Condition.Null).toEqual({ "aws:RequestTag/source_project_path": "true" });
    expect(allowsTagging(tagging, own)).toBe(true);
    expect(allowsTagging(tagging, fork)).toBe(false);
  });
});

/** IAM's StringEquals, Null and ForAllValues:StringEquals on `aws:RequestTag/*` and `aws:TagKeys`. */
function allowsTagging(statement: Statement, tags: readonly { key: string; value: string }[]): boolean {
  const tag = (condition: string) => tags.find((t) => `aws:RequestTag/${t.key}` === condition)?.value;
  return Object.entries(statement.Condition).every(([operator, conditions]) =>
    Object.entries(conditions).every(([condition, wanted]) => {
      if (operator === "ArnEquals") return true;
      if (operator === "StringEquals") return tag(condition) === wanted;
      if (operator === "Null") return (tag(condition) === undefined) === (wanted === "true");
      if (operator === "ForAllValues:StringEquals")
        return tags.every((t) => (wanted as string[]).includes(t.key));
      throw new Error(`no evaluator for ${operator}`);
    }),
  );
}
