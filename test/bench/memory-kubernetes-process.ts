/**
 * The in-memory Kubernetes API in its own process, for benchmarks whose client must not share its
 * event loop (and core) with the server's work, like a real API server. Driven over IPC (`fork`):
 * answers `{ ready: { kubeconfig } }` once listening, then one reply per request, in order.
 */
import { type KubeObject, startMemoryKubernetes } from "../../shared/local/memory-kubernetes/index.js";

export type MemoryKubernetesRequest =
  | { op: "put"; objects: KubeObject[] }
  | { op: "latency"; ms: number }
  | { op: "reset" }
  | { op: "stats" }
  | { op: "cpu" }
  | { op: "list"; apiVersion: string; kind: string; namespace?: string };

export interface StatsReply {
  requests: number;
  byVerb: Record<string, number>;
  inFlightMax: number;
}

const options = JSON.parse(process.argv[2] ?? "{}") as {
  rolloutDelayMs?: number;
  namespaceFinalizeMs?: number;
};
const k8s = await startMemoryKubernetes(options);

process.on("message", (request: MemoryKubernetesRequest) => {
  switch (request.op) {
    case "put":
      for (const object of request.objects) k8s.store.put(object);
      return process.send?.({ put: request.objects.length });
    case "latency":
      k8s.faults.latencyMs = request.ms;
      return process.send?.({ latency: request.ms });
    case "reset":
      k8s.stats.reset();
      return process.send?.({ reset: true });
    case "stats": {
      const { requests, byVerb, inFlightMax } = k8s.stats;
      return process.send?.({ requests, byVerb, inFlightMax } satisfies StatsReply);
    }
    case "cpu": {
      const { user, system } = process.cpuUsage();
      return process.send?.({ ms: (user + system) / 1000 });
    }
    case "list":
      return process.send?.({ items: k8s.store.list(request.apiVersion, request.kind, request.namespace) });
  }
});
process.on("disconnect", () => void k8s.close().then(() => process.exit(0)));
process.send?.({ ready: { kubeconfig: k8s.kubeconfig } });
