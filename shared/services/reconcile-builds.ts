/**
 * Reconcile of builds (DESIGN §6): each finished build Job becomes `Build Finished` for every
 * environment waiting on it, exactly once; so does one deleted (by hand) before that, which Kubler's
 * finalizer (`BUILD_FINALIZER`) holds until then. The Job is marked reported first, over the
 * resourceVersion read (a concurrent reconcile gets a 409 and leaves it), then the events are
 * published; a publish that fails takes the mark back, so the next run tries again. Once published,
 * the Job gets its TTL: until then nothing deletes it (the TTL controller, or build-image replacing
 * a failed build), so who waits is never forgotten while reconcile is down.
 */
import {
  BUILD_ANNOTATION,
  BUILD_SELECTOR,
  type BuildRequest,
  type BuildState,
  buildState,
  damagedBuild,
  holdingFinalizers,
  isDeleting,
  MAX_BUILD_REQUESTS,
  othersThanBuildFinalizer,
  readBuildRequests,
  readReported,
  reportedTtl,
  ttlAfterFinished,
  waitingRequests,
} from "../domain/build-job.js";
import { type BusEntry, type GitlabRef, validateBusDetail } from "../domain/catalog.js";
import type { KubeObject } from "../domain/kube-object.js";
import { InvalidDetailError, KubernetesConflictError, messageOf, PublishError } from "../errors.js";
import type { AuditLog, BuildCluster, Clock, EventPublisher } from "../ports.js";
import { type BuildOutcome, outcomeOf, outcomeOfDeleted } from "./build-outcome.js";
import { eachListed } from "./list-pages.js";
import { writeNamed } from "./named-write.js";
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
   * Checked before each Job and again before its mark (`reportBuild`: reading its outcome takes calls
   * too). None: every Job, however long it takes (the local runtime).
   */
  deadline?: Date;
  /**
   * How long a failed build's log may take to read before the build is reported without it (the
   * log only explains the failure; its pod on an unreachable node makes the read time out, each
   * run). None: the cluster's own limits (the local runtime).
   */
  logReadMs?: number;
}

/** How often reconcile runs (DESIGN §6: every minute): each run takes up the Jobs from another one. */
const RUN_EVERY_MS = 60_000;

export interface ReconcileBuildsReport {
  examined: number;
  running: number;
  /** `<job> → <environment>: succeeded|failed`, one per event published. */
  reported: string[];
  skipped: { job: string; reason: string }[];
}

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
  const jobs: KubeObject[] = [];
  for await (const job of listed) jobs.push(job);
  const ordered = inTurn(jobs, deps.clock.now());
  for (const [index, job] of ordered.entries()) {
    if (deps.deadline && deps.clock.now().getTime() >= deps.deadline.getTime()) {
      report.skipped.push({
        job: job.metadata.name,
        reason: `out of time at ${deps.deadline.toISOString()}: this Job and the ${ordered.length - index - 1} after it are left to the next run (each run starts elsewhere in the list)`,
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
            : `${NOT_RECONCILED}${messageOf(error)}`,
      });
    }
  }
  auditSkipped(deps, report);
  return report;
}

/**
 * The Jobs in this run's order: those with nothing to report first (no call, or none but a TTL
 * write), then the others from a place that moves on each run. A Job that costs a run much of its
 * budget every time (its publish failing, its calls timing out) then cannot keep those after it
 * waiting: each has its turn at the front, whatever the list's order. Stateless: Lambda keeps none
 * between runs.
 */
function inTurn(jobs: KubeObject[], now: Date): KubeObject[] {
  const quick = jobs.filter(
    (job) => (buildState(job).state === "running" && !isDeleting(job)) || waitingRequests(job).length === 0,
  );
  const first = new Set(quick);
  const slow = jobs.filter((job) => !first.has(job));
  const start = slow.length === 0 ? 0 : Math.floor(now.getTime() / RUN_EVERY_MS) % slow.length;
  return [...quick, ...slow.slice(start), ...slow.slice(0, start)];
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
  // A Job deleted while it ran is done with: its waiters hear of it now (`outcomeOfDeleted`).
  if (state.state === "running" && !isDeleting(job)) {
    report.running++;
    return;
  }
  const outcome = await reportBuild(deps, job, state, RECONCILE);
  if (outcome.kind === "skipped") report.skipped.push({ job: job.metadata.name, reason: outcome.reason });
  if (outcome.kind !== "reported") return;
  report.reported.push(...outcome.reported);
  if (outcome.failure) throw outcome.failure;
}

