/**
 * The embedded in-memory Kubernetes API, served over HTTP: the local runtime's default cluster and
 * the test and benchmark cluster for environments. Talk to it with `@kubernetes/client-node` through
 * `kubeconfig`; seed and inspect it through `store`; slow it down or break it through `faults`.
 *
 * Where it behaves like a real API server on purpose (code that works here must work there):
 * - Deleting a namespace that is already Terminating is a 409 Conflict ("The system is ensuring all
 *   content is removed from this namespace..."); a deleted namespace is Terminating (status.phase,
 *   metadata.deletionTimestamp) for `namespaceFinalizeMs`, then it and its content are gone (404).
 * - List items carry no apiVersion/kind; every request needs the kubeconfig's bearer token (or a
 *   token this server issued through TokenRequest); a no-op write keeps the resourceVersion.
 * - Finalizers (metadata.finalizers) hold an object: a DELETE sets its deletionTimestamp and keeps it,
 *   Terminating, until a write (update, patch or apply) empties the list, which removes it; a create of
 *   its name meanwhile is 409 AlreadyExists, and no new finalizer may be added (422). A namespace
 *   being deleted waits for the content its finalizers hold. Nothing here ever releases a finalizer.
 * - An apply whose body names a `metadata.uid` when no object exists (a guarded write over an object
 *   deleted since) is a 409 Conflict ("uid mismatch: … no existing object was found") and creates
 *   nothing; with only a `metadata.resourceVersion` it creates the object.
 * - New namespaces get a `default` ServiceAccount and the `kubernetes.io/metadata.name` label;
 *   default, kube-system, kube-public and kube-node-lease exist from the start.
 * - RBAC for tokens issued through TokenRequest (rbac.ts): Roles, ClusterRoles and their bindings
 *   decide, and a refusal is the API server's 403; a Role or binding they write is held to the
 *   escalation check (rules the writer holds, or `escalate`/`bind`); the kubeconfig's own token is an
 *   unrestricted admin.
 *
 * Where it does not: no watch (a watch is authorized, then refused with 405), no ReplicaSets,
 * ControllerRevisions or nodes (Deployment, StatefulSet and DaemonSet rollouts are simulated, a
 * DaemonSet on one node: see `ROLLOUT_ANNOTATION`), Jobs are simulated (one Pod at a time, which
 * ends Succeeded with a digest as its termination message, Failed: see `BUILD_ANNOTATION`, or
 * evicted: `faults.evictPods`; no container runs; `backoffLimit`, `podFailurePolicy` and
 * `activeDeadlineSeconds` apply, `ttlSecondsAfterFinished` does not), strategic merge patch is a plain merge patch, server-side apply treats
 * lists atomically (but metadata.finalizers, a set whose items each manager owns as it applied them)
 * and tracks only apply managers (no managedFields in answers), and paginated
 * lists read live data rather than a snapshot.
 */
export { ROLLOUT_ANNOTATION } from "./controllers.js";
export type { FaultHandle, FaultInjector, FaultRule } from "./faults.js";
export { BUILD_ANNOTATION, simulatedDigest } from "./jobs.js";
export { MEMORY_TOKEN, startMemoryKubernetes } from "./server.js";
export type {
  KubeObject,
  MemoryKubernetes,
  MemoryKubernetesOptions,
  MemoryKubernetesStats,
  MemoryKubernetesStore,
} from "./types.js";
