/**
 * The Job controller, simulated: a created Job gets a Pod (labelled `job-name` and `controller-uid`
 * like the real controller's, owned by the Job), which `jobDelayMs` later ends Succeeded, its main
 * containers' termination message `sha256:<64 hex derived from the Job>`, and the Job becomes
 * Complete; or, when `failJob` says so, ends Failed in its last init container (a build Job's
 * build step) with an error exit code and a few log lines; or is evicted, when a test asked for it
 * (`faults.evictPods`). A failed pod goes through the Job's `podFailurePolicy` (first matching rule:
 * Ignore starts a new pod uncounted, FailJob fails the Job, Count or no match counts it against
 * `backoffLimit`, past which the Job fails with BackoffLimitExceeded), and `activeDeadlineSeconds`
 * fails a Job still running with DeadlineExceeded, its running pod deleted. Nothing runs: the logs
 * say so. https://kubernetes.io/docs/concepts/workloads/controllers/job/#pod-failure-policy
 */
import { createHash } from "node:crypto";
import { initializeForCreate } from "./admission.js";
import { badRequestError, notFoundError } from "./errors.js";
import type { PodEvictionRule } from "./faults.js";
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
  /** The evictions tests asked for (`faults.evictPods`); none when absent. */
  evictions?: { takeEviction(pod: { namespace: string; job: string }): PodEvictionRule | undefined };
}

