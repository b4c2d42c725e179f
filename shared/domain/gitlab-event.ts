/**
 * GitLab webhook normalization (DESIGN §3, §4 "Normalize"): one delivery in, one compact catalog fact
 * or an "ignored" verdict out. Pure: no I/O, no clock, no environment.
 *
 * Payload shapes: https://docs.gitlab.com/user/project/integrations/webhook_events/ (and the fixtures
 * in test/fixtures/gitlab/webhooks). Older GitLab versions send fewer fields, so only what a decision
 * needs is required; everything else falls back or becomes null.
 */
import { BadRequestError, InvalidDetailError } from "../errors.js";
import {
  type BusEntry,
  type Detail,
  type GitlabFactType,
  type GitlabRef,
  MAX_DETAIL_BYTES,
  validateDetail,
} from "./catalog.js";
import {
  createPayloadReader,
  isRecord,
  type PayloadReader,
  pick,
  readOrigin,
  readProjectPathFromUrl,
} from "./gitlab-payload.js";

export interface GitlabDelivery {
  /** The `X-Gitlab-Event` header value. */
  eventHeader: string;
  /** The parsed JSON body. */
  payload: unknown;
  /** The `X-Gitlab-Instance` header, when GitLab sent one (not on old versions). */
  instance: string | null;
  correlationId: string;
}

export type Normalized =
  | { kind: "fact"; entry: BusEntry; summary: string }
  | { kind: "ignored"; reason: string };

/**
 * Every `X-Gitlab-Event` value GitLab sends and what Kubler does with it: the fact it becomes,
 * `system` (look inside: one header for many events), or `ignored`.
 * Sender: app/models/hooks/*_hook.rb and lib/gitlab/data_builder in gitlab-org/gitlab.
 */
export const GITLAB_EVENT_HEADERS = {
  "Push Hook": "Push",
  "Tag Push Hook": "Tag Push",
  "Merge Request Hook": "Merge Request",
  "Pipeline Hook": "Pipeline",
  "Job Hook": "Job",
  // Older GitLab called jobs "builds", header included; the payload is the same (object_kind "build").
  "Build Hook": "Job",
  "Deployment Hook": "Deployment",
  "Release Hook": "Release",
  "System Hook": "system",
  "Issue Hook": "ignored",
  "Confidential Issue Hook": "ignored",
  "Note Hook": "ignored",
  "Confidential Note Hook": "ignored",
  "Wiki Page Hook": "ignored",
  "Member Hook": "ignored",
  "Subgroup Hook": "ignored",
  "Project Hook": "ignored",
  "Emoji Hook": "ignored",
  "Feature Flag Hook": "ignored",
  "Milestone Hook": "ignored",
  "Resource Access Token Hook": "ignored",
  "Resource Deploy Token Hook": "ignored",
  "Vulnerability Hook": "ignored",
} as const satisfies Record<string, GitlabFactType | "system" | "ignored">;

export type GitlabEventHeader = keyof typeof GITLAB_EVENT_HEADERS;

/** System hooks carry every event under one header; only these `object_kind`/`event_name`s are facts. */
const SYSTEM_HOOK_FACTS: Readonly<Record<string, GitlabFactType>> = {
  push: "Push",
  tag_push: "Tag Push",
  merge_request: "Merge Request",
};

const HEADERS_BY_LOWER_CASE = new Map(
  Object.keys(GITLAB_EVENT_HEADERS).map((header) => [header.toLowerCase(), header as GitlabEventHeader]),
);

const ZERO_SHA = /^0+$/;
const MAX_ECHOED_CHARS = 100;
const MAX_NAME_CHARS = 255;

/**
 * Turns one GitLab webhook delivery into a catalog fact, or says why it is ignored. Dispatches on the
 * `X-Gitlab-Event` header first: member, subgroup and project hooks have no `object_kind`.
 * Throws `BadRequestError` (naming the field) when a payload lacks what a decision needs. A fact
 * whose detail would exceed the bus's 8 KB (a branch name of several KB, which any developer can
 * push) is "ignored", not a 4xx: GitLab counts 4xx toward disabling the hook (DESIGN §4 "Answers").
 *
 * @example
 * const result = normalizeGitlabEvent({ eventHeader: "Push Hook", payload, instance: null, correlationId });
 * // { kind: "fact", entry: { detailType: "Push", detail: { branch: "main", change: "updated", ... } },
 * //   summary: "Push group/app main 95790bf→da15608" }
 */
