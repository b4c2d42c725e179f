/**
 * The controllers whose effects Kubler waits for: the workload controllers (a Deployment's,
 * StatefulSet's or DaemonSet's rollout becomes done, or stuck, `rolloutDelayMs` after a spec change)
 * and the namespace controller (a deleted namespace stays Terminating, then it and everything in it
 * go). No pods run: the statuses are what a healthy or a stuck rollout would report.
 */
import { createHash } from "node:crypto";
import { finalizersOf, markedDeleting } from "./finalizers.js";
import { deepEqual, isPlainObject, type JsonObject, valueAt } from "./json.js";
import { RESOURCE_TYPES, typeOfKind } from "./resources.js";
import type { ObjectStore } from "./store.js";
import { rfc3339 } from "./timestamps.js";
import type { KubeObject } from "./types.js";

/** Pod template annotation that makes the default `failRollout` fail a workload's rollout. */
export const ROLLOUT_ANNOTATION = "local.kubler.dev/rollout";
export const REVISION_ANNOTATION = "deployment.kubernetes.io/revision";

/** The kinds whose rollouts are simulated. */
const ROLLOUT_KINDS = ["Deployment", "StatefulSet", "DaemonSet"];

export function hasRollout(kind: string): boolean {
  return ROLLOUT_KINDS.includes(kind);
}

export interface ControllerOptions {
  rolloutDelayMs: number;
  namespaceFinalizeMs: number;
  failRollout: (workload: KubeObject) => boolean;
}

/** The default `failRollout`: the pod template asks for it (an image the fake treats as broken). */
export function failsByAnnotation(workload: KubeObject): boolean {
  return valueAt(workload.spec, "template", "metadata", "annotations", ROLLOUT_ANNOTATION) === "fail";
}

export class Controllers {
  readonly #timers = new Set<NodeJS.Timeout>();
  readonly #rollouts = new Map<string, NodeJS.Timeout>();

  constructor(
    private readonly store: ObjectStore,
    private readonly options: ControllerOptions,
  ) {}

  /**
   * Before a Deployment, StatefulSet or DaemonSet is written: keeps a Deployment's revision
   * annotation, and when the spec changed (or the workload is new) reports the new rollout as started.
   */
  prepareRollout(next: KubeObject, previous: KubeObject | undefined): void {
    const specChanged = !previous || !deepEqual(previous.spec, next.spec);
    if (next.kind === "Deployment") {
      const annotations = { ...next.metadata.annotations };
      const previousRevision = Number(previous?.metadata.annotations?.[REVISION_ANNOTATION] ?? 0);
      const templateChanged =
        !previous || !deepEqual(valueAt(previous.spec, "template"), valueAt(next.spec, "template"));
      const revision = templateChanged ? previousRevision + 1 : previousRevision;
      if (revision > 0) annotations[REVISION_ANNOTATION] = String(revision);
      next.metadata.annotations = annotations;
    }
    if (!specChanged) return;
    next.status = workloadStatus(next, "progressing", statusOf(previous));
  }

