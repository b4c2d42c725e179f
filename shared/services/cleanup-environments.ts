/**
 * Cleanup (DESIGN §6): stop one environment on `Environment Stop Requested`, and the sweep that
 * deletes every expired one even when GitLab never said so. Only namespaces labelled managed-by
 * kubler, owned by the right project, are ever deleted, whatever the input says; deletes carry the
 * uid and resourceVersion that were checked, so a namespace replaced since is never touched.
 */

import type { Detail } from "../domain/catalog.js";
import { STOP_HOLD_NAME } from "../domain/deploy-manifests.js";
import {
  ENVIRONMENTS_SELECTOR,
  heldByAnother,
  isExpired,
  type ManagedEnvironment,
  readEnvironment,
} from "../domain/environment.js";
import type { KubeObject } from "../domain/kube-object.js";
import { isRefusedByStop } from "../domain/plan-steps.js";
import { messageOf } from "../errors.js";
import type {
  AuditLog,
  Clock,
  EnvironmentCluster,
  EventPublisher,
  FinalizerRemover,
  ListPage,
  Scheduler,
} from "../ports.js";
import { firstVisit, isExpiredContinue, MAX_LIST_RESTARTS } from "./list-pages.js";
import { resolveEnvironmentNamespace } from "./resolve-environment-namespace.js";
import { createStepAudit, stepAuditRecord } from "./step-audit.js";
import { holdUntilTold, isHeld, letGo, STOP_HOLD_GRACE_MS } from "./stop-hold.js";

const FN = "cleanup-environments";

export interface CleanupDeps {
  cluster: EnvironmentCluster;
  scheduler: Scheduler;
  publisher: EventPublisher;
  audit: AuditLog;
  clock: Clock;
}

/** A stop also holds the namespace it deletes until it has told what ran there (stop-hold.ts). */
export type StopDeps = CleanupDeps & { cluster: EnvironmentCluster & FinalizerRemover };

export type StopOutcome =
  | { kind: "deleted" | "already_gone"; namespace: string }
  | { kind: "refused" | "ignored"; namespace: string; reason: string };

/**
 * A stop older than the GitLab fact behind what runs (retried or redriven after a reopen and a new
 * deploy, or planned late) is ignored, as it would have been undone had it arrived in order. Its
 * age is the GitLab fact's time it carries (`factAt`, from plan-steps), else `publishedAt`, its bus
 * time (kubler stop, the expiry schedule, reconcile). Neither known: the stop is not ordered.
 *
 * @example
 * await stopEnvironment(deps, detail, new Date(envelope.time)); // { kind: "deleted", namespace: "group-app-review-x-1a2b3c4d" }
 */
