/**
 * The last good revision's record (DESIGN §6): the objects of the last deploy that succeeded, kept in
 * the environment's own namespace (ConfigMap `kubler-last-good`) for a rollback to apply, with its
 * digest on the Namespace, where no namespaced Role reaches. The data of its Secrets is kept apart, in
 * Secret `kubler-last-good`: a ConfigMap is readable where Secrets are not (the `view` ClusterRole, a
 * CI job's list on ConfigMaps) and is not covered by Secrets' encryption at rest.
 */
import {
  checkStoredObjects,
  DEPLOYABLE_KINDS,
  isReservedName,
  LAST_GOOD_CONFIGMAP,
  lastGoodDigest,
  ManifestFilesError,
  renderManifests,
} from "../domain/deploy-manifests.js";
import { type EnvironmentState, environmentLabels } from "../domain/environment.js";
import { finalizersOf, type KubeObject } from "../domain/kube-object.js";
import { KubernetesConflictError, KubernetesInvalidError } from "../errors.js";
import type { EnvironmentCluster, FinalizerRemover, ObjectRef } from "../ports.js";

/** What writes Kubler's own objects needs: replacing one may take releasing it from a finalizer. */
export type OwnedObjectsCluster = EnvironmentCluster & FinalizerRemover;

/** A kind of object, with the apiVersion it is listed by. */
export interface KindRef {
  apiVersion: string;
  kind: string;
}

export interface LastGood {
  sha: string;
  pipelineId: number | null;
  objects: KubeObject[];
  /** Kinds the prune of this revision's deploy left objects of: the next prune lists them again. */
  unpruned: KindRef[];
}

/** The record's key for `LastGood.unpruned`. */
const UNPRUNED_KEY = "unpruned.json";
/** The key, in Secret `kubler-last-good`, of the revision's Secrets' `data` and `stringData` by name. */
const SECRETS_KEY = "secrets.json";

type SecretPayload = { data?: unknown; stringData?: unknown };

/**
 * None kept; the last good revision, ready to apply; or a record that must not be applied, and why,
 * with the kinds it names (objects and unpruned, read leniently) for a prune to list.
 */
export type LastGoodRecord = LastGood | { unusable: string; kinds: KindRef[] } | null;

/**
 * The record lives in the project's own namespace, where a manifest or a CI job might have written it,
 * so its objects are input like the project's manifests: the same checks (allowed kinds only, no
 * reserved names) and the same rendering (namespace forced, contract labels), else not applied at all.
 */
export async function readLastGood(
  cluster: EnvironmentCluster,
  state: EnvironmentState,
): Promise<LastGoodRecord> {
  const map = await cluster.get({
    apiVersion: "v1",
    kind: "ConfigMap",
    name: LAST_GOOD_CONFIGMAP,
    namespace: state.namespace,
  });
  const data = map?.data as Record<string, string> | undefined;
  if (!data?.["objects.json"] || !data.sha) return null;
  const where = `ConfigMap ${LAST_GOOD_CONFIGMAP}`;
  let stored: unknown;
  try {
    stored = JSON.parse(data["objects.json"]);
  } catch {
    return { unusable: `${where}: objects.json is not JSON`, kinds: unprunedOf(data[UNPRUNED_KEY]) };
  }
  const unusable = (why: string) => ({
    unusable: why,
    kinds: [...kindRefsOf(stored), ...unprunedOf(data[UNPRUNED_KEY])],
  });
  // Namespaces written before the digest existed have none: their record is still checked below, and
  // is one from before Secrets' data was kept apart (which came with the digest), so none is merged.
  let secrets: string | undefined;
  if (state.lastGoodDigest) {
    const kept = hasSecrets(stored) ? await readSecretsData(cluster, state) : undefined;
    // Tried without it too: a record from before kept its Secrets' data in objects.json.
    const match = (kept === undefined ? [data] : [{ ...data, [SECRETS_KEY]: kept }, data]).find(
      (candidate) => lastGoodDigest(candidate) === state.lastGoodDigest,
    );
    if (!match) return unusable(`${where} was changed since Kubler wrote it (its digest no longer matches)`);
    secrets = match[SECRETS_KEY];
  }
  try {
    const checked = checkStoredObjects(stored, where);
    if (secrets !== undefined) withSecretsData(checked, secrets, where);
    const { objects } = renderManifests(checked, {
      namespace: state.namespace,
      labels: environmentLabels(state.gitlab.projectId, state.environment),
      sha: data.sha,
      // Kept as they were applied: images already pinned, the pull secret already listed.
      image: null,
      pullSecret: null,
    });
    const pipelineId = Number(data.pipelineId);
    return {
      sha: data.sha,
      pipelineId: data.pipelineId && Number.isSafeInteger(pipelineId) ? pipelineId : null,
      objects,
      unpruned: unprunedOf(data[UNPRUNED_KEY]),
    };
  } catch (error) {
    if (error instanceof ManifestFilesError) return unusable(error.message);
    throw error;
  }
}