const RECONCILE = { fn: FN, trigger: "schedule" } as const;

/** What reports a finished build: the audit lines say which function did, on what. */
export interface Reporter {
  fn: string;
  trigger: string;
  /**
   * The project and commit the Job is named for (`buildJobName`), from a request for it: what
   * reports a damaged Job (`damagedBuild`) to those waiting on it. None (reconcile): such a Job's
   * waiters cannot be told; it is only audited and let go.
   */
  commit?: { gitlab: GitlabRef; sha: string };
}

export type ReportBuildOutcome =
  /** `failure`: why some were not (their mark taken back, for the next run); null when all were. */
  | { kind: "reported"; reported: string[]; failure: unknown }
  | { kind: "nothing waiting" }
  | { kind: "skipped"; reason: string };

/**
 * Reports a finished Job to every environment still waiting on it: marks them reported over the
 * resourceVersion read, publishes their `Build Finished`, then sets the Job's TTL (`reportedTtl`) and
 * removes Kubler's finalizer. A Job being deleted (by hand) is reported the same way, finished or not
 * (`outcomeOfDeleted`), then only its finalizer is removed, and it goes.
 * A publish that fails takes back the mark of what did not go out, and is returned. Past
 * `deps.deadline` nothing is marked ("skipped"): a run killed between mark and publish loses them. Reconcile runs it
 * on each finished Job; build-image on a failed one before building its commit again, so those
 * waiting hear of the build they waited for before the Job that records them is deleted.
 *
 * @example
 * await reportBuild(deps, failedJob, buildState(failedJob), { fn: "build-image", trigger: "Build Requested" });
 */