/** What the kubelet says of a pod it evicted for ephemeral-storage. */
const DEFAULT_EVICTION =
  "The node was low on resource: ephemeral-storage. Threshold quantity: 1Gi, available: 512Mi.";

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

  /** After a Job was created: its first pod starts now; its deadline, if any, counts from now. */
  jobCreated(job: KubeObject): void {
    const { namespace, name, uid } = job.metadata;
    if (!namespace || !uid || valueAt(job.spec, "suspend") === true) return;
    const started = rfc3339();
    this.#writeJobStatus(namespace, name, uid, { startTime: started, active: 1, ready: 0 });
    this.#run(job, { attempt: 1, started, failed: 0 });
    const deadline = valueAt(job.spec, "activeDeadlineSeconds");
    if (typeof deadline === "number" && deadline > 0) {
      this.#after(deadline * 1000, () => {
        const current = this.#running(namespace, name, uid);
        if (current) this.#exceedDeadline(current, started);
      });
    }
  }

  /** One pod of the Job, ended once the delay has passed: evicted, failed, or succeeded. */
  #run(job: KubeObject, run: { attempt: number; started: string; failed: number }): void {
    const { namespace, name, uid } = job.metadata as { namespace: string; name: string; uid: string };
    const pod = this.#startPod(job, run.attempt);
    this.#after(this.options.jobDelayMs, () => {
      // A Job deleted (or re-created) since has its own pod, or none; one past its deadline is over.
      const current = this.#running(namespace, name, uid);
      if (!current) return;
      const eviction = this.options.evictions?.takeEviction({ namespace, job: name });
      if (!eviction && !this.options.failJob(current)) {
        this.#succeed(current, pod, run.started, run.failed);
        return;
      }
      const ended = eviction ? this.#evictPod(pod, eviction) : this.#failPod(pod);
      if (ended) this.#podFailed(current, ended, run);
    });
  }

  /** The Job's pod failure policy, then its backoff limit, decide what a failed pod means. */
  #podFailed(job: KubeObject, pod: KubeObject, run: { attempt: number; started: string; failed: number }) {
    const { namespace, name, uid } = job.metadata as { namespace: string; name: string; uid: string };
    const matched = matchingRule(job, pod);
    const next = { attempt: run.attempt + 1, started: run.started, failed: run.failed };
    if (matched?.action === "Ignore") {
      this.#writeJobStatus(namespace, name, uid, {
        startTime: run.started,
        active: 1,
        failed: run.failed,
        ready: 0,
      });
      this.#run(job, next);
      return;
    }
    const failed = run.failed + 1;
    if (matched?.action === "FailJob") {
      this.#failJob(job, run.started, failed, "PodFailurePolicy", matched.message);
      return;
    }
    const backoffLimit = valueAt(job.spec, "backoffLimit");
    if (failed > (typeof backoffLimit === "number" ? backoffLimit : 6)) {
      this.#failJob(
        job,
        run.started,
        failed,
        "BackoffLimitExceeded",
        "Job has reached the specified backoff limit",
      );
      return;
    }
    this.#writeJobStatus(namespace, name, uid, { startTime: run.started, active: 1, failed, ready: 0 });
    this.#run(job, { ...next, failed });
  }

  /** The Job, when it is still the one with `uid` and has no terminal condition yet. */
  #running(namespace: string, name: string, uid: string): KubeObject | undefined {
    const current = this.store.read(typeOfKind("Job"), namespace, name)?.object;
    if (!current || current.metadata.uid !== uid) return undefined;
    const conditions = valueAt(current.status, "conditions");
    const over = (Array.isArray(conditions) ? conditions : []).some(
      (c) => ["Complete", "Failed"].includes(String(valueAt(c, "type"))) && valueAt(c, "status") === "True",
    );
    return over ? undefined : current;
  }

  /** Past `activeDeadlineSeconds`: the running pod is deleted and the Job fails. */
  #exceedDeadline(job: KubeObject, started: string): void {
    const pods = typeOfKind("Pod");
    const namespace = job.metadata.namespace as string;
    let failed = Number(valueAt(job.status, "failed") ?? 0);
    for (const pod of this.store.all(pods, namespace)) {
      if (pod.metadata.labels?.["controller-uid"] !== job.metadata.uid) continue;
      if (["Succeeded", "Failed"].includes(String(valueAt(pod.status, "phase")))) continue;
      this.#removePod(namespace, pod.metadata.name);
      failed++;
    }
    this.#failJob(job, started, failed, "DeadlineExceeded", "Job was active longer than specified deadline");
  }

  #after(ms: number, run: () => void): void {
    const timer = setTimeout(() => {
      this.#timers.delete(timer);
      run();
    }, ms);
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
      if (pod.metadata.labels?.["controller-uid"] === uid) this.#removePod(namespace, pod.metadata.name);
    }
  }

  #removePod(namespace: string, name: string): void {
    this.store.remove(typeOfKind("Pod"), namespace, name);
    for (const key of this.#logs.keys()) {
      if (key.startsWith(`${namespace}/${name}/`)) this.#logs.delete(key);
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

  #startPod(job: KubeObject, attempt: number): KubeObject {
    const { namespace, name, uid } = job.metadata;
    const template = (valueAt(job.spec, "template") ?? {}) as JsonObject;
    const seed = attempt === 1 ? `${uid}` : `${uid}/${attempt}`;
    const suffix = createHash("sha256").update(seed).digest("hex").slice(0, 5);
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

  #succeed(job: KubeObject, pod: KubeObject, started: string, failed: number): void {
    const digest = simulatedDigest(job);
    const image = pushedImage(job);
    this.#finishPod(pod, { phase: "Succeeded", failing: null }, () => ({
      state: { exitCode: 0, reason: "Completed", message: digest },
      log: [
        "Getting image source signatures",
        "Copying blob done",
        "Copying config done",
        `Writing manifest to image destination: ${image ?? "the image"}@${digest}`,
      ],
    }));
    const now = rfc3339();
    this.#writeJobStatus(job.metadata.namespace as string, job.metadata.name, job.metadata.uid as string, {
      startTime: started,
      completionTime: now,
      succeeded: 1,
      ...(failed > 0 ? { failed } : {}),
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

  /**
   * The build step fails: the pod's last init container when it has some (a build Job's `build`;
   * the main containers then never start, as Kubernetes does with `restartPolicy: Never`), else its
   * first container.
   */
  #failPod(pod: KubeObject): KubeObject | undefined {
    const inits = containersOf(pod.spec, "initContainers");
    const failing = (inits.at(-1) ?? containersOf(pod.spec, "containers")[0])?.name ?? null;
    return this.#finishPod(pod, { phase: "Failed", failing }, () => {
      const log = [
        "#5 [2/3] RUN make build",
        "#5 0.412 make: *** [Makefile:3: build] Error 1",
        `#5 ERROR: process "/bin/sh -c make build" did not complete successfully: exit code: 2`,
        `error: failed to solve: process "/bin/sh -c make build" did not complete successfully: exit code: 2`,
      ];
      // terminationMessagePolicy FallbackToLogsOnError: the message is the log's tail.
      return { state: { exitCode: 1, reason: "Error", message: log.slice(-2).join("\n") }, log };
    });
  }

  /**
   * The kubelet evicts the pod while its last init container (a build Job's `build`) runs: killed
   * (137), its log cut mid-step, the pod Failed with reason Evicted and condition DisruptionTarget
   * (https://kubernetes.io/docs/concepts/scheduling-eviction/node-pressure-eviction/).
   */
  #evictPod(pod: KubeObject, eviction: PodEvictionRule): KubeObject | undefined {
    const inits = containersOf(pod.spec, "initContainers");
    const failing = (inits.at(-1) ?? containersOf(pod.spec, "containers")[0])?.name ?? null;
    const message = eviction.message ?? DEFAULT_EVICTION;
    const now = rfc3339();
    return this.#finishPod(
      pod,
      { phase: "Failed", failing },
      () => ({
        state: { exitCode: 137, reason: "Error", message: "" },
        log: ["#5 [2/3] RUN make build", "#5 0.412 cc -O2 -c src/main.c"],
      }),
      {
        reason: "Evicted",
        message,
        conditions: [
          {
            type: "DisruptionTarget",
            status: "True",
            reason: "TerminationByKubelet",
            message,
            lastProbeTime: null,
            lastTransitionTime: now,
          },
        ],
      },
    );
  }

  #failJob(job: KubeObject, started: string, failed: number, reason: string, message: string): void {
    const now = rfc3339();
    this.#writeJobStatus(job.metadata.namespace as string, job.metadata.name, job.metadata.uid as string, {
      startTime: started,
      failed,
      ready: 0,
      terminating: 0,
      conditions: [
        jobCondition("FailureTarget", reason, message, now),
        jobCondition("Failed", reason, message, now),
      ],
    });
  }

  /**
   * Ends the pod: init containers complete in order, up to `failing` if it is one of them (the rest
   * and the main containers then wait forever); `end` says how the main containers, or `failing`,
   * ended and what they logged.
   */
  #finishPod(
    pod: KubeObject,
    how: { phase: "Succeeded" | "Failed"; failing: string | null },
    end: () => { state: { exitCode: number; reason: string; message: string }; log: string[] },
    podStatus: JsonObject = {},
  ): KubeObject | undefined {
    const { namespace, name, uid } = pod.metadata;
    const type = typeOfKind("Pod");
    const current = this.store.read(type, namespace, name)?.object;
    if (!current || current.metadata.uid !== uid) return undefined;
    const now = rfc3339();
    let stopped = false;
    const status = (container: Container, ends: boolean) => {
      const base = {
        name: container.name,
        ready: false,
        restartCount: 0,
        image: String(valueAt(container, "image") ?? ""),
      };
      if (stopped) return { ...base, state: { waiting: { reason: "PodInitializing" } } };
      const ending = ends || container.name === how.failing;
      const { state, log } = ending ? end() : { state: { exitCode: 0, reason: "Completed" }, log: [] };
      this.#logs.set(logKey(current, container.name), [
        "(simulated by the in-memory Kubernetes API: no container ran)",
        ...log,
      ]);
      if (container.name === how.failing) stopped = true;
      return { ...base, state: { terminated: { ...state, startedAt: now, finishedAt: now } } };
    };
    const initContainerStatuses = containersOf(current.spec, "initContainers").map((c) => status(c, false));
    const containerStatuses = containersOf(current.spec, "containers").map((c) =>
      status(c, how.failing === null),
    );
    current.status = {
      phase: how.phase,
      ...podStatus,
      startTime: valueAt(current.status, "startTime") ?? now,
      initContainerStatuses,
      containerStatuses,
    };
    return this.store.write(type, current);
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

