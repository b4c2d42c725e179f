import { readFileSync } from "node:fs";
import { join } from "node:path";
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { type JobClaims, readJobClaims } from "../../shared/domain/job-claims.js";
import {
  buildAssumeRoleRequest,
  ExpiredTokenError,
  SessionPolicyTooLargeError,
  sessionDuration,
  sessionTags,
  stsName,
} from "../../shared/domain/sts-session.js";
import { ForbiddenError } from "../../shared/errors.js";
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
      omittedTags: [],
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

  it("gives no session to a fork whose path cannot be tagged: it would pass for the project's own pipeline", () => {
    const fork = claims({
      project_path: `contributor/${"a".repeat(300)}`,
      job_project_path: "group/app",
      job_project_id: "15",
    });
    expect(() =>
      buildAssumeRoleRequest({ aws, claims: fork, environment: null, namespace: null, now: NOW }),
    ).toThrow(
      new ForbiddenError(
        "this pipeline runs for a fork whose project path STS cannot carry as a session tag: no AWS credentials for it",
      ),
    );
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
  const duration = (maxSeconds: number, left: number, minSeconds?: number) =>
    sessionDuration({
      maxSeconds,
      tokenExp: nowSeconds + left,
      now: NOW,
      ...(minSeconds ? { minSeconds } : {}),
    });

  it("is the rule's maximum, else what the token has left, never under STS's 900 s", () => {
    expect(duration(3600, 7200)).toBe(3600);
    expect(duration(3600, 1200)).toBe(1200);
    expect(duration(900, 7200)).toBe(900);
    expect(duration(3600, 900)).toBe(900);
    // A job with a 10-minute timeout: its token never has 900 s left, and STS issues nothing shorter.
    expect(duration(3600, 600)).toBe(900);
    fc.assert(
      fc.property(fc.integer({ min: 900, max: 3600 }), fc.integer({ min: 1, max: 100_000 }), (max, left) => {
        expect(duration(max, left)).toBe(Math.max(900, Math.min(max, left)));
      }),
    );
  });

  it("refuses a token that has expired (accepted only within the verifier's leeway)", () => {
    expect(() => duration(3600, -30)).toThrow(new ExpiredTokenError(30, "AWS credentials"));
    expect(() => duration(3600, 0)).toThrow(/^the ID token expired 0 s ago/);
    fc.assert(
      fc.property(fc.integer({ min: 900, max: 3600 }), fc.integer({ min: -100, max: 0 }), (max, left) => {
        expect(() => duration(max, left)).toThrow(ExpiredTokenError);
      }),
    );
  });

  it("a Kubernetes-only grant needs TokenRequest's 600 s, not STS's 900", () => {
    expect(sessionDuration({ maxSeconds: 900, minSeconds: 600, tokenExp: nowSeconds + 700, now: NOW })).toBe(
      700,
    );
    expect(sessionDuration({ maxSeconds: 900, minSeconds: 600, tokenExp: nowSeconds + 300, now: NOW })).toBe(
      600,
    );
    expect(() =>
      sessionDuration({
        maxSeconds: 900,
        minSeconds: 600,
        tokenExp: nowSeconds - 5,
        now: NOW,
        what: "Kubernetes tokens",
      }),
    ).toThrow(
      "the ID token expired 5 s ago (accepted only within the clock-skew leeway): no Kubernetes tokens",
    );
  });

  it("the README states the rule these tests pin: the minimum wins over the token's remaining life", () => {
    const readme = readFileSync(join(import.meta.dirname, "../../README.md"), "utf8").replace(/\s+/g, " ");
    expect(readme).toContain(
      "capped at the token's remaining life, but at least 900 s (600 s for a Kubernetes-only rule), STS's and TokenRequest's minimums",
    );
    expect(readme).not.toContain("never past the token's own expiry");
  });

  it("buildAssumeRoleRequest asks STS for its 900 s minimum for a short-lived token, and refuses an expired one", () => {
    const request = (exp: number) =>
      buildAssumeRoleRequest({ aws, claims: claims({ exp }), environment: null, namespace: null, now: NOW });
    expect(request(nowSeconds + 120).durationSeconds).toBe(900);
    expect(() => request(nowSeconds - 10)).toThrow(ExpiredTokenError);
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
          const { tags } = sessionTags(entries);
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
  });

  it("a value is sent exactly as the claim says, or left out with the reason: never altered", () => {
    fc.assert(
      fc.property(
        fc.array(
          fc.tuple(fc.constantFrom("ref", "environment", "project_path"), fc.string({ maxLength: 300 })),
          {
            maxLength: 60,
          },
        ),
        (entries) => {
          const { tags, omitted } = sessionTags(entries);
          expect(tags.length + omitted.length).toBe(entries.length);
          let t = 0;
          for (const [key, value] of entries) {
            const sent = tags[t];
            if (sent && sent.key === key && sent.value === value) t++;
          }
          expect(t).toBe(tags.length);
        },
      ),
    );
  });

  it("refs that would sanitize alike never carry the same tag (release#1 is not release_1)", () => {
    const unprotected = sessionTags([["ref", "release#1"]]);
    const protectedRef = sessionTags([["ref", "release_1"]]);
    expect(protectedRef.tags).toEqual([{ key: "ref", value: "release_1" }]);
    expect(unprotected.tags).toEqual([]);
    expect(unprotected.omitted).toEqual([
      {
        key: "ref",
        reason:
          "left out, not altered: the value has characters STS does not allow in a tag (letters, digits, spaces, _ . : / = + - @)",
      },
    ]);
    // Two values sharing their first 256 characters are not cut to the same tag either.
    const long = sessionTags([["environment", `${"e".repeat(256)}x`]]);
    expect(long.tags).toEqual([]);
    expect(long.omitted).toEqual([
      { key: "environment", reason: "left out, not altered: the value is longer than 256 characters" },
    ]);
    expect(sessionTags([["environment", "e".repeat(256)]]).tags).toHaveLength(1);
    // Past 50, the rest are left out and say so.
    const many = sessionTags(Array.from({ length: 52 }, (_, i) => [`k${i}`, "v"] as const));
    expect(many.tags).toHaveLength(50);
    expect(many.omitted.map((o) => o.key)).toEqual(["k50", "k51"]);
  });

  it("buildAssumeRoleRequest leaves such a ref out of tags and transitive keys, and lists it", () => {
    const request = buildAssumeRoleRequest({
      aws,
      claims: claims({ ref: "release#1" }),
      environment: null,
      namespace: null,
      now: NOW,
    });
    expect(request.tags.map((tag) => tag.key)).not.toContain("ref");
    expect(request.transitiveTagKeys).not.toContain("ref");
    expect(request.omittedTags).toEqual([
      { key: "ref", reason: expect.stringMatching(/^left out, not altered: /) },
    ]);
  });

  it("source identities of GitLab logins (up to 255 characters) that share their first 61 are not cut to the same one", () => {
    // SourceIdentity is what CloudTrail and sts:SourceIdentity conditions name the person by, for
    // the whole role chain: one user must never be recorded, or let through, as another.
    const shared = "release-bot-for-the-payments-platform-team-in-the-europe-region";
    const request = (login: string) =>
      buildAssumeRoleRequest({
        aws,
        claims: claims({ user_login: login }),
        environment: null,
        namespace: null,
        now: NOW,
      });
    const alice = request(`${shared}-alice`).sourceIdentity;
    const mallory = request(`${shared}-mallory`).sourceIdentity;
    expect(alice).toMatch(/^[\w+=,.@-]{2,64}$/);
    expect(mallory).toMatch(/^[\w+=,.@-]{2,64}$/);
    expect(alice).not.toBe(mallory);
    expect(alice.startsWith("gl-release-bot-for-the-payments")).toBe(true);
    // A login that fits is sent as it is.
    expect(request("sample-user").sourceIdentity).toBe("gl-sample-user");
    expect(request("u".repeat(61)).sourceIdentity).toBe(`gl-${"u".repeat(61)}`);
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
