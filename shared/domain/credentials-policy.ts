/**
 * The credentials policy (DESIGN §5): which CI jobs get which AWS role and Kubernetes Role. YAML,
 * validated once at start-up with errors that name the rule, the key and the problem; rules are
 * tried in order and the first that matches wins, with the reason recorded either way.
 *
 * Whose project a job is: `project_path`, `project_id` and `namespace_path` are matched against the
 * project the job runs in (`job_project_*` when the token has them, GitLab 18.3+). In an MR pipeline
 * from a fork that runs in the target project, the token's own `project_path` is the fork: such a job
 * matches only rules that name the fork with `source_project_path`, never a rule written for the
 * target's own pipelines (https://gitlab.com/gitlab-org/gitlab/-/issues/548165).
 *
 * Approvals: GitLab holds only `action: start` jobs for a protected environment's deployment
 * approval; an `access`, `prepare` or `verify` job runs at once, yet its token carries the same
 * `environment` and `environment_protected: "true"` (https://gitlab.com/gitlab-org/gitlab/-/issues/390025).
 * A rule that grants what the approval guards should match `environment_action: start`. A rule
 * without the key matches any action, and a token without the claim, as before the key existed.
 */
import { parseDocument } from "yaml";
import { namespaceFor } from "./environment.js";
import { type JobClaims, jobProject } from "./job-claims.js";
import { repeatedKey, yamlErrorPlace, yamlNestingProblem } from "./yaml-nesting.js";

/** Keys matched with globs (`*` any run of characters, `?` one), a string or a list of them. */
export const GLOB_KEYS = [
  "project_path",
  "project_id",
  "namespace_path",
  "source_project_path",
  "ref",
  "ref_type",
  "environment",
  "environment_action",
  "pipeline_source",
  "user_login",
] as const;
/** Keys matched with `true` / `false` against GitLab's `"true"` / `"false"` claims. */
export const BOOLEAN_KEYS = ["ref_protected", "environment_protected"] as const;
/**
 * A rule must name the project(s) it is for: no rule may match every project on the instance, nor
 * projects in top-level groups anyone can create (a pattern's first segment is literal), nor ids
 * yet to be assigned (a project_id has no wildcard). `source_project_path` is not one: it is the
 * fork's path, and `"*"` there means "any fork".
 */
const PROJECT_KEYS = ["project_path", "project_id", "namespace_path"] as const;

type GlobKey = (typeof GLOB_KEYS)[number];
type BooleanKey = (typeof BOOLEAN_KEYS)[number];
export type MatchKey = GlobKey | BooleanKey;

/** `kubernetes.namespace` value meaning "the namespace Kubler made for the job's environment". */
export const ENVIRONMENT_NAMESPACE = "environment";
export const DEFAULT_AUDIENCE = "kubler";
export const DEFAULT_MAX_DURATION_SECONDS = 3600;
/** STS: DurationSeconds is at least 900 s (https://docs.aws.amazon.com/STS/latest/APIReference/API_AssumeRole.html). */
export const MIN_DURATION_SECONDS = 900;
/**
 * One hour, not STS's 12: in Lambda the issuer calls AssumeRole with the execution role's temporary
 * credentials, which is role chaining, and STS refuses a chained session longer than 3600 s with a
 * ValidationError (same page: "role chaining limits your … session to a maximum of one hour").
 */
export const MAX_DURATION_SECONDS = 3600;
/** STS: an inline session policy's plaintext is at most 2,048 characters. */
export const MAX_SESSION_POLICY_CHARS = 2048;

export interface Glob {
  pattern: string;
  regex: RegExp;
}

export interface PolicyRule {
  name: string;
  /** Its position in `rules`, for messages. */
  index: number;
  match: Partial<Record<GlobKey, Glob[]>> & Partial<Record<BooleanKey, boolean>>;
  aws: { roleArn: string; maxDurationSeconds: number; sessionPolicy: string | null } | null;
  kubernetes: { namespace: string; role: string } | null;
}

