/**
 * Deleting what an environment should no longer have: objects of this environment (its labels, its
 * namespace, kinds Kubler applies, never Kubler's own, never one annotated `kubler.dev/prune:
 * disabled`), listed, then deleted by uid. A rollback removes what the failed revision added; a
 * deploy with `deploy.prune: true` removes, once its rollout succeeded, what the new revision dropped.
 */
import { DEPLOYABLE_KINDS, isReservedName } from "../domain/deploy-manifests.js";
import { type EnvironmentState, environmentLabels } from "../domain/environment.js";
import type { KubeObject } from "../domain/kube-object.js";
import { KubernetesError } from "../errors.js";
import type { EnvironmentCluster } from "../ports.js";
import type { KindRef, LastGoodRecord } from "./last-good-record.js";
import { eachListed } from "./list-pages.js";

/**
 * An object annotated `kubler.dev/prune: disabled` is never deleted by Kubler, neither by a prune nor
 * by a rollback's clean-up (Flux's `kustomize.toolkit.fluxcd.io/prune: disabled`). Deleting the
 * namespace (a stop, an expiry) still takes it.
 */
export const PRUNE_ANNOTATION = "kubler.dev/prune";
export const PRUNE_DISABLED = "disabled";

/** What a removal did: `kind/name` of each object deleted (or already gone), and of each one left. */
export interface Removal {
  removed: string[];
  /** `name` is "*" when the kind could not be listed. */
  left: { apiVersion: string; kind: string; name: string; error: Error }[];
}

interface RemoveOptions {
  /** The kinds to list, each with the apiVersion to list it by. */
  kinds: ReadonlyMap<string, string>;
  /** Delete only these `kind/name`s (a rollback: what the failed revision applied); all when absent. */
  only?: ReadonlySet<string>;
  /** Asked before each delete; false stops the removal, leaving the rest for the next deploy. */
  stillOwned?: () => Promise<boolean>;
}

const keyOf = (object: { kind: string; metadata: { name: string } }) =>
  `${object.kind}/${object.metadata.name}`;

/**
 * Deletes the environment's objects of `kinds` that `keep` does not have. Errors of the Kubernetes
 * API are kept per object (or per kind, for a list) in `left`, and the rest goes on; a 404 on
 * delete is success.
 *
 * @example
 * const { removed, left } = await removeObjectsNotIn(cluster, state, lastGood.objects, {
 *   kinds: kindsOf(applied), only: new Set(applied.map((o) => `${o.kind}/${o.metadata.name}`)) });
 */
export async function removeObjectsNotIn(
  cluster: EnvironmentCluster,
  state: EnvironmentState,
  keep: readonly KubeObject[],
  { kinds, only, stillOwned }: RemoveOptions,
): Promise<Removal> {
  const kept = new Set(keep.map(keyOf));
  const labelSelector = Object.entries(environmentLabels(state.gitlab.projectId, state.environment))
    .map(([key, value]) => `${key}=${value}`)
    .join(",");
  const removal: Removal = { removed: [], left: [] };
  // Listed, not read by name: the selector keeps to this environment's objects, and each item comes
  // with the uid it is deleted by.
  const extra: KubeObject[] = [];
  for (const [kind, apiVersion] of kinds) {
    if (!DEPLOYABLE_KINDS[kind]) continue;
    const listed = eachListed((token) =>
      cluster.list(apiVersion, kind, {
        namespace: state.namespace,
        labelSelector,
        limit: 500,
        ...(token ? { continue: token } : {}),
      }),
    );
    try {
      for await (const item of listed) {
        const object = { ...item, apiVersion, kind };
        const key = keyOf(object);
        if (kept.has(key) || (only && !only.has(key)) || isReservedName(object.metadata.name)) continue;
        if (object.metadata.annotations?.[PRUNE_ANNOTATION] === PRUNE_DISABLED) continue;
        extra.push(object);
      }
    } catch (error) {
      if (!(error instanceof KubernetesError)) throw error;
      removal.left.push({ apiVersion, kind, name: "*", error });
    }
  }
  // Deleted once every page is read, so no deletion moves a page boundary; the uid makes sure an
  // object re-created since it was listed is not the one deleted.
  for (const [index, item] of extra.entries()) {
    const ref = { apiVersion: item.apiVersion, kind: item.kind, name: item.metadata.name };
    const error = stillOwned && (await notOwnedSince(stillOwned));
    if (error) {
      for (const rest of extra.slice(index)) {
        removal.left.push({ apiVersion: rest.apiVersion, kind: rest.kind, name: rest.metadata.name, error });
      }
      break;
    }
    try {
      await cluster.delete(
        { ...ref, namespace: state.namespace },
        item.metadata.uid ? { uid: item.metadata.uid } : undefined,
      );
      removal.removed.push(keyOf(item));
    } catch (error) {
      if (!(error instanceof KubernetesError)) throw error;
      removal.left.push({ ...ref, error });
    }
  }
  return removal;
}

