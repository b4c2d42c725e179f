/**
 * The AssumeRole request for a job (DESIGN §5), built from its verified claims and the rule that
 * matched: session name, source identity, session tags within STS's character set and limits (a
 * value that does not fit is left out, never altered), the inline session policy filled in and
 * measured, the duration within range. Pure: the STS adapter and the local issuer both take what
 * this returns.
 * Limits: https://docs.aws.amazon.com/STS/latest/APIReference/API_AssumeRole.html
 */

import { createHash } from "node:crypto";
import { ForbiddenError } from "../errors.js";
import {
  MAX_SESSION_POLICY_CHARS,
  MIN_DURATION_SECONDS,
  type PolicyRule,
  type SESSION_POLICY_PLACEHOLDERS,
} from "./credentials-policy.js";
import { isForkPipeline, type JobClaims, jobProject } from "./job-claims.js";

export const MAX_SESSION_TAGS = 50;
export const MAX_TAG_KEY = 128;
export const MAX_TAG_VALUE = 256;
const MAX_SESSION_NAME = 64;

export interface SessionTag {
  key: string;
  value: string;
}

/** A claim not sent as a session tag, and why: recorded in the audit line. */
export interface OmittedTag {
  key: string;
  reason: string;
}

export interface AssumeRoleRequest {
  roleArn: string;
  /** `gl-<job_id>`: CloudTrail shows which job used the role. */
  roleSessionName: string;
  /** `gl-<user_login>`: kept through role chaining, so the person behind the job stays visible. */
  sourceIdentity: string;
  tags: SessionTag[];
  /** Claims left out of `tags` because STS could not take them as they are; not sent, audited. */
  omittedTags: OmittedTag[];
  transitiveTagKeys: string[];
  /** Minified JSON, ≤ 2048 characters; null when the rule has none. */
  policy: string | null;
  durationSeconds: number;
}

/** The rule's session policy, filled in, is longer than STS accepts. */
export class SessionPolicyTooLargeError extends Error {
  override readonly name = "SessionPolicyTooLargeError";
}

/** The ID token has expired: the verifier accepted it within its clock-skew leeway only. */
export class ExpiredTokenError extends Error {
  override readonly name = "ExpiredTokenError";
  constructor(
    /** Seconds since the token's `exp`. */
    readonly secondsAgo: number,
    what: string,
  ) {
    super(
      `the ID token expired ${secondsAgo} s ago (accepted only within the clock-skew leeway): no ${what} for an expired identity`,
    );
  }
}

/**
 * @example
 * const request = buildAssumeRoleRequest({ rule, claims, environment: "review/x", namespace, now });
 * // { roleSessionName: "gl-302", sourceIdentity: "gl-sample-user", durationSeconds: 900, ... }
 */
export function buildAssumeRoleRequest(input: {
  aws: NonNullable<PolicyRule["aws"]>;
  claims: JobClaims;
  environment: string | null;
  namespace: string | null;
  now: Date;
}): AssumeRoleRequest {
  const { aws, claims, environment, namespace, now } = input;
  const project = jobProject(claims);
  const { tags, omitted } = sessionTags([
    ["project_id", project.id],
    ["project_path", project.path],
    ["namespace_path", project.namespacePath],
    ["source_project_path", isForkPipeline(claims) ? claims.project_path : null],
    ["pipeline_id", claims.pipeline_id],
    ["job_id", claims.job_id],
    ["ref", claims.ref],
    ["ref_type", claims.ref_type],
    ["ref_protected", claims.ref_protected],
    ["environment", environment],
    ["user_login", claims.user_login],
  ]);
  // Trust policies tell a fork's pipeline by this tag (docs/aws/job-role-trust-policy.md): left out,
  // the fork would pass for the project's own pipeline, so it gets no session at all.
  if (omitted.some((tag) => tag.key === "source_project_path")) {
    throw new ForbiddenError(
      "this pipeline runs for a fork whose project path STS cannot carry as a session tag: no AWS credentials for it",
    );
  }
  const values: Record<(typeof SESSION_POLICY_PLACEHOLDERS)[number], string> = {
    project_path: project.path,
    project_id: project.id,
    environment: environment ?? "",
    namespace: namespace ?? "",
    job_id: claims.job_id,
    pipeline_id: claims.pipeline_id,
  };
  return {
    roleArn: aws.roleArn,
    roleSessionName: stsName(`gl-${claims.job_id}`),
    sourceIdentity: stsName(`gl-${claims.user_login}`),
    tags,
    omittedTags: omitted,
    transitiveTagKeys: tags.map((tag) => tag.key),
    policy: aws.sessionPolicy === null ? null : fillSessionPolicy(aws.sessionPolicy, values),
    durationSeconds: sessionDuration({ maxSeconds: aws.maxDurationSeconds, tokenExp: claims.exp, now }),
  };
}