export interface CredentialsPolicy {
  /** The token's `iss` must equal it; null: the configured GitLab (`GITLAB_URL`). */
  issuer: string | null;
  audience: string;
  rules: PolicyRule[];
}

/** A policy file that cannot be used: `problems` lists every one, each with its path. */
export class PolicyError extends Error {
  override readonly name = "PolicyError";
  constructor(readonly problems: string[]) {
    super(problems.join("\n"));
  }
}

/**
 * @example
 * const policy = parseCredentialsPolicy(readFileSync(file, "utf8"));
 * // PolicyError: policy: rules[1] (production).match.ref_protected: expected boolean, found string
 */
export function parseCredentialsPolicy(text: string): CredentialsPolicy {
  // Nesting deep enough to crash Node inside yaml is refused first (see yaml-nesting.ts).
  const tooDeep = yamlNestingProblem(text);
  if (tooDeep) throw new PolicyError([`policy: not accepted: ${tooDeep}`]);
  // As kubler.yaml is read: repeated keys found by repeatedKey (yaml's own check is quadratic), and
  // one error placed by yamlErrorPlace (yaml's pretty errors copy the whole line into each error).
  const document = parseDocument(text, { prettyErrors: false, uniqueKeys: false, logLevel: "error" });
  const repeated = repeatedKey(document, text);
  if (repeated) {
    const { line, column } = repeated;
    throw new PolicyError([
      `policy: not valid YAML at line ${line}, column ${column}: Map keys must be unique`,
    ]);
  }
  const [yamlError] = document.errors;
  if (yamlError) {
    const place = yamlErrorPlace(yamlError, text);
    const at = place ? ` at line ${place.line}, column ${place.column}` : "";
    throw new PolicyError([`policy: not valid YAML${at}: ${yamlError.message.split("\n")[0] ?? ""}`]);
  }
  let data: unknown;
  try {
    // An alias to no anchor, or an alias bomb, surfaces only here, as a ReferenceError (found by fuzzing).
    data = document.toJS({ maxAliasCount: 50 });
  } catch (error) {
    throw new PolicyError([`policy: not usable YAML: ${(error as Error).message}`]);
  }
  const problems: string[] = [];
  const policy = readPolicy(data, (path, problem) => problems.push(`policy${path}: ${problem}`));
  if (problems.length > 0) throw new PolicyError(problems);
  return policy;
}

type Report = (path: string, problem: string) => void;

function readPolicy(root: unknown, report: Report): CredentialsPolicy {
  const policy: CredentialsPolicy = { issuer: null, audience: DEFAULT_AUDIENCE, rules: [] };
  if (!isMapping(root)) {
    report("", `expected a mapping with issuer, audience and rules, found ${typeName(root)}`);
    return policy;
  }
  unknownKeys(root, ["issuer", "audience", "rules"], "", report);
  if (root.issuer !== undefined) {
    if (typeof root.issuer !== "string") report(".issuer", expected("string", root.issuer));
    else if (!isHttpUrl(root.issuer))
      report(".issuer", `expected an http(s) URL, found ${JSON.stringify(root.issuer)}`);
    else policy.issuer = root.issuer.replace(/\/+$/, "");
  }
  if (root.audience !== undefined) {
    if (typeof root.audience !== "string" || root.audience === "")
      report(".audience", expected("non-empty string", root.audience));
    else policy.audience = root.audience;
  }
  if (!Array.isArray(root.rules) || root.rules.length === 0) {
    report(
      ".rules",
      root.rules === undefined ? "is required: a list of rules" : expected("non-empty list", root.rules),
    );
    return policy;
  }
  const names = new Map<string, number>();
  root.rules.forEach((raw, index) => {
    const name = isMapping(raw) && typeof raw.name === "string" ? raw.name : null;
    const at = `.rules[${index}]${name ? ` (${name})` : ""}`;
    const rule = readRule(raw, index, at, report);
    if (!rule) return;
    const earlier = names.get(rule.name);
    if (earlier !== undefined)
      report(`${at}.name`, `"${rule.name}" is already the name of rules[${earlier}]`);
    names.set(rule.name, index);
    policy.rules.push(rule);
  });
  return policy;
}

