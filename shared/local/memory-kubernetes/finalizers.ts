/**
 * Finalizers as the API server honours them (metadata.finalizers): deleting an object that has some
 * only marks it (deletionTimestamp, deletionGracePeriodSeconds 0) and it stays, Terminating, until a
 * write empties the list; then it goes. A Terminating object takes no new finalizers.
 * https://kubernetes.io/docs/concepts/overview/working-with-objects/finalizers/
 */
import type { StatusCause } from "./errors.js";
import { cloneJson } from "./json.js";
import { rfc3339 } from "./timestamps.js";
import type { KubeObject } from "./types.js";

export function finalizersOf(object: KubeObject): string[] {
  const { finalizers } = object.metadata;
  return Array.isArray(finalizers)
    ? finalizers.filter((item): item is string => typeof item === "string")
    : [];
}

export function isDeleting(object: KubeObject): boolean {
  return Boolean(object.metadata.deletionTimestamp);
}

/** The object as a DELETE leaves it while finalizers hold it: marked once, kept as it was after that. */
export function markedDeleting(object: KubeObject): KubeObject {
  if (isDeleting(object)) return object;
  const next = cloneJson(object);
  next.metadata.deletionTimestamp = rfc3339();
  next.metadata.deletionGracePeriodSeconds = 0;
  return next;
}

/** A write that empties the finalizers of an object being deleted removes it (registry Store.Update). */
export function releasedByWrite(written: KubeObject): boolean {
  return isDeleting(written) && finalizersOf(written).length === 0;
}

/** ValidateObjectMetaUpdate: no finalizer may be added once the object is being deleted. */
export function finalizerUpdateCauses(previous: KubeObject, next: KubeObject): StatusCause[] {
  if (!isDeleting(previous)) return [];
  const before = new Set(finalizersOf(previous));
  const added = finalizersOf(next).filter((finalizer) => !before.has(finalizer));
  if (added.length === 0) return [];
  return [
    {
      reason: "FieldValueForbidden",
      message: `Forbidden: no new finalizers can be added if the object is being deleted, found new finalizers []string{${added.map((f) => JSON.stringify(f)).join(", ")}}`,
      field: "metadata.finalizers",
    },
  ];
}
