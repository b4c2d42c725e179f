/**
 * The shape of Kubernetes objects as Kubler handles them: plain JSON, the fields it names typed.
 */

/** A Kubernetes object as the API serves it; Kubler only reads the fields it names. */
export interface KubeObject {
  apiVersion: string;
  kind: string;
  metadata: {
    name: string;
    namespace?: string;
    labels?: Record<string, string>;
    annotations?: Record<string, string>;
    resourceVersion?: string;
    uid?: string;
    generation?: number;
    creationTimestamp?: string;
    deletionTimestamp?: string;
    [key: string]: unknown;
  };
  [key: string]: unknown;
}

/** Which object: `namespace` is absent for cluster-scoped kinds (Namespace). */
export interface ObjectRef {
  apiVersion: string;
  kind: string;
  name: string;
  namespace?: string;
}

/** What an object was read as, to write over only that: 409 if it changed since. */
export interface Precondition {
  uid?: string;
  resourceVersion?: string;
}

/**
 * `object` to be applied over `read` and nothing else: a resourceVersion (and uid) in a patch, apply
 * included, is a precondition, https://github.com/kubernetes/kubernetes/issues/63104
 *
 * @example
 * await cluster.apply(writtenOver(environmentNamespace(state), listed.metadata)); // 409 if changed since
 */
export function writtenOver(object: KubeObject, { uid, resourceVersion }: Precondition): KubeObject {
  return {
    ...object,
    metadata: {
      ...object.metadata,
      ...(uid ? { uid } : {}),
      ...(resourceVersion ? { resourceVersion } : {}),
    },
  };
}

/**
 * `metadata.finalizers` as the strings it lists (anything else in it ignored); [] for none or no object.
 *
 * @example
 * finalizersOf(held).length > 0; // something still holds it
 */
export function finalizersOf(object: KubeObject | null): string[] {
  const finalizers = object?.metadata.finalizers;
  return Array.isArray(finalizers)
    ? finalizers.filter((item): item is string => typeof item === "string")
    : [];
}

/**
 * The object's finalizers other than `finalizer`, to keep when removing it; null when `finalizer` is
 * not among them (nothing to remove).
 *
 * @example
 * const keep = finalizersOtherThan(job, BUILD_FINALIZER); // ["example.com/hold"], [] or null
 */
export function finalizersOtherThan(object: KubeObject | null, finalizer: string): string[] | null {
  const finalizers = finalizersOf(object);
  return finalizers.includes(finalizer) ? finalizers.filter((item) => item !== finalizer) : null;
}
