/**
 * The AssumeRole request for a job (DESIGN §5), built from its verified claims and the rule that
 * matched: session name, source identity, session tags sanitized to STS's character set and limits,
 * the inline session policy filled in and measured, the duration clamped. Pure: the STS adapter and
 * the local issuer both take what this returns.
 * Limits: https://docs.aws.amazon.com/STS/latest/APIReference/API_AssumeRole.html
 */
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

export interface AssumeRoleRequest {
  roleArn: string;
  /** `gl-<job_id>`: CloudTrail shows which job used the role. */
  roleSessionName: string;
  /** `gl-<user_login>`: kept through role chaining, so the person behind the job stays visible. */
  sourceIdentity: string;
  tags: SessionTag[];
  transitiveTagKeys: string[];
  /** Minified JSON, ≤ 2048 characters; null when the rule has none. */
  policy: string | null;
  durationSeconds: number;
}

/** The rule's session policy, filled in, is longer than STS accepts. */
export class SessionPolicyTooLargeError extends Error {
  override readonly name = "SessionPolicyTooLargeError";
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
  const tags = sessionTags([
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
    transitiveTagKeys: tags.map((tag) => tag.key),
    policy: aws.sessionPolicy === null ? null : fillSessionPolicy(aws.sessionPolicy, values),
    durationSeconds: sessionDuration(aws.maxDurationSeconds, claims.exp, now),
  };
}

/**
 * STS's range, never past the rule's maximum, and never (beyond STS's 15-minute floor) past the
 * token's own expiry: credentials should not outlive the identity they were issued for.
 *
 * @example
 * sessionDuration(3600, nowSeconds + 1200, now); // 1200
 */
export function sessionDuration(ruleMaxSeconds: number, tokenExp: number, now: Date): number {
  const remaining = Math.floor(tokenExp - now.getTime() / 1000);
  return Math.max(MIN_DURATION_SECONDS, Math.min(ruleMaxSeconds, remaining));
}

/**
 * Session tags with STS's limits applied: characters outside `[\p{L}\p{Z}\p{N}_.:/=+\-@]` become
 * `_`, keys ≤ 128, values ≤ 256, at most 50, null values left out.
 *
 * @example
 * sessionTags([["ref", "feat/ü#1"]]); // [{ key: "ref", value: "feat/ü_1" }]
 */
export function sessionTags(entries: readonly (readonly [string, string | null])[]): SessionTag[] {
  return entries
    .filter((entry): entry is readonly [string, string] => entry[1] !== null)
    .slice(0, MAX_SESSION_TAGS)
    .map(([key, value]) => ({
      key: sanitizeTag(key).slice(0, MAX_TAG_KEY) || "_",
      value: truncate(sanitizeTag(value), MAX_TAG_VALUE),
    }));
}

function sanitizeTag(text: string): string {
  return text.replace(/[^\p{L}\p{Z}\p{N}_.:/=+\-@]/gu, "_");
}

/** Cuts by code point, so a truncated value never ends in half a surrogate pair. */
function truncate(text: string, max: number): string {
  const points = Array.from(text);
  return points.length <= max ? text : points.slice(0, max).join("");
}

/** A RoleSessionName / SourceIdentity: `[\w+=,.@-]`, 2 to 64 characters. */
export function stsName(text: string): string {
  const clean = text.replace(/[^\w+=,.@-]/g, "_").slice(0, MAX_SESSION_NAME);
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
