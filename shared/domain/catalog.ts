/**
 * The event catalog (DESIGN §3): every detail-type on the `kubler` bus, its source, a validator for
 * its detail, and the route table. Producers, consumers, the local bus and the CDK rules all read
 * this one file, so a route or a shape is never written twice.
 */
import * as v from "valibot";
import { InvalidDetailError } from "../errors.js";
import type { EventPattern } from "./event-pattern.js";

export const GITLAB_SOURCE = "kubler.gitlab";
export const KUBLER_SOURCE = "kubler";
export const BUS_NAME = "kubler";

/** EventBridge limits a whole entry to 256 KB; we keep details small on purpose (DESIGN §3). */
export const MAX_DETAIL_BYTES = 8 * 1024;

const Sha = v.pipe(v.string(), v.regex(/^[0-9a-f]{7,64}$/, "a hex commit SHA"));
const NullableSha = v.nullable(Sha);
const Id = v.pipe(v.number(), v.integer(), v.minValue(0));
const Name = v.pipe(v.string(), v.minLength(1));
const Username = v.nullable(v.string());
/** A time added to a detail after it was first published: absent from older events, null when not known. */
const OptionalTime = v.optional(v.nullable(v.pipe(v.string(), v.isoTimestamp("an RFC 3339 time"))));

/** Where an event came from; on every detail so one webhook can be followed everywhere. */
const GitlabRef = v.object({
  instance: Name,
  projectId: Id,
  projectPath: Name,
});
export type GitlabRef = v.InferOutput<typeof GitlabRef>;

const base = {
  correlationId: Name,
  gitlab: GitlabRef,
};

// GitLab facts: compact, normalized forms of webhook payloads (never the raw body).

const PushDetail = v.object({
  ...base,
  ref: Name,
  branch: Name,
  before: Sha,
  after: Sha,
  change: v.picklist(["created", "updated", "deleted"]),
  totalCommits: Id,
  user: Username,
});

const TagPushDetail = v.object({
  ...base,
  ref: Name,
  tag: Name,
  before: Sha,
  after: Sha,
  /** The commit the tag points to: an annotated tag's `after` is the tag object, not a commit. */
  checkoutSha: v.optional(NullableSha),
  change: v.picklist(["created", "updated", "deleted"]),
  user: Username,
});

const MergeRequestDetail = v.object({
  ...base,
  /** GitLab's `object_attributes.action`: open, close, reopen, update, merge, approved, ... */
  action: v.nullable(v.string()),
  iid: Id,
  state: v.nullable(v.string()),
  sourceBranch: Name,
  targetBranch: Name,
  sourceProjectId: v.nullable(Id),
  lastCommitSha: NullableSha,
  /** Present on an `update` that added commits: the previous head. */
  oldrev: NullableSha,
  /**
   * GitLab's `object_attributes.updated_at` (RFC 3339): when GitLab changed the merge request, by its
   * own clock. Absent from facts published before it was carried, null when GitLab sent none.
   */
  updatedAt: OptionalTime,
  url: v.nullable(v.string()),
  user: Username,
});

const PipelineDetail = v.object({
  ...base,
  pipelineId: Id,
  status: Name,
  ref: Name,
  tag: v.boolean(),
  sha: Sha,
  source: v.nullable(v.string()),
  mrIid: v.nullable(Id),
  /** The merge request's source project: another project's id means a fork's pipeline. */
  mrSourceProjectId: v.optional(v.nullable(Id), null),
  /** The merge request's source branch: a detached MR pipeline's `ref` is `refs/merge-requests/<iid>/head`. */
  mrSourceBranch: v.optional(v.nullable(Name), null),
  user: Username,
});

const JobDetail = v.object({
  ...base,
  jobId: Id,
  name: Name,
  stage: v.nullable(v.string()),
  status: Name,
  ref: Name,
  tag: v.boolean(),
  sha: Sha,
  /** Job Hook's `commit.id` is the pipeline id (not a SHA): it lands here. */
  pipelineId: v.nullable(Id),
  environment: v.nullable(v.string()),
  /** `start`, `stop`, `prepare`, ...: a finished `stop` job is how GitLab stops an environment. */
  environmentAction: v.optional(v.nullable(v.string()), null),
  user: Username,
});