/**
 * What Kubernetes lets a ConfigMap's or a Secret's values hold together (`MaxSecretSize`, 1 MiB): a
 * larger record is refused with 422, after the Namespace committed to its digest, and every retry
 * fails the same.
 */
const MAX_RECORD_BYTES = 1024 * 1024;
/** Room left for the record's other values: sha, pipelineId and unpruned.json (a few deployable kinds). */
const RECORD_MARGIN_BYTES = 8 * 1024;

/**
 * Why the record of these objects would not fit, or null: its ConfigMap keeps the objects without
 * their Secrets' data, Secret `kubler-last-good` that data, and Kubernetes holds 1 MiB in each.
 * Checked before a deploy applies anything, so manifests too large end as a failed deploy that says
 * so, not as a deploy that succeeded on the cluster and is retried until its events are dropped.
 *
 * @example
 * lastGoodSizeProblem(objects); // "the objects take 1200345 bytes as JSON, more than the 1040384 bytes ..."
 */
export function lastGoodSizeProblem(objects: readonly KubeObject[]): string | null {
  const { kept, payloads } = apartFromSecretsData(objects);
  const limit = MAX_RECORD_BYTES - RECORD_MARGIN_BYTES;
  const parts = [
    { what: "the objects take", json: JSON.stringify(kept), where: "ConfigMap" },
    { what: "the Secrets' data takes", json: JSON.stringify(payloads), where: "Secret" },
  ];
  for (const { what, json, where } of parts) {
    const bytes = Buffer.byteLength(json);
    if (bytes > limit) {
      return `${what} ${bytes} bytes as JSON, more than the ${limit} bytes Kubler can keep of a revision to roll back to (${where} ${LAST_GOOD_CONFIGMAP}; Kubernetes holds 1 MiB in a ${where}): keep large data out of the manifests (mount it from a volume or an image, or fetch it at start-up)`;
    }
  }
  return null;
}

/** The objects as the record's ConfigMap keeps them, and their Secrets' data and stringData by name. */
function apartFromSecretsData(objects: readonly KubeObject[]): {
  kept: KubeObject[];
  payloads: Record<string, SecretPayload>;
} {
  const payloads: Record<string, SecretPayload> = {};
  const kept = objects.map((object) => {
    if (object.kind !== "Secret") return object;
    const { data, stringData, ...rest } = object;
    payloads[object.metadata.name] = { data, stringData };
    return rest as KubeObject;
  });
  return { kept, payloads };
}

/** A revision's record: the ConfigMap's data, its Secrets' data (null: it has none), and the digest of both. */
export interface RecordToSave {
  data: Record<string, string>;
  secrets: string | null;
  digest: string;
}

/** The record of this revision, with the digest the Namespace carries. */
export function lastGoodRecord(state: EnvironmentState, objects: KubeObject[]): RecordToSave {
  const { kept, payloads } = apartFromSecretsData(objects);
  const data = {
    sha: state.sha,
    pipelineId: state.pipelineId === null ? "" : String(state.pipelineId),
    "objects.json": JSON.stringify(kept),
  };
  const secrets = Object.keys(payloads).length > 0 ? JSON.stringify(payloads) : null;
  return {
    data,
    secrets,
    digest: lastGoodDigest(secrets === null ? data : { ...data, [SECRETS_KEY]: secrets }),
  };
}

