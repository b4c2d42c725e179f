/**
 * Whether a Deployment's rollout is done, going, or failed: the same reading as
 * `kubectl rollout status` (https://github.com/kubernetes/kubectl/blob/master/pkg/polymorphichelpers/rollout_status.go).
 */

export type RolloutState =
  | { kind: "available" }
  | { kind: "progressing"; reason: string }
  | { kind: "failed"; reason: string };

interface DeploymentLike {
  metadata: { name: string; generation?: number };
  spec?: { replicas?: number };
  status?: {
    observedGeneration?: number;
    replicas?: number;
    updatedReplicas?: number;
    availableReplicas?: number;
    conditions?: { type: string; status: string; reason?: string; message?: string }[];
  };
}

/**
 * @example
 * deploymentRollout(deployment); // { kind: "progressing", reason: "1 of 3 updated replicas are available" }
 */
export function deploymentRollout(deployment: DeploymentLike): RolloutState {
  const { name, generation = 0 } = deployment.metadata;
  const status = deployment.status ?? {};
  if ((status.observedGeneration ?? 0) < generation) {
    return { kind: "progressing", reason: `waiting for deployment ${name} spec update to be observed` };
  }
  const progressing = status.conditions?.find((c) => c.type === "Progressing");
  if (progressing?.reason === "ProgressDeadlineExceeded") {
    return { kind: "failed", reason: `deployment ${name} exceeded its progress deadline` };
  }
  const wanted = deployment.spec?.replicas ?? 1;
  const updated = status.updatedReplicas ?? 0;
  const available = status.availableReplicas ?? 0;
  if (updated < wanted) {
    return { kind: "progressing", reason: `${updated} of ${wanted} replicas of ${name} updated` };
  }
  if ((status.replicas ?? 0) > updated) {
    return {
      kind: "progressing",
      reason: `${(status.replicas ?? 0) - updated} old replicas of ${name} pending termination`,
    };
  }
  if (available < updated) {
    return {
      kind: "progressing",
      reason: `${available} of ${updated} updated replicas of ${name} available`,
    };
  }
  return { kind: "available" };
}