export async function reportBuild(
  deps: ReconcileBuildsDeps,
  job: KubeObject,
  state: BuildState,
  by: Reporter,
): Promise<ReportBuildOutcome> {
  const deleting = isDeleting(job);
  if (state.state === "running" && !deleting) return { kind: "skipped", reason: "still running" };
  const requests = readBuildRequests(job);
  const reported = readReported(job);
  const pending = requests.filter((request) => !reported.includes(request.environment));
  if (pending.length === 0) {
    // Reported, its TTL not set or its finalizer not removed: the run that published died before
    // it, or could not write it.
    if (ttlAfterFinished(job) === undefined && !deleting) {
      await settle(deps, job, job.metadata.resourceVersion, reported);
    } else {
      await releaseBuildJob(deps, job, job.metadata.resourceVersion);
    }
    return { kind: "nothing waiting" };
  }
  const damaged = damagedBuild(job);
  if (damaged === null) return { kind: "skipped", reason: "not a build Kubler made (no build labels)" };
  // Null exactly when `damaged` names something missing: both read the same labels and annotations.
  const own = commitOf(job);
  const said = own ? null : damagedReason(job, damaged);
  const commit = own ?? by.commit;
  if (!commit) return letDamagedGo(deps, job, pending, damagedReason(job, damaged), by);
  const { gitlab, sha } = commit;

  const outcome: BuildOutcome =
    said !== null
      ? { status: "failed", reason: said }
      : deleting
        ? await outcomeOfDeleted(deps, job, state)
        : await outcomeOf(deps, job, state as Exclude<BuildState, { state: "running" }>);
  // Marked, they are reported only by this run's publish: none is marked without time left for it.
  if (deps.deadline && deps.clock.now().getTime() >= deps.deadline.getTime()) {
    return {
      kind: "skipped",
      reason: `out of time at ${deps.deadline.toISOString()} before marking it reported: left to a later run (reconcile's next, or the request's retry)`,
    };
  }
  const all = requests.map((request) => request.environment);
  const marked = await markAllReported(deps, job, all);
  const { sending, entries, refused } = buildFinishedEntries(pending, gitlab, sha, outcome);
  let failure: unknown = null;
  let published = sending;
  try {
    if (entries.length > 0) await deps.publisher.publish(entries);
  } catch (error) {
    failure = error;
    // PutEvents publishes some entries of a call and fails others: only those not published are
    // taken back, so the next run reports them and nothing twice. If this fails too, they are not
    // reported: its reason joins the failure the caller audits.
    const failed = new Set(error instanceof PublishError ? error.failed : sending.map((_, index) => index));
    published = sending.filter((_, index) => !failed.has(index));
    try {
      await unmark(
        deps,
        job,
        sending.filter((_, index) => failed.has(index)),
      );
    } catch (undone) {
      const why = undone instanceof Error ? undone.message : String(undone);
      failure = new Error(`${messageOf(error)}; ${why}`);
    }
  }
  const lines: string[] = [];
  for (const request of published) {
    lines.push(`${job.metadata.name} → ${request.environment}: ${outcome.status}`);
    deps.audit.record(
      stepAuditRecord({
        fn: by.fn,
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
        trigger: by.trigger,
        subject: { environment: request.environment, sha, job: job.metadata.name, namespace: deps.namespace },
        at: deps.clock.now(),
      }),
    );
  }
  for (const { request, why } of refused) {
    deps.audit.record(
      stepAuditRecord({
        fn: by.fn,
        action: "image.build",
        outcome: "failure",
        reason: `not reported to ${request.environment}: its Build Finished is refused (${why}): the Job's annotations changed by hand?`,
        correlationId: request.correlationId,
        gitlab: null,
        trigger: by.trigger,
        subject: { environment: request.environment, sha, job: job.metadata.name, namespace: deps.namespace },
        at: deps.clock.now(),
      }),
    );
  }
  if (failure) return { kind: "reported", reported: lines, failure };
  // A request that joined before a lost mark's retry (another environment, or a marked one asking
  // again) waits in what the mark left (`markAllReported`): no TTL yet, Kubler's finalizer kept; the
  // next run reports it, then settles.
  if (waitingRequests(marked).length > 0) {
    return { kind: "reported", reported: lines, failure: null };
  }
  // Not undone when it fails: the events are out; the next reconcile sets the TTL instead.
  await settle(deps, marked, marked.metadata.resourceVersion, all).catch(() => {});
  return { kind: "reported", reported: lines, failure: null };
}

/**
 * The Build Finished of each waiter, and the waiters whose one the catalog refuses (a request or
 * annotation edited by hand: an empty ref, a SHA that is not hex): refused the same way on every run,
 * so they are let go (left marked, audited) rather than holding the others' publish, and the Job
 * (its TTL never set, or its deletion held by `BUILD_FINALIZER`), for good.
 */
function buildFinishedEntries(
  pending: BuildRequest[],
  gitlab: GitlabRef,
  sha: string,
  outcome: BuildOutcome,
): { sending: BuildRequest[]; entries: BusEntry[]; refused: { request: BuildRequest; why: string }[] } {
  const sending: BuildRequest[] = [];
  const entries: BusEntry[] = [];
  const refused: { request: BuildRequest; why: string }[] = [];
  for (const request of pending) {
    const entry = { detailType: "Build Finished", detail: finished(request, gitlab, sha, outcome) } as const;
    try {
      validateBusDetail(entry.detailType, entry.detail);
      sending.push(request);
      entries.push(entry);
    } catch (error) {
      if (!(error instanceof InvalidDetailError)) throw error;
      refused.push({ request, why: error.message });
    }
  }
  return { sending, entries, refused };
}

function damagedReason(job: KubeObject, missing: string[]): string {
  return `build Job ${job.metadata.name} has no ${missing.join(", ")} (Kubler always writes them: changed by hand?), so its outcome cannot be reported for a commit: a new request for the commit builds it again`;
}