function hasSecrets(stored: unknown): boolean {
  return (
    Array.isArray(stored) && stored.some((item) => (item as { kind?: unknown } | null)?.kind === "Secret")
  );
}

/** `secrets.json` of Secret `kubler-last-good`, or undefined when there is none. */
async function readSecretsData(
  cluster: EnvironmentCluster,
  state: EnvironmentState,
): Promise<string | undefined> {
  const secret = await cluster.get({
    apiVersion: "v1",
    kind: "Secret",
    name: LAST_GOOD_CONFIGMAP,
    namespace: state.namespace,
  });
  const encoded = (secret?.data as Record<string, unknown> | undefined)?.[SECRETS_KEY];
  return typeof encoded === "string" ? Buffer.from(encoded, "base64").toString("utf8") : undefined;
}

/** Puts each Secret's data back, from the `secrets.json` the digest vouched for. */
function withSecretsData(objects: KubeObject[], secrets: string, where: string): void {
  let payloads: unknown;
  try {
    payloads = JSON.parse(secrets);
  } catch {
    throw new ManifestFilesError(`Secret ${LAST_GOOD_CONFIGMAP}: ${SECRETS_KEY} is not JSON`);
  }
  for (const object of objects) {
    if (object.kind !== "Secret") continue;
    const payload = (payloads as Record<string, SecretPayload> | null)?.[object.metadata.name];
    if (typeof payload !== "object" || payload === null) {
      throw new ManifestFilesError(`${where}: Secret ${object.metadata.name} has no data kept`);
    }
    if (payload.data !== undefined) object.data = payload.data;
    if (payload.stringData !== undefined) object.stringData = payload.stringData;
  }
}

/**
 * Not covered by the digest (it is not part of the revision), so read leniently: only deployable kinds
 * in their own API group, anything else dropped. A job that can write the record can at most make a
 * prune list more kinds, where it still deletes only this environment's objects the revision lacks.
 */
function unprunedOf(text: string | undefined): KindRef[] {
  try {
    return kindRefsOf(JSON.parse(text ?? "[]"));
  } catch {
    return [];
  }
}

/**
 * `v1`, `apps/v1`, `batch/v1beta1`: the record is writable by CI jobs, and the apiVersion becomes
 * part of a list URL, so nothing else (`v1?x=`, `/../../api/v1`) is taken.
 */
const API_VERSION = /^(?:[a-z0-9]([a-z0-9.-]*[a-z0-9])?\/)?v[0-9]+(?:(?:alpha|beta)[0-9]+)?$/;

/** The deployable kinds (in their own API group) of a list of objects or kinds; anything else dropped. */
function kindRefsOf(value: unknown): KindRef[] {
  if (!Array.isArray(value)) return [];
  return value.flatMap((item: Partial<KindRef> | null) => {
    const { apiVersion, kind } = item ?? {};
    if (typeof apiVersion !== "string" || typeof kind !== "string" || !API_VERSION.test(apiVersion))
      return [];
    const group = apiVersion.includes("/") ? apiVersion.split("/")[0] : "";
    return DEPLOYABLE_KINDS[kind]?.group === group ? [{ apiVersion, kind }] : [];
  });
}

/**
 * Written after the Namespace that commits to its digest (see deployEnvironment), with the kinds its
 * prune left objects of, if any. `onReplaced` hears of each object it had to replace (`applyOwned`).
 */
export async function saveLastGood(
  cluster: OwnedObjectsCluster,
  state: EnvironmentState,
  record: Pick<RecordToSave, "data" | "secrets">,
  unpruned: readonly KindRef[] = [],
  onReplaced?: (object: string) => void,
): Promise<void> {
  const labels = environmentLabels(state.gitlab.projectId, state.environment);
  // First: a ConfigMap written without it would name a revision whose Secrets' data is not there.
  if (record.secrets !== null) {
    await applyOwned(
      cluster,
      {
        apiVersion: "v1",
        kind: "Secret",
        metadata: { name: LAST_GOOD_CONFIGMAP, namespace: state.namespace, labels },
        type: "Opaque",
        data: { [SECRETS_KEY]: Buffer.from(record.secrets).toString("base64") },
      },
      onReplaced,
    );
  }
  const data =
    unpruned.length > 0 ? { ...record.data, [UNPRUNED_KEY]: JSON.stringify(unpruned) } : record.data;
  await applyOwned(
    cluster,
    {
      apiVersion: "v1",
      kind: "ConfigMap",
      metadata: {
        name: LAST_GOOD_CONFIGMAP,
        namespace: state.namespace,
        labels,
      },
      data,
    },
    onReplaced,
  );
}

