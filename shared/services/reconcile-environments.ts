/**
 * Reconcile (DESIGN §6, every minute): the backstop for work whose function died or whose schedule
 * was lost. A rollout still "deploying" past its deadline becomes `Deploy Finished` failed (marked on
 * the namespace first, as not reported yet, then published, so a deploy that finished meanwhile wins
 * and a failure marked is reported at least once); an environment still there `EXPIRY_GRACE_MS` after
 * its expiry gets `Environment Stop Requested`.
 */
import type { AuditOutcome } from "../domain/audit.js";
import {
  ENVIRONMENTS_SELECTOR,
  environmentNamespace,
  isExpired,
  type ManagedEnvironment,
  readEnvironment,
} from "../domain/environment.js";
import { type KubeObject, type Precondition, writtenOver } from "../domain/kube-object.js";
import { KubernetesConflictError, messageOf } from "../errors.js";
import type { AuditLog, Clock, EnvironmentCluster, EventPublisher } from "../ports.js";
import { eachListed } from "./list-pages.js";
import { stepAuditRecord } from "./step-audit.js";

const FN = "reconcile";
/** How a skip that is a failure (a namespace that could not be handled) starts. */
const NOT_RECONCILED = "not reconciled: ";
/**
 * How long past its expiry an environment is left to its one-time schedule before reconcile asks
 * for the stop: reconcile is the backstop for a lost schedule (DESIGN §6), and asking on the minute
 * races the schedule that fires on time, stopping it twice.
 */
export const EXPIRY_GRACE_MS = 5 * 60_000;

export interface ReconcileDeps {
  cluster: EnvironmentCluster;
  publisher: EventPublisher;
  audit: AuditLog;
  clock: Clock;
  newId: () => string;
}

export interface ReconcileReport {
  examined: number;
  /** Rollouts whose failure was published this run: newly failed, or marked by a run that did not publish. */
  rolloutsFailed: string[];
  stopsRequested: string[];
  skipped: { namespace: string; reason: string }[];
}

/**
 * @example
 * const report = await reconcileEnvironments(deps); // { rolloutsFailed: [...], stopsRequested: [...] }
 */
export async function reconcileEnvironments(deps: ReconcileDeps, pageSize = 500): Promise<ReconcileReport> {
  const report: ReconcileReport = { examined: 0, rolloutsFailed: [], stopsRequested: [], skipped: [] };
  // The skips no other line audits: they go in the run's one summary line.
  const unaudited: ReconcileReport["skipped"] = [];
  const skip = (namespace: string, reason: string, audited = false) => {
    report.skipped.push({ namespace, reason });
    if (!audited) unaudited.push({ namespace, reason });
  };
  const now = deps.clock.now();
  const graceEnded = new Date(now.getTime() - EXPIRY_GRACE_MS);
  const listed = eachListed((token) =>
    deps.cluster.list("v1", "Namespace", {
      labelSelector: ENVIRONMENTS_SELECTOR,
      limit: pageSize,
      ...(token ? { continue: token } : {}),
    }),
  );
  for await (const object of listed) {
    report.examined++;
    const read = readEnvironment(object);
    if (read.kind !== "managed") {
      skip(object.metadata.name, read.reason);
      continue;
    }
    const environment = read.environment;
    if (environment.terminating) continue;
    const gitlab = gitlabOf(environment);
    if (!gitlab) {
      skip(environment.namespace, "no GitLab project path or instance annotation");
      continue;
    }
    // One environment that cannot be handled must not stop the others, this run or any later one.
    try {
      if (environment.status === "failed" && environment.failureReported === false) {
        const outcome = await reportFailure(deps, environment, gitlab, object.metadata);
        if (outcome === "reported") report.rolloutsFailed.push(environment.namespace);
        else skip(environment.namespace, outcome.skipped, outcome.audited);
      }
      if (isExpired(environment, now)) {
        // Expired, still there: a rollout stuck meanwhile is moot, the stop ends it.
        if (isExpired(environment, graceEnded)) {
          await requestStop(deps, environment, gitlab);
          report.stopsRequested.push(environment.namespace);
        }
      } else if (
        environment.status === "deploying" &&
        environment.rolloutDeadline !== null &&
        environment.rolloutDeadline.getTime() < now.getTime()
      ) {
        const outcome = await failRollout(deps, environment, gitlab, object.metadata);
        if (outcome === "reported") report.rolloutsFailed.push(environment.namespace);
        else skip(environment.namespace, outcome.skipped, outcome.audited);
      }
    } catch (error) {
      skip(environment.namespace, `${NOT_RECONCILED}${messageOf(error)}`);
    }
  }
  auditSkipped(deps, report.examined, unaudited);
  return report;
}

