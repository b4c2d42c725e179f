/**
 * The deploy use case (DESIGN §6): `Deploy Requested`, or `Build Finished` succeeded, becomes a
 * running environment — namespace with the contract's labels, pull secret, least-privilege deployer
 * RBAC, the project's manifests by server-side apply, a watched rollout with rollback to the last good
 * revision, and a one-time schedule at the expiry. Ends with `Deploy Finished`, whatever happened.
 */
import { type Detail, stepFieldsOf } from "../domain/catalog.js";
import {
  DEPLOYER_NAME,
  LAST_GOOD_CONFIGMAP,
  MANIFEST_FILE_NAMES,
  ManifestFilesError,
  PULL_SECRET_NAME,
  parseManifestFiles,
  renderManifests,
  roleRulesFor,
} from "../domain/deploy-manifests.js";
import {
  DEFAULT_POD_SECURITY,
  type EnvironmentState,
  environmentLabels,
  environmentNamespace,
  environmentSlug,
  fillEnvironmentUrl,
  heldByAnother,
  type ManagedEnvironment,
  type PodSecurityLevel,
  readEnvironment,
  staleDeployReason,
} from "../domain/environment.js";
import { clipJson, jsonBytes } from "../domain/json-bytes.js";
import { type KubeObject, type ObjectRef, type Precondition, writtenOver } from "../domain/kube-object.js";
import {
  findEnvironmentRule,
  type KublerManifest,
  ManifestError,
  parseKublerManifest,
} from "../domain/kubler-manifest.js";
import { environmentStopKey, isRefusedByStop } from "../domain/plan-steps.js";
import { FOLLOWED_KINDS, workloadRollout } from "../domain/rollout.js";
import { expiryOf } from "../domain/ttl.js";
import {
  KubernetesAdmissionDeniedError,
  KubernetesConflictError,
  KubernetesInvalidError,
} from "../errors.js";
import type {
  AbsentObjectWriter,
  AuditLog,
  BuildCluster,
  Clock,
  EnvironmentCluster,
  EnvironmentStops,
  EventPublisher,
  FinalizerRemover,
  ManifestSource,
  RequestDeadline,
  Scheduler,
} from "../ports.js";
import { moveSchedule, withExpiry } from "./expiry-schedule.js";
import {
  applyOwned,
  type LastGoodRecord,
  lastGoodRecord,
  lastGoodSizeProblem,
  readLastGood,
  saveLastGood,
} from "./last-good-record.js";
import { writeNamed } from "./named-write.js";
import { pruneNote, pruneRevision, type Removal, removeAdded, unprunedKinds } from "./remove-objects.js";
import { resolveEnvironmentNamespace } from "./resolve-environment-namespace.js";
import { createStepAudit } from "./step-audit.js";
import { withinDeadline } from "./within-deadline.js";

const FN = "deploy-environment";
/** Reads and decisions again after the namespace's write was refused (409) before one goes through. */
const NAMESPACE_WRITE_ATTEMPTS = 5;
/** Reads again after an object's write was refused (409): a rollout's status writes move it on too. */
const OBJECT_WRITE_ATTEMPTS = 5;

// Defined in the domain with Kubler's other reserved names; exported here too for the use case's callers.
export { LAST_GOOD_CONFIGMAP };

/**
 * `EnvironmentCluster`, a create (an environment's first namespace write is one: `writeDeploying`),
 * the release of a finalizer that holds one of Kubler's own objects it replaces (`applyOwned`), and
 * the write of an object read absent that only lands if it still is (`applyHeld`). When it has one,
 * the deadline its calls share holds GitLab's reads too (`withinDeadline`).
 */
export type DeployCluster = EnvironmentCluster &
  Pick<BuildCluster, "create"> &
  FinalizerRemover &
  AbsentObjectWriter &
  Partial<RequestDeadline>;

export interface DeployEnvironmentDeps {
  cluster: DeployCluster;
  manifests: ManifestSource;
  scheduler: Scheduler;
  publisher: EventPublisher;
  /** Where plan-steps records stops: a deploy GitLab asked for before one must not bring it back. */
  stops: EnvironmentStops;
  audit: AuditLog;
  clock: Clock;
  sleep: (ms: number) => Promise<void>;
  /** The registry's `.dockerconfigjson`, or null when none is configured (public images). */
  pullSecret: () => Promise<string | null>;
  /** TTL of environments whose rule sets none. */
  defaultTtl: string;
  /** How often a rollout is checked. */
  rolloutPollMs?: number;
  /** The Pod Security level environment namespaces enforce (`KUBLER_POD_SECURITY`). Default: baseline. */
  podSecurity?: PodSecurityLevel;
}

export type DeployTrigger =
  | { detailType: "Deploy Requested"; detail: Detail<"Deploy Requested">; time: Date }
  | { detailType: "Build Finished"; detail: Detail<"Build Finished">; time: Date };

export type DeployOutcome =
  | { kind: "ignored"; reason: string }
  | {
      kind: "succeeded" | "failed" | "rolled_back";
      namespace: string;
      reason: string | null;
      url: string | null;
    };

/**
 * @example
 * const outcome = await deployEnvironment(deps, { detailType: "Deploy Requested", detail, time });
 * // { kind: "succeeded", namespace: "group-app-review-x-1a2b3c4d", url: "https://review-x.apps…" }
 */
