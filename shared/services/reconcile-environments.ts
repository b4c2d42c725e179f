/**
 * Reconcile (DESIGN §6, every minute): the backstop for work whose function died or whose schedule
 * was lost. A rollout still "deploying" past its deadline becomes `Deploy Finished` failed (published
 * first, then marked on the namespace, so it is reported at least once); an environment still there `EXPIRY_GRACE_MS` after
 * its expiry gets `Environment Stop Requested`.
 */
import {
  ENVIRONMENTS_SELECTOR,
  environmentNamespace,
  isExpired,
  type ManagedEnvironment,
  readEnvironment,
} from "../domain/environment.js";
import { KubernetesConflictError } from "../errors.js";
import type { AuditLog, Clock, EnvironmentCluster, EventPublisher } from "../ports.js";
import { eachListed } from "./list-pages.js";
import { stepAuditRecord } from "./step-audit.js";

const FN = "reconcile";
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
      report.skipped.push({ namespace: object.metadata.name, reason: read.reason });
      continue;
    }
    const environment = read.environment;
    if (environment.terminating) continue;
    const gitlab = gitlabOf(environment);
    if (!gitlab) {
      report.skipped.push({
        namespace: environment.namespace,
        reason: "no GitLab project path or instance annotation",
      });
      continue;
    }
    // One environment that cannot be handled must not stop the others, this run or any later one.
    try {
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
        await failRollout(deps, environment, gitlab, object.metadata);
        report.rolloutsFailed.push(environment.namespace);
      }
    } catch (error) {
      report.skipped.push({
        namespace: environment.namespace,
        reason:
          error instanceof KubernetesConflictError
            ? `changed since it was read (a deploy or a stop in between): left to the next run; ${error.message}`
            : `not reconciled: ${error instanceof Error ? error.message : String(error)}`,
      });
    }
  }
  return report;
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
    `expired at ${environment.expiresAt?.toISOString()} and still there (schedule lost or late): stop requested`,
  );
}

async function failRollout(
  deps: ReconcileDeps,
  environment: ManagedEnvironment,
  gitlab: Gitlab,
  read: { uid?: string; resourceVersion?: string },
): Promise<void> {
  const correlationId = environment.correlationId ?? deps.newId();
  const reason = `rollout did not finish by its deadline ${environment.rolloutDeadline?.toISOString()}`;
  if (!environment.sha || !environment.ref) return;
  // Published before it is marked: marked first, a publish that failed (or a timeout between the two)
  // would leave "failed" on the namespace, which later runs skip, and the commit running for good.
  // Published first, a mark that fails leaves "deploying" past its deadline, so the next run publishes
  // again: a repeated Deploy Finished is absorbed (report-status does not write the same final state
  // twice), a lost one is not.
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
    attemptedSha: environment.attemptedSha ?? environment.sha,
    attemptedPipelineId: environment.attemptedPipelineId,
    status: "failed",
    rolloutDeadline: null,
    correlationId,
    url: environment.url,
    lastGoodDigest: environment.lastGoodDigest,
  });
  // Only over what was read: a deploy that wrote the namespace since (a newer rollout, or the stuck
  // one finishing) must be neither reported nor marked failed. Read again just before publishing (the
  // list may be pages old), and the mark keeps the precondition for a write between the two: the API
  // answers 409 instead.
  // A resourceVersion in a patch (apply included) is a precondition: https://github.com/kubernetes/kubernetes/issues/63104
  const { uid, resourceVersion } = read;
  const current = await deps.cluster.get({
    apiVersion: "v1",
    kind: "Namespace",
    name: environment.namespace,
  });
  if (
    !current ||
    (uid && current.metadata.uid !== uid) ||
    (resourceVersion && current.metadata.resourceVersion !== resourceVersion)
  ) {
    throw new KubernetesConflictError(`namespace ${environment.namespace} is not as it was listed`, 409);
  }
  failed.metadata = {
    ...failed.metadata,
    ...(uid ? { uid } : {}),
    ...(resourceVersion ? { resourceVersion } : {}),
  };
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
  await deps.cluster.apply(failed);
  audit(deps, environment, gitlab, correlationId, "environment.rollout", reason);
}

function audit(
  deps: ReconcileDeps,
  environment: ManagedEnvironment,
  gitlab: Gitlab,
  correlationId: string,
  action: string,
  reason: string,
): void {
  deps.audit.record(
    stepAuditRecord({
      fn: FN,
      action,
      outcome: "success",
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