/**
 * Reconcile runs every minute and its report goes nowhere (a scheduled invocation's result is not
 * kept): what it skipped, a namespace it could not handle above all, is one audit line per run, so
 * on-call sees it (`kubler audit --action environment.reconcile`). Runs that skip nothing write none.
 */
function auditSkipped(deps: ReconcileDeps, examined: number, skipped: ReconcileReport["skipped"]): void {
  if (skipped.length === 0) return;
  const failed = skipped.filter((s) => s.reason.startsWith(NOT_RECONCILED)).length;
  const some = skipped.slice(0, 3).map((s) => `${s.namespace}: ${s.reason}`);
  deps.audit.record(
    stepAuditRecord({
      fn: FN,
      action: "environment.reconcile",
      outcome: failed > 0 ? "failure" : "ignored",
      reason: `examined ${examined}, skipped ${skipped.length} (${failed} failed): ${some.join("; ")}${skipped.length > 3 ? "; …" : ""}`,
      correlationId: null,
      gitlab: null,
      trigger: "schedule",
      subject: { examined, skipped: skipped.slice(0, 20) },
      at: deps.clock.now(),
    }),
  );
}

type Gitlab = { instance: string; projectId: number; projectPath: string };

function gitlabOf(environment: ManagedEnvironment): Gitlab | null {
  if (!environment.instance || !environment.projectPath) return null;
  return {
    instance: environment.instance,
    projectId: environment.projectId,
    projectPath: environment.projectPath,
  };
}

async function requestStop(
  deps: ReconcileDeps,
  environment: ManagedEnvironment,
  gitlab: Gitlab,
): Promise<void> {
  const correlationId = environment.correlationId ?? deps.newId();
  await deps.publisher.publish([
    {
      detailType: "Environment Stop Requested",
      detail: { correlationId, gitlab, environment: environment.environment, reason: "expired" },
    },
  ]);
  audit(
    deps,
    environment,
    gitlab,
    correlationId,
    "environment.expire",
    "success",
    `expired at ${environment.expiresAt?.toISOString()} and still there (schedule lost or late): stop requested`,
  );
}

/**
 * Marks the stuck rollout failed, then publishes it. The mark goes first, over what was listed (a
 * deploy that wrote the namespace since, a newer rollout or the stuck one finishing, wins: 409, and
 * nothing is published), and says the failure is not reported yet, so a publish that fails (or a run
 * that dies before it) is published by the next run (`reportFailure`), not lost.
 */
function failRollout(
  deps: ReconcileDeps,
  environment: ManagedEnvironment,
  gitlab: Gitlab,
  listed: Precondition,
): Promise<Outcome> {
  const reason = `rollout did not finish by its deadline ${environment.rolloutDeadline?.toISOString()}`;
  return markThenReport(deps, environment, gitlab, listed, reason);
}

/**
 * A failure marked by an earlier run whose publish failed (or which died before it): published now,
 * behind the same preconditioned write as a new one, so a deploy that wrote the namespace since the
 * list (a redeploy of the same commit) is not reported failed.
 */
function reportFailure(
  deps: ReconcileDeps,
  environment: ManagedEnvironment,
  gitlab: Gitlab,
  listed: Precondition,
): Promise<Outcome> {
  const reason =
    "rollout did not finish by its deadline (marked failed by an earlier run, not reported until now)";
  return markThenReport(deps, environment, gitlab, listed, reason);
}

async function markThenReport(
  deps: ReconcileDeps,
  environment: ManagedEnvironment,
  gitlab: Gitlab,
  listed: Precondition,
  reason: string,
): Promise<Outcome> {
  if (!isReportable(environment)) return { skipped: "no sha or ref annotation to report on" };
  const correlationId = environment.correlationId ?? deps.newId();
  let marked: KubeObject;
  try {
    marked = await deps.cluster.apply(markedFailed(deps, environment, gitlab, correlationId, false, listed));
  } catch (error) {
    if (!(error instanceof KubernetesConflictError)) throw error;
    const skipped = (await markedMeanwhile(deps, environment))
      ? `marked failed since it was listed, not reported yet (by this run, its answer lost and its retry refused, or by another reconcile): the next run publishes it; ${error.message}`
      : `changed since it was listed (a deploy wrote it): not marked failed, nothing published; ${error.message}`;
    audit(deps, environment, gitlab, correlationId, "environment.rollout", "ignored", `skipped: ${skipped}`);
    return { skipped, audited: true };
  }
  await publishFailure(deps, environment, gitlab, correlationId, reason);
  await markReported(deps, environment, gitlab, correlationId, marked.metadata);
  return "reported";
}

