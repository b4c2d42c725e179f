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
