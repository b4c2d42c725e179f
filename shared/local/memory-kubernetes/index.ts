/**
 * The embedded in-memory Kubernetes API, served over HTTP: the local runtime's default cluster and
 * the test and benchmark cluster for environments. Talk to it with `@kubernetes/client-node` through
 * `kubeconfig`; seed and inspect it through `store`; slow it down or break it through `faults`.
 */
export { ROLLOUT_ANNOTATION } from "./controllers.js";
export type { FaultHandle, FaultInjector, FaultRule } from "./faults.js";
export { MEMORY_TOKEN, startMemoryKubernetes } from "./server.js";
export type {
  KubeObject,
  MemoryKubernetes,
  MemoryKubernetesOptions,
  MemoryKubernetesStats,
  MemoryKubernetesStore,
} from "./types.js";
