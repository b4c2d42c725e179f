/**
 * Deleting what an environment should no longer have: objects of this environment (its labels, its
 * namespace, kinds Kubler applies, never Kubler's own), listed, then deleted by uid.
 */
import { DEPLOYABLE_KINDS, isReservedName } from "../domain/deploy-manifests.js";
import { type EnvironmentState, environmentLabels } from "../domain/environment.js";
import type { KubeObject } from "../domain/kube-object.js";
import type { EnvironmentCluster } from "../ports.js";

/**
 * After a rollback, what the failed revision applied that the last good revision does not have is
 * deleted: only objects carrying this environment's labels, in its namespace, of kinds Kubler applies,
 * and never Kubler's own. Objects earlier good revisions left behind stay: successful deploys never
 * prune, so they are the environment's normal state (a PersistentVolumeClaim's data among them).
 */
export async function removeObjectsNotIn(
  cluster: EnvironmentCluster,
  state: EnvironmentState,
  keep: readonly KubeObject[],
  applied: readonly KubeObject[],
): Promise<void> {
  const keyOf = (object: KubeObject) => `${object.kind}/${object.metadata.name}`;
  const kept = new Set(keep.map(keyOf));
  const added = applied.filter((object) => DEPLOYABLE_KINDS[object.kind] && !kept.has(keyOf(object)));
  const addedKeys = new Set(added.map(keyOf));
  const labelSelector = Object.entries(environmentLabels(state.gitlab.projectId, state.environment))
    .map(([key, value]) => `${key}=${value}`)
    .join(",");
  // Listed, not read by name: the selector keeps to this environment's objects, and each item comes
  // with the uid it is deleted by.
  const kinds = new Map(added.map((object) => [object.kind, object.apiVersion]));
  const extra: KubeObject[] = [];
  for (const [kind, apiVersion] of kinds) {
    let page: string | null = null;
    do {
      const list = await cluster.list(apiVersion, kind, {
        namespace: state.namespace,
        labelSelector,
        limit: 500,
        ...(page ? { continue: page } : {}),
      });
      for (const item of list.items) {
        const { name } = item.metadata;
        if (addedKeys.has(`${kind}/${name}`) && !isReservedName(name))
          extra.push({ ...item, apiVersion, kind });
      }
      page = list.continue;
    } while (page !== null);
  }
  // Deleted once every page is read, so no deletion moves a page boundary; the uid makes sure an
  // object re-created since it was listed is not the one deleted.
  for (const item of extra) {
    const ref = {
      apiVersion: item.apiVersion,
      kind: item.kind,
      name: item.metadata.name,
      namespace: state.namespace,
    };
    await cluster.delete(ref, item.metadata.uid ? { uid: item.metadata.uid } : undefined);
  }
}