function readRule(raw: unknown, index: number, at: string, report: Report): PolicyRule | null {
  if (!isMapping(raw)) {
    report(at, expected("mapping", raw));
    return null;
  }
  unknownKeys(raw, ["name", "match", "aws", "kubernetes"], at, report);
  const rule: PolicyRule = { name: "", index, match: {}, aws: null, kubernetes: null };
  if (typeof raw.name !== "string" || !/^[A-Za-z0-9][\w.-]{0,62}$/.test(raw.name)) {
    report(
      `${at}.name`,
      raw.name === undefined
        ? "is required"
        : `expected 1-63 letters, digits, "_", "." or "-", found ${describe(raw.name)}`,
    );
  } else rule.name = raw.name;
  readMatch(raw.match, rule, `${at}.match`, report);
  if (raw.aws !== undefined) rule.aws = readAws(raw.aws, `${at}.aws`, report);
  if (raw.kubernetes !== undefined)
    rule.kubernetes = readKubernetes(raw.kubernetes, `${at}.kubernetes`, report);
  if (raw.aws === undefined && raw.kubernetes === undefined)
    report(at, "grants nothing: give it aws, kubernetes or both");
  return rule;
}

function readMatch(raw: unknown, rule: PolicyRule, at: string, report: Report): void {
  if (!isMapping(raw)) {
    report(at, raw === undefined ? "is required" : expected("mapping", raw));
    return;
  }
  unknownKeys(raw, [...GLOB_KEYS, ...BOOLEAN_KEYS], at, report);
  for (const key of GLOB_KEYS) {
    const value = raw[key];
    if (value === undefined) continue;
    const items = Array.isArray(value) ? value : [value];
    const globs: Glob[] = [];
    items.forEach((item, i) => {
      const path = Array.isArray(value) ? `${at}.${key}[${i}]` : `${at}.${key}`;
      // YAML reads `project_id: 20` as a number; ids are compared as GitLab sends them, as text.
      if (typeof item === "number" && Number.isInteger(item) && key === "project_id")
        globs.push(compileGlob(String(item)));
      else if (typeof item !== "string" || item === "") report(path, expected("non-empty string", item));
      else globs.push(compileGlob(item));
    });
    if (Array.isArray(value) && value.length === 0)
      report(`${at}.${key}`, "expected at least one pattern, found an empty list");
    if ((PROJECT_KEYS as readonly string[]).includes(key)) {
      for (const glob of globs) {
        const problem = openProjectPattern(key, glob.pattern);
        if (problem) report(`${at}.${key}`, problem);
      }
    }
    rule.match[key] = globs;
  }
  for (const key of BOOLEAN_KEYS) {
    const value = raw[key];
    if (value === undefined) continue;
    if (typeof value !== "boolean") report(`${at}.${key}`, expected("boolean", value));
    else rule.match[key] = value;
  }
  if (!PROJECT_KEYS.some((key) => raw[key] !== undefined)) {
    report(
      at,
      `must name the project with ${PROJECT_KEYS.join(", ")} (at least one): no rule may match every project`,
    );
  }
}

/**
 * Why a project key's pattern would match projects the policy's author does not control, or null.
 * Any GitLab user may create a top-level group (gitlab.com; self-managed unless an admin turned it
 * off), so a wildcard there ("group*" matches "groupevil") hands the rule to strangers; below a
 * named group only its members create. Project ids are assigned at creation, so "12*" matches
 * projects anyone creates later.
 */