const DeploymentDetail = v.object({
  ...base,
  /** Absent from GitLab 12's deployment payload (the first Deployment Hook). */
  deploymentId: v.optional(v.nullable(Id), null),
  status: Name,
  environment: Name,
  environmentSlug: v.nullable(v.string()),
  ref: v.nullable(v.string()),
  sha: NullableSha,
  deployableId: v.nullable(Id),
  user: Username,
});

const ReleaseDetail = v.object({
  ...base,
  action: Name,
  tag: Name,
  name: v.nullable(v.string()),
  sha: NullableSha,
  url: v.nullable(v.string()),
});

// Steps and outcomes (source "kubler"). Planning, builds and deploys refine these in their issues.

/** Every step carries what it is about: the environment, the commit, and where the commit came from. */
const step = {
  ...base,
  environment: Name,
  sha: Sha,
  ref: Name,
  pipelineId: v.nullable(Id),
  mrIid: v.nullable(Id),
  /**
   * When the GitLab fact this step comes from reached Kubler (that fact's envelope time): the order
   * GitLab sent its events in, which a deploy compares instead of its own, later event's time (builds
   * finish out of order). Absent from events published before it was carried.
   */
  factAt: OptionalTime,
  /**
   * The TTL of the environment rule plan-steps matched (null: the rule sets none, the default
   * applies), so the deploy never takes another rule's. Absent from older events: the deploy then
   * finds the rule by the environment's name.
   */
  ttl: v.optional(v.nullable(Name)),
  /** The GitLab user whose push, merge request or pipeline this step comes from: who deployed. */
  user: v.optional(Username),
  /**
   * The commit the push or merge request update started from (the push's `before`, the update's
   * `oldrev`): a deploy of this commit is older than this step's. Absent or null: not known.
   */
  previousSha: v.optional(NullableSha),
  /**
   * When GitLab itself says the fact happened (a merge request's `updated_at`): unlike `factAt`, not
   * changed by the order GitLab's queue delivers in. Absent or null: GitLab sends none (pushes).
   */
  gitlabAt: OptionalTime,
};

const BuildRequestedDetail = v.object(step);

const BuildFinishedDetail = v.object({
  ...step,
  status: v.picklist(["succeeded", "failed"]),
  imageDigest: v.nullable(v.pipe(v.string(), v.regex(/^sha256:[0-9a-f]{64}$/, "a sha256 digest"))),
  reason: v.nullable(v.string()),
});

const DeployRequestedDetail = v.object(step);

const DeployFinishedDetail = v.object({
  ...step,
  /** `superseded`: refused, because a newer deploy was attempted or the environment was stopped since. */
  status: v.picklist(["succeeded", "failed", "rolled_back", "superseded"]),
  namespace: Name,
  url: v.nullable(v.string()),
  reason: v.nullable(v.string()),
});

/** The longest `requestedBy` a stop carries: an assumed-role ARN is under 200 characters. */
export const MAX_REQUESTED_BY_LENGTH = 256;

/** Who, outside GitLab, asked for a stop: `aws:<caller ARN>` or `local:<OS user>` (`kubler stop`). */
const RequestedBy = v.pipe(
  v.string(),
  v.minLength(1),
  v.maxLength(MAX_REQUESTED_BY_LENGTH, `at most ${MAX_REQUESTED_BY_LENGTH} characters`),
  // One line in the audit table and the terminal: no control characters.
  v.regex(/^[^\p{Cc}]+$/u, "no control characters"),
);

/** Why an environment is stopped: GitLab's merge, close or branch deletion, a stop job or operator, its expiry. */
export const STOP_REASONS = ["stopped", "merged", "closed", "branch_deleted", "expired"] as const;

const EnvironmentStopRequestedDetail = v.object({
  ...base,
  environment: Name,
  reason: v.picklist(STOP_REASONS),
  /**
   * The GitLab user whose merge, close, branch deletion or stop job this stop comes from (plan-steps).
   * Absent from expiry stops and from events published before it was carried.
   */
  user: v.optional(Username),
  /**
   * As a step's: when the merge, close, branch deletion or stop job reached Kubler (plan-steps), which
   * cleanup orders the stop by, not by its own bus time (plan-steps may handle the fact late, after a
   * reopen was deployed). Absent from expiry, reconcile and `kubler stop` stops, and from events
   * published before it was carried: those are ordered by their bus time.
   */
  factAt: OptionalTime,
  /** The operator who ran `kubler stop`. Absent from GitLab's and expiry stops. */
  requestedBy: v.optional(RequestedBy),
});