  /** After a workload's rollout started and was stored: finish it once the delay has passed. */
  scheduleRollout(workload: KubeObject): void {
    const { uid, generation, namespace, name } = workload.metadata;
    if (!uid) return;
    const pending = this.#rollouts.get(uid);
    if (pending) this.#cancel(pending);
    const timer = this.#after(this.options.rolloutDelayMs, () => {
      this.#rollouts.delete(uid);
      const type = typeOfKind(workload.kind);
      const current = this.store.read(type, namespace, name)?.object;
      // A newer spec or a re-created workload has its own rollout.
      if (!current || current.metadata.uid !== uid || current.metadata.generation !== generation) return;
      const phase = this.options.failRollout(current) ? "stuck" : "available";
      current.status = workloadStatus(current, phase, statusOf(current));
      this.store.write(type, current);
    });
    this.#rollouts.set(uid, timer);
  }

  /**
   * After a namespace was marked Terminating: delete its content, then it, once the delay has passed.
   * Content its finalizers hold is only marked, and the namespace waits (checked again after the same
   * delay) until their owners release it, as the namespace controller does.
   */
  scheduleNamespaceFinalization(namespace: KubeObject): void {
    const { name, uid } = namespace.metadata;
    const sweep = () => {
      const namespaces = typeOfKind("Namespace");
      const current = this.store.read(namespaces, undefined, name)?.object;
      if (!current || current.metadata.uid !== uid) return;
      let held = 0;
      for (const type of RESOURCE_TYPES.filter((candidate) => candidate.namespaced)) {
        for (const object of this.store.all(type, name)) {
          if (finalizersOf(object).length === 0) {
            this.store.remove(type, name, object.metadata.name);
            continue;
          }
          held++;
          const marked = markedDeleting(object);
          if (marked !== object) this.store.write(type, marked);
        }
      }
      if (held > 0) this.#after(this.options.namespaceFinalizeMs, sweep);
      else this.store.remove(namespaces, undefined, name);
    };
    this.#after(this.options.namespaceFinalizeMs, sweep);
  }

  close(): void {
    for (const timer of this.#timers) clearTimeout(timer);
    this.#timers.clear();
    this.#rollouts.clear();
  }

  #after(ms: number, run: () => void): NodeJS.Timeout {
    const timer = setTimeout(() => {
      this.#timers.delete(timer);
      run();
    }, ms);
    // Simulated controllers must never keep a test run or the local runtime alive.
    timer.unref();
    this.#timers.add(timer);
    return timer;
  }

  #cancel(timer: NodeJS.Timeout): void {
    clearTimeout(timer);
    this.#timers.delete(timer);
  }
}

function condition(type: string, status: string, reason: string, message: string, at: string) {
  return { type, status, lastUpdateTime: at, lastTransitionTime: at, reason, message };
}

/** `<name>-<pod-template-hash>`, stable for a given template like the real controller's. */
function replicaSetName(deployment: KubeObject): string {
  const alphabet = "bcdfghjklmnpqrstvwxz2456789";
  const digest = createHash("sha256")
    .update(JSON.stringify(valueAt(deployment.spec, "template") ?? {}))
    .digest();
  const hash = [...digest.subarray(0, 10)].map((byte) => alphabet[byte % alphabet.length]).join("");
  return `${deployment.metadata.name}-${hash}`;
}

type Phase = "progressing" | "available" | "stuck";

function statusOf(object: KubeObject | undefined): JsonObject | undefined {
  return isPlainObject(object?.status) ? object.status : undefined;
}

/**
 * The status a workload's controller writes at each phase. `before` is the status stored until now:
 * a StatefulSet's current revision and a DaemonSet's pods come from it.
 */
function workloadStatus(workload: KubeObject, phase: Phase, before: JsonObject | undefined): JsonObject {
  switch (workload.kind) {
    case "StatefulSet":
      return statefulSetStatus(workload, phase, before);
    case "DaemonSet":
      return daemonSetStatus(workload, phase, before);
    default:
      return deploymentStatus(workload, phase);
  }
}

/** The controller-revision-hash of a pod template: stable for a given template like the real one. */
function templateHash(workload: KubeObject): string {
  return createHash("sha256")
    .update(JSON.stringify(valueAt(workload.spec, "template") ?? {}))
    .digest("hex")
    .slice(0, 10);
}

/**
 * Pods are replaced from the highest ordinal down to the partition's, one at a time (OrderedReady):
 * a broken template's first pod never gets ready, and the rollout stops there with the older pods
 * still running. A new StatefulSet creates every pod from its template; `OnDelete` replaces none.
 */