/**
 * Up to the rule's maximum, and no longer than the token has left, but never under `minSeconds`
 * (STS's 900 s; a Kubernetes-only grant: TokenRequest's 600 s), which nothing shorter can be asked
 * of. GitLab's ID token lives as long as the job's timeout, so a job with a 10-minute timeout always
 * has less than 900 s left: refusing it would lock short jobs out, so it gets the minimum, which
 * outlives the token by less than the minimum (AssumeRoleWithWebIdentity, GitLab's own AWS
 * integration, has the same floor). An expired token (accepted within the leeway) gets nothing.
 *
 * @example
 * sessionDuration({ maxSeconds: 3600, tokenExp: nowSeconds + 1200, now }); // 1200
 * sessionDuration({ maxSeconds: 3600, tokenExp: nowSeconds + 120, now }); // 900
 * sessionDuration({ maxSeconds: 3600, tokenExp: nowSeconds - 30, now }); // throws ExpiredTokenError
 */
export function sessionDuration(input: {
  maxSeconds: number;
  tokenExp: number;
  now: Date;
  minSeconds?: number;
  /** What is being issued, for the refusal: "AWS credentials" by default. */
  what?: string;
}): number {
  const left = Math.floor(input.tokenExp - input.now.getTime() / 1000);
  if (left <= 0) throw new ExpiredTokenError(-left, input.what ?? "AWS credentials");
  return Math.max(input.minSeconds ?? MIN_DURATION_SECONDS, Math.min(input.maxSeconds, left));
}

/**
 * Session tags within STS's limits: at most 50, keys ≤ 128 characters of `[\p{L}\p{Z}\p{N}_.:/=+\-@]`,
 * values ≤ 256 of the same. A value that would have to change to fit is left out, not altered:
 * `release#1` must not become the `release_1` another (protected) ref tags, since IAM conditions on
 * `aws:PrincipalTag/ref` would then be met by the wrong job; a missing tag fails those conditions.
 *
 * @example
 * sessionTags([["ref", "main"], ["environment", "review/ü#1"]]);
 * // { tags: [{ key: "ref", value: "main" }], omitted: [{ key: "environment", reason: "…" }] }
 */
export function sessionTags(entries: readonly (readonly [string, string | null])[]): {
  tags: SessionTag[];
  omitted: OmittedTag[];
} {
  const tags: SessionTag[] = [];
  const omitted: OmittedTag[] = [];
  for (const [rawKey, value] of entries) {
    if (value === null) continue;
    // Keys are Kubler's own names; only the limits are applied to them.
    const key = sanitizeTag(rawKey).slice(0, MAX_TAG_KEY) || "_";
    const problem =
      tags.length >= MAX_SESSION_TAGS
        ? `STS takes at most ${MAX_SESSION_TAGS} session tags`
        : TAG_TEXT.test(value)
          ? Array.from(value).length > MAX_TAG_VALUE
            ? `the value is longer than ${MAX_TAG_VALUE} characters`
            : null
          : "the value has characters STS does not allow in a tag (letters, digits, spaces, _ . : / = + - @)";
    if (problem === null) tags.push({ key, value });
    else omitted.push({ key, reason: `left out, not altered: ${problem}` });
  }
  return { tags, omitted };
}

const TAG_TEXT = /^[\p{L}\p{Z}\p{N}_.:/=+\-@]*$/u;

function sanitizeTag(text: string): string {
  return text.replace(/[^\p{L}\p{Z}\p{N}_.:/=+\-@]/gu, "_");
}

/**
 * A RoleSessionName / SourceIdentity: `[\w+=,.@-]`, 2 to 64 characters. A longer name (GitLab logins
 * reach 255) keeps its start and ends with a hash of the whole: cut to 64, two logins sharing their
 * first 61 characters would be one person in CloudTrail and to `sts:SourceIdentity` conditions.
 */
export function stsName(text: string): string {
  const clean = text.replace(/[^\w+=,.@-]/g, "_");
  if (clean.length > MAX_SESSION_NAME) {
    const hash = createHash("sha256").update(text).digest("hex").slice(0, 16);
    return `${clean.slice(0, MAX_SESSION_NAME - hash.length - 1)}-${hash}`;
  }
  return clean.length >= 2 ? clean : clean.padEnd(2, "_");
}

function fillSessionPolicy(template: string, values: Record<string, string>): string {
  // The template is minified JSON; placeholders sit inside its strings, so values are JSON-escaped.
  const filled = template.replace(/\{([a-z_]+)\}/g, (whole, name: string) =>
    name in values ? JSON.stringify(values[name]).slice(1, -1) : whole,
  );
  if (filled.length > MAX_SESSION_POLICY_CHARS) {
    throw new SessionPolicyTooLargeError(
      `the rule's session policy is ${filled.length} characters once filled in for this job; STS allows ${MAX_SESSION_POLICY_CHARS}`,
    );
  }
  return filled;
}
