/**
 * How a finished build Job ended, as its Build Finished tells it: the image digest its push
 * container left, or why it failed with the tail of the failed container's log and what the node
 * said of its pods (reconcile-builds reports it).
 */
import {
  BUILD_CONTAINER,
  type BuildState,
  buildDigest,
  FAILURE_LOG_LINES,
  failedContainer,
  failureReason,
  PUSH_CONTAINER,
} from "../domain/build-job.js";
import type { KubeObject } from "../domain/kube-object.js";
import { KubernetesError, KubernetesUnavailableError } from "../errors.js";
import type { BuildCluster } from "../ports.js";

/** What reading an outcome needs of `ReconcileBuildsDeps`. */
export interface OutcomeDeps {
  cluster: BuildCluster;
  /** Where build Jobs run (`KUBLER_BUILD_NAMESPACE`). */
  namespace: string;
  /** How long the failed container's log may take to read; none: the cluster's own limits. */
  logReadMs?: number;
}

export type BuildOutcome =
  | { status: "succeeded"; digest: string }
  /** `unreadLog`: why the log's tail is missing from `reason`, for the audit line. */
  | { status: "failed"; reason: string; unreadLog?: string };

/**
 * The digest of a Complete Job, or why it failed with the last lines of its log.
 *
 * @example
 * const outcome = await outcomeOf(deps, job, buildState(job)); // { status: "failed", reason: "BackoffLimitExceeded; pod evicted: …" }
 */
export async function outcomeOf(
  deps: OutcomeDeps,
  job: KubeObject,
  state: { state: "succeeded" } | { state: "failed"; reason: string },
): Promise<BuildOutcome> {
  const pods = await podsOf(deps, job);
  if (state.state === "succeeded") {
    const digest = buildDigest(pods);
    if (digest) return { status: "succeeded", digest };
    if (pods.length === 0) return { status: "failed", reason: podsGone(job) };
    return {
      status: "failed",
      reason: `the Job completed but its ${PUSH_CONTAINER} container left no image digest in its termination message`,
    };
  }
  const failed = failedContainer(pods);
  const where = failed && failed.container !== BUILD_CONTAINER ? ` (in ${failed.container})` : "";
  const disrupted = failed ? disruptionOf(pods.find((pod) => pod.metadata.name === failed.pod)) : null;
  // The pod failure policy runs a build again after a disruption, so a Job that still failed (its
  // deadline) may have ended in a pod the deadline killed: the evictions before it are the story.
  const earlier = disrupted ? null : pods.map(disruptionOf).find((text) => text !== null);
  const verdict = `${state.reason}${where}${disrupted ? `; ${disrupted}` : earlier ? `; earlier ${earlier}` : ""}`;
  if (!failed) return { status: "failed", reason: failureReason(`${verdict}${neverRan(deps, job)}`, null) };
  try {
    const log = await readLogWithin(deps, failed);
    return { status: "failed", reason: failureReason(verdict, log) };
  } catch (error) {
    // The outcome is the Job's verdict; the log only explains it. One the API will not serve (400
    // for a container that never started), or not in time (its pod on an unreachable node: the same
    // every run), must not keep the failure unreported, and the Job unexpired, for good.
    if (!(error instanceof KubernetesError)) throw error;
    return { status: "failed", reason: failureReason(verdict, null), unreadLog: error.message };
  }
}

/**
 * What to do when a build's outcome was lost with its Job. plan-steps asks for a build on a push, a
 * tag push, a merge request opened, reopened or updated with new commits; never on a pipeline, nor
 * on an update without new commits (`triageFact`), and a step repeated within the hour is taken for
 * a duplicate: a new commit is the one sure way.
 */
const BUILD_AGAIN =
  "push again, a new commit (for a tag's environment, a new tag), to build and deploy it: a pipeline run again does not ask Kubler for a build";

/**
 * Whether a Complete Job's image digest can no longer be read: its pods, which held it in the push's
 * termination message, are gone (a node the autoscaler removed takes its finished pods with it, and
 * the cluster's garbage collection of finished pods deletes the oldest), or none has it. Reported, or
 * joined, such a Job can only say its build failed: build-image builds the commit again instead.
 *
 * @example
 * if (buildState(job).state === "succeeded" && (await digestGone(deps, job))) rebuild();
 */
export async function digestGone(deps: OutcomeDeps, job: KubeObject): Promise<boolean> {
  return buildDigest(await podsOf(deps, job)) === null;
}

