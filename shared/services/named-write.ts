/**
 * A write held to a resourceVersion whose answer may be lost (a timeout, a dropped connection): it
 * may have gone through, and the adapter's retry then meets that very write (409) or gives up
 * (unavailable). Taken for someone else's, the caller would stop, and what the write stands for
 * (a Build Finished, a Deploy Finished) would be told by nobody. So the write carries a name of its
 * own in an annotation, and a failed one reads the object again: carrying that name, the write is
 * this call's.
 */
import { randomUUID } from "node:crypto";
import type { KubeObject, ObjectRef } from "../domain/kube-object.js";
import { KubernetesConflictError, KubernetesUnavailableError } from "../errors.js";
import type { EnvironmentCluster } from "../ports.js";

/**
 * Runs `write` with a fresh id, which it puts in `target.annotation` of what it writes. On a 409 or
 * an unavailable answer, reads `target.ref` again: the object of `target.uid` carrying the id is
 * what the write left, and is returned; else (another writer, nothing written, the read failing)
 * the error stands. The caller's next write of the object drops the annotation by leaving it out
 * (server-side apply, same field manager).
 *
 * @example
 * const written = await writeNamed(cluster, { ref, uid, annotation: "kubler.dev/deploy-write" }, (id) =>
 *   cluster.apply({ ...object, metadata: { ...object.metadata, annotations: { ...annotations, "kubler.dev/deploy-write": id } } }),
 * );
 */
export async function writeNamed(
  cluster: Pick<EnvironmentCluster, "get">,
  target: { ref: ObjectRef; uid: string | undefined; annotation: string },
  write: (id: string) => Promise<KubeObject>,
): Promise<KubeObject> {
  const id = randomUUID();
  try {
    return await write(id);
  } catch (error) {
    // Only these can follow a write that went through; a refusal (403, 422) wrote nothing.
    const unknown = error instanceof KubernetesConflictError || error instanceof KubernetesUnavailableError;
    if (!unknown) throw error;
    const current = await cluster.get(target.ref).catch(() => null);
    const ours =
      current !== null &&
      current.metadata.uid === target.uid &&
      current.metadata.annotations?.[target.annotation] === id;
    if (ours) return current;
    throw error;
  }
}