const EnvironmentDeletedDetail = v.object({
  ...base,
  environment: Name,
  namespace: Name,
  /** What was running when it was deleted, when known: report-status puts the final status on it. */
  sha: v.optional(NullableSha),
  ref: v.optional(v.nullable(v.string())),
  /**
   * The pipeline that deployed it (null: none recorded), so the final status lands in that pipeline
   * and not under the branch: a merge request pipeline's ref is not the branch. Absent from events
   * published before it was carried.
   */
  pipelineId: v.optional(v.nullable(Id)),
  /** Who asked for the stop, as its `Environment Stop Requested` said (absent from the sweep's). */
  user: v.optional(Username),
  requestedBy: v.optional(RequestedBy),
});

const credentials = {
  ...base,
  environment: v.nullable(v.string()),
  jobId: v.nullable(Id),
  rule: v.nullable(v.string()),
  reason: Name,
};

const CredentialsIssuedDetail = v.object({ ...credentials, roleArn: v.nullable(v.string()) });
const CredentialsDeniedDetail = v.object(credentials);

/** Every detail-type, its source and its validator. */
export const CATALOG = {
  Push: { source: GITLAB_SOURCE, schema: PushDetail },
  "Tag Push": { source: GITLAB_SOURCE, schema: TagPushDetail },
  "Merge Request": { source: GITLAB_SOURCE, schema: MergeRequestDetail },
  Pipeline: { source: GITLAB_SOURCE, schema: PipelineDetail },
  Job: { source: GITLAB_SOURCE, schema: JobDetail },
  Deployment: { source: GITLAB_SOURCE, schema: DeploymentDetail },
  Release: { source: GITLAB_SOURCE, schema: ReleaseDetail },
  "Build Requested": { source: KUBLER_SOURCE, schema: BuildRequestedDetail },
  "Build Finished": { source: KUBLER_SOURCE, schema: BuildFinishedDetail },
  "Deploy Requested": { source: KUBLER_SOURCE, schema: DeployRequestedDetail },
  "Deploy Finished": { source: KUBLER_SOURCE, schema: DeployFinishedDetail },
  "Environment Stop Requested": { source: KUBLER_SOURCE, schema: EnvironmentStopRequestedDetail },
  "Environment Deleted": { source: KUBLER_SOURCE, schema: EnvironmentDeletedDetail },
  "Credentials Issued": { source: KUBLER_SOURCE, schema: CredentialsIssuedDetail },
  "Credentials Denied": { source: KUBLER_SOURCE, schema: CredentialsDeniedDetail },
} as const;

export type DetailType = keyof typeof CATALOG;
export type Detail<T extends DetailType> = v.InferOutput<(typeof CATALOG)[T]["schema"]>;
export const DETAIL_TYPES = Object.keys(CATALOG) as DetailType[];
/** The detail-types gitlab-webhook produces: the normalized GitLab facts. */
export type GitlabFactType = {
  [T in DetailType]: (typeof CATALOG)[T]["source"] extends typeof GITLAB_SOURCE ? T : never;
}[DetailType];
export const GITLAB_FACTS = DETAIL_TYPES.filter(
  (t): t is GitlabFactType => CATALOG[t].source === GITLAB_SOURCE,
);

/** What every step and outcome carries (the fields of `Build Requested`). */
export type StepFields = Detail<"Build Requested">;

/**
 * The step fields of a step's detail, to carry them into the outcome it leads to.
 *
 * @example
 * const finished: Detail<"Build Finished"> = { ...stepFieldsOf(requested), status: "failed", imageDigest: null, reason };
 */
export function stepFieldsOf(detail: StepFields): StepFields {
  const { correlationId, gitlab, environment, sha, ref, pipelineId, mrIid, user, factAt, ttl } = detail;
  const { previousSha, gitlabAt } = detail;
  return {
    correlationId,
    gitlab,
    environment,
    sha,
    ref,
    pipelineId,
    mrIid,
    ...(user !== undefined ? { user } : {}),
    ...(factAt !== undefined ? { factAt } : {}),
    ...(ttl !== undefined ? { ttl } : {}),
    ...(previousSha !== undefined ? { previousSha } : {}),
    ...(gitlabAt !== undefined ? { gitlabAt } : {}),
  };
}

