/**
 * The in-memory Kubernetes API for the benchmarks, behind one interface whether it runs in this
 * process or in a child (`memory-kubernetes-process.ts`): in-process its CPU shares the client's
 * event loop, in a child it does not (on a 2-core machine it gets the other core).
 */
import { fork } from "node:child_process";
import { join } from "node:path";
import {
  type KubeObject,
  type MemoryKubernetesOptions,
  startMemoryKubernetes,
} from "../../shared/local/memory-kubernetes/index.js";
import type { MemoryKubernetesRequest, StatsReply } from "./memory-kubernetes-process.js";

export type Placement = "in-process" | "child process";

export interface BenchKubernetes {
  placement: Placement;
  kubeconfig: string;
  /** `store.put` of each object, in order (no HTTP, no counting). */
  put(objects: readonly KubeObject[]): Promise<void>;
  /** `faults.latencyMs`: added to every request. */
  setLatency(ms: number): Promise<void>;
  resetStats(): Promise<void>;
  stats(): Promise<StatsReply>;
  /** CPU time (user + system) the server's process has used so far, in ms; the client's own in-process. */
  cpuMs(): Promise<number>;
  /** `store.list`: what is stored, without HTTP. */
  list(apiVersion: string, kind: string, namespace?: string): Promise<KubeObject[]>;
  close(): Promise<void>;
}

type ServerOptions = Pick<MemoryKubernetesOptions, "rolloutDelayMs" | "namespaceFinalizeMs">;

export async function startBenchKubernetes(
  placement: Placement,
  options: ServerOptions = {},
): Promise<BenchKubernetes> {
  return placement === "in-process" ? inProcess(options) : childProcess(options);
}

async function inProcess(options: ServerOptions): Promise<BenchKubernetes> {
  const k8s = await startMemoryKubernetes(options);
  return {
    placement: "in-process",
    kubeconfig: k8s.kubeconfig,
    put: async (objects) => {
      for (const object of objects) k8s.store.put(object);
    },
    setLatency: async (ms) => {
      k8s.faults.latencyMs = ms;
    },
    resetStats: async () => k8s.stats.reset(),
    stats: async () => ({ ...k8s.stats, byVerb: { ...k8s.stats.byVerb } }),
    cpuMs: async () => cpuMs(),
    list: async (apiVersion, kind, namespace) => k8s.store.list(apiVersion, kind, namespace),
    close: () => k8s.close(),
  };
}

async function childProcess(options: ServerOptions): Promise<BenchKubernetes> {
  const script = join(import.meta.dirname, "memory-kubernetes-process.ts");
  const child = fork(script, [JSON.stringify(options)], {
    execArgv: ["--import", "tsx"],
    stdio: ["ignore", "inherit", "inherit", "ipc"],
    serialization: "advanced",
  });
  // Requests are answered in order: each reply settles the oldest waiting request.
  const waiting: ((reply: unknown) => void)[] = [];
  const ready = new Promise<{ kubeconfig: string }>((resolve, reject) => {
    child.once("exit", (code) => reject(new Error(`memory-kubernetes child exited (${code})`)));
    child.on("message", (message: { ready?: { kubeconfig: string } }) => {
      if (message.ready) resolve(message.ready);
      else waiting.shift()?.(message);
    });
  });
  const ask = <T>(request: MemoryKubernetesRequest) =>
    new Promise<T>((resolve) => {
      waiting.push(resolve as (reply: unknown) => void);
      child.send(request);
    });
  const { kubeconfig } = await ready;
  return {
    placement: "child process",
    kubeconfig,
    put: async (objects) => {
      await ask({ op: "put", objects: [...objects] });
    },
    setLatency: async (ms) => {
      await ask({ op: "latency", ms });
    },
    resetStats: async () => {
      await ask({ op: "reset" });
    },
    stats: () => ask<StatsReply>({ op: "stats" }),
    cpuMs: async () => (await ask<{ ms: number }>({ op: "cpu" })).ms,
    list: async (apiVersion, kind, namespace) =>
      (
        await ask<{ items: KubeObject[] }>({
          op: "list",
          apiVersion,
          kind,
          ...(namespace ? { namespace } : {}),
        })
      ).items,
    close: async () => {
      const exited = new Promise((resolve) => child.once("exit", resolve));
      child.disconnect();
      await exited;
    },
  };
}

/** CPU time (user + system) this process has used so far, in ms. */
export function cpuMs(): number {
  const { user, system } = process.cpuUsage();
  return (user + system) / 1000;
}