/**
 * Why the removal must stop, or null when it may go on. A namespace that cannot be read is not known
 * to be this deploy's still: the removal stops, leaving the rest named, rather than failing a deploy
 * whose rollout succeeded.
 */
async function notOwnedSince(stillOwned: () => Promise<boolean>): Promise<Error | null> {
  try {
    return (await stillOwned())
      ? null
      : new Error("the namespace was written since: a newer deploy or a stop came");
  } catch (error) {
    if (!(error instanceof KubernetesError)) throw error;
    return new Error(`the namespace could not be read to check no newer deploy came: ${error.message}`);
  }
}

/**
 * After a rollback, what the failed revision applied that the last good revision does not have is
 * deleted. Objects earlier good revisions left behind stay (unless `deploy.prune` removed them when
 * they were dropped). The first error is thrown once the rest is done: the bus retries the deploy.
 *
 * @example
 * await removeAdded(cluster, state, lastGood.objects, applied, stillOwned);
 */
export async function removeAdded(
  cluster: EnvironmentCluster,
  state: EnvironmentState,
  keep: readonly KubeObject[],
  applied: readonly KubeObject[],
  /** Asked before each delete, as by a prune: false stops the removal, thrown as its first error. */
  stillOwned: () => Promise<boolean>,
): Promise<void> {
  const kept = new Set(keep.map(keyOf));
  const added = applied.filter((object) => !kept.has(keyOf(object)));
  const { left } = await removeObjectsNotIn(cluster, state, keep, {
    kinds: kindsOf(added),
    only: new Set(added.map(keyOf)),
    stillOwned,
  });
  if (left[0]) throw left[0].error;
}

/** Each kind of `objects` with the apiVersion it is listed by (the last one named wins). */
export function kindsOf(objects: readonly KindRef[]): Map<string, string> {
  return new Map(objects.map((object) => [object.kind, object.apiVersion]));
}

/**
 * The prune of a deploy whose rollout succeeded (`deploy.prune: true`): the environment's objects the
 * new revision no longer has are deleted. Listed are the kinds of the new revision, of the last good
 * one before it, and those an earlier prune could not finish (the record's `unpruned.json`): a bounded
 * number of lists, and what a failed prune left is tried again by the next deploy.
 *
 * Not seen: an object of a kind none of these has, e.g. one a revision older than the last good one
 * dropped before prune was turned on. Kubler then deletes nothing of that kind; deleting the
 * namespace still does. A record that is not usable (a CI job changed it, or the deploy that
 * committed to a newer one died before writing it) still names its kinds, read leniently.
 *
 * @example
 * const removal = await pruneRevision(cluster, state, prepared.objects, lastGood, stillOwned);
 * pruneNote(removal); // "pruned Deployment/worker"
 */
export function pruneRevision(
  cluster: EnvironmentCluster,
  state: EnvironmentState,
  objects: readonly KubeObject[],
  previous: LastGoodRecord,
  stillOwned: () => Promise<boolean>,
): Promise<Removal> {
  // An unusable record is not applied, but the kinds it names are still listed: listing one more kind
  // can only find more of this environment's objects the new revision lacks (see unprunedOf).
  const earlier = !previous
    ? []
    : "unusable" in previous
      ? previous.kinds
      : [...previous.objects, ...previous.unpruned];
  // The new revision's apiVersion wins: it is the one the cluster serves now.
  const kinds = new Map([...kindsOf(earlier), ...kindsOf(objects)]);
  return removeObjectsNotIn(cluster, state, objects, { kinds, stillOwned });
}

/**
 * The kinds a prune left objects of, for the record: the next deploy lists them even when neither
 * its revision nor the last good one has them.
 */
export function unprunedKinds(removal: Removal): KindRef[] {
  return [...kindsOf(removal.left)].map(([kind, apiVersion]) => ({ apiVersion, kind }));
}

/**
 * Objects a prune names in its reason, each list; the audit line names every one. `Deploy Finished`
 * carries the reason, which the deploy clips to stay under the bus's 8 KB: ten names and a count read
 * better than a list of 500 cut off mid-name.
 */
const NAMED_IN_REASON = 10;

/** What a prune did, for the deploy's reason; null when it found nothing to delete. */
export function pruneNote(removal: Removal): string | null {
  const parts: string[] = [];
  if (removal.removed.length > 0) parts.push(`pruned ${namedAtMost(removal.removed)}`);
  if (removal.left.length > 0) {
    const left = removal.left.map(({ kind, name, error }) => `${kind}/${name} (${error.message})`);
    parts.push(`not pruned, the next deploy tries again: ${namedAtMost(left)}`);
  }
  return parts.length > 0 ? parts.join("; ") : null;
}

function namedAtMost(names: readonly string[]): string {
  const named = names.slice(0, NAMED_IN_REASON).join(", ");
  const more = names.length - NAMED_IN_REASON;
  return more > 0 ? `${named} and ${more} more (every one is in the audit line)` : named;
}
