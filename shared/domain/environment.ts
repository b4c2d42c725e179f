/**
 * Environments on the cluster (DESIGN §6): how a (project, environment) pair is named, and the labels
 * and annotations that are the contract between Kubler and the cluster. The cluster is the source of
 * truth: everything Kubler knows about a running environment is read back from its namespace.
 */
import { createHash } from "node:crypto";
import type { KubeObject } from "./kube-object.js";

export const LABEL = {
  MANAGED_BY: "app.kubernetes.io/managed-by",
  PROJECT_ID: "kubler.dev/project-id",
  ENVIRONMENT: "kubler.dev/environment",
} as const;

export const ANNOTATION = {
  PROJECT_ID: "kubler.dev/project-id",
  PROJECT_PATH: "kubler.dev/project-path",
  ENVIRONMENT: "kubler.dev/environment",
  /** The environment's full name (`review/feature-x`); the label holds only its slug. */
  ENVIRONMENT_NAME: "kubler.dev/environment-name",
  INSTANCE: "kubler.dev/gitlab-instance",
  EXPIRES_AT: "kubler.dev/expires-at",
  TTL: "kubler.dev/ttl",
  SHA: "kubler.dev/sha",
  REF: "kubler.dev/ref",
  PIPELINE_ID: "kubler.dev/pipeline-id",
  MR_IID: "kubler.dev/mr-iid",
  DEPLOYED_AT: "kubler.dev/deployed-at",
  /** When the last deploy attempted here was requested (its bus event's time). */
  REQUESTED_AT: "kubler.dev/requested-at",
  /**
   * When the GitLab fact behind the last deploy attempted here reached Kubler: what out-of-order
   * requests are compared against (falling back to requested-at on namespaces from before it).
   */
  FACT_AT: "kubler.dev/fact-at",
  /**
   * The commit the last attempted deploy's push or merge request update started from (`previousSha`):
   * a request for it is older, whenever it arrives. Empty: not known.
   */
  PREVIOUS_SHA: "kubler.dev/previous-sha",
  /** GitLab's own time of the last attempted deploy's fact (a merge request's `updated_at`). Empty: none. */
  GITLAB_AT: "kubler.dev/gitlab-at",
  /**
   * The revision last attempted here, with `status` its outcome; differs from `sha`/`pipeline-id`
   * (what runs) after a rollback, so a redelivery of the attempt is known as a repeat.
   */
  ATTEMPTED_SHA: "kubler.dev/attempted-sha",
  ATTEMPTED_PIPELINE_ID: "kubler.dev/attempted-pipeline-id",
  /** `succeeded`, `failed`, `rolled_back` or `deploying`: the last deploy's outcome. */
  STATUS: "kubler.dev/status",
  /** While a rollout is in progress: when it must be finished (reconcile fails it after that). */
  ROLLOUT_DEADLINE: "kubler.dev/rollout-deadline",
  /**
   * While a deploy rolls back (status `deploying`): the last good commit it restores. A retry of the
   * attempt that finds it finishes the rollback instead of applying the failed revision again.
   * Empty: no rollback under way.
   */
  ROLLING_BACK_TO: "kubler.dev/rolling-back-to",
  CORRELATION_ID: "kubler.dev/correlation-id",
  /**
   * SHA-256 of the last-good record Kubler wrote (`lastGoodDigest`). The record is a ConfigMap in the
   * project's namespace, which a CI job may patch when the project ships ConfigMaps; the Namespace is
   * cluster-scoped, out of any namespaced Role's reach, so a record that no longer matches is not restored.
   */
  LAST_GOOD_DIGEST: "kubler.dev/last-good-digest",
  URL: "kubler.dev/url",
  /**
   * `"false"` from when reconcile marks a stuck rollout failed until its `Deploy Finished` failed is
   * published (`"true"` after): the mark goes first, so a failed publish is retried by the next run
   * rather than lost. Empty or absent: nothing pending (every deploy's own write clears it).
   */
  FAILURE_REPORTED: "kubler.dev/failure-reported",
} as const;

/**
 * Pod Security Admission's levels (https://kubernetes.io/docs/concepts/security/pod-security-standards/):
 * what the environment namespaces enforce (`KUBLER_POD_SECURITY`). Kubler applies a project's
 * workloads with a cluster admin's rights, so without a level any branch with a merge request could
 * run a privileged pod or mount the node's filesystem, and from there take the node.
 */