/**
 * Whether the namespace, read again after a 409 on the failure mark, holds this attempt's failure
 * marked and not reported: the mark went through after all (its answer lost, so the adapter's retry
 * met it), or another reconcile's did. Either way `reportFailure` publishes it on the next run.
 */
async function markedMeanwhile(deps: ReconcileDeps, environment: ManagedEnvironment): Promise<boolean> {
  const now = await deps.cluster
    .get({ apiVersion: "v1", kind: "Namespace", name: environment.namespace })
    .catch(() => null);
  const read = now ? readEnvironment(now) : null;
  if (read?.kind !== "managed") return false;
  const marked = read.environment;
  return (
    marked.status === "failed" &&
    marked.failureReported === false &&
    marked.attemptedSha === (environment.attemptedSha ?? environment.sha) &&
    marked.attemptedPipelineId === environment.attemptedPipelineId
  );
}

async function publishFailure(
  deps: ReconcileDeps,
  environment: Reportable,
  gitlab: Gitlab,
  correlationId: string,
  reason: string,
): Promise<void> {
  await deps.publisher.publish([
    {
      detailType: "Deploy Finished",
      detail: {
        correlationId,
        gitlab,
        environment: environment.environment,
        sha: environment.sha,
        ref: environment.ref,
        pipelineId: environment.pipelineId,
        mrIid: environment.mrIid,
        status: "failed",
        namespace: environment.namespace,
        url: environment.url,
        reason,
      },
    },
  ]);
  audit(
    deps,
    environment,
    gitlab,
    correlationId,
    "environment.rollout",
    "success",
    `${reason}: Deploy Finished failed published`,
  );
}

/**
 * Says the failure went out, over what was marked: a 409 means a deploy wrote the namespace since,
 * and its write cleared the annotation already. Any other failure leaves "false", so the next run
 * publishes again: report-status does not write the same final state twice.
 */
async function markReported(
  deps: ReconcileDeps,
  environment: Reportable,
  gitlab: Gitlab,
  correlationId: string,
  marked: Precondition,
): Promise<void> {
  try {
    await deps.cluster.apply(markedFailed(deps, environment, gitlab, correlationId, true, marked));
  } catch (error) {
    if (!(error instanceof KubernetesConflictError)) throw error;
  }
}

/** What a Deploy Finished can be said of: a commit. */
type Reportable = ManagedEnvironment & { sha: string; ref: string };
/** `audited`: the skip has its own audit line, so the run's summary leaves it out. */
type Outcome = "reported" | { skipped: string; audited?: boolean };

function isReportable(environment: ManagedEnvironment): environment is Reportable {
  return Boolean(environment.sha && environment.ref);
}

/** The namespace as it was, marked failed, written over only `precondition`. */
function markedFailed(
  deps: ReconcileDeps,
  environment: Reportable,
  gitlab: Gitlab,
  correlationId: string,
  failureReported: boolean,
  precondition: Precondition,
): KubeObject {
  const failed = environmentNamespace({
    namespace: environment.namespace,
    gitlab,
    environment: environment.environment,
    sha: environment.sha,
    ref: environment.ref,
    pipelineId: environment.pipelineId,
    mrIid: environment.mrIid,
    ttl: environment.ttl ?? "never",
    expiresAt: environment.expiresAt,
    deployedAt: environment.deployedAt,
    requestedAt: environment.requestedAt ?? deps.clock.now(),
    factAt: environment.factAt,
    // Carried over, like the fact time: what the next deploy of the environment is ordered by.
    previousSha: environment.previousSha,
    gitlabAt: environment.gitlabAt,
    attemptedSha: environment.attemptedSha ?? environment.sha,
    attemptedPipelineId: environment.attemptedPipelineId,
    status: "failed",
    rolloutDeadline: null,
    correlationId,
    url: environment.url,
    lastGoodDigest: environment.lastGoodDigest,
    failureReported,
    // Carried over: server-side apply would drop the Pod Security labels a write left out.
    podSecurity: environment.podSecurity,
  });
  return writtenOver(failed, precondition);
}

function audit(
  deps: ReconcileDeps,
  environment: ManagedEnvironment,
  gitlab: Gitlab,
  correlationId: string,
  action: string,
  outcome: AuditOutcome,
  reason: string,
): void {
  deps.audit.record(
    stepAuditRecord({
      fn: FN,
      action,
      outcome,
      reason,
      correlationId,
      gitlab,
      trigger: "schedule",
      subject: {
        environment: environment.environment,
        namespace: environment.namespace,
        sha: environment.sha,
      },
      at: deps.clock.now(),
    }),
  );
}