/** One event to publish: the publisher fills in source, time and id. */
export type BusEntry = { [T in DetailType]: { detailType: T; detail: Detail<T> } }[DetailType];

/** An event as EventBridge delivers it to a target (and as the local bus writes it to events.jsonl). */
export interface BusEnvelope<T extends DetailType = DetailType> {
  version: "0";
  id: string;
  "detail-type": T;
  source: string;
  account: string;
  time: string;
  region: string;
  resources: string[];
  detail: Detail<T>;
}

export function isDetailType(value: unknown): value is DetailType {
  return typeof value === "string" && Object.hasOwn(CATALOG, value);
}

export function sourceOf(detailType: DetailType): string {
  return CATALOG[detailType].source;
}

/**
 * Details this module validated (frozen), by detail-type: the same object handed back (a producer's
 * detail reaching its publisher) is not checked twice. Frozen, so it cannot have changed. A WeakSet
 * per type, not one WeakMap: measured at a third of the cost per detail.
 */
const validated = Object.fromEntries(DETAIL_TYPES.map((type) => [type, new WeakSet<object>()])) as Record<
  DetailType,
  WeakSet<object>
>;

/**
 * Checks a detail against its detail-type's validator. Producers call it before publishing and
 * consumers on receipt, so a wrong shape fails at the boundary with the path that is wrong. The
 * result is a frozen copy; passing that copy again returns it without a second check.
 *
 * @example
 * const detail = validateDetail("Push", envelope.detail); // typed, or throws InvalidDetailError
 */
export function validateDetail<T extends DetailType>(detailType: T, detail: unknown): Detail<T> {
  // Not `CATALOG[detailType]` alone: "toString" finds Object.prototype's and fails as a TypeError.
  if (!isDetailType(detailType)) {
    throw new InvalidDetailError(`unknown detail-type ${JSON.stringify(detailType)}`);
  }
  const entry = CATALOG[detailType] as { schema: v.GenericSchema };
  if (typeof detail === "object" && detail !== null && validated[detailType].has(detail)) {
    return detail as Detail<T>;
  }
  const result = v.safeParse(entry.schema, detail);
  if (!result.success) {
    const problems = result.issues.map((issue) => `${v.getDotPath(issue) ?? "(detail)"}: ${issue.message}`);
    throw new InvalidDetailError(`invalid "${detailType}" detail: ${problems.join("; ")}`);
  }
  const output = deepFreeze(result.output as Detail<T>);
  validated[detailType].add(output);
  return output;
}

/**
 * What a publisher checks before an entry goes on the bus: `validateDetail` and the size limit. The
 * EventBridge publisher and the local bus both call it, so an entry refused in AWS is refused locally.
 * Returns the frozen detail and its JSON (what PutEvents sends).
 *
 * @example
 * const { detail, json } = validateBusDetail("Deploy Finished", finished); // or InvalidDetailError
 */
export function validateBusDetail<T extends DetailType>(
  detailType: T,
  detail: unknown,
): { detail: Detail<T>; json: string } {
  const valid = validateDetail(detailType, detail);
  const json = JSON.stringify(valid);
  const bytes = Buffer.byteLength(json, "utf8");
  if (bytes > MAX_DETAIL_BYTES) {
    throw new InvalidDetailError(
      `"${detailType}" detail is ${bytes} bytes, over the ${MAX_DETAIL_BYTES}-byte limit`,
    );
  }
  return { detail: valid, json };
}

// Details are small JSON trees (one nested `gitlab`), so the walk is a handful of objects.
function deepFreeze<T>(value: T): T {
  if (typeof value === "object" && value !== null && !Object.isFrozen(value)) {
    Object.freeze(value);
    for (const child of Object.values(value)) deepFreeze(child);
  }
  return value;
}

/**
 * Checks an envelope a consumer received: a known detail-type, the catalog's source, a valid detail.
 *
 * @example
 * const event = validateEnvelope(lambdaEvent, ["Deploy Requested"]);
 */
