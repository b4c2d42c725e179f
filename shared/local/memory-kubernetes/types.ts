/** The public shapes of the in-memory Kubernetes API (re-exported by index.ts). */
import type { FaultInjector } from "./faults.js";

/** Any Kubernetes object as JSON: the same shape the rest of Kubler uses. */
export type { KubeObject } from "../../domain/kube-object.js";

import type { KubeObject } from "../../domain/kube-object.js";

export interface MemoryKubernetesOptions {
  /** ms after a Deployment's, StatefulSet's or DaemonSet's spec changes before it reports rolled out (default 200). */
  rolloutDelayMs?: number;
  /** ms a deleted namespace stays Terminating before it and its objects are gone (default 50). */
  namespaceFinalizeMs?: number;
  /**
   * Decides which workloads' templates are broken (default: pod template annotation
   * `local.kubler.dev/rollout: fail`). After rolloutDelayMs a failing Deployment gets condition
   * Progressing=False reason ProgressDeadlineExceeded; a failing StatefulSet or DaemonSet has its
   * first new pod never ready (they have no progress deadline). None of them becomes rolled out.
   */
  failRollout?: (workload: KubeObject) => boolean;
  /** ms from a Job's creation until its pod has finished and the Job is Complete or Failed (default 20; 0 allowed). */
  jobDelayMs?: number;
  /**
   * Decides which Jobs fail (default: annotation `local.kubler.dev/build: fail` on the Job or its pod
   * template). A failing Job's pods end with exit code 1 and a few log lines; the Job gets condition
   * Failed, reason BackoffLimitExceeded once they pass its backoffLimit (or PodFailurePolicy when a
   * FailJob rule matches). Pods are evicted through `faults.evictPods`.
   */
  failJob?: (job: KubeObject) => boolean;
  /** Default 127.0.0.1. */
  host?: string;
  /** Default 0: an ephemeral port, read it from `url`. */
  port?: number;
}

/** Request counters for benchmarks and tests. */
export interface MemoryKubernetesStats {
  /** Every request answered or pending, discovery and faulted ones included. */
  requests: number;
  /** By verb: get, list, create, update, patch, apply, delete, deletecollection, and discovery. */
  byVerb: Record<string, number>;
  /** The most requests ever in flight at once (since start or the last reset). */
  inFlightMax: number;
  reset(): void;
}

/** Test setup and assertions without HTTP; the same objects the API serves. */
export interface MemoryKubernetesStore {
  /**
   * Writes the object exactly as given (no admission, no defaults, no controllers), filling in uid and
   * creationTimestamp when missing and assigning a new resourceVersion. Returns what is stored.
   */
  put(obj: KubeObject): KubeObject;
  get(apiVersion: string, kind: string, namespace: string | undefined, name: string): KubeObject | undefined;
  /** Sorted by namespace, then name; all namespaces when `namespace` is omitted. */
  list(apiVersion: string, kind: string, namespace?: string): KubeObject[];
}

export interface MemoryKubernetes {
  /** `http://127.0.0.1:PORT`. */
  url: string;
  /**
   * A kubeconfig YAML string (cluster "kubler-memory", insecure-skip-tls-verify true, user token
   * "memory"), current context set, for `KubeConfig.loadFromString`.
   */
  kubeconfig: string;
  faults: FaultInjector;
  stats: MemoryKubernetesStats;
  store: MemoryKubernetesStore;
  /** Stops the controllers' timers, drops open connections (keep-alive and hung ones) and closes the server. */
  close(): Promise<void>;
}
