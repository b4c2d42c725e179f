/**
 * What keeps a stopped environment's namespace readable until its stop has told what ran there.
 *
 * A stop reads the commit that ran (`kubler.dev/sha`, …) from the namespace's annotations, deletes
 * the namespace, then publishes `Environment Deleted` with it. When that publish fails, the bus
 * retries the stop a minute or more later, by when a namespace has normally been emptied and is
 * gone, annotations and all. So before deleting, the stop leaves a ConfigMap in the namespace with
 * Kubler's finalizer: the namespace controller empties everything else and then waits on it,
 * keeping the namespace Terminating with its annotations (a real API server and the embedded one
 * alike), and the stop lets it go once the commit is told. No second copy of the annotations is kept
 * anywhere: the namespace itself stays the record.
 */
import { STOP_HOLD_NAME } from "../domain/deploy-manifests.js";
import { LABEL, MANAGED_BY_KUBLER } from "../domain/environment.js";
import { finalizersOtherThan } from "../domain/kube-object.js";
import { KubernetesConflictError } from "../errors.js";
import type { EnvironmentCluster, FinalizerRemover, ObjectRef } from "../ports.js";

/** Its finalizer: on-call finds it named in a namespace stuck Terminating (the sweep's skip line). */
export const STOP_HOLD_FINALIZER = "kubler.dev/environment-deleted";

/**
 * How long after its delete a held namespace is left to its stop's own attempts before the sweep
 * tells what ran there and lets it go (a stop dead-lettered, its retries spent): longer than a stop's
 * three attempts (Lambda's async retries, 1 and 2 minutes apart) at the function's 5-minute timeout.
 * Not the bus's whole 6-hour event age: the sweep publishes the same Environment Deleted itself, so a
 * throttled retry that comes later only finds the namespace gone, and meanwhile the environment
 * cannot be deployed again (its namespace name is taken).
 */
export const STOP_HOLD_GRACE_MS = 30 * 60_000;

/** How often a release is tried again over a fresh read: the namespace controller writes meanwhile. */
const RELEASE_ATTEMPTS = 3;

export type StopHoldCluster = Pick<EnvironmentCluster, "apply" | "get"> & FinalizerRemover;

function holdRef(namespace: string): ObjectRef {
  return { apiVersion: "v1", kind: "ConfigMap", namespace, name: STOP_HOLD_NAME };
}

/**
 * Leaves the hold in a namespace about to be deleted (a Terminating namespace takes no new object,
 * so never after the delete). Applying it again is harmless.
 *
 * @example
 * await holdUntilTold(cluster, "group-app-review-x-1a2b3c4d");
 * await cluster.delete({ apiVersion: "v1", kind: "Namespace", name: "group-app-review-x-1a2b3c4d" });
 */
export async function holdUntilTold(cluster: StopHoldCluster, namespace: string): Promise<void> {
  await cluster.apply({
    apiVersion: "v1",
    kind: "ConfigMap",
    metadata: {
      name: STOP_HOLD_NAME,
      namespace,
      // Not the environment's labels: a deploy's prune selects on those, and must never see it.
      labels: { [LABEL.MANAGED_BY]: MANAGED_BY_KUBLER },
      finalizers: [STOP_HOLD_FINALIZER],
    },
    data: {
      why: "Kubler's cleanup-environments keeps this namespace Terminating until it has published Environment Deleted for it (docs/operations.md)",
    },
  });
}

/**
 * Whether the namespace is held by a stop: its hold carries Kubler's finalizer.
 *
 * @example
 * if (await isHeld(cluster, namespace)) await letGo(cluster, namespace);
 */
export async function isHeld(cluster: Pick<EnvironmentCluster, "get">, namespace: string): Promise<boolean> {
  const hold = await cluster.get(holdRef(namespace));
  return finalizersOtherThan(hold, STOP_HOLD_FINALIZER) !== null;
}

/**
 * Removes Kubler's finalizer from the hold, leaving any other, so the namespace can go. `false` when
 * there was none to remove (never left, already let go, or the namespace is gone).
 *
 * @example
 * await letGo(cluster, "group-app-review-x-1a2b3c4d"); // true
 */
export async function letGo(cluster: StopHoldCluster, namespace: string): Promise<boolean> {
  const ref = holdRef(namespace);
  for (let attempt = 1; ; attempt++) {
    const hold = await cluster.get(ref);
    const keep = finalizersOtherThan(hold, STOP_HOLD_FINALIZER);
    const { uid, resourceVersion } = hold?.metadata ?? {};
    if (!uid || !resourceVersion || !keep) return false;
    try {
      return (await cluster.removeFinalizers(ref, { uid, resourceVersion }, { keep })) === "removed";
    } catch (error) {
      if (!(error instanceof KubernetesConflictError) || attempt >= RELEASE_ATTEMPTS) throw error;
    }
  }
}