function openProjectPattern(key: string, pattern: string): string | null {
  const shown = JSON.stringify(pattern);
  // Wildcards and slashes only (a bare star, two stars, star-slash-star, ...): every GitLab project
  // path has a "/", so such a pattern names no project even when it is not a bare "*".
  if (/^[*?/]*$/.test(pattern)) {
    return `${shown} matches every project: no rule may match every project (name a group or project, e.g. "group/*")`;
  }
  if (!/[*?]/.test(pattern)) return null;
  if (key === "project_id") {
    return `${shown} has a wildcard, so it also matches projects created later, by anyone (GitLab assigns ids at creation): list the ids, e.g. project_id: [12, 120]`;
  }
  // "*" matches "/" too, but only after the first "/" of the pattern: before it, everything is literal.
  const group = pattern.split("/")[0] as string;
  if (!/[*?]/.test(group)) return null;
  return `${shown} has a wildcard in its top-level group ${JSON.stringify(group)}, which also matches groups any GitLab user can create (a job in one would get these credentials): name the group, e.g. "acme/*" or "acme/team-?/app"`;
}

const ROLE_ARN = /^arn:aws[a-z-]*:iam::\d{12}:role\/[\w+=,.@/-]{1,512}$/;

function readAws(raw: unknown, at: string, report: Report): PolicyRule["aws"] {
  if (!isMapping(raw)) {
    report(at, expected("mapping", raw));
    return null;
  }
  unknownKeys(raw, ["roleArn", "maxDurationSeconds", "sessionPolicy"], at, report);
  const aws = {
    roleArn: "",
    maxDurationSeconds: DEFAULT_MAX_DURATION_SECONDS,
    sessionPolicy: null as string | null,
  };
  if (typeof raw.roleArn !== "string" || !ROLE_ARN.test(raw.roleArn)) {
    report(
      `${at}.roleArn`,
      raw.roleArn === undefined
        ? "is required"
        : `expected an IAM role ARN (arn:aws:iam::<account>:role/<name>), found ${describe(raw.roleArn)}`,
    );
  } else aws.roleArn = raw.roleArn;
  const max = raw.maxDurationSeconds;
  if (max !== undefined) {
    const range = `expected a whole number from ${MIN_DURATION_SECONDS} to ${MAX_DURATION_SECONDS}`;
    if (typeof max !== "number" || !Number.isInteger(max) || max < MIN_DURATION_SECONDS) {
      report(`${at}.maxDurationSeconds`, `${range}, found ${typeof max === "number" ? max : describe(max)}`);
    } else if (max > MAX_DURATION_SECONDS) {
      report(
        `${at}.maxDurationSeconds`,
        `${range}, found ${max}: Kubler assumes the role with its own temporary credentials (role chaining), and STS refuses chained sessions longer than one hour`,
      );
    } else aws.maxDurationSeconds = max;
  }
  if (raw.sessionPolicy !== undefined)
    aws.sessionPolicy = readSessionPolicy(raw.sessionPolicy, `${at}.sessionPolicy`, report);
  return aws;
}

/** A JSON IAM policy (a YAML mapping or a JSON string) with `{placeholders}`; stored minified. */
function readSessionPolicy(raw: unknown, at: string, report: Report): string | null {
  let document: unknown = raw;
  if (typeof raw === "string") {
    try {
      document = JSON.parse(raw);
    } catch (error) {
      report(
        at,
        `expected an IAM policy document (JSON), found text that is not JSON: ${(error as Error).message}`,
      );
      return null;
    }
  }
  if (!isMapping(document) || !("Statement" in document)) {
    report(at, `expected an IAM policy document with a Statement, found ${typeName(document)}`);
    return null;
  }
  const minified = JSON.stringify(document);
  for (const [, name] of minified.matchAll(/\{([a-z_]+)\}/g)) {
    if (!(SESSION_POLICY_PLACEHOLDERS as readonly string[]).includes(name as string)) {
      report(
        at,
        `unknown placeholder {${name}} (known: ${SESSION_POLICY_PLACEHOLDERS.map((p) => `{${p}}`).join(", ")})`,
      );
    }
  }
  if (minified.length > MAX_SESSION_POLICY_CHARS) {
    report(at, `is ${minified.length} characters minified; STS allows ${MAX_SESSION_POLICY_CHARS}`);
  }
  return minified;
}

/** What a session policy template may refer to. */
export const SESSION_POLICY_PLACEHOLDERS = [
  "project_path",
  "project_id",
  "environment",
  "namespace",
  "job_id",
  "pipeline_id",
] as const;

