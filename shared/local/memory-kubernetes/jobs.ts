/**
 * The Job controller, simulated: a created Job gets one Pod (labelled `job-name` and `controller-uid`
 * like the real controller's, owned by the Job), which `jobDelayMs` later ends Succeeded, its main
 * containers' termination message `sha256:<64 hex derived from the Job>`, and the Job becomes
 * Complete; or, when `failJob` says so, ends Failed with an error exit code and a few log lines, and
 * the Job Failed with reason BackoffLimitExceeded. Nothing runs: the logs say so.
 */
import { createHash } from "node:crypto";
import { initializeForCreate } from "./admission.js";
import { badRequestError, notFoundError } from "./errors.js";
import { type JsonObject, valueAt } from "./json.js";
import { typeOfKind } from "./resources.js";
import type { ObjectStore } from "./store.js";
import { rfc3339 } from "./timestamps.js";
import type { KubeObject } from "./types.js";

/** Job (or pod template) annotation that makes the default `failJob` fail a Job. */
export const BUILD_ANNOTATION = "local.kubler.dev/build";

export interface JobControllerOptions {
  jobDelayMs: number;
  failJob: (job: KubeObject) => boolean;
}

/** The default `failJob`: the Job, or its pod template, is annotated `local.kubler.dev/build: fail`. */
export function failsByBuildAnnotation(job: KubeObject): boolean {
  return (
    job.metadata.annotations?.[BUILD_ANNOTATION] === "fail" ||
    valueAt(job.spec, "template", "metadata", "annotations", BUILD_ANNOTATION) === "fail"
  );
}

/**
 * The digest a simulated run of `job` reports: the same Job (namespace, name, pod template) always
 * gets the same one, so tests and the local flow can predict it.
 */
export function simulatedDigest(job: KubeObject): string {
  const hash = createHash("sha256")
    .update(
      JSON.stringify([job.metadata.namespace, job.metadata.name, valueAt(job.spec, "template") ?? null]),
    )
    .digest("hex");
  return `sha256:${hash}`;
}

interface Container {
  name: string;
  args: string[];
}

export class JobController {
  readonly #timers = new Set<NodeJS.Timeout>();
  /** `namespace/pod/container` → log lines. Logs are not objects: the API serves them beside the store. */
  readonly #logs = new Map<string, string[]>();

  constructor(
    private readonly store: ObjectStore,
    private readonly options: JobControllerOptions,
  ) {}

  /** After a Job was created: its pod starts now and finishes once the delay has passed. */
  jobCreated(job: KubeObject): void {
    const { namespace, name, uid } = job.metadata;
    if (!namespace || !uid || valueAt(job.spec, "suspend") === true) return;
    const pod = this.#startPod(job);
    const started = rfc3339();
    this.#writeJobStatus(namespace, name, uid, { startTime: started, active: 1, ready: 0 });
    const timer = setTimeout(() => {
      this.#timers.delete(timer);
      const current = this.store.read(typeOfKind("Job"), namespace, name)?.object;
      // A Job deleted (or re-created) since has its own pod, or none.
      if (!current || current.metadata.uid !== uid) return;
      if (this.options.failJob(current)) this.#fail(current, pod, started);
      else this.#succeed(current, pod, started);
    }, this.options.jobDelayMs);
    // Simulated controllers must never keep a test run or the local runtime alive.
    timer.unref();
    this.#timers.add(timer);
  }

  /** A deleted Job's pods go with it (background propagation, as `kubectl delete job` asks for). */
  jobDeleted(job: KubeObject): void {
    const { namespace, uid } = job.metadata;
    if (!namespace || !uid) return;
    const pods = typeOfKind("Pod");
    for (const pod of this.store.all(pods, namespace)) {
      if (pod.metadata.labels?.["controller-uid"] !== uid) continue;
      this.store.remove(pods, namespace, pod.metadata.name);
      for (const key of this.#logs.keys()) {
        if (key.startsWith(`${namespace}/${pod.metadata.name}/`)) this.#logs.delete(key);
      }
    }
  }