/**
 * A damaged Job (`damagedBuild`) with no request to name its commit: its waiters cannot be told
 * (a Build Finished names the project and commit). Each is audited as a failure, and the Job marked
 * reported with its TTL in one write, so it goes, and a request meanwhile replaces it (build-image)
 * instead of waiting on it forever. A failure, in the run's audit line too.
 */
async function letDamagedGo(
  deps: ReconcileBuildsDeps,
  job: KubeObject,
  pending: BuildRequest[],
  reason: string,
  by: Reporter,
): Promise<ReportBuildOutcome> {
  const all = readBuildRequests(job).map((request) => request.environment);
  await settle(deps, job, job.metadata.resourceVersion, all);
  for (const request of pending) {
    deps.audit.record(
      stepAuditRecord({
        fn: by.fn,
        action: "image.build",
        outcome: "failure",
        reason: `not reported to ${request.environment}: ${reason}`,
        correlationId: request.correlationId,
        gitlab: null,
        trigger: by.trigger,
        subject: { environment: request.environment, job: job.metadata.name, namespace: deps.namespace },
        at: deps.clock.now(),
      }),
    );
  }
  return {
    kind: "skipped",
    reason: `${NOT_RECONCILED}${reason}; not reported to ${pending.map((r) => r.environment).join(", ")}, let go (its TTL set)`,
  };
}

/**
 * Gives a reported Job its TTL, then removes Kubler's finalizer, each over what was read: a request
 * that joined since (and dropped the TTL, put the finalizer back) makes it a 409, and the Job stays
 * until that one is reported too. A Job being deleted needs no TTL: its finalizer removed, it goes.
 * The finalizer goes only once the TTL is set, so the Job is never left without both; the TTL's
 * deletion, at least an hour away (`reportedTtl`), finds it gone (or the next reconcile removes it).
 */
async function settle(
  deps: Omit<ReconcileBuildsDeps, "deadline">,
  job: KubeObject,
  resourceVersion: string | undefined,
  reported: string[],
): Promise<void> {
  if (isDeleting(job)) {
    await releaseBuildJob(deps, job, resourceVersion);
    return;
  }
  if (buildState(job).state === "running") return;
  const settled = await mark(deps, job, resourceVersion, reported, reportedTtl(job, deps.clock.now()));
  await releaseBuildJob(deps, settled, settled.metadata.resourceVersion);
}

/**
 * Removes Kubler's finalizer (`BUILD_FINALIZER`) from a Job whose waiters have all heard, leaving
 * any other, over the uid and resourceVersion read (409 when written since: left to the next run).
 * Nothing to do when it has none, or is gone. True when it removed it (the Job read is then stale).
 *
 * @example
 * if (await releaseBuildJob(deps, job, job.metadata.resourceVersion)) job = await cluster.get(ref);
 */
export async function releaseBuildJob(
  deps: Pick<ReconcileBuildsDeps, "cluster">,
  job: KubeObject,
  resourceVersion: string | undefined,
): Promise<boolean> {
  const keep = othersThanBuildFinalizer(job);
  const { uid } = job.metadata;
  if (!keep || !uid || !resourceVersion) return false;
  await deps.cluster.removeFinalizers(refOf(job), { uid, resourceVersion }, { keep });
  return true;
}

/**
 * Writes the reported list, and the TTL when given: none while a request waits (server-side apply
 * removes the one an earlier apply of Kubler's set), so the Job outlives reconcile being down; and,
 * with none, Kubler's finalizer, so a deletion meanwhile waits for the report (a join puts it back
 * after `settle` removed it). Not on a Job being deleted that lacks it: no finalizer may be added then.
 */
async function mark(
  deps: Omit<ReconcileBuildsDeps, "deadline">,
  job: KubeObject,
  resourceVersion: string | undefined,
  reported: string[],
  ttl?: number,
  /** `markAllReported`'s name for this mark. */
  markId?: string,
): Promise<KubeObject> {
  return deps.cluster.apply({
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
        ...(markId !== undefined ? { [MARK_ANNOTATION]: markId } : {}),
      },
      ...(ttl === undefined ? holdingFinalizers(job) : {}),
    },
    ...(ttl !== undefined ? { spec: { ttlSecondsAfterFinished: ttl } } : {}),
  });
}