export function validateEnvelope<T extends DetailType>(
  envelope: unknown,
  accepted: readonly T[],
): BusEnvelope<T> {
  if (typeof envelope !== "object" || envelope === null) {
    throw new InvalidDetailError("event is not an object");
  }
  const e = envelope as Record<string, unknown>;
  const detailType = e["detail-type"];
  if (!isDetailType(detailType) || !(accepted as readonly string[]).includes(detailType)) {
    throw new InvalidDetailError(
      `unexpected detail-type ${JSON.stringify(detailType)}; this consumer takes ${accepted.join(", ")}`,
    );
  }
  if (e.source !== sourceOf(detailType)) {
    throw new InvalidDetailError(
      `"${detailType}" must come from ${sourceOf(detailType)}, not ${String(e.source)}`,
    );
  }
  const detail = validateDetail(detailType, e.detail);
  return { ...(e as unknown as BusEnvelope<T>), detail: detail as Detail<T> };
}

/** Every Lambda Kubler deploys; the bus targets are the consumers among them. */
export const FUNCTIONS = [
  "gitlab-webhook",
  "job-credentials",
  "plan-steps",
  "build-image",
  "deploy-environment",
  "cleanup-environments",
  "report-status",
  "reconcile",
] as const;
export type FunctionName = (typeof FUNCTIONS)[number];

/**
 * The detail-types each function publishes (DESIGN §3, "produced by"), each with its catalog source.
 * The CDK stack allows each function's role to put exactly these on the bus, so a function that
 * publishes something new does not get past IAM until it is added here.
 *
 * @example
 * PRODUCERS["deploy-environment"]; // ["Deploy Finished"]
 */
export const PRODUCERS: Readonly<Record<FunctionName, readonly DetailType[]>> = {
  "gitlab-webhook": GITLAB_FACTS,
  "job-credentials": ["Credentials Issued", "Credentials Denied"],
  "plan-steps": ["Build Requested", "Deploy Requested", "Environment Stop Requested"],
  // A failed build that never started; the outcome of a running one is reconcile's.
  "build-image": ["Build Finished"],
  "deploy-environment": ["Deploy Finished"],
  "cleanup-environments": ["Environment Deleted"],
  "report-status": [],
  reconcile: ["Build Finished", "Deploy Finished", "Environment Stop Requested"],
};

export interface Route {
  /** The EventBridge rule's name (also how the local bus names the route). */
  name: string;
  target: FunctionName;
  pattern: EventPattern;
}

/**
 * Which events reach which function. The CDK stack makes one rule per entry; the local bus matches
 * with the same patterns and matcher. Credentials Issued/Denied have no consumer: archive only.
 */
export const ROUTES: readonly Route[] = [
  {
    name: "gitlab-facts-to-plan-steps",
    target: "plan-steps",
    pattern: { source: [GITLAB_SOURCE], "detail-type": [...GITLAB_FACTS] },
  },
  {
    name: "build-requested-to-build-image",
    target: "build-image",
    pattern: { source: [KUBLER_SOURCE], "detail-type": ["Build Requested"] },
  },
  {
    name: "deploys-to-deploy-environment",
    target: "deploy-environment",
    pattern: {
      source: [KUBLER_SOURCE],
      $or: [
        { "detail-type": ["Deploy Requested"] },
        { "detail-type": ["Build Finished"], detail: { status: ["succeeded"] } },
      ],
    },
  },
  {
    name: "stops-to-cleanup-environments",
    target: "cleanup-environments",
    pattern: { source: [KUBLER_SOURCE], "detail-type": ["Environment Stop Requested"] },
  },
  {
    name: "outcomes-to-report-status",
    target: "report-status",
    pattern: {
      source: [KUBLER_SOURCE],
      // The requests too: they are when a commit's status becomes pending (build) or running (deploy).
      // DESIGN §3 also has report-status consume the GitLab facts; it takes plan-steps' requests
      // instead: a fact Kubler ignores (no kubler.yaml, no matching rule) must not get a commit
      // status, and one it acts on becomes a request in the same moment.
      "detail-type": [
        "Build Requested",
        "Build Finished",
        "Deploy Requested",
        "Deploy Finished",
        "Environment Deleted",
      ],
    },
  },
];