/**
 * The first rule of the Job's `podFailurePolicy` that the failed pod matches, with the message the
 * real controller gives a FailJob: a pod condition (status default "True"), or a container's exit
 * code, init containers included (`In`, or `NotIn` which never matches exit code 0).
 */
function matchingRule(job: KubeObject, pod: KubeObject): { action: string; message: string } | undefined {
  const rules = valueAt(job.spec, "podFailurePolicy", "rules");
  const where = `${pod.metadata.namespace}/${pod.metadata.name}`;
  const conditions = valueAt(pod.status, "conditions");
  const statuses = [
    ...(Array.isArray(valueAt(pod.status, "initContainerStatuses"))
      ? (valueAt(pod.status, "initContainerStatuses") as unknown[])
      : []),
    ...(Array.isArray(valueAt(pod.status, "containerStatuses"))
      ? (valueAt(pod.status, "containerStatuses") as unknown[])
      : []),
  ];
  for (const [index, rule] of (Array.isArray(rules) ? rules : []).entries()) {
    const action = String(valueAt(rule, "action"));
    const onConditions = valueAt(rule, "onPodConditions");
    for (const wanted of Array.isArray(onConditions) ? onConditions : []) {
      const type = valueAt(wanted, "type");
      const status = valueAt(wanted, "status") ?? "True";
      const found = (Array.isArray(conditions) ? conditions : []).some(
        (c) => valueAt(c, "type") === type && valueAt(c, "status") === status,
      );
      if (found) {
        return {
          action,
          message: `Pod ${where} has condition ${type} matching ${action} rule at index ${index}`,
        };
      }
    }
    const onExitCodes = valueAt(rule, "onExitCodes");
    if (!onExitCodes) continue;
    const containerName = valueAt(onExitCodes, "containerName");
    const values = valueAt(onExitCodes, "values");
    const listed = Array.isArray(values) ? values : [];
    const operator = valueAt(onExitCodes, "operator");
    for (const entry of statuses) {
      const code = valueAt(entry, "state", "terminated", "exitCode");
      if (typeof code !== "number" || code === 0) continue;
      if (containerName && valueAt(entry, "name") !== containerName) continue;
      if (operator === "In" ? listed.includes(code) : !listed.includes(code)) {
        return {
          action,
          message: `Container ${String(valueAt(entry, "name"))} for pod ${where} failed with exit code ${code} matching ${action} rule at index ${index}`,
        };
      }
    }
  }
  return undefined;
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

/** The image a build Job pushes (its push container's `docker://<image>` argument), when it names one. */
function pushedImage(job: KubeObject): string | null {
  for (const container of containersOf(valueAt(job.spec, "template", "spec"), "containers")) {
    const target = container.args.find((arg) => arg.startsWith("docker://"));
    if (target) return target.slice("docker://".length);
  }
  return null;
}

function logKey(pod: KubeObject, container: string): string {
  return `${pod.metadata.namespace}/${pod.metadata.name}/${container}`;
}