export const POD_SECURITY_LEVELS = ["baseline", "restricted", "privileged"] as const;
export type PodSecurityLevel = (typeof POD_SECURITY_LEVELS)[number];
/** The level environments enforce unless told otherwise: no privileged pods, host paths or host namespaces. */
export const DEFAULT_POD_SECURITY: PodSecurityLevel = "baseline";

/** https://kubernetes.io/docs/concepts/security/pod-security-admission/#pod-security-admission-labels-for-namespaces */
const POD_SECURITY_LABEL = {
  ENFORCE: "pod-security.kubernetes.io/enforce",
  ENFORCE_VERSION: "pod-security.kubernetes.io/enforce-version",
  WARN: "pod-security.kubernetes.io/warn",
  WARN_VERSION: "pod-security.kubernetes.io/warn-version",
  AUDIT: "pod-security.kubernetes.io/audit",
  AUDIT_VERSION: "pod-security.kubernetes.io/audit-version",
} as const;

/**
 * The namespace labels that make the API server enforce `level` on the environment's pods, and warn
 * (to whoever applies, a CI job's kubectl too) and audit what `restricted` would refuse, so a team sees
 * what a stricter level would need before anyone sets it. `latest`: the standards of the cluster's version.
 *
 * @example
 * podSecurityLabels("baseline"); // { "pod-security.kubernetes.io/enforce": "baseline", …, warn: "restricted" }
 */
function podSecurityLabels(level: PodSecurityLevel): Record<string, string> {
  return {
    [POD_SECURITY_LABEL.ENFORCE]: level,
    [POD_SECURITY_LABEL.ENFORCE_VERSION]: "latest",
    [POD_SECURITY_LABEL.WARN]: "restricted",
    [POD_SECURITY_LABEL.WARN_VERSION]: "latest",
    [POD_SECURITY_LABEL.AUDIT]: "restricted",
    [POD_SECURITY_LABEL.AUDIT_VERSION]: "latest",
  };
}

/** Whether `text` is one of Pod Security Admission's levels. */
export function isPodSecurityLevel(text: string | undefined): text is PodSecurityLevel {
  return (POD_SECURITY_LEVELS as readonly (string | undefined)[]).includes(text);
}

export const MANAGED_BY_KUBLER = "kubler";
/** Lists of Kubler's namespaces select on this; nothing without it is ever touched. */
export const MANAGED_SELECTOR = `${LABEL.MANAGED_BY}=${MANAGED_BY_KUBLER}`;
/**
 * Kubler's environment namespaces: managed by Kubler and naming an environment. Kubler's other
 * namespaces (the builds namespace) carry the managed-by label too, but are not environments.
 */
export const ENVIRONMENTS_SELECTOR = `${MANAGED_SELECTOR},${LABEL.ENVIRONMENT}`;

const MAX_NAMESPACE = 63;
const MAX_LABEL_VALUE = 63;
const HASH_LENGTH = 8;

/**
 * The namespace of a project's environment: DNS-1123 label, ≤ 63 chars, deterministic. The readable
 * part is the project path and environment with everything but `[a-z0-9]` turned into `-`; a hash of
 * the exact pair always follows, because different pairs can read the same (`a/b` + `c` and `a` +
 * `b/c` both read `a-b-c`) and one environment's namespace must never be another's.
 *
 * @example
 * namespaceFor("group/app", "review/feature-x"); // "group-app-review-feature-x-5d41402a"
 */
export function namespaceFor(projectPath: string, environment: string): string {
  const hash = shortHash(`${projectPath}\n${environment}`);
  const readable = slugify(`${projectPath}-${environment}`).slice(0, MAX_NAMESPACE - HASH_LENGTH - 1);
  const trimmed = readable.replace(/-+$/, "");
  return trimmed ? `${trimmed}-${hash}` : `env-${hash}`;
}

/**
 * The environment's slug: a valid label value (≤ 63, `[a-z0-9-]`, alphanumeric at both ends), with a
 * hash suffix when it had to be truncated so long names stay distinct.
 *
 * @example
 * environmentSlug("review/Feature_X"); // "review-feature-x"
 */