export function normalizeGitlabEvent(delivery: GitlabDelivery): Normalized {
  const sent = typeof delivery.eventHeader === "string" ? delivery.eventHeader.trim() : "";
  if (!sent) throw new BadRequestError("X-Gitlab-Event header is missing");
  const header = HEADERS_BY_LOWER_CASE.get(sent.toLowerCase());
  const label = header ?? echo(sent);
  if (!isRecord(delivery.payload)) throw new BadRequestError(`${label} payload: must be a JSON object`);
  if (!header) return { kind: "ignored", reason: `unknown event ${JSON.stringify(label)}` };

  const handling = GITLAB_EVENT_HEADERS[header];
  if (handling === "ignored") return { kind: "ignored", reason: `"${header}" events are not acted on` };
  return handling === "system" ? normalizeSystemHook(delivery) : normalizeFact(handling, header, delivery);
}

/**
 * System hooks send every instance event under one header: push, tag_push and merge_request carry
 * `object_kind`; the rest (project_create, user_create, repository_update, ...) only `event_name`.
 * https://docs.gitlab.com/administration/system_hooks/
 */
function normalizeSystemHook(delivery: GitlabDelivery): Normalized {
  const kind = [pick(delivery.payload, "object_kind"), pick(delivery.payload, "event_name")].find(
    (value): value is string => typeof value === "string" && value !== "",
  );
  if (kind === undefined) {
    return {
      kind: "ignored",
      reason: '"System Hook" event without object_kind or event_name is not acted on',
    };
  }
  const fact = Object.hasOwn(SYSTEM_HOOK_FACTS, kind) ? SYSTEM_HOOK_FACTS[kind] : undefined;
  if (fact === undefined) {
    return { kind: "ignored", reason: `"System Hook" ${JSON.stringify(echo(kind))} events are not acted on` };
  }
  return normalizeFact(fact, `System Hook (${kind})`, delivery);
}

interface Context {
  read: PayloadReader;
  correlationId: string;
  instance: string | null;
}

const NORMALIZERS: { [T in GitlabFactType]: (ctx: Context) => Normalized } = {
  Push: normalizePush,
  "Tag Push": normalizeTagPush,
  "Merge Request": normalizeMergeRequest,
  Pipeline: normalizePipeline,
  Job: normalizeJob,
  Deployment: normalizeDeployment,
  Release: normalizeRelease,
};

function normalizeFact(type: GitlabFactType, label: string, delivery: GitlabDelivery): Normalized {
  const read = createPayloadReader(label, delivery.payload);
  return NORMALIZERS[type]({ read, correlationId: delivery.correlationId, instance: delivery.instance });
}

function normalizePush({ read, ...ctx }: Context): Normalized {
  const ref = read.string("ref");
  const branch = stripRefPrefix(read, ref, "refs/heads/");
  const before = read.sha("before");
  const after = read.sha("after");
  const gitlab = readGitlabRef(read, ctx.instance);
  const change = classifyChange(before, after);
  // `commits` is capped at 20; total_commits_count has the real number (absent on very old GitLab).
  const commits = read.get("commits");
  const totalCommits =
    read.optionalId("total_commits_count") ?? (Array.isArray(commits) ? commits.length : 0);
  return createFact(
    read,
    "Push",
    {
      correlationId: ctx.correlationId,
      gitlab,
      ref,
      branch,
      before,
      after,
      change,
      totalCommits,
      user: read.optionalString("user_username"),
    },
    `Push ${gitlab.projectPath} ${branch} ${describeChange(change, before, after)}`,
  );
}

function normalizeTagPush({ read, ...ctx }: Context): Normalized {
  const ref = read.string("ref");
  const tag = stripRefPrefix(read, ref, "refs/tags/");
  const before = read.sha("before");
  const after = read.sha("after");
  const gitlab = readGitlabRef(read, ctx.instance);
  const change = classifyChange(before, after);
  return createFact(
    read,
    "Tag Push",
    {
      correlationId: ctx.correlationId,
      gitlab,
      ref,
      tag,
      before,
      after,
      // An annotated tag's `after` is the tag object; GitLab peels it to the commit here.
      checkoutSha: read.optionalSha("checkout_sha"),
      change,
      user: read.optionalString("user_username"),
    },
    `Tag Push ${gitlab.projectPath} ${tag} ${describeChange(change, before, after)}`,
  );
}