export async function stopEnvironment(
  deps: StopDeps,
  detail: Detail<"Environment Stop Requested">,
  publishedAt: Date | null = null,
): Promise<StopOutcome> {
  // A renamed or moved project's environment keeps the namespace named from its earlier path.
  const resolved = await resolveEnvironmentNamespace(deps.cluster, {
    ...detail.gitlab,
    environment: detail.environment,
  });
  const { namespace, object } = resolved;
  const audit = createStepAudit(deps, {
    fn: FN,
    action: "environment.stop",
    trigger: "Environment Stop Requested",
    detail,
    subject: {
      environment: detail.environment,
      namespace,
      stopReason: detail.reason,
      ...(resolved.reason ? { namespaceResolved: resolved.reason } : {}),
    },
  });
  if (object) {
    const read = readEnvironment(object);
    if (read.kind !== "managed") {
      const reason = `not deleted: ${read.reason}`;
      audit("deny", reason);
      return { kind: "refused", namespace, reason };
    }
    if (read.environment.projectId !== detail.gitlab.projectId) {
      const reason = `not deleted: namespace ${namespace} belongs to project ${read.environment.projectId}, not ${detail.gitlab.projectId}`;
      audit("deny", reason);
      return { kind: "refused", namespace, reason };
    }
    const other = heldByAnother(namespace, read.environment.environment, detail.environment);
    if (other) {
      const reason = `not deleted: ${other}`;
      audit("deny", reason);
      return { kind: "refused", namespace, reason };
    }
    // A schedule that fired after a redeploy extended the TTL (its move failed) must not cut it short.
    if (detail.reason === "expired" && !isExpired(read.environment, deps.clock.now())) {
      const reason = `not expired: expires at ${read.environment.expiresAt?.toISOString() ?? "never"}`;
      audit("ignored", reason);
      return { kind: "ignored", namespace, reason };
    }
    // The rule a deploy heeds a stop by, so the two never disagree: stale unless this stop would have
    // refused what runs there (a tie, same second, goes to the stop).
    const factAt = read.environment.factAt;
    const stopAt = stopTime(detail, publishedAt);
    if (stopAt && factAt && !isRefusedByStop(factAt, stopAt.at)) {
      const reason = `stale: this stop was ${stopAt.what} ${stopAt.at.toISOString()}, before GitLab asked (at ${factAt.toISOString()}) for what runs there`;
      audit("ignored", reason);
      return { kind: "ignored", namespace, reason };
    }
  }
  const running = object ? readEnvironment(object) : null;
  const ran = running?.kind === "managed" ? running.environment : null;
  // Terminating: an earlier stop deleted it, so it is not deleted again. That stop may not have got
  // as far as telling what ran there (its publish failed, and this is the bus's retry), so the
  // commit is told again: report-status adds no second `canceled` beside the first.
  const earlier = ran?.terminating === true;
  let deleted: "deleted" | "absent" = "absent";
  let notHeld: string | null = null;
  if (object && !earlier) {
    // Held until told (stop-hold.ts): the bus's retry of a failed publish comes a minute or more
    // later, when the namespace would otherwise be gone with the sha it records. Only a help to that
    // retry: a hold the cluster refuses (a quota on ConfigMaps, an admission webhook, RBAC, a CI
    // job's immutable ConfigMap of that name) must never keep the environment from being stopped.
    notHeld = await holdUntilTold(deps.cluster, namespace).then(
      () => null,
      (error: unknown) => `ConfigMap ${STOP_HOLD_NAME}: ${messageOf(error)}`,
    );
    deleted = await deleteOrLetGo(deps.cluster, object);
  }
  const held = notHeld
    ? `not held until told (${notHeld})`
    : "held terminating until Environment Deleted is published";
  try {
    // Told before the schedule is cancelled: a schedule left behind only fires a stop that finds
    // the environment gone.
    await publishDeleted(deps, detail, namespace, ran);
  } catch (error) {
    if (deleted !== "deleted") throw error;
    throw new Error(`namespace ${namespace} deleted, ${held}: ${messageOf(error)}`, { cause: error });
  }
  const letGoNow = object ? await letGo(deps.cluster, namespace) : false;
  await deps.scheduler.cancel(namespace);
  const kind = deleted === "deleted" ? "deleted" : "already_gone";
  audit(
    "success",
    kind === "deleted"
      ? `deleted (${detail.reason})${notHeld ? `; not held until told (${notHeld})` : ""}`
      : earlier
        ? `already being deleted by an earlier stop (${detail.reason})${letGoNow ? `; told now what ran there (${ran?.sha ?? "no sha recorded"}), namespace let go` : ""}`
        : `already gone (${detail.reason})`,
  );
  return { kind, namespace };
}

/**
 * The stop's place among GitLab's facts: the fact plan-steps derived it from, not when plan-steps got
 * round to publishing it (a retry, a throttled queue, a redriven dead letter).
 */
function stopTime(
  detail: Detail<"Environment Stop Requested">,
  publishedAt: Date | null,
): { at: Date; what: string } | null {
  if (detail.factAt) return { at: new Date(detail.factAt), what: "asked for by GitLab at" };
  return publishedAt ? { at: publishedAt, what: "published at" } : null;
}

/**
 * A delete that failed (a redeploy wrote the namespace since it was read, Kubler may not delete)
 * leaves no hold in a namespace that stays: a later delete by hand or by the sweep would wait on it.
 */
async function deleteOrLetGo(
  cluster: EnvironmentCluster & FinalizerRemover,
  namespace: KubeObject,
): Promise<"deleted" | "absent"> {
  try {
    return await deleteChecked(cluster, namespace);
  } catch (error) {
    const notLetGo = await letGo(cluster, namespace.metadata.name).then(
      () => null,
      (problem: unknown) => (problem instanceof Error ? problem.message : String(problem)),
    );
    if (notLetGo === null) throw error;
    throw new Error(
      `${messageOf(error)}; its stop hold (ConfigMap ${STOP_HOLD_NAME}) not removed either: ${notLetGo}`,
      { cause: error },
    );
  }
}