/** What no update may change, only a new object: `immutable: true`, or a Secret's type. */
function refusesUpdates(current: KubeObject, wanted: KubeObject): boolean {
  return current.immutable === true || (wanted.kind === "Secret" && current.type !== wanted.type);
}

/** Replacements one write may make: each is only needed again if someone wrote the name meanwhile. */
const MAX_REPLACEMENTS = 2;

/**
 * Server-side applies one of Kubler's own objects in an environment namespace (`isReservedName`), and
 * replaces the object of that name when the cluster refuses to update it (422) because it is
 * `immutable: true` or a Secret of another type. A CI job may write those names where the Role grants
 * the kind (patch on ConfigMaps, create on Secrets): updating in place would then fail every later
 * deploy until someone deleted the object by hand. The delete is held to the uid and resourceVersion
 * read, so only the object that refused is removed; finalizers holding it (Kubler sets none on these
 * objects) are then removed too, or it would stay Terminating and refuse every write the same.
 * `onReplaced` gets its `Kind/name`, with the finalizers removed if any (never its data), for the
 * audit line. Any other name or refusal, or a refusal with nothing there, is thrown as it came.
 *
 * @example
 * await applyOwned(cluster, pullSecret, (object) => replaced.push(object)); // "Secret/kubler-registry"
 */
export async function applyOwned(
  cluster: OwnedObjectsCluster,
  object: KubeObject,
  onReplaced?: (object: string) => void,
): Promise<KubeObject> {
  const { kind, apiVersion } = object;
  const { name, namespace } = object.metadata;
  const ref = { apiVersion, kind, name, namespace };
  const released: string[] = [];
  for (let replaced = 0; ; replaced++) {
    try {
      const written = await cluster.apply(object);
      if (replaced > 0)
        onReplaced?.(
          `${kind}/${name}${released.length > 0 ? ` (finalizers removed: ${[...new Set(released)].join(", ")})` : ""}`,
        );
      return written;
    } catch (error) {
      if (
        !(error instanceof KubernetesInvalidError) ||
        !isReservedName(name) ||
        replaced === MAX_REPLACEMENTS
      )
        throw error;
      const current = await cluster.get(ref);
      // Any other 422 (an admission policy's, whose default reason is Invalid) is not cured by a new
      // object: deleting would only lose a pull secret pods need, or the record a rollback needs.
      if (!current || !refusesUpdates(current, object)) throw error;
      const { uid, resourceVersion } = current.metadata;
      try {
        await cluster.delete(ref, { uid, resourceVersion });
      } catch (deleteError) {
        // Written since it was read: the next apply meets whatever is there now.
        if (!(deleteError instanceof KubernetesConflictError)) throw deleteError;
        continue;
      }
      if (finalizersOf(current).length > 0) released.push(...(await releaseDeleted(cluster, ref, uid)));
    }
  }
}

/**
 * The finalizers removed from the object just deleted, which they held Terminating. Removed after the
 * delete, not before: once it is being deleted no finalizer can be added to it, so a job cannot put
 * one back between the two writes. Held to the object as read here; written since (409), it is left
 * to the next attempt, which meets it again.
 */
async function releaseDeleted(
  cluster: OwnedObjectsCluster,
  ref: ObjectRef,
  uid: string | undefined,
): Promise<string[]> {
  const held = await cluster.get(ref);
  const finalizers = held ? finalizersOf(held) : [];
  const { resourceVersion, deletionTimestamp } = held?.metadata ?? {};
  if (!uid || held?.metadata.uid !== uid || !deletionTimestamp || !resourceVersion || finalizers.length === 0)
    return [];
  try {
    await cluster.removeFinalizers(ref, { uid, resourceVersion });
    return finalizers;
  } catch (error) {
    if (!(error instanceof KubernetesConflictError)) throw error;
    return [];
  }
}