function normalizeMergeRequest({ read, ...ctx }: Context): Normalized {
  // Checked first: GitLab documents fragments of this payload, and one without object_attributes
  // says more by naming it than by naming the project.
  read.object("object_attributes");
  const gitlab = readGitlabRef(read, ctx.instance);
  const iid = read.id("object_attributes.iid");
  const sourceBranch = read.string("object_attributes.source_branch");
  const targetBranch = read.string("object_attributes.target_branch");
  // `action` is absent from old GitLab deliveries: null says "unknown" rather than guessing from `state`.
  const action = read.optionalString("object_attributes.action");
  return createFact(
    read,
    "Merge Request",
    {
      correlationId: ctx.correlationId,
      gitlab,
      action,
      iid,
      state: read.optionalString("object_attributes.state"),
      sourceBranch,
      targetBranch,
      sourceProjectId: read.optionalId("object_attributes.source_project_id"),
      lastCommitSha: read.optionalSha("object_attributes.last_commit.id"),
      // Only on an `update` that added commits: the signal that a review app must be rebuilt.
      oldrev: read.optionalSha("object_attributes.oldrev"),
      // What orders two updates of one merge request that GitLab's queue delivered reversed: set by
      // GitLab when the update happened, not when it reached Kubler. Unreadable is null, not a 400:
      // the fact is still good, it is ordered by its arrival then.
      updatedAt: readGitlabTime(read.get("object_attributes.updated_at")),
      url: read.optionalString("object_attributes.url"),
      user: read.optionalString("user.username"),
    },
    `Merge Request ${gitlab.projectPath} !${iid} ${action ?? "(no action)"} ${sourceBranch}→${targetBranch}`,
  );
}

function normalizePipeline({ read, ...ctx }: Context): Normalized {
  const gitlab = readGitlabRef(read, ctx.instance);
  const pipelineId = read.id("object_attributes.id");
  const status = read.string("object_attributes.status");
  const ref = read.string("object_attributes.ref");
  const sha = read.sha("object_attributes.sha");
  return createFact(
    read,
    "Pipeline",
    {
      correlationId: ctx.correlationId,
      gitlab,
      pipelineId,
      status,
      ref,
      tag: read.boolean("object_attributes.tag"),
      sha,
      source: read.optionalString("object_attributes.source"),
      // `merge_request` is null for branch pipelines and absent from older GitLab.
      mrIid: read.optionalId("merge_request.iid"),
      mrSourceProjectId: read.optionalId("merge_request.source_project_id"),
      mrSourceBranch: read.optionalString("merge_request.source_branch"),
      user: read.optionalString("user.username"),
    },
    `Pipeline ${gitlab.projectPath} #${pipelineId} ${status} ${ref} ${shortSha(sha)}`,
  );
}

function normalizeJob({ read, ...ctx }: Context): Normalized {
  const gitlab = readGitlabRef(read, ctx.instance);
  const jobId = read.id("build_id");
  const name = read.string("build_name");
  const status = read.string("build_status");
  const ref = read.string("ref");
  const sha = read.sha("sha");
  return createFact(
    read,
    "Job",
    {
      correlationId: ctx.correlationId,
      gitlab,
      jobId,
      name,
      stage: read.optionalString("build_stage"),
      status,
      ref,
      tag: read.boolean("tag"),
      sha,
      // Job Hook's `commit` is the pipeline: `commit.id` is a pipeline id, not a SHA (GitLab docs,
      // "Job events"). `pipeline_id` says so plainly where GitLab sends it.
      pipelineId: read.optionalId(["pipeline_id", "commit.id"]),
      environment: read.optionalString("environment.name"),
      environmentAction: read.optionalString("environment.action"),
      user: read.optionalString("user.username"),
    },
    `Job ${gitlab.projectPath} ${name} #${jobId} ${status} ${ref} ${shortSha(sha)}`,
  );
}

function normalizeDeployment({ read, ...ctx }: Context): Normalized {
  const gitlab = readGitlabRef(read, ctx.instance);
  // GitLab 12's first deployment payload has no deployment_id; nothing Kubler decides needs it.
  const deploymentId = read.optionalId("deployment_id");
  const status = read.string("status");
  const environment = read.string("environment");
  // The payload has only `short_sha`; the full SHA is the last segment of `commit_url`.
  const sha = readShaFromCommitUrl(read.get("commit_url")) ?? read.optionalSha("short_sha");
  return createFact(
    read,
    "Deployment",
    {
      correlationId: ctx.correlationId,
      gitlab,
      deploymentId,
      status,
      environment,
      environmentSlug: read.optionalString("environment_slug"),
      // Top-level `ref` only from newer GitLab (lib/gitlab/data_builder/deployment.rb).
      ref: read.optionalString("ref"),
      sha,
      deployableId: read.optionalId("deployable_id"),
      user: read.optionalString("user.username"),
    },
    `Deployment ${gitlab.projectPath} ${environment} ${status}${sha ? ` ${shortSha(sha)}` : ""}`,
  );
}