function deleteChecked(cluster: EnvironmentCluster, namespace: KubeObject): Promise<"deleted" | "absent"> {
  const { name, uid, resourceVersion } = namespace.metadata;
  return cluster.delete(
    { apiVersion: "v1", kind: "Namespace", name },
    { ...(uid ? { uid } : {}), ...(resourceVersion ? { resourceVersion } : {}) },
  );
}

async function publishDeleted(
  deps: Pick<CleanupDeps, "publisher">,
  stop: Pick<
    Detail<"Environment Stop Requested">,
    "correlationId" | "gitlab" | "environment" | "user" | "requestedBy"
  >,
  namespace: string,
  running: Pick<ManagedEnvironment, "sha" | "ref" | "pipelineId"> | null,
): Promise<void> {
  await deps.publisher.publish([
    {
      detailType: "Environment Deleted",
      detail: {
        correlationId: stop.correlationId,
        gitlab: stop.gitlab,
        environment: stop.environment,
        namespace,
        // What ran there, so its commit gets a final status in GitLab, in the pipeline that deployed it.
        ...(running?.sha ? { sha: running.sha, ref: running.ref, pipelineId: running.pipelineId } : {}),
        ...(stop.user ? { user: stop.user } : {}),
        ...(stop.requestedBy ? { requestedBy: stop.requestedBy } : {}),
      },
    },
  ]);
}

export interface SweepOptions {
  dryRun?: boolean;
  /** Most API requests in flight at once, list pages included. */
  concurrency?: number;
  pageSize?: number;
  /** Called after each page, for a progress line on long sweeps. */
  onProgress?: (report: SweepReport) => void;
  newId: () => string;
}

export interface SweepItem {
  /** `(list)` for a failure of the list itself: not a namespace name, so it cannot be taken for one. */
  namespace: string;
  reason: string;
}

export interface SweepReport {
  dryRun: boolean;
  examined: number;
  expired: SweepItem[];
  deleted: SweepItem[];
  failed: SweepItem[];
  skipped: SweepItem[];
  /** Namespaces a dead-lettered stop left held (stop-hold.ts): told what ran there, then let go. */
  released: SweepItem[];
}

/**
 * Deletes every managed environment past its expiry: pages of `pageSize`, at most `concurrency`
 * requests in flight, one failure never stopping the rest, malformed annotations skipped and reported.
 * Also finishes a stop whose retries were all spent: a namespace its hold has kept Terminating for
 * longer than `STOP_HOLD_GRACE_MS` gets its Environment Deleted, then is let go (not in a dry run).
 *
 * @example
 * const report = await sweepExpiredEnvironments(deps, { dryRun: true, newId: randomId });
 * // { examined: 10000, expired: [...1000], deleted: [], skipped: [...], failed: [] }
 */
