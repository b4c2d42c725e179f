import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { type JobClaims, readJobClaims } from "../../shared/domain/job-claims.js";
import {
  buildAssumeRoleRequest,
  SessionPolicyTooLargeError,
  sessionDuration,
  sessionTags,
  stsName,
} from "../../shared/domain/sts-session.js";
import fixture from "../fixtures/gitlab/id-token/example_payload.json" with { type: "json" };

const NOW = new Date("2026-11-21T10:00:00Z");
const nowSeconds = NOW.getTime() / 1000;
const claims = (overrides: Partial<JobClaims> = {}): JobClaims => ({
  ...readJobClaims({ ...fixture.payload, aud: "kubler" }),
  exp: nowSeconds + 3600,
  ...overrides,
});
const aws = {
  roleArn: "arn:aws:iam::123456789012:role/kubler-review",
  maxDurationSeconds: 3600,
  sessionPolicy: null,
};

describe("buildAssumeRoleRequest", () => {
  it("names the session after the job and the source identity after the user, tags from the claims", () => {
    const request = buildAssumeRoleRequest({
      aws,
      claims: claims(),
      environment: "test-environment2",
      namespace: null,
      now: NOW,
    });
    expect(request).toEqual({
      roleArn: aws.roleArn,
      roleSessionName: "gl-302",
      sourceIdentity: "gl-sample-user",
      tags: [
        { key: "project_id", value: "20" },
        { key: "project_path", value: "my-group/my-project" },
        { key: "namespace_path", value: "my-group" },
        { key: "pipeline_id", value: "574" },
        { key: "job_id", value: "302" },
        { key: "ref", value: "feature-branch-1" },
        { key: "ref_type", value: "branch" },
        { key: "ref_protected", value: "false" },
        { key: "environment", value: "test-environment2" },
        { key: "user_login", value: "sample-user" },
      ],
      transitiveTagKeys: [
        "project_id",
        "project_path",
        "namespace_path",
        "pipeline_id",
        "job_id",
        "ref",
        "ref_type",
        "ref_protected",
        "environment",
        "user_login",
      ],
      policy: null,
      durationSeconds: 3600,
    });
  });

  it("tags a fork's pipeline with the job's project and the fork as source_project_path", () => {
    const fork = claims({
      project_path: "contributor/app",
      job_project_path: "group/app",
      job_project_id: "15",
    });
    const { tags } = buildAssumeRoleRequest({
      aws,
      claims: fork,
      environment: null,
      namespace: null,
      now: NOW,
    });
    expect(tags).toContainEqual({ key: "project_path", value: "group/app" });
    expect(tags).toContainEqual({ key: "project_id", value: "15" });
    expect(tags).toContainEqual({ key: "source_project_path", value: "contributor/app" });
  });

  it("fills the session policy with JSON-escaped values and refuses one over 2048 characters", () => {
    const template = JSON.stringify({
      Statement: [{ Resource: "arn:aws:s3:::b/{project_path}/{environment}/*" }],
    });
    const request = buildAssumeRoleRequest({
      aws: { ...aws, sessionPolicy: template },
      claims: claims(),
      environment: 'review/"quoted"',
      namespace: "ns",
      now: NOW,
    });
    expect(JSON.parse(request.policy as string)).toEqual({
      Statement: [{ Resource: 'arn:aws:s3:::b/my-group/my-project/review/"quoted"/*' }],
    });
    const long = JSON.stringify({ Statement: `${"x".repeat(2000)}{environment}` });
    expect(() =>
      buildAssumeRoleRequest({
        aws: { ...aws, sessionPolicy: long },
        claims: claims(),
        environment: "e".repeat(100),
        namespace: null,
        now: NOW,
      }),
    ).toThrow(SessionPolicyTooLargeError);
  });
});

describe("sessionDuration", () => {
  it("is within [900, min(rule max, token lifetime left)]", () => {
    expect(sessionDuration(3600, nowSeconds + 7200, NOW)).toBe(3600);
    expect(sessionDuration(3600, nowSeconds + 1200, NOW)).toBe(1200);
    expect(sessionDuration(3600, nowSeconds + 300, NOW)).toBe(900);
    expect(sessionDuration(900, nowSeconds + 7200, NOW)).toBe(900);
    fc.assert(
      fc.property(
        fc.integer({ min: 900, max: 43_200 }),
        fc.integer({ min: -100, max: 100_000 }),
        (max, left) => {
          const duration = sessionDuration(max, nowSeconds + left, NOW);
          expect(duration).toBeGreaterThanOrEqual(900);
          expect(duration).toBeLessThanOrEqual(Math.max(900, Math.min(max, left)));
        },
      ),
    );
  });
});

describe("sanitizing to STS's limits", () => {
  const TAG = /^[\p{L}\p{Z}\p{N}_.:/=+\-@]*$/u;

  it("tags: STS's character set, key ≤ 128, value ≤ 256, at most 50, none empty-keyed", () => {
    fc.assert(
      fc.property(
        fc.array(fc.tuple(fc.string({ maxLength: 300 }), fc.option(fc.string({ maxLength: 400 }))), {
          maxLength: 70,
        }),
        (entries) => {
          const tags = sessionTags(entries);
          expect(tags.length).toBeLessThanOrEqual(50);
          for (const { key, value } of tags) {
            expect(key).toMatch(TAG);
            expect(value).toMatch(TAG);
            expect(key.length).toBeGreaterThan(0);
            expect(key.length).toBeLessThanOrEqual(128);
            expect(Array.from(value).length).toBeLessThanOrEqual(256);
          }
        },
      ),
    );
    expect(sessionTags([["ref", "feat/ü#1 $(x)"]])).toEqual([{ key: "ref", value: "feat/ü_1 __x_" }]);
  });

  it("session names and source identities: [\\w+=,.@-], 2 to 64 characters", () => {
    fc.assert(
      fc.property(fc.string({ maxLength: 100 }), (text) => {
        expect(stsName(`gl-${text}`)).toMatch(/^[\w+=,.@-]{2,64}$/);
      }),
    );
    expect(stsName("gl-user name+ü")).toBe("gl-user_name+_");
  });
});