/**
 * Names one `markAllReported` on the Job it marks; the reporter's next write of the Job (its TTL, a
 * mark taken back) drops it, since it applies without it as the same field manager. A request joining
 * keeps it: the mark's retry, meeting that join, must still find the mark its own.
 */
const MARK_ANNOTATION = BUILD_ANNOTATION.REPORTING;

/**
 * Marks every request of `job` reported, over the resourceVersion read, naming the mark. A mark whose
 * answer was lost (a timeout, a dropped connection) may have gone through: the adapter sends it
 * again, which meets that very mark (409) or fails, and the Job marked with nobody publishing would
 * be settled by the next run, its waiters never told. So a failed mark reads the Job again: marked by
 * this call, it is this call's to publish; else (another reconcile, a request joining, nothing
 * written) the error stands.
 */
async function markAllReported(
  deps: Omit<ReconcileBuildsDeps, "deadline">,
  job: KubeObject,
  all: string[],
): Promise<KubeObject> {
  const target = { ref: refOf(job), uid: job.metadata.uid, annotation: MARK_ANNOTATION };
  return writeNamed(deps.cluster, target, (id) =>
    mark(deps, job, job.metadata.resourceVersion, all, undefined, id),
  );
}

/** Writers racing on one Job (build-image joining or replacing it): a few rounds settle it. */
const MAX_UNMARK_ATTEMPTS = 3;

/**
 * Takes back the mark of the requests whose Build Finished did not go out, so the next run reports
 * them. Read again, over the resourceVersion read: build-image may have written the Job since the
 * mark (an environment joining or asking again: its entry left out of the reported list must stay
 * out). build-image replaces a failed Job only once its reports are settled (`reportsSettled`: the
 * TTL set after the publish), so this Job is still there, but for a concurrent reconcile settling
 * it in the meantime, or a Job deleted by hand and made again: such a replacement (another uid) keeps
 * its own reported list, and takes the requests not reported, to be reported its build, unless it
 * has one of theirs (newer), as many as it has room for under MAX_BUILD_REQUESTS: the others are
 * named in the error thrown, for the caller's audit. Gone altogether: nothing is left to report
 * them on.
 */
async function unmark(
  deps: Omit<ReconcileBuildsDeps, "deadline">,
  job: KubeObject,
  unpublished: BuildRequest[],
) {
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
      const missing = unpublished.filter(
        (request) => !requests.some((other) => other.environment === request.environment),
      );
      const carried = missing.slice(0, Math.max(0, MAX_BUILD_REQUESTS - requests.length));
      if (carried.length > 0) {
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
      }
      const left = missing.slice(carried.length).map((request) => request.environment);
      if (left.length > 0) {
        throw new Error(
          `not reported to ${left.join(", ")}: the Job that replaced ${job.metadata.name} has no room for them (${MAX_BUILD_REQUESTS} requests)`,
        );
      }
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

/** The project and commit the Job was built for; null when one is missing (`damagedBuild` says which). */
function commitOf(job: KubeObject): { gitlab: GitlabRef; sha: string } | null {
  const projectId = Number(job.metadata.labels?.["kubler.dev/project-id"]);
  const projectPath = job.metadata.annotations?.[BUILD_ANNOTATION.PROJECT_PATH];
  const instance = job.metadata.annotations?.[BUILD_ANNOTATION.INSTANCE];
  const sha = job.metadata.annotations?.[BUILD_ANNOTATION.SHA];
  if (!Number.isSafeInteger(projectId) || !projectPath || !instance || !sha) return null;
  return { gitlab: { instance, projectId, projectPath }, sha };
}

function finished(request: BuildRequest, gitlab: GitlabRef, sha: string, outcome: BuildOutcome) {
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