export async function deployEnvironment(
  deps: DeployEnvironmentDeps,
  trigger: DeployTrigger,
): Promise<DeployOutcome> {
  const { detail } = trigger;
  // A renamed or moved project deploys on in the namespace named from its earlier path (a namespace
  // keeps its name); the namespace's project-path annotation is brought up to date by the write below.
  const resolved = await resolveEnvironmentNamespace(deps.cluster, {
    ...detail.gitlab,
    environment: detail.environment,
  });
  const { namespace } = resolved;
  const audit = createStepAudit(deps, {
    fn: FN,
    action: "environment.deploy",
    trigger: trigger.detailType,
    detail,
    subject: {
      environment: detail.environment,
      namespace,
      sha: detail.sha,
      ...(resolved.reason ? { namespaceResolved: resolved.reason } : {}),
    },
  });
  /** Why deploy.url was not filled in, once the manifest is read. */
  let urlProblem: string | null = null;
  /** Kubler's own objects a CI job made unwritable, which this deploy replaced (`applyOwned`). */
  const replaced: string[] = [];
  const onReplaced = (object: string) => replaced.push(object);
  /** The project's Jobs this deploy deleted and created again (`applyObject`). */
  const recreated: string[] = [];
  const onRecreated = (object: string) => recreated.push(object);
  /** Workloads whose rollout cannot be followed (`OnDelete`): a success names them (`waitForRollout`). */
  const unfollowed: string[] = [];
  const finish: Finish = async (status, given, url, audited = {}) => {
    const reason =
      status === "succeeded" && unfollowed.length > 0
        ? [given ?? `deployed ${detail.sha}`, ...unfollowed].join("; ")
        : given;
    await deps.publisher.publish([
      {
        detailType: "Deploy Finished",
        detail: {
          ...stepFieldsOf(detail),
          status,
          namespace,
          url,
          reason: reason && clipped(reason),
        },
      },
    ]);
    audit(status === "succeeded" ? "success" : "failure", reason ?? `deployed ${detail.sha}`, {
      status,
      url,
      ...(urlProblem ? { urlProblem } : {}),
      ...(replaced.length > 0 ? { replaced } : {}),
      ...(recreated.length > 0 ? { recreated } : {}),
      ...(unfollowed.length > 0 ? { unfollowed } : {}),
      ...audited,
    });
    return { kind: status, namespace, reason, url };
  };
  // A refused deploy still ends with Deploy Finished: its commit's status went to running when the
  // build finished, and only a final outcome moves it on.
  const supersede = async (reason: string): Promise<DeployOutcome> => {
    await deps.publisher.publish([
      {
        detailType: "Deploy Finished",
        detail: { ...stepFieldsOf(detail), status: "superseded", namespace, url: null, reason },
      },
    ]);
    audit("ignored", reason, { status: "superseded" });
    return { kind: "ignored", reason };
  };

  let prepared: Prepared;
  try {
    const text = await withinDeadline(deps.cluster, `kubler.yaml at ${detail.sha}`, () =>
      deps.manifests.readManifest(detail.gitlab, detail.sha),
    );
    // plan-steps asks only for opted-in commits; a request without one (`kubler deploy` for another
    // project, a file GitLab no longer serves) still ends, or its commit status stays "running".
    if (text === null)
      return finish("failed", `no kubler.yaml at ${detail.sha}: the project is not opted in`, null);
    prepared = await prepare(deps, trigger, parseKublerManifest(text), namespace);
    ({ urlProblem } = prepared);
  } catch (error) {
    if (error instanceof ManifestError || error instanceof ManifestFilesError) {
      return finish("failed", error.message, null);
    }
    throw error;
  }

  // Events published before fact times were carried cannot be ordered against a stop: they go ahead.
  const factAt = detail.factAt ? new Date(detail.factAt) : null;
  const order = {
    sha: detail.sha,
    pipelineId: detail.pipelineId,
    previousSha: detail.previousSha ?? null,
    gitlabAt: detail.gitlabAt ? new Date(detail.gitlabAt) : null,
  };
  const stoppedAt =
    factAt && (await deps.stops.stoppedAt(environmentStopKey(detail.gitlab, detail.environment)));
  if (stoppedAt && isRefusedByStop(factAt, stoppedAt)) {
    return supersede(
      `stopped: ${detail.environment} was stopped by a later GitLab event (${stoppedAt.toISOString()}) than the one that asked for ${detail.sha} (${factAt.toISOString()})`,
    );
  }

  // Read, decide, write, as one compare-and-swap: the "deploying" write goes only over the namespace
  // as read here (a create when there is none), so two deploys of one environment at once cannot both
  // take it. The one that finds it written since (409) reads again and decides again: against the
  // newer attempt it now sees, an older deploy stops as stale before writing anything.
  const timeoutMs = prepared.manifest.deploy.rolloutTimeoutSeconds * 1000;
  let redeploy: boolean;
  /** The last good commit an earlier delivery of this attempt was restoring when it was cut short. */
  let resumeRollbackTo: string | null = null;
  let deadline: Date;
  let state: EnvironmentState;
  let deploying: KubeObject;
  for (let attempt = 1; ; attempt++) {
    resumeRollbackTo = null;
    const current = await deps.cluster.get({ apiVersion: "v1", kind: "Namespace", name: namespace });
    let running: ManagedEnvironment | null = null;
    if (current) {
      const read = readEnvironment(current);
      if (read.kind !== "managed") {
        // Never adopt what Kubler does not own, even by name.
        return finish("failed", `namespace ${namespace} exists and is not Kubler's (${read.reason})`, null);
      }
      if (read.environment.projectId !== detail.gitlab.projectId) {
        return finish(
          "failed",
          `namespace ${namespace} belongs to project ${read.environment.projectId}`,
          null,
        );
      }
      const other = heldByAnother(namespace, read.environment.environment, detail.environment);
      if (other) return finish("failed", other, null);
      if (read.environment.terminating) {
        // Being deleted (a stop raced this deploy): fail loudly so the bus retries once it is gone.
        throw new Error(`namespace ${namespace} is terminating; deploy will be retried`);
      }
      running = read.environment;
      const stale = staleDeployReason(running, { ...order, factAt, requestedAt: trigger.time });
      if (stale) return supersede(stale);
      // The attempt already finished, and did not succeed (a redelivery after a rollback): applying the
      // broken revision again would roll back again. Its outcome is published again instead, as a
      // repeat of a success is (the first publish may be what failed). Only a redelivery carries the
      // attempt's correlation id: a new request for the same revision (`kubler deploy` again, after
      // deploy/ was fixed) has no fact time to tell it by, and is applied.
      const finished = running.status === "failed" || running.status === "rolled_back";
      const thisAttempt =
        running.correlationId === detail.correlationId &&
        running.attemptedSha === detail.sha &&
        running.attemptedPipelineId === detail.pipelineId &&
        (running.factAt?.getTime() ?? null) === (factAt?.getTime() ?? null);
      if (finished && thisAttempt) {
        return finish(
          running.status as "failed" | "rolled_back",
          `repeat: the deploy of ${detail.sha} already ended ${running.status}${running.status === "rolled_back" ? ` (${running.sha} runs)` : ""}; not applied again`,
          running.url,
        );
      }
      // This attempt's rollout failed and its rollback was cut short (the Lambda's deadline, a crash):
      // applying the failed revision again would only fail and roll back once more. Its retry takes
      // the namespace as the attempt left it and finishes the rollback (`rollBack`).
      resumeRollbackTo = running.status === "deploying" && thisAttempt ? running.rollingBackTo : null;
    }

    // The same commit of the same pipeline again (a redelivery, or a second event for one push): keep
    // what the namespace says, so applying again changes nothing.
    redeploy =
      running !== null &&
      running.sha === detail.sha &&
      running.pipelineId === detail.pipelineId &&
      running.status === "succeeded";
    const now = deps.clock.now();
    deadline = new Date(now.getTime() + timeoutMs);
    state = {
      namespace,
      gitlab: detail.gitlab,
      environment: detail.environment,
      sha: detail.sha,
      ref: detail.ref,
      pipelineId: detail.pipelineId,
      mrIid: detail.mrIid,
      ttl: prepared.ttl,
      expiresAt: redeploy ? (running?.expiresAt ?? null) : expiryOf(prepared.ttl, now),
      deployedAt: redeploy ? (running?.deployedAt ?? null) : null,
      requestedAt: redeploy ? (running?.requestedAt ?? trigger.time) : trigger.time,
      factAt: factAt ?? running?.factAt ?? null,
      // What orders the next request against this one; the same commit asked for again without them
      // (an event from before they were carried), or by an earlier change of GitLab's (delivered late),
      // keeps what was known of it: the newest evidence, or an older commit would pass for newer.
      ...(running?.attemptedSha === detail.sha
        ? sameCommitOrder(running, order)
        : { previousSha: order.previousSha, gitlabAt: order.gitlabAt }),
      attemptedSha: detail.sha,
      attemptedPipelineId: detail.pipelineId,
      status: redeploy ? "succeeded" : "deploying",
      rolloutDeadline: redeploy ? null : deadline,
      // Kept while the rollback is resumed, so a retry cut again before it ends still finds it.
      rollingBackTo: resumeRollbackTo,
      correlationId: redeploy ? (running?.correlationId ?? detail.correlationId) : detail.correlationId,
      url: prepared.url,
      lastGoodDigest: running?.lastGoodDigest ?? null,
      // Forced by the namespace's server-side apply: a level changed by hand is put back at each deploy.
      podSecurity: deps.podSecurity ?? DEFAULT_POD_SECURITY,
    };

    try {
      deploying = await writeDeploying(deps.cluster, state, current);
      break;
    } catch (error) {
      // A policy of the cluster's (required labels, say) refusing Kubler's namespace: no retry passes it.
      if (refusedByCluster(error)) {
        return finish(
          "failed",
          `the cluster refused the environment's namespace ${namespace}: ${error.message} (the cluster's admission policies must allow the namespaces Kubler writes)`,
          null,
        );
      }
      if (!(error instanceof KubernetesConflictError) || attempt >= NAMESPACE_WRITE_ATTEMPTS) throw error;
    }
  }
  const conclude = concludeWith(
    deps,
    state,
    deploying,
    finish,
    (reason, status) => {
      audit("ignored", reason, {
        status,
        ...(replaced.length > 0 ? { replaced } : {}),
        ...(recreated.length > 0 ? { recreated } : {}),
      });
      return { kind: "ignored", reason };
    },
    supersede,
  );
  if (resumeRollbackTo !== null) {
    // Every object of the failed revision counts as applied: the cut attempt got to its rollback, so
    // it had written them all, or (a manifest the cluster refused) those before the refused one.
    return rollBack(
      deps,
      state,
      await readLastGood(deps.cluster, state),
      prepared.objects,
      `the rollout of ${state.sha} failed, and an earlier delivery of this deploy was cut short while rolling back to ${resumeRollbackTo}: finished here, ${state.sha} not applied again`,
      timeoutMs,
      conclude,
      onRecreated,
    );
  }
  const accessLost = await applyAccess(deps.cluster, state, prepared, onReplaced, conclude.lost);
  if (accessLost) return accessLost;
  const lastGood = await readLastGood(deps.cluster, state);
  // What of this revision reached the cluster: a rollback removes what of it the last good one lacks.
  const applied: KubeObject[] = [];
  try {
    const lost = await applyHeld(deps.cluster, prepared.objects, conclude.lost, onRecreated, (object) =>
      applied.push(object),
    );
    if (lost) return lost;
  } catch (error) {
    if (!refusedByCluster(error)) throw error;
    return rollBack(
      deps,
      state,
      lastGood,
      applied,
      `the cluster refused a manifest: ${error.message}`,
      timeoutMs,
      conclude,
      onRecreated,
    );
  }
  const rollout = await waitForRollout(deps, prepared.objects, deadline, (note) => unfollowed.push(note));
  if (rollout !== null)
    return rollBack(deps, state, lastGood, applied, rollout, timeoutMs, conclude, onRecreated);

  // deploy.prune: only now that the rollout succeeded, and only while this deploy's write is the
  // namespace's last (a newer deploy writes it before applying anything), so that a newer revision's
  // objects are never taken for ones this revision dropped.
  const prune = async (written: KubeObject): Promise<Removal | null> => {
    if (!prepared.manifest.deploy.prune) return null;
    const stillOwned = async () =>
      (await deps.cluster.get({ apiVersion: "v1", kind: "Namespace", name: namespace }))?.metadata
        .resourceVersion === written.metadata.resourceVersion;
    return pruneRevision(deps.cluster, state, prepared.objects, lastGood, stillOwned);
  };

  if (redeploy) {
    // Pruned again: what an earlier attempt could not delete is tried once more.
    const removal = await prune(deploying);
    let expiry: string | null = null;
    // The succeeded attempt's record write can fail after its Namespace committed to the digest: a
    // redelivery writes it again, so the next rollback finds the record the digest names.
    if (lastGood === null || "unusable" in lastGood || lastGood.sha !== state.sha) {
      const record = lastGoodRecord(state, prepared.objects);
      await saveLastGood(deps.cluster, state, record, removal ? unprunedKinds(removal) : [], onReplaced);
      if (record.digest !== state.lastGoodDigest) {
        // Over this delivery's own write only: a newer deploy's "deploying" must not be put back.
        try {
          await writeNamespace(deps.cluster, { ...state, lastGoodDigest: record.digest }, deploying.metadata);
        } catch (error) {
          if (!(error instanceof KubernetesConflictError)) throw error;
          return (await conclude.lost()) ?? supersede(`the namespace changed under ${state.sha}'s redeploy`);
        }
      }
      // The failed attempt did not get to move the schedule either.
      expiry = await moveSchedule(deps, state);
    }
    const { reason = null, audited } = removal ? prunedOutcome(state, removal) : {};
    return finish("succeeded", reason, prepared.url, withExpiry(audited, expiry));
  }
  // The record is written once the Namespace that commits to its digest is: a deploy that loses its
  // final write leaves the last good revision's record as it was, matching the digest still there.
  // The prune comes between the two: a failed prune's leftover kinds go into the record.
  const record = lastGoodRecord(state, prepared.objects);
  return conclude(
    {
      ...state,
      lastGoodDigest: record.digest,
      status: "succeeded",
      deployedAt: deps.clock.now(),
      rolloutDeadline: null,
    },
    { status: "succeeded", reason: null, url: prepared.url },
    async (written) => {
      const removal = await prune(written);
      await saveLastGood(deps.cluster, state, record, removal ? unprunedKinds(removal) : [], onReplaced);
      return removal ? prunedOutcome(state, removal) : undefined;
    },
  );
}

