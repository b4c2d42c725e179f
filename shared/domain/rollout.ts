/**
 * Whether a Deployment's, StatefulSet's or DaemonSet's rollout is done, going, or failed: the same
 * reading as `kubectl rollout status` (https://github.com/kubernetes/kubectl/blob/master/pkg/polymorphichelpers/rollout_status.go).
 */
import type { KubeObject } from "./kube-object.js";

/** `unfollowed`: nothing to wait for, and no proof the new template runs (`OnDelete`); `reason` says so. */
export type RolloutState =
  | { kind: "available" }
  | { kind: "progressing"; reason: string }
  | { kind: "failed"; reason: string }
  | { kind: "unfollowed"; reason: string };

interface DeploymentLike {
  metadata: { name: string; namespace?: string; generation?: number };
  spec?: { replicas?: number; paused?: boolean };
  status?: {
    observedGeneration?: number;
    replicas?: number;
    updatedReplicas?: number;
    availableReplicas?: number;
    conditions?: { type: string; status: string; reason?: string; message?: string }[];
  };
}

/**
 * kubectl's reading, but for a paused Deployment (`kubectl rollout pause`, or `paused: true` in the
 * manifest): its controller makes no new ReplicaSet and stops no old one until it is resumed, and the
 * progress deadline is not counted meanwhile, so waiting would only reach the rollout timeout (and
 * the rollback's after it) without saying why. It fails at once, naming the pause.
 *
 * @example
 * deploymentRollout(deployment); // { kind: "progressing", reason: "1 of 3 updated replicas are available" }
 */
export function deploymentRollout(deployment: DeploymentLike): RolloutState {
  const { name, generation = 0 } = deployment.metadata;
  const status = deployment.status ?? {};
  if ((status.observedGeneration ?? 0) < generation) {
    return { kind: "progressing", reason: `waiting for deployment ${name} spec update to be observed` };
  }
  // The API server refusing its pods (Pod Security, a quota, a webhook) shows only here, copied from
  // the ReplicaSet: the rollout then waits for nothing, and its timeout would not say why.
  const replicaFailure = status.conditions?.find((c) => c.type === "ReplicaFailure" && c.status === "True");
  const cause = replicaFailure?.message ? `; its pods cannot be created: ${replicaFailure.message}` : "";
  const progressing = status.conditions?.find((c) => c.type === "Progressing");
  if (progressing?.reason === "ProgressDeadlineExceeded") {
    return { kind: "failed", reason: `deployment ${name} exceeded its progress deadline${cause}` };
  }
  const wanted = deployment.spec?.replicas ?? 1;
  const updated = status.updatedReplicas ?? 0;
  const available = status.availableReplicas ?? 0;
  // Waiting on the pause: old pods beside the updated ones (no new ReplicaSet is made while paused),
  // or none at all. Fewer updated than wanted alone is a scale-up, which a paused Deployment still does.
  const stalled = (status.replicas ?? 0) > updated || (updated === 0 && wanted > 0);
  if (stalled && deployment.spec?.paused === true) {
    const where = deployment.metadata.namespace ? ` -n ${deployment.metadata.namespace}` : "";
    return {
      kind: "failed",
      reason: `deployment ${name} is paused (spec.paused): its new template does not roll out until it is resumed (kubectl rollout resume deployment/${name}${where})`,
    };
  }
  if (updated < wanted) {
    return { kind: "progressing", reason: `${updated} of ${wanted} replicas of ${name} updated${cause}` };
  }
  if ((status.replicas ?? 0) > updated) {
    return {
      kind: "progressing",
      reason: `${(status.replicas ?? 0) - updated} old replicas of ${name} pending termination${cause}`,
    };
  }
  if (available < updated) {
    return {
      kind: "progressing",
      reason: `${available} of ${updated} updated replicas of ${name} available${cause}`,
    };
  }
  return { kind: "available" };
}

interface StatefulSetLike {
  metadata: { name: string; generation?: number };
  spec?: {
    replicas?: number;
    updateStrategy?: { type?: string; rollingUpdate?: { partition?: number } };
  };
  status?: {
    observedGeneration?: number;
    readyReplicas?: number;
    updatedReplicas?: number;
    currentRevision?: string;
    updateRevision?: string;
  };
}

/**
 * kubectl's reading: observed, every replica ready, then the pods from the partition's ordinal up
 * updated (a partition of 0, the default, means all of them). A StatefulSet has no progress
 * deadline: a pod that never gets ready (a broken image) keeps it progressing until Kubler's own
 * rollout timeout. `OnDelete` replaces no pod on a template change, so there is no rollout to wait
 * for: once its pods are ready it is `unfollowed`, which the deploy names rather than calling it
 * rolled out (kubectl refuses it: "rollout status is only available for RollingUpdate strategy type").
 *
 * @example
 * statefulSetRollout(statefulSet); // { kind: "progressing", reason: "1 of 3 pods of statefulset db not ready" }
 */
