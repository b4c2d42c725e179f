/**
 * Reconcile of builds (DESIGN §6): each finished build Job becomes `Build Finished` for every
 * environment waiting on it, exactly once. The Job is marked reported first, over the
 * resourceVersion read (a concurrent reconcile gets a 409 and leaves it), then the events are
 * published; a publish that fails takes the mark back, so the next run tries again.
 */
import {
  BUILD_ANNOTATION,
  BUILD_CONTAINER,
  BUILD_SELECTOR,
  type BuildRequest,
  buildDigest,
  buildState,
  FAILURE_LOG_LINES,
  failedContainer,
  failureReason,
  PUSH_CONTAINER,
  readBuildRequests,
  readReported,
  ttlAfterFinished,
} from "../domain/build-job.js";
import type { BusEntry, GitlabRef } from "../domain/catalog.js";
import type { KubeObject } from "../domain/kube-object.js";
import {
  KubernetesConflictError,
  KubernetesError,
  KubernetesUnavailableError,
  PublishError,
} from "../errors.js";
import type { AuditLog, BuildCluster, Clock, EventPublisher } from "../ports.js";
import { eachListed } from "./list-pages.js";
import { stepAuditRecord } from "./step-audit.js";

const FN = "reconcile";
/** How a skip that is a failure (a Job that could not be reported) starts. */
const NOT_RECONCILED = "not reconciled: ";

export interface ReconcileBuildsDeps {
  cluster: BuildCluster;
  publisher: EventPublisher;
  audit: AuditLog;
  clock: Clock;
  /** Where build Jobs run (`KUBLER_BUILD_NAMESPACE`). */
  namespace: string;
  /**
   * When to stop taking up Jobs, the rest left to the next run: a Job's report is its mark then its
   * publish, and a run killed between the two (Lambda's timeout) loses that Build Finished for good.
   * None: every Job, however long it takes (the local runtime).
   */
  deadline?: Date;
}

export interface ReconcileBuildsReport {
  examined: number;
  running: number;
  /** `<job> → <environment>: succeeded|failed`, one per event published. */
  reported: string[];
  skipped: { job: string; reason: string }[];
}

type Outcome =
  | { status: "succeeded"; digest: string }
  /** `unreadLog`: why the log's tail is missing from `reason`, for the audit line. */
  | { status: "failed"; reason: string; unreadLog?: string };

/**
 * @example
 * const report = await reconcileBuilds(deps); // { reported: ["build-group-app-… → review/x: succeeded"], ... }
 */
export async function reconcileBuilds(
  deps: ReconcileBuildsDeps,
  pageSize = 200,
): Promise<ReconcileBuildsReport> {
  const report: ReconcileBuildsReport = { examined: 0, running: 0, reported: [], skipped: [] };
  const listed = eachListed((token) =>
    deps.cluster.list("batch/v1", "Job", {
      namespace: deps.namespace,
      labelSelector: BUILD_SELECTOR,
      limit: pageSize,
      ...(token ? { continue: token } : {}),
    }),
  );
  for await (const job of listed) {
    if (deps.deadline && deps.clock.now().getTime() >= deps.deadline.getTime()) {
      report.skipped.push({
        job: job.metadata.name,
        reason: `out of time at ${deps.deadline.toISOString()}: this Job and those listed after it are left to the next run`,
      });
      break;
    }
    report.examined++;
    // One Job that cannot be handled must not stop the others, this run or any later one.
    try {
      await reconcileJob(deps, job, report);
    } catch (error) {
      report.skipped.push({
        job: job.metadata.name,
        reason:
          error instanceof KubernetesConflictError
            ? `changed since it was read (another reconcile, or a new request): left to the next run; ${error.message}`
            : `${NOT_RECONCILED}${error instanceof Error ? error.message : String(error)}`,
      });
    }
  }
  auditSkipped(deps, report);
  return report;
}

/**
 * What a run skipped, one audit line (none when it skipped nothing): the report goes nowhere (a
 * scheduled invocation's result is not kept, the local runtime reads only whether builds run), and a
 * build that cannot be reported leaves its environments' commit status pending with no other trace.
 * `kubler audit --action image.reconcile` shows it.
 */