/**
 * The cluster refused the object itself (validation; admission, with 422 or 403): the manifest's
 * fault, and no retry changes it. Other 403s (Kubler's own RBAC, a namespace being deleted) are thrown.
 */
function refusedByCluster(error: unknown): error is KubernetesInvalidError | KubernetesAdmissionDeniedError {
  return error instanceof KubernetesInvalidError || error instanceof KubernetesAdmissionDeniedError;
}

/**
 * The most of a reason `Deploy Finished` carries, in bytes of its JSON as the bus counts the detail's
 * 8 KB (`MAX_DETAIL_BYTES`; characters undercount it: a control character in a cluster's refusal is 6
 * bytes escaped). A cluster's refusal lists every invalid field, so it can be longer; a longer reason
 * made the publish throw, and every retry the same, so the deploy never ended. The audit line keeps
 * it whole.
 */
const MAX_REASON_JSON_BYTES = 2_000;
const CLIPPED_NOTE = "… (clipped: the whole reason is in the audit line)";

function clipped(reason: string): string {
  if (jsonBytes(reason) <= MAX_REASON_JSON_BYTES) return reason;
  return `${clipJson(reason, MAX_REASON_JSON_BYTES - jsonBytes(CLIPPED_NOTE), "start")}${CLIPPED_NOTE}`;
}