export function statefulSetRollout(statefulSet: StatefulSetLike): RolloutState {
  const { name, generation = 0 } = statefulSet.metadata;
  const status = statefulSet.status ?? {};
  const observed = status.observedGeneration ?? 0;
  if (observed === 0 || observed < generation) {
    return { kind: "progressing", reason: `waiting for statefulset ${name} spec update to be observed` };
  }
  const replicas = statefulSet.spec?.replicas ?? 1;
  const ready = status.readyReplicas ?? 0;
  if (ready < replicas) {
    return {
      kind: "progressing",
      reason: `${replicas - ready} of ${replicas} pods of statefulset ${name} not ready`,
    };
  }
  const strategy = statefulSet.spec?.updateStrategy;
  if (strategy?.type === "OnDelete") return unfollowed(`statefulset ${name}`);
  const updated = status.updatedReplicas ?? 0;
  if (strategy?.rollingUpdate) {
    const wanted = replicas - (strategy.rollingUpdate.partition ?? 0);
    if (updated < wanted) {
      return {
        kind: "progressing",
        reason: `${updated} of ${wanted} new pods of statefulset ${name} updated`,
      };
    }
    return { kind: "available" };
  }
  if (status.updateRevision !== status.currentRevision) {
    return {
      kind: "progressing",
      reason: `statefulset ${name} rolling update to revision ${status.updateRevision} not complete: ${updated} pods updated`,
    };
  }
  return { kind: "available" };
}

interface DaemonSetLike {
  metadata: { name: string; generation?: number };
  spec?: { updateStrategy?: { type?: string } };
  status?: {
    observedGeneration?: number;
    desiredNumberScheduled?: number;
    updatedNumberScheduled?: number;
    numberAvailable?: number;
  };
}

/**
 * kubectl's reading: observed, a new pod on every node that should run one, each available. No
 * progress deadline either; `OnDelete` as for a StatefulSet (its pods available, then `unfollowed`).
 *
 * @example
 * daemonSetRollout(daemonSet); // { kind: "progressing", reason: "1 of 2 new pods of daemon set agent updated" }
 */
export function daemonSetRollout(daemonSet: DaemonSetLike): RolloutState {
  const { name, generation = 0 } = daemonSet.metadata;
  const status = daemonSet.status ?? {};
  if ((status.observedGeneration ?? 0) < generation) {
    return { kind: "progressing", reason: `waiting for daemon set ${name} spec update to be observed` };
  }
  const desired = status.desiredNumberScheduled ?? 0;
  const available = status.numberAvailable ?? 0;
  if (daemonSet.spec?.updateStrategy?.type === "OnDelete") {
    if (available < desired) {
      return {
        kind: "progressing",
        reason: `${available} of ${desired} pods of daemon set ${name} available`,
      };
    }
    return unfollowed(`daemon set ${name}`);
  }
  const updated = status.updatedNumberScheduled ?? 0;
  if (updated < desired) {
    return { kind: "progressing", reason: `${updated} of ${desired} new pods of daemon set ${name} updated` };
  }
  if (available < desired) {
    return {
      kind: "progressing",
      reason: `${available} of ${desired} updated pods of daemon set ${name} available`,
    };
  }
  return { kind: "available" };
}

function unfollowed(workload: string): RolloutState {
  return {
    kind: "unfollowed",
    reason: `${workload} has updateStrategy OnDelete: its pods take the new template only when deleted, so its rollout is not followed`,
  };
}

/** The kinds whose rollout a deploy waits for, as `kubectl rollout status` can. */
export const FOLLOWED_KINDS = ["Deployment", "StatefulSet", "DaemonSet"] as const;

/**
 * The rollout of a Deployment, StatefulSet or DaemonSet as read from the API (throws for other kinds:
 * filter with `FOLLOWED_KINDS`).
 *
 * @example
 * objects.filter((o) => FOLLOWED_KINDS.includes(o.kind)).map(workloadRollout);
 */
export function workloadRollout(object: KubeObject): RolloutState {
  switch (object.kind) {
    case "Deployment":
      return deploymentRollout(object as DeploymentLike);
    case "StatefulSet":
      return statefulSetRollout(object as StatefulSetLike);
    case "DaemonSet":
      return daemonSetRollout(object as DaemonSetLike);
    default:
      throw new Error(`no rollout to follow for ${object.kind}`);
  }
}