function auditSkipped(deps: ReconcileBuildsDeps, report: ReconcileBuildsReport): void {
  const { examined, skipped } = report;
  if (skipped.length === 0) return;
  const failed = skipped.filter((s) => s.reason.startsWith(NOT_RECONCILED)).length;
  const some = skipped.slice(0, 3).map((s) => `${s.job}: ${s.reason}`);
  deps.audit.record(
    stepAuditRecord({
      fn: FN,
      action: "image.reconcile",
      outcome: failed > 0 ? "failure" : "ignored",
      reason: `examined ${examined}, skipped ${skipped.length} (${failed} failed): ${some.join("; ")}${skipped.length > 3 ? "; …" : ""}`,
      correlationId: null,
      gitlab: null,
      trigger: "schedule",
      subject: { examined, namespace: deps.namespace, skipped: skipped.slice(0, 20) },
      at: deps.clock.now(),
    }),
  );
}

async function reconcileJob(deps: ReconcileBuildsDeps, job: KubeObject, report: ReconcileBuildsReport) {
  const state = buildState(job);
  if (state.state === "running") {
    report.running++;
    return;
  }
  const requests = readBuildRequests(job);
  const reported = readReported(job);
  const pending = requests.filter((request) => !reported.includes(request.environment));
  if (pending.length === 0) return;
  const gitlab = gitlabOf(job);
  const sha = job.metadata.annotations?.[BUILD_ANNOTATION.SHA];
  if (!gitlab || !sha) {
    report.skipped.push({
      job: job.metadata.name,
      reason: "no GitLab project or SHA annotation: not a build Kubler made",
    });
    return;
  }

  const outcome = await outcomeOf(deps, job, state);
  const all = requests.map((request) => request.environment);
  await mark(deps, job, job.metadata.resourceVersion, all);
  const entries: BusEntry[] = pending.map((request) => ({
    detailType: "Build Finished",
    detail: finished(request, gitlab, sha, outcome),
  }));
  let failure: unknown = null;
  let published = pending;
  try {
    await deps.publisher.publish(entries);
  } catch (error) {
    failure = error;
    // PutEvents publishes some entries of a call and fails others: only those not published are
    // taken back, so the next run reports them and nothing twice. If this fails too, they are not
    // reported (audited by the caller).
    const failed = new Set(error instanceof PublishError ? error.failed : pending.map((_, index) => index));
    published = pending.filter((_, index) => !failed.has(index));
    await unmark(
      deps,
      job,
      pending.filter((_, index) => failed.has(index)),
    ).catch(() => {});
  }
  for (const request of published) {
    report.reported.push(`${job.metadata.name} → ${request.environment}: ${outcome.status}`);
    deps.audit.record(
      stepAuditRecord({
        fn: FN,
        action: "image.build",
        outcome: outcome.status === "succeeded" ? "success" : "failure",
        reason:
          outcome.status === "succeeded"
            ? `built and pushed ${job.metadata.annotations?.[BUILD_ANNOTATION.IMAGE] ?? sha} (${outcome.digest})`
            : `${outcome.reason.split("\n")[0] ?? outcome.reason}${
                outcome.unreadLog ? ` (log not read: ${outcome.unreadLog})` : ""
              }`,
        correlationId: request.correlationId,
        gitlab,
        trigger: "schedule",
        subject: { environment: request.environment, sha, job: job.metadata.name, namespace: deps.namespace },
        at: deps.clock.now(),
      }),
    );
  }
  if (failure) throw failure;
}