/**
 * The ordering evidence (`staleDeployReason`) a namespace keeps when the commit it last attempted is
 * asked for again: that request's, unless the namespace already has a later time of GitLab's for it
 * (the request comes from an earlier change, delivered late) or the request has none.
 */
function sameCommitOrder(
  running: Pick<ManagedEnvironment, "previousSha" | "gitlabAt">,
  order: { previousSha: string | null; gitlabAt: Date | null },
): { previousSha: string | null; gitlabAt: Date | null } {
  if (running.gitlabAt !== null && order.gitlabAt !== null && order.gitlabAt < running.gitlabAt) {
    return { previousSha: running.previousSha, gitlabAt: running.gitlabAt };
  }
  return {
    previousSha: order.previousSha ?? running.previousSha,
    gitlabAt: order.gitlabAt ?? running.gitlabAt,
  };
}

/**
 * A prune never fails the deploy: what it deleted and what it left (the next deploy tries again)
 * go into the reason and the audit line.
 */
function prunedOutcome(state: EnvironmentState, removal: Removal): Partial<Outcome> {
  const note = pruneNote(removal);
  return {
    reason: note && `deployed ${state.sha}; ${note}`,
    audited: {
      pruned: removal.removed,
      notPruned: removal.left.map(({ kind, name }) => `${kind}/${name}`),
    },
  };
}

type Finish = (
  status: "succeeded" | "failed" | "rolled_back",
  reason: string | null,
  url: string | null,
  /** Added to the audit line's subject. */
  audited?: Record<string, unknown>,
) => Promise<DeployOutcome>;

interface Outcome {
  status: "succeeded" | "failed" | "rolled_back";
  reason: string | null;
  url: string | null;
  audited?: Record<string, unknown>;
}

/**
 * Writes the namespace's final state, then the schedule, then publishes. Returns what the deploy ends
 * with; `then` runs between the write and the schedule, only when the write went through, is given
 * the Namespace as written, and may add to the outcome.
 */