const DNS_LABEL = /^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$/;
const RBAC_NAME = /^[a-z0-9]([-a-z0-9.:]{0,251}[a-z0-9])?$/;

function readKubernetes(raw: unknown, at: string, report: Report): PolicyRule["kubernetes"] {
  if (!isMapping(raw)) {
    report(at, expected("mapping", raw));
    return null;
  }
  unknownKeys(raw, ["namespace", "role"], at, report);
  const kubernetes = { namespace: "", role: "" };
  if (typeof raw.namespace !== "string" || !DNS_LABEL.test(raw.namespace)) {
    report(
      `${at}.namespace`,
      raw.namespace === undefined
        ? `is required: a namespace name or "${ENVIRONMENT_NAMESPACE}"`
        : `expected "${ENVIRONMENT_NAMESPACE}" or a namespace name (DNS-1123 label), found ${describe(raw.namespace)}`,
    );
  } else kubernetes.namespace = raw.namespace;
  if (typeof raw.role !== "string" || !RBAC_NAME.test(raw.role)) {
    report(
      `${at}.role`,
      raw.role === undefined
        ? "is required: the namespaced Role to bind"
        : `expected a Role name, found ${describe(raw.role)}`,
    );
  } else kubernetes.role = raw.role;
  return kubernetes;
}

/**
 * A glob: `*` matches any run of characters (`/` included, so `review/*` matches
 * `review/feature/x`), `?` exactly one; everything else matches itself, case-sensitively.
 *
 * @example
 * matchesGlob(compileGlob("group/*"), "group/app"); // true
 */
export function compileGlob(pattern: string): Glob {
  const source = pattern
    .split("")
    .map((char) =>
      char === "*" ? "[\\s\\S]*" : char === "?" ? "[\\s\\S]" : char.replace(/[\\^$.|+()[\]{}]/g, "\\$&"),
    )
    .join("");
  return { pattern, regex: new RegExp(`^${source}$`, "u") };
}

export function matchesGlob(glob: Glob, value: string): boolean {
  return glob.regex.test(value);
}

/** The claim values the decision reads: what the audit line records. */
export type DecidingClaims = Record<MatchKey | "job_id" | "pipeline_id" | "job_project_path", string | null>;

export type Decision =
  | {
      allowed: true;
      rule: PolicyRule;
      /** The token's own `environment` claim: signed, so it may name namespaces, tags and policies. */
      environment: string | null;
      /** The Kubernetes namespace to mint into; null when the rule grants no Kubernetes access. */
      namespace: string | null;
      reason: string;
      claims: DecidingClaims;
    }
  | {
      allowed: false;
      rule: null;
      environment: string | null;
      /** What the job is told: its own claims only. */
      reason: string;
      /**
       * The reason with why each rule did not match, for the audit line only: it shows every rule's
       * patterns, other projects' paths among them, which no CI job should read.
       */
      auditReason: string;
      claims: DecidingClaims;
    };

/**
 * Decides a verified job's request on its signed claims only: the body's `environment` is not
 * signed, so it may only repeat the token's own; then the first rule whose every key matches wins.
 *
 * @example
 * const decision = decideCredentials(policy, claims, "review/feature-x");
 * if (!decision.allowed) throw new ForbiddenError(decision.reason);
 */
