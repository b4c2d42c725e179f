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