type Conclude = ((
  final: EnvironmentState,
  outcome: Outcome,
  then?: (written: KubeObject) => Promise<Partial<Outcome> | undefined>,
) => Promise<DeployOutcome>) & {
  /**
   * Moves the deadline the namespace shows (a rollback waits again) and records the commit the
   * rollback restores (a retry of a rollback cut short finishes it): written over the same
   * precondition, which it then takes over, so reconcile does not fail a rollback that is on time.
   * Resolves with the outcome to stop with when someone wrote the namespace first, and whether that
   * was this attempt's own failure (reconcile's mark), else null.
   */
  extend(
    deadline: Date,
    rollingBackTo: string,
  ): Promise<{ stop: DeployOutcome; sameAttempt: boolean } | null>;
  /**
   * Null while the namespace is as this deploy last wrote it (or as reconcile's failure of this very
   * attempt left it); else what the deploy stops with, having written nothing more: superseded,
   * published, when a newer deploy or the environment's deletion took it; quietly when it is another
   * delivery of this attempt (which reports) or reconcile's mark (which reported).
   */
  lost(): Promise<DeployOutcome | null>;
  /**
   * Whether the namespace is still as this deploy last wrote it (or as reconcile's failure of this
   * very attempt left it), read now: asked before each of a rollback's deletes.
   */
  owns(): Promise<boolean>;
};

/**
 * The final write goes over the namespace as this deploy's "deploying" write left it, and nothing
 * else (a resourceVersion in an apply is a precondition, https://github.com/kubernetes/kubernetes/issues/63104):
 * the first final word on an attempt is the one reported, whoever says it. A 409 that meets this
 * deploy's own write (its answer lost, the adapter's retry refused) is taken for it (`writeNamespace`);
 * any other means someone wrote the namespace since, and the deploy then writes and publishes nothing:
 * - reconcile marked this attempt failed past its deadline (DESIGN §6). That failure is published by
 *   reconcile, now or, if its publish failed, by its next run (the failure-reported annotation), so
 *   GitLab hears of it exactly once. Publishing the deploy's own outcome as well would send a second
 *   final state for one attempt (DESIGN §12 "nothing twice") and leave the namespace and GitLab saying
 *   whichever landed last; reconcile's mark stands instead, as its 409 makes a deploy's stand. The
 *   schedule still moves: the mark kept this attempt's expiry, which no schedule matches yet.
 * - a newer deploy (or a redelivery of this one) wrote it: its outcome is the one to report, and the
 *   schedule is its own.
 */
function concludeWith(
  deps: DeployEnvironmentDeps,
  state: EnvironmentState,
  deploying: KubeObject,
  finish: Finish,
  stop: (reason: string, status: string) => DeployOutcome,
  supersede: (reason: string) => Promise<DeployOutcome>,
): Conclude {
  let { uid, resourceVersion } = deploying.metadata;
  const writeOver = (final: EnvironmentState) =>
    writeNamespace(deps.cluster, final, { uid, resourceVersion });
  const readNamespace = () =>
    deps.cluster.get({ apiVersion: "v1", kind: "Namespace", name: state.namespace });
  const isHeld = (since: KubeObject | null) =>
    since !== null && since.metadata.uid === uid && since.metadata.resourceVersion === resourceVersion;
  /** Someone wrote the namespace since this deploy did: what it ends with, having written nothing. */
  const conflicted = async (
    status: string,
    read?: KubeObject | null,
    /** What the deploy had not done yet, when it had not ended. */
    before?: string,
  ): Promise<{ stop: DeployOutcome; sameAttempt: boolean }> => {
    const moment = before ?? `it ended ${status}`;
    const since = read === undefined ? await readNamespace() : read;
    const found = since ? readEnvironment(since) : null;
    const now = found?.kind === "managed" ? found.environment : null;
    const sameAttempt = now !== null && isAttempt(now, state);
    if (sameAttempt && now.status === "failed") {
      // Reconcile's mark is this attempt's own last word: a rollback still restores under it, held
      // to it as to this deploy's own write (`lost`).
      ({ uid, resourceVersion } = (since as KubeObject).metadata);
      const expiry = await moveSchedule(deps, state);
      const reason = `reconcile marked this rollout failed past its deadline ${state.rolloutDeadline?.toISOString()} before ${moment}: its failure is the outcome reported, nothing more published${expiry ? `; ${expiry}` : ""}`;
      return { stop: stop(reason, status), sameAttempt: true };
    }
    const who = now
      ? `${sameAttempt ? "another delivery of this deploy" : "a newer deploy"} (${now.attemptedSha}, pipeline ${now.attemptedPipelineId ?? "?"}, ${now.status ?? "no status"})`
      : "its deletion";
    const reason = `the namespace was written since this deploy's "deploying" write, by ${who}: this deploy ${before ? `stopped before ${before}` : `ended ${status}`} and stops without writing or publishing it`;
    return { stop: stop(reason, status), sameAttempt: false };
  };
  const conclude: Conclude = Object.assign(
    async (final: EnvironmentState, outcome: Outcome, then?: Parameters<Conclude>[2]) => {
      let written: KubeObject;
      try {
        written = await writeOver(final);
      } catch (error) {
        if (!(error instanceof KubernetesConflictError)) throw error;
        return (await conflicted(outcome.status)).stop;
      }
      const { status, reason, url, audited } = { ...outcome, ...(await then?.(written)) };
      const expiry = await moveSchedule(deps, state);
      return finish(status, reason, url, withExpiry(audited, expiry));
    },
    {
      async extend(deadline: Date, rollingBackTo: string) {
        try {
          const written = await writeOver({ ...state, rolloutDeadline: deadline, rollingBackTo });
          ({ uid, resourceVersion } = written.metadata);
          return null;
        } catch (error) {
          if (!(error instanceof KubernetesConflictError)) throw error;
          return conflicted("rolled_back");
        }
      },
      async owns() {
        return isHeld(await readNamespace());
      },
      async lost() {
        const since = await readNamespace();
        if (isHeld(since)) return null;
        const found = since ? readEnvironment(since) : null;
        // A stop deleting it (its annotations still this attempt's) is no delivery of this deploy.
        const now = found?.kind === "managed" && !found.environment.terminating ? found.environment : null;
        const sameAttempt = now !== null && isAttempt(now, state);
        // Its own failure (reconcile), or another delivery of it that reports for both: stops quietly.
        if (sameAttempt) return (await conflicted("deploying", since, "its objects were all written")).stop;
        const who = now
          ? `a newer deploy (${now.attemptedSha}, pipeline ${now.attemptedPipelineId ?? "?"}, ${now.status ?? "no status"})`
          : "its deletion";
        return supersede(
          `superseded: the namespace was written since this deploy's "deploying" write, by ${who}; ${state.sha} stops before writing more of its objects`,
        );
      },
    },
  );
  return conclude;
}