export function decideCredentials(
  policy: CredentialsPolicy,
  claims: JobClaims,
  requested: string | null,
): Decision {
  const environment = claims.environment;
  const values = decidingClaims(claims);
  if (requested !== null && requested !== environment) {
    // Deciding on the requested name would let a job without an environment (a lint job on a
    // protected branch) pick `production` and skip GitLab's protected-environment approvals.
    const reason =
      environment === null
        ? `the job asked for environment "${requested}", but its ID token has no environment claim: declare \`environment: ${requested}\` on the job in .gitlab-ci.yml (the request body cannot choose an environment)`
        : `the job asked for environment "${requested}", but its token is for environment "${environment}"`;
    return { allowed: false, rule: null, environment, reason, auditReason: reason, claims: values };
  }
  const misses: string[] = [];
  for (const rule of policy.rules) {
    const miss = mismatch(rule, values, environment);
    if (miss === null) {
      const project = jobProject(claims);
      const namespace = rule.kubernetes
        ? rule.kubernetes.namespace === ENVIRONMENT_NAMESPACE
          ? namespaceFor(project.path, environment as string)
          : rule.kubernetes.namespace
        : null;
      return {
        allowed: true,
        rule,
        environment,
        namespace,
        reason: `rule "${rule.name}" matches`,
        claims: values,
      };
    }
    misses.push(`${rule.name}: ${miss}`);
  }
  const reason = `no rule matches this job (project ${values.project_path}, ref ${values.ref}, ${
    environment === null ? "no environment" : `environment ${environment}`
  })`;
  return {
    allowed: false,
    rule: null,
    environment,
    reason,
    auditReason: `${reason}: ${misses.join("; ")}`,
    claims: values,
  };
}

function decidingClaims(claims: JobClaims): DecidingClaims {
  const project = jobProject(claims);
  return {
    project_path: project.path,
    project_id: project.id,
    namespace_path: project.namespacePath,
    source_project_path: claims.project_path,
    job_project_path: claims.job_project_path,
    ref: claims.ref,
    ref_type: claims.ref_type,
    ref_protected: claims.ref_protected,
    environment: claims.environment,
    environment_protected: claims.environment_protected,
    environment_action: claims.environment_action,
    pipeline_source: claims.pipeline_source,
    user_login: claims.user_login,
    job_id: claims.job_id,
    pipeline_id: claims.pipeline_id,
  };
}

/** Why `rule` does not match, or null when it does. */
function mismatch(rule: PolicyRule, values: DecidingClaims, environment: string | null): string | null {
  for (const key of GLOB_KEYS) {
    const globs = rule.match[key];
    if (!globs) continue;
    const value = values[key];
    const shown =
      globs.length === 1
        ? `"${globs[0]?.pattern}"`
        : `any of ${globs.map((g) => `"${g.pattern}"`).join(", ")}`;
    if (value === null) return `the job has no ${key} (rule needs ${shown})`;
    if (!globs.some((glob) => matchesGlob(glob, value))) return `${key} "${value}" does not match ${shown}`;
  }
  for (const key of BOOLEAN_KEYS) {
    const wanted = rule.match[key];
    if (wanted === undefined) continue;
    const value = values[key];
    if (value !== String(wanted))
      return `${key} is ${value === null ? "absent" : value}, rule needs ${wanted}`;
  }
  // A fork's code is matched only by rules written for forks (they name source_project_path).
  if (
    !rule.match.source_project_path &&
    values.job_project_path !== null &&
    values.job_project_path !== values.source_project_path
  ) {
    return `the pipeline runs code from the fork "${values.source_project_path}" and the rule names no source_project_path`;
  }
  if (rule.kubernetes?.namespace === ENVIRONMENT_NAMESPACE && environment === null) {
    return `the job has no environment (the rule mints into the environment's namespace)`;
  }
  return null;
}

function unknownKeys(
  raw: Record<string, unknown>,
  known: readonly string[],
  at: string,
  report: Report,
): void {
  for (const key of Object.keys(raw)) {
    if (!known.includes(key)) report(`${at}.${key}`, `unknown key (expected one of ${known.join(", ")})`);
  }
}

function isMapping(value: unknown): value is Record<string, unknown> {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

function typeName(value: unknown): string {
  if (value === null || value === undefined) return "nothing";
  if (Array.isArray(value)) return "list";
  if (typeof value === "object") return "mapping";
  return typeof value;
}

function expected(what: string, value: unknown): string {
  return `expected ${what}, found ${typeName(value)}`;
}

function describe(value: unknown): string {
  return typeof value === "string" ? JSON.stringify(value) : typeName(value);
}

function isHttpUrl(text: string): boolean {
  return URL.canParse(text) && /^https?:$/.test(new URL(text).protocol);
}