export async function sweepExpiredEnvironments(deps: StopDeps, options: SweepOptions): Promise<SweepReport> {
  const { dryRun = false, concurrency = 16, pageSize = 500 } = options;
  const report: SweepReport = {
    dryRun,
    examined: 0,
    expired: [],
    deleted: [],
    failed: [],
    skipped: [],
    released: [],
  };
  const limit = createLimiter(concurrency);
  const deletions: Promise<void>[] = [];
  const now = deps.clock.now();
  // Pages go ahead of queued deletes, and the next is asked for before this one is worked through:
  // only a page's `continue` unlocks the next, so a page waiting behind a page's worth of deletes
  // would serialize the whole sweep (and a slow sweep risks its continue token expiring).
  const list = (token: string | null) =>
    limit(
      () =>
        deps.cluster.list("v1", "Namespace", {
          labelSelector: ENVIRONMENTS_SELECTOR,
          limit: pageSize,
          ...(token ? { continue: token } : {}),
        }),
      { first: true },
    );
  const visited = new Set<string>();
  let restarts = 0;
  let continued = false;
  let next: Promise<ListPage> | null = list(null);
  // A list that fails (its retries spent, or its continue token expired too often) ends the sweep
  // here, but not its report: what was deleted so far, and the summary line, must still be told.
  try {
    while (next) {
      let page: ListPage;
      try {
        page = await next;
      } catch (error) {
        if (!continued || !isExpiredContinue(error) || restarts >= MAX_LIST_RESTARTS) throw error;
        restarts++;
        next = list(null);
        continued = false;
        continue;
      }
      next = page.continue ? list(page.continue) : null;
      continued = next !== null;
      for (const object of page.items) {
        if (!firstVisit(visited, object)) continue;
        sweepOne(object);
      }
      options.onProgress?.(report);
    }
  } catch (error) {
    report.failed.push({
      namespace: "(list)",
      reason: `listing namespaces: ${messageOf(error)}`,
    });
  }
  await Promise.all(deletions);
  auditSweep(deps, report);
  return report;

  function sweepOne(object: KubeObject): void {
    report.examined++;
    const namespace = object.metadata.name;
    const read = readEnvironment(object);
    if (read.kind !== "managed") {
      report.skipped.push({ namespace, reason: read.reason });
      return;
    }
    const environment = read.environment;
    const deletedAt = Date.parse(object.metadata.deletionTimestamp ?? "");
    if (!dryRun && now.getTime() - deletedAt > STOP_HOLD_GRACE_MS) {
      deletions.push(
        limit(() => tellAndLetGo(deps, environment, object, options.newId)).then(
          (told) => {
            if (told) report.released.push({ namespace, reason: told });
          },
          (error: Error) => {
            report.failed.push({ namespace, reason: `stop hold kept: ${error.message}` });
          },
        ),
      );
    }
    if (!isExpired(environment, now)) return;
    const reason = `expired at ${environment.expiresAt?.toISOString()}`;
    if (environment.terminating) {
      report.skipped.push({ namespace, reason: `${reason}; already terminating${stuckOn(object)}` });
      return;
    }
    report.expired.push({ namespace, reason });
    if (dryRun) return;
    deletions.push(
      limit(() => deleteChecked(deps.cluster, object)).then(
        async () => {
          report.deleted.push({ namespace, reason });
          await afterSweepDelete(deps, environment, options.newId);
        },
        (error: Error) => {
          report.failed.push({ namespace, reason: error.message });
        },
      ),
    );
  }
}

/**
 * Since when a terminating namespace has been deleted and, when the namespace controller says so,
 * what it still waits on (finalizers, content it cannot delete or discover): a namespace stuck for
 * days is on-call's to unblock, and this is where to start.
 */
function stuckOn(namespace: KubeObject): string {
  const since = namespace.metadata.deletionTimestamp ? ` since ${namespace.metadata.deletionTimestamp}` : "";
  const conditions = (namespace.status as { conditions?: unknown } | undefined)?.conditions;
  const waiting = (Array.isArray(conditions) ? conditions : [])
    .filter(
      (c: { status?: unknown; message?: unknown }) => c?.status === "True" && typeof c.message === "string",
    )
    .map((c: { message: string }) => c.message.slice(0, 300));
  return `${since}${waiting.length > 0 ? `: ${waiting.join("; ")}` : ""}`;
}

/**
 * What the sweep says of one environment it deletes or lets go, under the deploy's correlation id (a
 * new one when none was recorded): its GitLab project when the namespace records one (null for a
 * namespace from before they were), its audit line under `action`, and `tell`, its Environment
 * Deleted (nothing without a GitLab project to tell).
 */
function sweepStep(
  deps: Pick<CleanupDeps, "audit" | "clock" | "publisher">,
  environment: ManagedEnvironment,
  newId: () => string,
  action: "environment.sweep.delete" | "environment.sweep.release",
) {
  const correlationId = environment.correlationId ?? newId();
  const gitlab =
    environment.instance && environment.projectPath
      ? {
          instance: environment.instance,
          projectId: environment.projectId,
          projectPath: environment.projectPath,
        }
      : null;
  const line = (outcome: "success" | "failure", reason: string) =>
    deps.audit.record(
      stepAuditRecord({
        fn: FN,
        action,
        outcome,
        reason,
        correlationId,
        gitlab,
        trigger: "sweep",
        subject: {
          environment: environment.environment,
          namespace: environment.namespace,
          projectId: environment.projectId,
        },
        at: deps.clock.now(),
      }),
    );
  const tell = async () => {
    if (!gitlab) return;
    await publishDeleted(
      deps,
      { correlationId, gitlab, environment: environment.environment },
      environment.namespace,
      environment,
    );
  };
  return { gitlab, line, tell };
}