export function environmentSlug(environment: string): string {
  const slug = slugify(environment);
  if (slug.length <= MAX_LABEL_VALUE && slug.length > 0) return slug;
  const head = slug.slice(0, MAX_LABEL_VALUE - HASH_LENGTH - 1).replace(/-+$/, "");
  return `${head || "env"}-${shortHash(environment)}`;
}

/**
 * Why the environment recorded on a namespace is not `environment`, or null when it is. Once a long
 * project path fills a namespace name's readable part, two environments' names differ by 8 hex
 * digits of a hash alone: a branch found to collide must neither deploy over production nor stop it.
 * A namespace from before the name annotation records the slug only.
 *
 * @example
 * heldByAnother("ns-1a2b3c4d", "production", "review/x"); // "namespace ns-1a2b3c4d belongs to environment production, not review/x"
 */
export function heldByAnother(namespace: string, holder: string, environment: string): string | null {
  if (holder === environment || holder === environmentSlug(environment)) return null;
  return `namespace ${namespace} belongs to environment ${holder}, not ${environment}`;
}

/**
 * The environment a namespace records: its full name, or the slug label alone on a namespace from
 * before the name annotation (`heldByAnother` takes either). Undefined: it records none.
 *
 * @example
 * recordedEnvironment(namespace); // "review/feature-x"
 */
export function recordedEnvironment(namespace: NamespaceLike): string | undefined {
  const { labels = {}, annotations = {} } = namespace.metadata;
  return annotations[ANNOTATION.ENVIRONMENT_NAME] ?? labels[LABEL.ENVIRONMENT];
}

function slugify(text: string): string {
  return text
    .toLowerCase()
    .replace(/[^a-z0-9]+/g, "-")
    .replace(/^-+|-+$/g, "");
}

function shortHash(text: string): string {
  return createHash("sha256").update(text).digest("hex").slice(0, HASH_LENGTH);
}

/** What Kubler reads back from an environment's namespace. */
export interface ManagedEnvironment {
  namespace: string;
  projectId: number;
  projectPath: string | null;
  instance: string | null;
  environment: string;
  sha: string | null;
  ref: string | null;
  pipelineId: number | null;
  mrIid: number | null;
  deployedAt: Date | null;
  requestedAt: Date | null;
  factAt: Date | null;
  /** The commit the last attempted revision's push or update started from; null: not known. */
  previousSha: string | null;
  /** GitLab's own time of the last attempted revision's fact; null: none. */
  gitlabAt: Date | null;
  /** The revision last attempted (what runs, on namespaces from before attempts were recorded). */
  attemptedSha: string | null;
  attemptedPipelineId: number | null;
  /** Null when the environment never expires (`ttl: never`). */
  expiresAt: Date | null;
  ttl: string | null;
  status: string | null;
  rolloutDeadline: Date | null;
  /** The last good commit a rollback under way restores (`ANNOTATION.ROLLING_BACK_TO`); null: none. */
  rollingBackTo: string | null;
  correlationId: string | null;
  url: string | null;
  lastGoodDigest: string | null;
  /** The Pod Security level its namespace enforces, as Kubler labelled it; null: none (or not a level). */
  podSecurity: PodSecurityLevel | null;
  /** false: marked failed by reconcile, not yet reported; null: nothing pending. */
  failureReported: boolean | null;
  terminating: boolean;
  createdAt: Date | null;
}

export type ReadEnvironment =
  | { kind: "managed"; environment: ManagedEnvironment }
  | { kind: "unmanaged"; reason: string }
  | { kind: "malformed"; reason: string };

interface NamespaceLike {
  metadata: {
    name: string;
    labels?: Record<string, string>;
    annotations?: Record<string, string>;
    creationTimestamp?: string;
    deletionTimestamp?: string;
  };
  status?: unknown;
}

/**
 * Reads the contract off a namespace. Unmanaged namespaces are reported as such (never acted on); a
 * managed one whose annotations cannot be read is "malformed": skipped and reported, never deleted.
 *
 * @example
 * const read = readEnvironment(namespace);
 * if (read.kind === "managed" && isExpired(read.environment, now)) ...
 */