function normalizeRelease({ read, ...ctx }: Context): Normalized {
  const gitlab = readGitlabRef(read, ctx.instance);
  // `action` is top-level, although the docs' prose places it under object_attributes.
  const action = read.string("action");
  const tag = read.string("tag");
  const name = read.optionalString("name");
  return createFact(
    read,
    "Release",
    {
      correlationId: ctx.correlationId,
      gitlab,
      action,
      tag,
      // A release title is free text: clipped so it can never push the detail past the size limit.
      name: name === null ? null : clip(name, MAX_NAME_CHARS),
      sha: read.optionalSha("commit.id"),
      url: read.optionalString("url"),
    },
    `Release ${gitlab.projectPath} ${tag} ${action}`,
  );
}

/** Where the project id and path live across events and GitLab versions, best source first. */
const PROJECT_ID_FIELDS = ["project.id", "project_id", "object_attributes.target_project_id"];
const PROJECT_PATH_FIELDS = ["project.path_with_namespace", "object_attributes.target.path_with_namespace"];
/** http(s) URLs of the project; old push and job payloads have only `repository`. */
const PROJECT_URL_FIELDS = [
  "project.web_url",
  "project.homepage",
  "object_attributes.target.web_url",
  "repository.homepage",
  "repository.url",
];
/** Any URL on the instance, to find its origin when X-Gitlab-Instance was not sent. */
const INSTANCE_URL_FIELDS = [
  ...PROJECT_URL_FIELDS,
  "object_attributes.url",
  "url",
  "commit_url",
  "deployable_url",
];

function readGitlabRef(read: PayloadReader, instance: string | null): GitlabRef {
  const projectId = read.id(PROJECT_ID_FIELDS);
  const projectPath =
    read.optionalString(PROJECT_PATH_FIELDS) ??
    firstOf(PROJECT_URL_FIELDS, (path) => readProjectPathFromUrl(read.get(path))) ??
    read.fail("project.path_with_namespace", "is missing");
  return {
    instance:
      normalizeInstance(instance) ??
      firstOf(INSTANCE_URL_FIELDS, (path) => readOrigin(read.get(path))) ??
      "unknown",
    projectId,
    projectPath,
  };
}

function createFact<T extends GitlabFactType>(
  read: PayloadReader,
  detailType: T,
  detail: Detail<T>,
  summary: string,
): Normalized {
  let valid: Detail<T>;
  try {
    valid = validateDetail(detailType, detail);
  } catch (error) {
    // The readers check what the schema checks, so this is a reader/schema drift; still the
    // caller's payload is what we could not use, and the ingress must answer 4xx, never 5xx.
    if (error instanceof InvalidDetailError) {
      throw new BadRequestError(`${read.label} payload: ${error.message}`);
    }
    throw error;
  }
  // Serializing each detail just to measure it cost ≈ 40% of normalizing it; nearly all are a few
  // hundred bytes, which a cheap upper bound proves, so only a detail that might be large is measured.
  if (
    jsonBytesAtMost(valid) > MAX_DETAIL_BYTES &&
    Buffer.byteLength(JSON.stringify(valid)) > MAX_DETAIL_BYTES
  ) {
    return { kind: "ignored", reason: describeOversized(read.label, detailType, valid) };
  }
  return { kind: "fact", entry: { detailType, detail: valid } as BusEntry, summary };
}

/**
 * Why an oversized detail is not published: which detail, its longest field and that field's length
 * (never its value: the answer and the audit line stay small). Only runs for an oversized detail.
 */
function describeOversized(
  label: string,
  detailType: GitlabFactType,
  detail: Detail<GitlabFactType>,
): string {
  let longest = { path: "", length: -1 };
  const visit = (value: unknown, path: string): void => {
    if (typeof value === "string") {
      if (value.length > longest.length) longest = { path, length: value.length };
    } else if (isRecord(value)) {
      for (const key of Object.keys(value)) visit(value[key], path ? `${path}.${key}` : key);
    }
  };
  visit(detail, "");
  return (
    `${label} payload of ${echo(detail.gitlab.projectPath)}: a field is too long ` +
    `(the ${detailType} detail's "${longest.path}" is ${longest.length} characters; ` +
    `the detail would be over the bus's ${MAX_DETAIL_BYTES / 1024} KB limit)`
  );
}