/** True when the namespace records this very attempt: its correlation, commit and pipeline. */
function isAttempt(
  recorded: Pick<ManagedEnvironment, "correlationId" | "attemptedSha" | "attemptedPipelineId">,
  state: EnvironmentState,
): boolean {
  return (
    recorded.correlationId === state.correlationId &&
    recorded.attemptedSha === state.attemptedSha &&
    recorded.attemptedPipelineId === state.attemptedPipelineId
  );
}

/**
 * Writes one batch of objects, each only over what was read of it before the namespace was seen
 * still to be this deploy's (`lost`): a resourceVersion in a server-side apply is a precondition, so
 * a write that lands after a newer deploy took the namespace and wrote the object is refused (409)
 * instead of putting the older revision over it (a request throttled or retried in flight may land
 * after that check, whatever the order it was sent in). An object not there when read is held to its
 * absence the same way (`createApplied`: a create, 409 AlreadyExists when two revisions that both
 * add it race, then an apply over it): a plain apply would create or update alike, and an older
 * revision's would go over the newer one's. On a 409 the object is read again and the namespace
 * checked again: a deploy that still holds it writes over what it now finds, one that lost it stops.
 * Resolves with what the deploy stops with once the namespace is lost, else null.
 */
async function applyHeld(
  cluster: EnvironmentCluster & AbsentObjectWriter,
  objects: readonly KubeObject[],
  lost: () => Promise<DeployOutcome | null>,
  onRecreated: (object: string) => void,
  onApplied: (object: KubeObject) => void = () => {},
): Promise<DeployOutcome | null> {
  const reads = await Promise.all(objects.map((object) => cluster.get(refOf(object))));
  const first = await lost();
  if (first) return first;
  for (const [i, object] of objects.entries()) {
    let read = reads[i] ?? null;
    for (let attempt = 1; ; attempt++) {
      try {
        await (read
          ? applyObject(cluster, writtenOver(object, read.metadata), onRecreated)
          : cluster.createApplied(object));
        break;
      } catch (error) {
        if (!(error instanceof KubernetesConflictError) || attempt >= OBJECT_WRITE_ATTEMPTS) throw error;
        read = await cluster.get(refOf(object));
        const stop = await lost();
        if (stop) return stop;
      }
    }
    onApplied(object);
  }
  return null;
}

function refOf({ apiVersion, kind, metadata }: KubeObject): ObjectRef {
  return { apiVersion, kind, name: metadata.name, namespace: metadata.namespace };
}

interface Prepared {
  manifest: KublerManifest;
  /** The registry's `.dockerconfigjson`, read once per deploy. */
  pullSecret: string | null;
  objects: KubeObject[];
  ttl: string;
  url: string | null;
  /** Why deploy.url was not filled (`fillEnvironmentUrl`), for the audit line; else null. */
  urlProblem: string | null;
}

async function prepare(
  deps: DeployEnvironmentDeps,
  trigger: DeployTrigger,
  manifest: KublerManifest,
  namespace: string,
): Promise<Prepared> {
  const { detail } = trigger;
  let image: { match: string; pinned: string } | null = null;
  if (trigger.detailType === "Build Finished") {
    if (!manifest.image || !trigger.detail.imageDigest) {
      throw new ManifestError("kubler.yaml: image: a build finished but the manifest names no image to pin");
    }
    image = {
      match: manifest.deploy.image ?? manifest.image.name,
      pinned: `${manifest.image.name}@${trigger.detail.imageDigest}`,
    };
  }
  const files = await withinDeadline(deps.cluster, `${manifest.deploy.manifests} at ${detail.sha}`, () =>
    deps.manifests.readDirectory(detail.gitlab, detail.sha, manifest.deploy.manifests),
  );
  if (files.size === 0) {
    // A missing directory reads as an empty one: a typo, or manifests kept one level down.
    throw new ManifestFilesError(
      `${manifest.deploy.manifests}: no manifest files (${MANIFEST_FILE_NAMES}) in this directory at ${detail.sha}: deploy.manifests in kubler.yaml names the directory that holds them (its subdirectories are not read)`,
    );
  }
  const pullSecret = await deps.pullSecret();
  const { objects, pinned } = renderManifests(parseManifestFiles(files), {
    namespace,
    labels: environmentLabels(detail.gitlab.projectId, detail.environment),
    sha: detail.sha,
    image,
    pullSecret: pullSecret === null ? null : PULL_SECRET_NAME,
  });
  const tooLarge = lastGoodSizeProblem(objects);
  if (tooLarge) throw new ManifestFilesError(`${manifest.deploy.manifests}: ${tooLarge}`);
  if (image && pinned === 0) {
    throw new ManifestFilesError(
      `no container in ${manifest.deploy.manifests} uses the image "${image.match}" (deploy.image), so the built image would not run`,
    );
  }
  // The rule plan-steps matched, by its TTL: matching the name against the rules' templates again can
  // find another (`{branch}` matches `review/x` too). Older events carry none: matched by name then.
  const ttl =
    detail.ttl !== undefined
      ? (detail.ttl ?? deps.defaultTtl)
      : (findEnvironmentRule(manifest, detail.environment)?.ttl ?? deps.defaultTtl);
  const filled = manifest.deploy.url
    ? fillEnvironmentUrl(manifest.deploy.url, {
        environment_slug: environmentSlug(detail.environment),
        environment: detail.environment,
        namespace,
        sha: detail.sha,
        mr_iid: detail.mrIid,
        ref: detail.ref,
      })
    : null;
  // A URL that would not keep the template's host is no reason to refuse the deploy: it goes without one.
  const url = filled && "url" in filled ? filled.url : null;
  const urlProblem = filled && "problem" in filled ? filled.problem : null;
  return { manifest, pullSecret, objects: applyOrder(objects), ttl, url, urlProblem };
}