  /**
   * `GET .../pods/{name}/log`: the container's log (the only main container when none is named, as
   * the API server does), the last `tailLines` lines when given.
   */
  log(namespace: string, name: string, query: URLSearchParams): string {
    const pod = this.store.find(typeOfKind("Pod"), namespace, name)?.parse();
    if (!pod) throw notFoundError(typeOfKind("Pod"), name);
    const main = containersOf(pod.spec, "containers").map((c) => c.name);
    const init = containersOf(pod.spec, "initContainers").map((c) => c.name);
    let container = query.get("container");
    if (!container) {
      if (main.length !== 1) {
        throw badRequestError(
          `a container name must be specified for pod ${name}, choose one of: [${main.join(" ")}] or one of the init containers: [${init.join(" ")}]`,
        );
      }
      container = main[0] as string;
    }
    if (!main.includes(container) && !init.includes(container)) {
      throw badRequestError(`container ${container} is not valid for pod ${name}`);
    }
    const lines = this.#logs.get(`${namespace}/${name}/${container}`) ?? [];
    const tail = query.get("tailLines");
    if (tail !== null && !/^\d+$/.test(tail)) throw badRequestError(`invalid tailLines: ${tail}`);
    const shown = tail === null ? lines : lines.slice(Math.max(0, lines.length - Number(tail)));
    return shown.map((line) => `${line}\n`).join("");
  }

  close(): void {
    for (const timer of this.#timers) clearTimeout(timer);
    this.#timers.clear();
  }

  #startPod(job: KubeObject): KubeObject {
    const { namespace, name, uid } = job.metadata;
    const template = (valueAt(job.spec, "template") ?? {}) as JsonObject;
    const suffix = createHash("sha256").update(`${uid}`).digest("hex").slice(0, 5);
    const pod: KubeObject = {
      apiVersion: "v1",
      kind: "Pod",
      metadata: {
        name: `${name}-${suffix}`,
        namespace,
        labels: {
          ...((valueAt(template, "metadata", "labels") ?? {}) as Record<string, string>),
          "batch.kubernetes.io/controller-uid": uid as string,
          "batch.kubernetes.io/job-name": name,
          "controller-uid": uid as string,
          "job-name": name,
        },
        annotations: { ...((valueAt(template, "metadata", "annotations") ?? {}) as Record<string, string>) },
        ownerReferences: [
          { apiVersion: "batch/v1", kind: "Job", name, uid, controller: true, blockOwnerDeletion: true },
        ],
      },
      spec: { ...((valueAt(template, "spec") ?? {}) as JsonObject), nodeName: "kubler-memory" },
    };
    const type = typeOfKind("Pod");
    initializeForCreate(type, pod);
    pod.status = { phase: "Running", startTime: rfc3339() };
    return this.store.write(type, pod);
  }