/** An upper bound of `Buffer.byteLength(JSON.stringify(value))`: ≤ 6 bytes per UTF-16 unit (`\uXXXX`). */
function jsonBytesAtMost(value: unknown): number {
  if (typeof value === "string") return 2 + 6 * value.length;
  if (typeof value !== "object" || value === null) return 32; // numbers, booleans, null
  let bytes = 2;
  if (Array.isArray(value)) {
    for (const item of value) bytes += 1 + jsonBytesAtMost(item);
    return bytes;
  }
  const record = value as Record<string, unknown>;
  // for…in over a plain object: Object.entries allocated more than the whole walk costs otherwise.
  for (const key in record) bytes += 4 + 6 * key.length + jsonBytesAtMost(record[key]);
  return bytes;
}

function stripRefPrefix(read: PayloadReader, ref: string, prefix: string): string {
  const name = ref.startsWith(prefix) ? ref.slice(prefix.length) : "";
  return name || read.fail("ref", `must start with ${prefix}`);
}

/** A zero SHA on one side of a push means the ref was created (before) or deleted (after). */
function classifyChange(before: string, after: string): "created" | "updated" | "deleted" {
  if (ZERO_SHA.test(after)) return "deleted";
  if (ZERO_SHA.test(before)) return "created";
  return "updated";
}

function describeChange(change: "created" | "updated" | "deleted", before: string, after: string): string {
  if (change === "created") return `created at ${shortSha(after)}`;
  if (change === "deleted") return `deleted (was ${shortSha(before)})`;
  return `${shortSha(before)}→${shortSha(after)}`;
}

/**
 * GitLab's times as its payloads write them, in UTC: `2026-01-16 05:56:25 UTC` (Ruby's Time#to_s,
 * newer GitLab), `2013-12-03T17:15:43Z` or with milliseconds (older GitLab, API-style), or with an
 * offset (`+0200`, `+02:00`). Null for anything else, or a date that does not exist.
 */
const GITLAB_TIME = /^(\d{4}-\d{2}-\d{2})[T ](\d{2}:\d{2}:\d{2}(?:\.\d{1,9})?) ?(Z|UTC|[+-]\d{2}:?\d{2})$/i;

function readGitlabTime(value: unknown): string | null {
  const match = typeof value === "string" ? GITLAB_TIME.exec(value.trim()) : null;
  if (!match) return null;
  const [, day = "", time = "", zone = ""] = match;
  const offset = /^(z|utc)$/i.test(zone)
    ? "Z"
    : zone.includes(":")
      ? zone
      : `${zone.slice(0, 3)}:${zone.slice(3)}`;
  const at = new Date(`${day}T${time}${offset}`);
  // Date rolls 2026-02-30 over to March: a day that does not exist is no time at all.
  if (Number.isNaN(at.getTime()) || !sameDay(day, offset, at)) return null;
  const iso = at.toISOString();
  // 9999-12-31 23:59:59 -1400 is in the year 10000 in UTC, which toISOString writes "+010000-…":
  // not an RFC 3339 time, so the detail would fail validation and the delivery be a 400.
  return iso.length === 24 ? iso : null;
}

function sameDay(day: string, offset: string, at: Date): boolean {
  const minutes =
    offset === "Z"
      ? 0
      : (offset[0] === "-" ? -1 : 1) * (Number(offset.slice(1, 3)) * 60 + Number(offset.slice(4, 6)));
  return new Date(at.getTime() + minutes * 60_000).toISOString().slice(0, 10) === day;
}

function readShaFromCommitUrl(value: unknown): string | null {
  if (typeof value !== "string") return null;
  const match = /\/commit\/([0-9a-f]{7,64})\/?(?:[?#].*)?$/i.exec(value);
  return match?.[1]?.toLowerCase() ?? null;
}

/**
 * A GitLab instance URL as Kubler keys it (events, namespaces, stop records): trimmed, without
 * trailing slashes; null when empty.
 *
 * @example
 * normalizeInstance(" https://gitlab.example.com/ "); // "https://gitlab.example.com"
 */
export function normalizeInstance(instance: string | null): string | null {
  const trimmed = typeof instance === "string" ? instance.trim().replace(/\/+$/, "") : "";
  return trimmed || null;
}

function firstOf(paths: readonly string[], read: (path: string) => string | null): string | null {
  for (const path of paths) {
    const value = read(path);
    if (value !== null) return value;
  }
  return null;
}

function shortSha(sha: string): string {
  return sha.slice(0, 7);
}

function clip(text: string, max: number): string {
  return text.length > max ? `${text.slice(0, max - 1)}…` : text;
}

function echo(text: string): string {
  return clip(text, MAX_ECHOED_CHARS);
}