/**
 * The "deploying" write (a redeploy's "succeeded"), over the namespace as `read` and nothing else, so
 * a 409 says another deploy wrote it since. An environment's first write is a create, so that of two
 * first deploys one is refused and decides again rather than both taking the namespace. The create
 * leaves out the Pod Security labels, which the apply over it then sets as every later write does: a
 * label that only a create had set would belong to another field manager, and a later apply that
 * stops setting it could not remove it (`EnvironmentState.podSecurity`).
 */
async function writeDeploying(
  cluster: DeployCluster,
  state: EnvironmentState,
  read: KubeObject | null,
): Promise<KubeObject> {
  const namespace = environmentNamespace(state);
  // A redeploy writes the succeeded state again: keeping the name of the write that left it keeps a
  // redelivery a write that changes nothing. Any other write drops it (`WRITE_ANNOTATION`).
  const kept = state.status === "succeeded" ? read?.metadata.annotations?.[WRITE_ANNOTATION] : undefined;
  if (read) return cluster.apply(writtenOver(kept ? namedWrite(namespace, kept) : namespace, read.metadata));
  const created = await cluster.create({
    ...namespace,
    metadata: { ...namespace.metadata, labels: environmentLabels(state.gitlab.projectId, state.environment) },
  });
  return cluster.apply(writtenOver(namespace, created.metadata));
}

/**
 * Names each write of `writeNamespace`: the next write of the namespace (this deploy's next, a newer
 * deploy's "deploying", reconcile's failure mark) applies without it and so drops it.
 */
const WRITE_ANNOTATION = "kubler.dev/deploy-write";

/**
 * Writes `state` over the namespace as this deploy last wrote it (`over`) and nothing else, named
 * (`writeNamed`): a write whose answer was lost is met by the adapter's retry (409), and is then
 * known for this deploy's own instead of another delivery's, so the deploy goes on and reports.
 */
function writeNamespace(
  cluster: DeployCluster,
  state: EnvironmentState,
  over: Precondition,
): Promise<KubeObject> {
  const namespace = environmentNamespace(state);
  const target = {
    ref: { apiVersion: "v1", kind: "Namespace", name: state.namespace },
    uid: over.uid,
    annotation: WRITE_ANNOTATION,
  };
  return writeNamed(cluster, target, (id) => cluster.apply(writtenOver(namedWrite(namespace, id), over)));
}

function namedWrite(namespace: KubeObject, id: string): KubeObject {
  const annotations = { ...namespace.metadata.annotations, [WRITE_ANNOTATION]: id };
  return { ...namespace, metadata: { ...namespace.metadata, annotations } };
}

/** Configuration before the workloads that read it, workloads last. */
function applyOrder(objects: KubeObject[]): KubeObject[] {
  const rank = (kind: string) =>
    ["ServiceAccount", "Secret", "ConfigMap", "PersistentVolumeClaim"].includes(kind)
      ? 0
      : ["Service", "NetworkPolicy", "Ingress", "PodDisruptionBudget"].includes(kind)
        ? 1
        : 2;
  return [...objects].sort((a, b) => rank(a.kind) - rank(b.kind));
}

/**
 * The pull secret and the environment's deployer: a ServiceAccount bound to exactly what the
 * manifests need. The Role differs by revision: held to the namespace as the manifests are (`applyHeld`).
 */
async function applyAccess(
  cluster: EnvironmentCluster & FinalizerRemover & AbsentObjectWriter,
  state: EnvironmentState,
  { objects, pullSecret }: Prepared,
  onReplaced: (object: string) => void,
  lost: () => Promise<DeployOutcome | null>,
): Promise<DeployOutcome | null> {
  const labels = environmentLabels(state.gitlab.projectId, state.environment);
  const metadata = (name: string) => ({ name, namespace: state.namespace, labels });
  const stop = await applyHeld(
    cluster,
    [
      { apiVersion: "v1", kind: "ServiceAccount", metadata: metadata(DEPLOYER_NAME) },
      {
        apiVersion: "rbac.authorization.k8s.io/v1",
        kind: "Role",
        metadata: metadata(DEPLOYER_NAME),
        rules: roleRulesFor(objects),
      },
      {
        apiVersion: "rbac.authorization.k8s.io/v1",
        kind: "RoleBinding",
        metadata: metadata(DEPLOYER_NAME),
        roleRef: { apiGroup: "rbac.authorization.k8s.io", kind: "Role", name: DEPLOYER_NAME },
        subjects: [{ kind: "ServiceAccount", name: DEPLOYER_NAME, namespace: state.namespace }],
      },
    ],
    lost,
    () => {},
  );
  if (stop || pullSecret === null) return stop;
  // A job may create Secrets: one it made under this name before a registry was configured is replaced.
  // The same for every revision, so not held to the namespace.
  const secret = {
    apiVersion: "v1",
    kind: "Secret",
    metadata: metadata(PULL_SECRET_NAME),
    type: "kubernetes.io/dockerconfigjson",
    data: { ".dockerconfigjson": Buffer.from(pullSecret).toString("base64") },
  };
  await applyOwned(cluster, secret, onReplaced);
  return null;
}