export function readEnvironment(namespace: NamespaceLike): ReadEnvironment {
  const { name, labels = {}, annotations = {} } = namespace.metadata;
  if (labels[LABEL.MANAGED_BY] !== MANAGED_BY_KUBLER) {
    return { kind: "unmanaged", reason: `namespace ${name} is not labelled ${MANAGED_SELECTOR}` };
  }
  const problems: string[] = [];
  const projectId = integer(labels[LABEL.PROJECT_ID]);
  if (projectId === null) problems.push(`label ${LABEL.PROJECT_ID} is not a project id`);
  const environment = recordedEnvironment(namespace);
  if (!environment) problems.push(`neither ${ANNOTATION.ENVIRONMENT_NAME} nor ${LABEL.ENVIRONMENT} is set`);
  const time = (key: string): Date | null => {
    const raw = annotations[key];
    if (raw === undefined || raw === "") return null;
    const parsed = parseRfc3339(raw);
    if (!parsed)
      problems.push(`annotation ${key} is not an RFC 3339 time: ${JSON.stringify(raw.slice(0, 64))}`);
    return parsed;
  };
  const expiresAt = time(ANNOTATION.EXPIRES_AT);
  const deployedAt = time(ANNOTATION.DEPLOYED_AT);
  const requestedAt = time(ANNOTATION.REQUESTED_AT);
  const factAt = time(ANNOTATION.FACT_AT);
  const gitlabAt = time(ANNOTATION.GITLAB_AT);
  const rolloutDeadline = time(ANNOTATION.ROLLOUT_DEADLINE);
  const ttl = annotations[ANNOTATION.TTL] || null;
  const enforced = labels[POD_SECURITY_LABEL.ENFORCE];
  // Without expires-at the environment must say it never expires; anything else is ambiguous.
  if (!annotations[ANNOTATION.EXPIRES_AT] && ttl !== "never") {
    problems.push(`annotation ${ANNOTATION.EXPIRES_AT} is missing and ${ANNOTATION.TTL} is not "never"`);
  }
  if (problems.length > 0 || projectId === null || !environment) {
    return { kind: "malformed", reason: `namespace ${name}: ${problems.join("; ")}` };
  }
  return {
    kind: "managed",
    environment: {
      namespace: name,
      projectId,
      projectPath: annotations[ANNOTATION.PROJECT_PATH] || null,
      instance: annotations[ANNOTATION.INSTANCE] || null,
      environment,
      sha: annotations[ANNOTATION.SHA] || null,
      ref: annotations[ANNOTATION.REF] || null,
      pipelineId: integer(annotations[ANNOTATION.PIPELINE_ID]),
      mrIid: integer(annotations[ANNOTATION.MR_IID]),
      deployedAt,
      requestedAt,
      factAt,
      previousSha: annotations[ANNOTATION.PREVIOUS_SHA] || null,
      gitlabAt,
      attemptedSha: annotations[ANNOTATION.ATTEMPTED_SHA] || annotations[ANNOTATION.SHA] || null,
      attemptedPipelineId:
        annotations[ANNOTATION.ATTEMPTED_SHA] !== undefined
          ? integer(annotations[ANNOTATION.ATTEMPTED_PIPELINE_ID])
          : integer(annotations[ANNOTATION.PIPELINE_ID]),
      expiresAt,
      ttl,
      status: annotations[ANNOTATION.STATUS] || null,
      rolloutDeadline,
      rollingBackTo: annotations[ANNOTATION.ROLLING_BACK_TO] || null,
      correlationId: annotations[ANNOTATION.CORRELATION_ID] || null,
      url: annotations[ANNOTATION.URL] || null,
      lastGoodDigest: annotations[ANNOTATION.LAST_GOOD_DIGEST] || null,
      podSecurity: isPodSecurityLevel(enforced) ? enforced : null,
      failureReported:
        annotations[ANNOTATION.FAILURE_REPORTED] === "false"
          ? false
          : annotations[ANNOTATION.FAILURE_REPORTED] === "true"
            ? true
            : null,
      terminating:
        namespace.metadata.deletionTimestamp !== undefined ||
        (namespace.status as { phase?: string } | undefined)?.phase === "Terminating",
      createdAt: parseRfc3339(namespace.metadata.creationTimestamp ?? ""),
    },
  };
}

/** Expired when it has an expiry and the expiry has passed. */
export function isExpired(environment: Pick<ManagedEnvironment, "expiresAt">, now: Date): boolean {
  return environment.expiresAt !== null && environment.expiresAt.getTime() <= now.getTime();
}