/** The digest of a Complete Job, or why it failed with the last lines of its log. */
async function outcomeOf(
  deps: ReconcileBuildsDeps,
  job: KubeObject,
  state: { state: "succeeded" } | { state: "failed"; reason: string },
): Promise<Outcome> {
  const uid = job.metadata.uid;
  const pods = uid
    ? (
        await deps.cluster.list("v1", "Pod", {
          namespace: deps.namespace,
          labelSelector: `controller-uid=${uid}`,
        })
      ).items
    : [];
  if (state.state === "succeeded") {
    const digest = buildDigest(pods);
    if (digest) return { status: "succeeded", digest };
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
  if (!failed) return { status: "failed", reason: failureReason(verdict, null) };
  try {
    const log = await deps.cluster.readLog(
      { namespace: deps.namespace, pod: failed.pod, container: failed.container },
      { tailLines: FAILURE_LOG_LINES },
    );
    return { status: "failed", reason: failureReason(verdict, log) };
  } catch (error) {
    // The log only explains the failure: one the API will not serve (400 for a container that never
    // started, as when a step's image could not be pulled before the deadline) must not keep the
    // failure unreported until the Job's TTL deletes it. An unavailable API may serve it next run.
    if (error instanceof KubernetesUnavailableError || !(error instanceof KubernetesError)) throw error;
    return { status: "failed", reason: failureReason(verdict, null), unreadLog: error.message };
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

async function mark(
  deps: ReconcileBuildsDeps,
  job: KubeObject,
  resourceVersion: string | undefined,
  reported: string[],
): Promise<void> {
  const ttl = ttlAfterFinished(job);
  await deps.cluster.apply({
    apiVersion: "batch/v1",
    kind: "Job",
    metadata: {
      name: job.metadata.name,
      namespace: deps.namespace,
      // A resourceVersion in an apply is a precondition: https://github.com/kubernetes/kubernetes/issues/63104
      ...(resourceVersion ? { resourceVersion } : {}),
      // Both annotations, always: server-side apply removes a field its manager stops applying, and
      // build-image applies both when an environment joins.
      annotations: {
        [BUILD_ANNOTATION.REQUESTS]: job.metadata.annotations?.[BUILD_ANNOTATION.REQUESTS] ?? "[]",
        [BUILD_ANNOTATION.REPORTED]: JSON.stringify(reported),
      },
    },
    // As read: build-image applies it when an environment joins a finished Job, and server-side
    // apply would remove it (keeping the Job forever) if this apply left it out.
    ...(ttl !== undefined ? { spec: { ttlSecondsAfterFinished: ttl } } : {}),
  });
}

/** Writers racing on one Job (build-image joining or replacing it): a few rounds settle it. */
const MAX_UNMARK_ATTEMPTS = 3;

/**
 * Takes back the mark of the requests whose Build Finished did not go out, so the next run reports
 * them. Read again, over the resourceVersion read: build-image may have written the Job since the
 * mark (an environment joining or asking again: its entry left out of the reported list must stay
 * out), or replaced it (a new request for a failed build deletes it and makes a new one of the same
 * name, without the environments marked here). A replacement is not this Job (another uid): its own
 * reported list is left alone, and the requests not reported are added to it, to be reported its
 * build, unless it already has one of theirs (newer; past MAX_BUILD_REQUESTS if need be: each was
 * taken once). Gone altogether: nothing is left to report them on.
 */
async function unmark(deps: ReconcileBuildsDeps, job: KubeObject, unpublished: BuildRequest[]) {
  const environments = new Set(unpublished.map((request) => request.environment));
  for (let attempt = 1; ; attempt++) {
    const current = await deps.cluster.get(refOf(job));
    if (!current) return;
    try {
      if (current.metadata.uid === job.metadata.uid) {
        const kept = readReported(current).filter((environment) => !environments.has(environment));
        await mark(deps, current, current.metadata.resourceVersion, kept);
        return;
      }
      const requests = readBuildRequests(current);
      const carried = unpublished.filter(
        (request) => !requests.some((other) => other.environment === request.environment),
      );
      if (carried.length === 0) return;
      const annotations = {
        ...current.metadata.annotations,
        [BUILD_ANNOTATION.REQUESTS]: JSON.stringify([...requests, ...carried]),
      };
      await mark(
        deps,
        { ...current, metadata: { ...current.metadata, annotations } },
        current.metadata.resourceVersion,
        readReported(current),
      );
      return;
    } catch (error) {
      if (!(error instanceof KubernetesConflictError) || attempt >= MAX_UNMARK_ATTEMPTS) throw error;
    }
  }
}

function refOf(job: KubeObject) {
  return {
    apiVersion: "batch/v1",
    kind: "Job",
    name: job.metadata.name,
    namespace: job.metadata.namespace as string,
  };
}

function gitlabOf(job: KubeObject): GitlabRef | null {
  const projectId = Number(job.metadata.labels?.["kubler.dev/project-id"]);
  const projectPath = job.metadata.annotations?.[BUILD_ANNOTATION.PROJECT_PATH];
  const instance = job.metadata.annotations?.[BUILD_ANNOTATION.INSTANCE];
  if (!Number.isSafeInteger(projectId) || !projectPath || !instance) return null;
  return { instance, projectId, projectPath };
}

function finished(request: BuildRequest, gitlab: GitlabRef, sha: string, outcome: Outcome) {
  return {
    correlationId: request.correlationId,
    gitlab,
    environment: request.environment,
    sha,
    ref: request.ref,
    pipelineId: request.pipelineId,
    mrIid: request.mrIid,
    ...(request.user !== undefined ? { user: request.user } : {}),
    ...(request.factAt !== undefined ? { factAt: request.factAt } : {}),
    ...(request.ttl !== undefined ? { ttl: request.ttl } : {}),
    ...(request.previousSha !== undefined ? { previousSha: request.previousSha } : {}),
    ...(request.gitlabAt !== undefined ? { gitlabAt: request.gitlabAt } : {}),
    status: outcome.status,
    imageDigest: outcome.status === "succeeded" ? outcome.digest : null,
    reason: outcome.status === "failed" ? outcome.reason : null,
  };
}
