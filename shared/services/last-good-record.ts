/**
 * The last good revision's record (DESIGN §6): the objects of the last deploy that succeeded, kept in
 * the environment's own namespace (ConfigMap `kubler-last-good`) for a rollback to apply, with its
 * digest on the Namespace, where no namespaced Role reaches.
 */
import {
  checkStoredObjects,
  LAST_GOOD_CONFIGMAP,
  lastGoodDigest,
  ManifestFilesError,
  renderManifests,
} from "../domain/deploy-manifests.js";
import { type EnvironmentState, environmentLabels } from "../domain/environment.js";
import type { KubeObject } from "../domain/kube-object.js";
import type { EnvironmentCluster } from "../ports.js";

export interface LastGood {
  sha: string;
  pipelineId: number | null;
  objects: KubeObject[];
}

/** None kept; the last good revision, ready to apply; or a record that must not be applied, and why. */
export type LastGoodRecord = LastGood | { unusable: string } | null;

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
  // Namespaces written before the digest existed have none: their record is still checked below.
  if (state.lastGoodDigest && lastGoodDigest(data) !== state.lastGoodDigest) {
    return { unusable: `${where} was changed since Kubler wrote it (its digest no longer matches)` };
  }
  let stored: unknown;
  try {
    stored = JSON.parse(data["objects.json"]);
  } catch {
    return { unusable: `${where}: objects.json is not JSON` };
  }
  try {
    const { objects } = renderManifests(checkStoredObjects(stored, where), {
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
    };
  } catch (error) {
    if (error instanceof ManifestFilesError) return { unusable: error.message };
    throw error;
  }
}

/** The record of this revision, with the digest the Namespace carries. */
export function lastGoodRecord(
  state: EnvironmentState,
  objects: KubeObject[],
): { data: Record<string, string>; digest: string } {
  const data = {
    sha: state.sha,
    pipelineId: state.pipelineId === null ? "" : String(state.pipelineId),
    "objects.json": JSON.stringify(objects),
  };
  return { data, digest: lastGoodDigest(data) };
}

/** Written after the Namespace that commits to its digest (see deployEnvironment). */
export async function saveLastGood(
  cluster: EnvironmentCluster,
  state: EnvironmentState,
  data: Record<string, string>,
): Promise<void> {
  await cluster.apply({
    apiVersion: "v1",
    kind: "ConfigMap",
    metadata: {
      name: LAST_GOOD_CONFIGMAP,
      namespace: state.namespace,
      labels: environmentLabels(state.gitlab.projectId, state.environment),
    },
    data,
  });
}