const RFC3339 = /^\d{4}-\d{2}-\d{2}[Tt ]\d{2}:\d{2}:\d{2}(\.\d+)?([Zz]|[+-]\d{2}:\d{2})$/;

function parseRfc3339(text: string): Date | null {
  if (!RFC3339.test(text)) return null;
  const date = new Date(text);
  return Number.isNaN(date.getTime()) ? null : date;
}

function integer(text: string | undefined): number | null {
  if (text === undefined || !/^\d{1,15}$/.test(text)) return null;
  return Number(text);
}

/** A value Kubler fills into deploy.url's host: a host name's letters, digits, dots and dashes. */
const HOST_VALUE = /^[A-Za-z0-9.-]+$/;
/** A URL's scheme and `//`; placeholders may be in it, never `/`, `?` or `#`. */
const SCHEME_PREFIX = /^[^/?#]*:\/\//;

/** Where a URL's authority (user info, host, port) ends: before its first `/`, `?` or `#` after the scheme. */
function authorityEnd(url: string): number {
  const start = SCHEME_PREFIX.exec(url)?.[0].length ?? 0;
  const end = url.slice(start).search(/[/?#]/);
  return end === -1 ? url.length : start + end;
}

/**
 * deploy.url with the event's values filled in, keeping the template's host. The values come from
 * GitLab (a branch is named by whoever pushes it: `x@evil.com#` in `https://{ref}.apps.example.com`
 * would make the commit status link to evil.com), so a value in the template's scheme, host or port
 * must be a host name's characters, or no URL is filled (a problem, to audit); elsewhere it is
 * percent-encoded as a URI component, keeping `/` (so `feature/x` reads as written). The filled URL's
 * authority must still be the one filled in the template's (a template like `https:/{ref}`
 * would get one from the value).
 *
 * @example
 * fillEnvironmentUrl("https://apps.example.com/{ref}", { ref: "feature/x" }); // { url: "https://apps.example.com/feature/x" }
 * fillEnvironmentUrl("https://{ref}.apps.example.com", { ref: "x@evil.com#" }); // { problem: "{ref} is in deploy.url's host, …" }
 */
export function fillEnvironmentUrl(
  template: string,
  values: Partial<Record<string, string | number | null>>,
): { url: string } | { problem: string } {
  let problem: string | null = null;
  const fill = (text: string, inAuthority: boolean) =>
    text.replace(/\{([^}]*)\}/g, (whole, key: string) => {
      const value = values[key];
      if (value === undefined || value === null) return whole;
      const filled = String(value);
      // A lone surrogate (JSON can carry one) would make encodeURIComponent throw.
      if (!inAuthority)
        return encodeURIComponent(filled.replace(/\p{Surrogate}/gu, "\uFFFD")).replace(/%2F/gi, "/");
      if (!HOST_VALUE.test(filled)) {
        problem ??= `{${key}} is in deploy.url's host, and ${JSON.stringify(filled.slice(0, 100))} is not a host name's letters, digits, dots and dashes: no URL`;
      }
      return filled;
    });
  const end = authorityEnd(template);
  const authority = fill(template.slice(0, end), true);
  const url = authority + fill(template.slice(end), false);
  if (problem !== null) return { problem };
  if (url.slice(0, authorityEnd(url)) !== authority) {
    return {
      problem: `deploy.url filled is ${JSON.stringify(url.slice(0, 200))}, whose host is not the template's: no URL`,
    };
  }
  return { url };
}

export interface EnvironmentState {
  namespace: string;
  gitlab: { instance: string; projectId: number; projectPath: string };
  environment: string;
  sha: string;
  ref: string;
  pipelineId: number | null;
  mrIid: number | null;
  ttl: string;
  expiresAt: Date | null;
  deployedAt: Date | null;
  requestedAt: Date;
  /** The attempted deploy's GitLab fact time; absent or null: not known. */
  factAt?: Date | null;
  /** The attempted deploy's `previousSha` and `gitlabAt` (`staleDeployReason`); absent or null: not known. */
  previousSha?: string | null;
  gitlabAt?: Date | null;
  /** The revision attempted, when `sha` says what runs after a rollback; absent: `sha`/`pipelineId`. */
  attemptedSha?: string;
  attemptedPipelineId?: number | null;
  status: "deploying" | "succeeded" | "failed" | "rolled_back";
  rolloutDeadline: Date | null;
  /** The last good commit a rollback under way restores; absent or null: none (every other write clears it). */
  rollingBackTo?: string | null;
  correlationId: string;
  url: string | null;
  /** The digest of the last-good record in the namespace; null when none was written (yet). */
  lastGoodDigest: string | null;
  /** Only reconcile's failure sets it (`ANNOTATION.FAILURE_REPORTED`); absent: nothing pending. */
  failureReported?: boolean;
  /**
   * The Pod Security level the namespace enforces (`podSecurityLabels`). Every write of the namespace
   * must carry it: server-side apply removes a label its manager stops applying. Absent or null: no
   * Pod Security labels (namespaces from before Kubler set them).
   */
  podSecurity?: PodSecurityLevel | null;
}

/** The labels every object Kubler writes for an environment carries. */
export function environmentLabels(projectId: number, environment: string): Record<string, string> {
  return {
    [LABEL.MANAGED_BY]: MANAGED_BY_KUBLER,
    [LABEL.PROJECT_ID]: String(projectId),
    [LABEL.ENVIRONMENT]: environmentSlug(environment),
  };
}

/**
 * The environment's namespace as Kubler applies it: the contract's labels and annotations. Empty
 * annotations mean "none" (server-side apply keeps a key the manager once set, so it is cleared, not
 * dropped).
 *
 * @example
 * await cluster.apply(environmentNamespace(state));
 */
export function environmentNamespace(state: EnvironmentState): KubeObject {
  const time = (date: Date | null) => (date ? date.toISOString() : "");
  const id = (value: number | null) => (value === null ? "" : String(value));
  return {
    apiVersion: "v1",
    kind: "Namespace",
    metadata: {
      name: state.namespace,
      labels: {
        ...environmentLabels(state.gitlab.projectId, state.environment),
        ...(state.podSecurity ? podSecurityLabels(state.podSecurity) : {}),
      },
      annotations: {
        [ANNOTATION.PROJECT_ID]: String(state.gitlab.projectId),
        [ANNOTATION.PROJECT_PATH]: state.gitlab.projectPath,
        [ANNOTATION.INSTANCE]: state.gitlab.instance,
        [ANNOTATION.ENVIRONMENT]: environmentSlug(state.environment),
        [ANNOTATION.ENVIRONMENT_NAME]: state.environment,
        [ANNOTATION.TTL]: state.ttl,
        [ANNOTATION.EXPIRES_AT]: time(state.expiresAt),
        [ANNOTATION.SHA]: state.sha,
        [ANNOTATION.REF]: state.ref,
        [ANNOTATION.PIPELINE_ID]: state.pipelineId === null ? "" : String(state.pipelineId),
        [ANNOTATION.MR_IID]: state.mrIid === null ? "" : String(state.mrIid),
        [ANNOTATION.DEPLOYED_AT]: time(state.deployedAt),
        [ANNOTATION.REQUESTED_AT]: time(state.requestedAt),
        [ANNOTATION.FACT_AT]: time(state.factAt ?? null),
        [ANNOTATION.PREVIOUS_SHA]: state.previousSha ?? "",
        [ANNOTATION.GITLAB_AT]: time(state.gitlabAt ?? null),
        [ANNOTATION.ATTEMPTED_SHA]: state.attemptedSha ?? state.sha,
        [ANNOTATION.ATTEMPTED_PIPELINE_ID]: id(
          state.attemptedPipelineId !== undefined ? state.attemptedPipelineId : state.pipelineId,
        ),
        [ANNOTATION.STATUS]: state.status,
        [ANNOTATION.ROLLOUT_DEADLINE]: time(state.rolloutDeadline),
        [ANNOTATION.ROLLING_BACK_TO]: state.rollingBackTo ?? "",
        [ANNOTATION.CORRELATION_ID]: state.correlationId,
        [ANNOTATION.URL]: state.url ?? "",
        [ANNOTATION.LAST_GOOD_DIGEST]: state.lastGoodDigest ?? "",
        [ANNOTATION.FAILURE_REPORTED]:
          state.failureReported === undefined ? "" : String(state.failureReported),
      },
    },
  };
}

/** What orders a requested deploy against the last one attempted (`staleDeployReason`). */
export interface DeployOrder {
  sha: string;
  pipelineId: number | null;
  /** The commit its push or merge request update started from; absent or null: not known. */
  previousSha?: string | null;
  /** GitLab's own time of its fact (a merge request's `updated_at`); absent or null: none. */
  gitlabAt?: Date | null;
  factAt: Date | null;
  requestedAt: Date;
}

type RunningOrder = Pick<
  ManagedEnvironment,
  "attemptedSha" | "attemptedPipelineId" | "previousSha" | "gitlabAt" | "factAt" | "requestedAt"
>;

/**
 * Why a requested deploy is older than the last one attempted, so it must not replace it, or null
 * when it is not. GitLab delivers its webhooks from a queue, in either order, and builds finish in
 * any order, so when each fact reached Kubler (`factAt`) is only the last resort. Best evidence first:
 * 1. pipeline ids, when both have one (GitLab's ids only grow);
 * 2. GitLab's own times of the two facts (a merge request's `updated_at`), when both have one and
 *    they differ (one-second precision), and the request is for another commit than the attempted
 *    one (a late fact for that very commit does not make it older than itself);
 * 3. the commit chain: the attempted revision was pushed on top of the requested one (its
 *    `previousSha`), or the requested one on top of the attempted one. A force push back to an older
 *    commit is a new push whose `previousSha` is what runs, so it is newer. When both hold (a push
 *    there and back, A→B and B→A) the chain cannot tell, and neither can it when they are not linked;
 * 4. when each fact reached Kubler, else (namespaces and events from before fact times were carried)
 *    when each deploy was requested. Equal is not older: two facts in one second (EventBridge's
 *    `time` precision) cannot be ordered.
 *
 * @example
 * staleDeployReason(running, { sha, pipelineId: null, previousSha: null, gitlabAt: null, factAt, requestedAt });
 * // "stale: bbbb…, the last attempted, was pushed on top of aaaa…, this one (aaaa…→bbbb…)"
 */
export function staleDeployReason(running: RunningOrder, incoming: DeployOrder): string | null {
  if (running.attemptedPipelineId !== null && incoming.pipelineId !== null) {
    return incoming.pipelineId < running.attemptedPipelineId ? byArrival(running, incoming) : null;
  }
  const gitlabAt = incoming.gitlabAt ?? null;
  // The very commit last attempted is not older than itself: an earlier change that led to it (the
  // first push to A, delivered after a force push back to A) is ordered as before GitLab's times.
  if (
    incoming.sha !== running.attemptedSha &&
    running.gitlabAt !== null &&
    gitlabAt !== null &&
    gitlabAt.getTime() !== running.gitlabAt.getTime()
  ) {
    return gitlabAt.getTime() < running.gitlabAt.getTime()
      ? `stale: ${incoming.sha} is from GitLab's change at ${gitlabAt.toISOString()}, before the one (${running.gitlabAt.toISOString()}) of ${running.attemptedSha}, the last attempted${asked(running.factAt)}`
      : null;
  }
  const onTopOfRunning = incoming.previousSha != null && incoming.previousSha === running.attemptedSha;
  const underRunning = running.previousSha !== null && incoming.sha === running.previousSha;
  if (underRunning && !onTopOfRunning) {
    return `stale: ${running.attemptedSha}, the last attempted, was pushed on top of ${incoming.sha}, this one (${running.previousSha}→${running.attemptedSha}${asked(running.factAt)})`;
  }
  if (onTopOfRunning && !underRunning) return null;
  if (running.factAt !== null && incoming.factAt !== null) {
    return incoming.factAt.getTime() < running.factAt.getTime() ? byArrival(running, incoming) : null;
  }
  return running.requestedAt !== null && incoming.requestedAt.getTime() < running.requestedAt.getTime()
    ? byArrival(running, incoming)
    : null;
}

function asked(at: Date | null): string {
  return at ? ` asked for at ${at.toISOString()}` : "";
}

/** By pipeline id, or by when the facts reached Kubler: the reason's wording from before the chain. */
function byArrival(running: RunningOrder, incoming: DeployOrder): string {
  return `stale: pipeline ${incoming.pipelineId ?? "?"} (${incoming.sha}${asked(incoming.factAt)}) is older than the last attempted pipeline ${running.attemptedPipelineId ?? "?"} (${running.attemptedSha}${asked(running.factAt)})`;
}