function statefulSetStatus(
  statefulSet: KubeObject,
  phase: Phase,
  before: JsonObject | undefined,
): JsonObject {
  const replicas = Number(valueAt(statefulSet.spec, "replicas") ?? 1);
  const updateRevision = `${statefulSet.metadata.name}-${templateHash(statefulSet)}`;
  const previous = typeof before?.currentRevision === "string" ? before.currentRevision : undefined;
  const currentRevision = previous ?? updateRevision;
  // Pods of an older template run: this is an update, not the first rollout.
  const replacing = currentRevision !== updateRevision;
  const strategy = valueAt(statefulSet.spec, "updateStrategy");
  const partition =
    valueAt(strategy, "type") === "OnDelete"
      ? replicas
      : Math.min(replicas, Number(valueAt(strategy, "rollingUpdate", "partition") ?? 0));
  const toUpdate = replacing ? replicas - partition : replicas;
  const first = Math.min(1, toUpdate);
  const updated = { progressing: 0, available: toUpdate, stuck: first }[phase];
  // While a pod is replaced (or stuck never ready), the older ones keep running and ready.
  const ready = phase === "available" ? replicas : replacing ? replicas - first : 0;
  const done = phase === "available" && updated === replicas;
  return {
    observedGeneration: statefulSet.metadata.generation,
    replicas,
    readyReplicas: ready,
    availableReplicas: ready,
    currentReplicas: done ? replicas : replacing ? replicas - updated : updated,
    updatedReplicas: updated,
    currentRevision: done ? updateRevision : currentRevision,
    updateRevision,
    collisionCount: 0,
  };
}

/**
 * One simulated node, so one pod: a rolling update replaces it (down first, maxUnavailable 1), a
 * broken template's pod never gets available. `OnDelete` keeps the running pod as it was.
 */
function daemonSetStatus(daemonSet: KubeObject, phase: Phase, before: JsonObject | undefined): JsonObject {
  const desired = 1;
  const onDelete = valueAt(daemonSet.spec, "updateStrategy", "type") === "OnDelete";
  const kept = onDelete && typeof before?.desiredNumberScheduled === "number";
  const available = kept ? Number(before?.numberAvailable ?? 0) : phase === "available" ? desired : 0;
  const updated = kept ? 0 : phase === "progressing" ? 0 : desired;
  return {
    observedGeneration: daemonSet.metadata.generation,
    currentNumberScheduled: desired,
    desiredNumberScheduled: desired,
    numberMisscheduled: 0,
    numberReady: available,
    numberAvailable: available,
    ...(available < desired ? { numberUnavailable: desired - available } : {}),
    updatedNumberScheduled: updated,
  };
}

/**
 * A Deployment's status as its controller writes it: rolling out (nothing updated yet), available,
 * or stuck past its progress deadline.
 */
function deploymentStatus(deployment: KubeObject, phase: Phase): JsonObject {
  const replicas = Number(valueAt(deployment.spec, "replicas") ?? 1);
  const now = rfc3339();
  const replicaSet = `ReplicaSet "${replicaSetName(deployment)}"`;
  const available = phase === "available";
  return {
    observedGeneration: deployment.metadata.generation,
    replicas,
    updatedReplicas: phase === "progressing" ? 0 : replicas,
    readyReplicas: available ? replicas : 0,
    availableReplicas: available ? replicas : 0,
    ...(available ? {} : { unavailableReplicas: replicas }),
    conditions: [
      available
        ? condition(
            "Available",
            "True",
            "MinimumReplicasAvailable",
            "Deployment has minimum availability.",
            now,
          )
        : condition(
            "Available",
            "False",
            "MinimumReplicasUnavailable",
            "Deployment does not have minimum availability.",
            now,
          ),
      {
        progressing: condition(
          "Progressing",
          "True",
          "ReplicaSetUpdated",
          `${replicaSet} is progressing.`,
          now,
        ),
        available: condition(
          "Progressing",
          "True",
          "NewReplicaSetAvailable",
          `${replicaSet} has successfully progressed.`,
          now,
        ),
        stuck: condition(
          "Progressing",
          "False",
          "ProgressDeadlineExceeded",
          `${replicaSet} has timed out progressing.`,
          now,
        ),
      }[phase],
    ],
  };
}