/**
 * The schedule and report-status hear of a sweep deletion like of any other. Their failure is not
 * fatal, but audited: no bus retries a sweep, and the next one finds the namespace gone, so a lost
 * Environment Deleted leaves the commit's status in GitLab as it was, with only this line to say why.
 */
async function afterSweepDelete(deps: CleanupDeps, environment: ManagedEnvironment, newId: () => string) {
  const { line, tell } = sweepStep(deps, environment, newId, "environment.sweep.delete");
  line("success", `expired at ${environment.expiresAt?.toISOString()}`);
  const problems: string[] = [];
  const noted = (what: string) => (error: unknown) => {
    problems.push(`${what}: ${messageOf(error)}`);
  };
  await deps.scheduler.cancel(environment.namespace).catch(noted("schedule not cancelled"));
  await tell().catch(noted("Environment Deleted not published"));
  if (problems.length > 0) line("failure", `deleted, but ${problems.join("; ")}`);
}

/**
 * A namespace still held past the stop's own attempts: its stop was dead-lettered before it told
 * what ran there. Told now, from the namespace the hold kept, and only then let go: a publish that
 * fails keeps it for the next sweep. Null when nothing held it (deleted by hand, the sweep's own
 * deletion, a job's finalizer): those are not Kubler's to let go.
 */
async function tellAndLetGo(
  deps: StopDeps,
  environment: ManagedEnvironment,
  namespace: KubeObject,
  newId: () => string,
): Promise<string | null> {
  if (!(await isHeld(deps.cluster, environment.namespace))) return null;
  const { gitlab, line, tell } = sweepStep(deps, environment, newId, "environment.sweep.release");
  const held = `held by a stop that never told what ran there (deleted at ${namespace.metadata.deletionTimestamp})`;
  try {
    // Without its GitLab instance and path (a namespace from before they were recorded) there is no
    // commit to tell: let go all the same, or it stays Terminating for good.
    await tell();
    await letGo(deps.cluster, environment.namespace);
  } catch (error) {
    line("failure", `${held}: not let go, tried again next sweep: ${messageOf(error)}`);
    throw error;
  }
  const told = gitlab
    ? `told now (${environment.sha ?? "no sha recorded"})`
    : "no GitLab project recorded to tell";
  const reason = `${held}: ${told}, namespace let go`;
  line("success", reason);
  return reason;
}

function auditSweep(deps: CleanupDeps, report: SweepReport): void {
  deps.audit.record(
    stepAuditRecord({
      fn: FN,
      action: "environment.sweep",
      outcome: report.failed.length > 0 ? "failure" : "success",
      reason: `${report.dryRun ? "dry run: " : ""}examined ${report.examined}, expired ${report.expired.length}, deleted ${report.deleted.length}, failed ${report.failed.length}, skipped ${report.skipped.length}${report.released.length > 0 ? `, stop holds let go ${report.released.length}` : ""}`,
      correlationId: null,
      gitlab: null,
      trigger: "sweep",
      subject: {
        failed: report.failed.slice(0, 20),
        skipped: report.skipped.slice(0, 20),
      },
      at: deps.clock.now(),
    }),
  );
}

/**
 * At most `max` tasks running at once; the rest wait their turn in order, except that a task given
 * `{ first: true }` goes ahead of every waiting one.
 *
 * @example
 * const limit = createLimiter(16);
 * await Promise.all(names.map((name) => limit(() => cluster.delete(ref(name)))));
 */
export function createLimiter(
  max: number,
): <T>(task: () => Promise<T>, options?: { first?: boolean }) => Promise<T> {
  let running = 0;
  const waiting: (() => void)[] = [];
  return async (task, options) => {
    if (running >= max) {
      await new Promise<void>((resolve) =>
        options?.first ? waiting.unshift(resolve) : waiting.push(resolve),
      );
    }
    running++;
    try {
      return await task();
    } finally {
      running--;
      waiting.shift()?.();
    }
  };
}
