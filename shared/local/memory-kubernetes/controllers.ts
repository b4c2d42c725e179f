/**
 * The two controllers whose effects Kubler waits for: the Deployment controller (a rollout that
 * becomes available, or exceeds its progress deadline, `rolloutDelayMs` after a spec change) and
 * the namespace controller (a deleted namespace stays Terminating, then it and everything in it go).
 * No pods run: the statuses are what a healthy or a stuck rollout would report.
 */
import { createHash } from "node:crypto";
import { deepEqual, valueAt } from "./json.js";
import { RESOURCE_TYPES, typeOfKind } from "./resources.js";
import type { ObjectStore } from "./store.js";
import { rfc3339 } from "./timestamps.js";
import type { KubeObject } from "./types.js";

/** Pod template annotation that makes the default `failRollout` fail a Deployment's rollout. */
export const ROLLOUT_ANNOTATION = "local.kubler.dev/rollout";
export const REVISION_ANNOTATION = "deployment.kubernetes.io/revision";

export interface ControllerOptions {
  rolloutDelayMs: number;
  namespaceFinalizeMs: number;
  failRollout: (deployment: KubeObject) => boolean;
}

/** The default `failRollout`: the pod template asks for it. */
export function failsByAnnotation(deployment: KubeObject): boolean {
  return valueAt(deployment.spec, "template", "metadata", "annotations", ROLLOUT_ANNOTATION) === "fail";
}

export class Controllers {
  readonly #timers = new Set<NodeJS.Timeout>();
  readonly #rollouts = new Map<string, NodeJS.Timeout>();

  constructor(
    private readonly store: ObjectStore,
    private readonly options: ControllerOptions,
  ) {}

  /**
   * Before a Deployment is written: keeps the revision annotation, and when the spec changed (or the
   * Deployment is new) reports the new rollout as started.
   */
  prepareDeployment(next: KubeObject, previous: KubeObject | undefined): void {
    const annotations = { ...next.metadata.annotations };
    const previousRevision = Number(previous?.metadata.annotations?.[REVISION_ANNOTATION] ?? 0);
    const specChanged = !previous || !deepEqual(previous.spec, next.spec);
    const templateChanged =
      !previous || !deepEqual(valueAt(previous.spec, "template"), valueAt(next.spec, "template"));
    const revision = templateChanged ? previousRevision + 1 : previousRevision;
    if (revision > 0) annotations[REVISION_ANNOTATION] = String(revision);
    next.metadata.annotations = annotations;
    if (!specChanged) return;
    next.status = deploymentStatus(next, "progressing");
  }

  /** After a Deployment's rollout started and was stored: finish it once the delay has passed. */
  scheduleRollout(deployment: KubeObject): void {
    const { uid, generation, namespace, name } = deployment.metadata;
    if (!uid) return;
    const pending = this.#rollouts.get(uid);
    if (pending) this.#cancel(pending);
    const timer = this.#after(this.options.rolloutDelayMs, () => {
      this.#rollouts.delete(uid);
      const type = typeOfKind("Deployment");
      const current = this.store.read(type, namespace, name)?.object;
      // A newer spec or a re-created Deployment has its own rollout.
      if (!current || current.metadata.uid !== uid || current.metadata.generation !== generation) return;
      current.status = this.options.failRollout(current)
        ? deploymentStatus(current, "stuck")
        : deploymentStatus(current, "available");
      this.store.write(type, current);
    });
    this.#rollouts.set(uid, timer);
  }

  /** After a namespace was marked Terminating: remove its content, then it, once the delay has passed. */
  scheduleNamespaceFinalization(namespace: KubeObject): void {
    const { name, uid } = namespace.metadata;
    this.#after(this.options.namespaceFinalizeMs, () => {
      const namespaces = typeOfKind("Namespace");
      const current = this.store.read(namespaces, undefined, name)?.object;
      if (!current || current.metadata.uid !== uid) return;
      for (const type of RESOURCE_TYPES.filter((candidate) => candidate.namespaced)) {
        for (const object of this.store.all(type, name)) this.store.remove(type, name, object.metadata.name);
      }
      this.store.remove(namespaces, undefined, name);
    });
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

/**
 * A Deployment's status as its controller writes it: rolling out (nothing updated yet), available,
 * or stuck past its progress deadline.
 */
function deploymentStatus(
  deployment: KubeObject,
  phase: "progressing" | "available" | "stuck",
): Record<string, unknown> {
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