async function podsOf(deps: OutcomeDeps, job: KubeObject): Promise<KubeObject[]> {
  const uid = job.metadata.uid;
  if (!uid) return [];
  const pods = await deps.cluster.list("v1", "Pod", {
    namespace: deps.namespace,
    labelSelector: `controller-uid=${uid}`,
  });
  return pods.items;
}

function podsGone(job: KubeObject): string {
  return `build Job ${job.metadata.name} completed, but its pods were deleted (a node removed by the cluster's autoscaler, or its garbage collection of finished pods) before Kubler read the digest of the image they pushed: ${BUILD_AGAIN}; a new request for this commit builds it again`;
}

/**
 * What a failed Job with no pod says when none of its pods was ever counted: the cluster refused to
 * create them, and the Job's verdict (its deadline) is silent on why; its events say (FailedCreate).
 */
function neverRan(deps: OutcomeDeps, job: KubeObject): string {
  const status = job.status as { failed?: unknown; succeeded?: unknown } | undefined;
  const counted = [status?.failed, status?.succeeded].some((n) => typeof n === "number" && n > 0);
  if (counted) return "";
  return `; no pod of it ever ran: the cluster refused to create them (a ResourceQuota or a LimitRange below the build's resources, a Pod Security level the cluster enforces); its FailedCreate events say which, while the Job is kept: kubectl -n ${deps.namespace} describe job ${job.metadata.name}`;
}

/**
 * How a build Job deleted before its outcome was reported ended (`deletionTimestamp` set, Kubler's
 * finalizer holding it): its real outcome when it finished and that can still be read, else failed,
 * saying it was deleted and what to do.
 *
 * @example
 * const outcome = await outcomeOfDeleted(deps, job, buildState(job)); // { status: "failed", reason: "build Job … was deleted (by hand?) before it finished …" }
 */
export async function outcomeOfDeleted(
  deps: OutcomeDeps,
  job: KubeObject,
  state: BuildState,
): Promise<BuildOutcome> {
  const name = job.metadata.name;
  if (state.state === "running") {
    return {
      status: "failed",
      reason: `build Job ${name} was deleted (by hand?) before it finished, so no image was built: ${BUILD_AGAIN}`,
    };
  }
  const outcome = await outcomeOf(deps, job, state);
  if (outcome.status === "succeeded" || state.state === "failed") return outcome;
  // Foreground deletion (the TTL controller's, or `kubectl delete --cascade=foreground`) takes the
  // pods first, and with them the digest the push left in its termination message.
  return {
    status: "failed",
    reason: `build Job ${name} was deleted (by hand?) before its outcome was reported, and the digest of the image it pushed went with its pods: ${BUILD_AGAIN}`,
  };
}

/** The failed container's last log lines, given up after `deps.logReadMs`. */
async function readLogWithin(
  deps: OutcomeDeps,
  failed: { pod: string; container: string },
): Promise<string | null> {
  const read = deps.cluster.readLog(
    { namespace: deps.namespace, pod: failed.pod, container: failed.container },
    { tailLines: FAILURE_LOG_LINES },
  );
  const limit = deps.logReadMs;
  if (limit === undefined) return read;
  // The read given up on still ends within the cluster's own limits; its failure then goes nowhere.
  read.catch(() => {});
  let timer: NodeJS.Timeout | undefined;
  const late = new Promise<never>((_, reject) => {
    timer = setTimeout(
      () =>
        reject(
          new KubernetesUnavailableError(
            `read log of Pod ${deps.namespace}/${failed.pod} (${failed.container}): no answer within ${limit} ms`,
            0,
          ),
        ),
      limit,
    );
  });
  try {
    return await Promise.race([read, late]);
  } finally {
    clearTimeout(timer);
  }
}

/**
 * Why the node ended the pod, when it did (`Evicted`: short of memory or disk; `Terminated`: node
 * shutdown). The Job only says BackoffLimitExceeded and the log stops mid-step, so without it the
 * user cannot tell a build to fix from one to run again.
 */
function disruptionOf(pod: KubeObject | undefined): string | null {
  const status = pod?.status as { reason?: unknown; message?: unknown } | undefined;
  if (typeof status?.reason !== "string" || !status.reason) return null;
  const message = typeof status.message === "string" && status.message ? `: ${status.message}` : "";
  return `pod ${status.reason === "Evicted" ? "evicted" : status.reason}${message}`;
}