  #succeed(job: KubeObject, pod: KubeObject, started: string): void {
    const digest = simulatedDigest(job);
    const image = outputImage(job);
    this.#finishPod(pod, "Succeeded", (container) => {
      this.#logs.set(logKey(pod, container.name), [
        "(simulated by the in-memory Kubernetes API: no container ran)",
        "#1 [internal] load build definition from Dockerfile",
        "#1 DONE 0.0s",
        "#2 exporting to image",
        `#2 pushing manifest for ${image ?? "the image"}@${digest} 0.0s done`,
        "#2 DONE 0.0s",
      ]);
      return { exitCode: 0, reason: "Completed", message: digest };
    });
    const now = rfc3339();
    this.#writeJobStatus(job.metadata.namespace as string, job.metadata.name, job.metadata.uid as string, {
      startTime: started,
      completionTime: now,
      succeeded: 1,
      ready: 0,
      terminating: 0,
      conditions: [
        jobCondition(
          "SuccessCriteriaMet",
          "CompletionsReached",
          "Reached expected number of succeeded pods",
          now,
        ),
        jobCondition("Complete", "CompletionsReached", "Reached expected number of succeeded pods", now),
      ],
    });
  }

  #fail(job: KubeObject, pod: KubeObject, started: string): void {
    this.#finishPod(pod, "Failed", (container) => {
      const lines = [
        "(simulated by the in-memory Kubernetes API: no container ran)",
        "#5 [2/3] RUN make build",
        "#5 0.412 make: *** [Makefile:3: build] Error 1",
        `#5 ERROR: process "/bin/sh -c make build" did not complete successfully: exit code: 2`,
        `error: failed to solve: process "/bin/sh -c make build" did not complete successfully: exit code: 2`,
      ];
      this.#logs.set(logKey(pod, container.name), lines);
      // terminationMessagePolicy FallbackToLogsOnError: the message is the log's tail.
      return { exitCode: 1, reason: "Error", message: lines.slice(-2).join("\n") };
    });
    const now = rfc3339();
    const reason = "BackoffLimitExceeded";
    const message = "Job has reached the specified backoff limit";
    this.#writeJobStatus(job.metadata.namespace as string, job.metadata.name, job.metadata.uid as string, {
      startTime: started,
      failed: 1,
      ready: 0,
      terminating: 0,
      conditions: [
        jobCondition("FailureTarget", reason, message, now),
        jobCondition("Failed", reason, message, now),
      ],
    });
  }

  #finishPod(
    pod: KubeObject,
    phase: "Succeeded" | "Failed",
    main: (container: Container) => { exitCode: number; reason: string; message: string },
  ): void {
    const { namespace, name, uid } = pod.metadata;
    const type = typeOfKind("Pod");
    const current = this.store.read(type, namespace, name)?.object;
    if (!current || current.metadata.uid !== uid) return;
    const now = rfc3339();
    const terminated = (
      container: Container,
      state: { exitCode: number; reason: string; message?: string },
    ) => ({
      name: container.name,
      ready: false,
      restartCount: 0,
      image: String(valueAt(container, "image") ?? ""),
      state: { terminated: { ...state, startedAt: now, finishedAt: now } },
    });
    current.status = {
      phase,
      startTime: valueAt(current.status, "startTime") ?? now,
      initContainerStatuses: containersOf(current.spec, "initContainers").map((container) => {
        this.#logs.set(logKey(current, container.name), [
          "(simulated by the in-memory Kubernetes API: no container ran)",
        ]);
        return terminated(container, { exitCode: 0, reason: "Completed" });
      }),
      containerStatuses: containersOf(current.spec, "containers").map((container) =>
        terminated(container, main(container)),
      ),
    };
    this.store.write(type, current);
  }

  #writeJobStatus(namespace: string, name: string, uid: string, status: JsonObject): void {
    const type = typeOfKind("Job");
    const current = this.store.read(type, namespace, name)?.object;
    if (!current || current.metadata.uid !== uid) return;
    current.status = { ...status, uncountedTerminatedPods: {} };
    this.store.write(type, current);
  }
}

function jobCondition(type: string, reason: string, message: string, at: string) {
  return { type, status: "True", reason, message, lastProbeTime: at, lastTransitionTime: at };
}

function containersOf(spec: unknown, field: "containers" | "initContainers"): Container[] {
  const list = valueAt(spec, field);
  return (Array.isArray(list) ? list : []).flatMap((item) => {
    const name = valueAt(item, "name");
    if (typeof name !== "string") return [];
    const args = valueAt(item, "args");
    return [{ ...(item as JsonObject), name, args: Array.isArray(args) ? args.map(String) : [] }];
  });
}

/** The image a BuildKit Job pushes (`--output type=image,name=<image>,push=true`), when it names one. */
function outputImage(job: KubeObject): string | null {
  for (const container of containersOf(valueAt(job.spec, "template", "spec"), "containers")) {
    for (const arg of container.args) {
      const name = /(?:^|,)name=([^,]+)/.exec(arg)?.[1];
      if (arg.startsWith("type=image") && name) return name;
    }
  }
  return null;
}

function logKey(pod: KubeObject, container: string): string {
  return `${pod.metadata.namespace}/${pod.metadata.name}/${container}`;
}