/**
 * Server-side applies one of the revision's objects. A Job's pod template cannot be changed once it
 * exists (the API server answers 422 `field is immutable`), and a migration Job runs the commit's
 * image: applied in place, every deploy after the first would be refused and rolled back. Such a Job
 * is replaced, as `kubectl replace --force` would: deleted, held to the uid and resourceVersion read
 * (its pods go with it), then applied again; `onRecreated` gets `Job/name` for the audit line. Other
 * kinds' immutable fields are thrown as they came: deleting a Deployment or a StatefulSet takes the
 * environment down.
 */
async function applyObject(
  cluster: EnvironmentCluster & AbsentObjectWriter,
  object: KubeObject,
  onRecreated: (object: string) => void,
): Promise<KubeObject> {
  try {
    return await cluster.apply(object);
  } catch (error) {
    if (
      !(error instanceof KubernetesInvalidError) ||
      object.kind !== "Job" ||
      !error.message.includes("field is immutable")
    )
      throw error;
    const ref = refOf(object);
    const current = await cluster.get(ref);
    if (!current) throw error;
    const { uid, resourceVersion } = current.metadata;
    await cluster.delete(ref, { uid, resourceVersion });
    // Created again, only while none is there (`applyHeld`): a precondition the object was applied
    // with names the one just deleted.
    const { uid: _uid, resourceVersion: _rv, ...fresh } = object.metadata;
    const written = await cluster.createApplied({ ...object, metadata: fresh });
    onRecreated(`${ref.kind}/${ref.name}`);
    return written;
  }
}

/**
 * Null when every Deployment, StatefulSet and DaemonSet has rolled out (`kubectl rollout status`'s
 * reading); the reason otherwise. One whose rollout cannot be followed (`OnDelete`: no pod takes the
 * new template until deleted) is waited for until its pods are ready, then passed to `onUnfollowed`
 * and counted as done: refusing it would leave such a project no way to deploy, and its running pods
 * are the ones the last revision started. Neither a StatefulSet nor a DaemonSet has a progress
 * deadline: a broken image there fails at `deadline`.
 */
async function waitForRollout(
  deps: DeployEnvironmentDeps,
  objects: KubeObject[],
  deadline: Date,
  onUnfollowed: (note: string) => void = () => {},
): Promise<string | null> {
  const pollMs = deps.rolloutPollMs ?? 2000;
  const followed: readonly string[] = FOLLOWED_KINDS;
  for (const object of objects.filter((o) => followed.includes(o.kind))) {
    const ref = refOf(object);
    for (;;) {
      const workload = await deps.cluster.get(ref);
      if (!workload) return `${ref.kind.toLowerCase()} ${ref.name} disappeared during its rollout`;
      const state = workloadRollout(workload);
      if (state.kind === "available") break;
      if (state.kind === "unfollowed") {
        onUnfollowed(state.reason);
        break;
      }
      if (state.kind === "failed") return state.reason;
      if (deps.clock.now() >= deadline) return `rollout timed out: ${state.reason}`;
      await deps.sleep(pollMs);
    }
  }
  return null;
}

async function rollBack(
  deps: DeployEnvironmentDeps,
  state: EnvironmentState,
  lastGood: LastGoodRecord,
  applied: readonly KubeObject[],
  failure: string,
  timeoutMs: number,
  conclude: Conclude,
  onRecreated: (object: string) => void,
): Promise<DeployOutcome> {
  if (!lastGood || "unusable" in lastGood || lastGood.sha === state.sha) {
    const why =
      lastGood && "unusable" in lastGood
        ? `the last good revision was not rolled back to, its record is not usable: ${lastGood.unusable}`
        : "no earlier good revision to roll back to";
    return conclude(
      { ...state, status: "failed", rolloutDeadline: null, rollingBackTo: null },
      { status: "failed", reason: `${failure}; ${why}`, url: state.url },
    );
  }
  // The rollback waits again: the namespace says so first, or reconcile would fail it meanwhile.
  const deadline = new Date(deps.clock.now().getTime() + timeoutMs);
  const stopped = await conclude.extend(deadline, lastGood.sha);
  // Another deploy wrote the namespace since (a newer commit, which applied its own objects over this
  // one's, or the environment's deletion): restoring now would put the last good revision over the
  // newer one, which would then report succeeded with the older objects running.
  if (stopped && !stopped.sameAttempt) return stopped.stop;
  // Reconcile marked this attempt failed: restored all the same, the failed revision is broken.
  let lost: DeployOutcome | null;
  try {
    lost = await applyHeld(deps.cluster, lastGood.objects, conclude.lost, onRecreated);
  } catch (error) {
    // The last good revision refused (a policy added since it ran): no retry restores it, so the
    // deploy ends failed, saying both what failed and why the rollback could not happen.
    if (!refusedByCluster(error)) throw error;
    if (stopped) return stopped.stop;
    return conclude(
      { ...state, status: "failed", rolloutDeadline: null, rollingBackTo: null },
      {
        status: "failed",
        reason: `${failure}; the rollback to ${lastGood.sha} was refused by the cluster: ${error.message}`,
        url: state.url,
      },
    );
  }
  if (lost) return lost;
  // Each delete only while the namespace is still this deploy's: a newer deploy that took it since
  // may have applied one of these objects as its own, and must not lose it.
  try {
    await removeAdded(deps.cluster, state, lastGood.objects, applied, conclude.owns);
  } catch (error) {
    const stop = await conclude.lost();
    if (stop) return stop;
    throw error;
  }
  if (stopped) return stopped.stop;
  const rollback = await waitForRollout(deps, lastGood.objects, deadline);
  const reason = `${failure}; rolled back to ${lastGood.sha}${rollback ? ` (but that rollout also failed: ${rollback})` : ""}`;
  return conclude(
    {
      ...state,
      sha: lastGood.sha,
      pipelineId: lastGood.pipelineId,
      status: "rolled_back",
      deployedAt: deps.clock.now(),
      rolloutDeadline: null,
      rollingBackTo: null,
    },
    { status: "rolled_back", reason, url: state.url },
  );
}
