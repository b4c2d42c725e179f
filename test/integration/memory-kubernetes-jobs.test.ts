/**
 * The simulated Job controller of the in-memory Kubernetes API: a Job gets a pod that ends with a
 * digest (or fails in its last init container with log lines, its main container never started), the Job's conditions say so, and pods and their logs are served
 * as the API server serves them. Only order and eventual state are asserted, never timings.
 */
import * as k8s from "@kubernetes/client-node";
import { afterAll, beforeAll, describe, expect, it, vi } from "vitest";
import {
  BUILD_ANNOTATION,
  type MemoryKubernetes,
  simulatedDigest,
  startMemoryKubernetes,
} from "../../shared/local/memory-kubernetes/index.js";
import { failure } from "../fakes/kubernetes-api.js";

const NS = "builds";

function job(
  name: string,
  options: { fail?: boolean; backoffLimit?: number; podFailurePolicy?: k8s.V1PodFailurePolicy } = {},
): k8s.V1Job {
  return {
    apiVersion: "batch/v1",
    kind: "Job",
    metadata: {
      name,
      namespace: NS,
      ...(options.fail ? { annotations: { [BUILD_ANNOTATION]: "fail" } } : {}),
    },
    spec: {
      backoffLimit: options.backoffLimit ?? 0,
      ...(options.podFailurePolicy ? { podFailurePolicy: options.podFailurePolicy } : {}),
      template: {
        metadata: { labels: { app: "build" } },
        spec: {
          restartPolicy: "Never",
          initContainers: [
            { name: "clone", image: "alpine/git:2.47.2", command: ["true"] },
            { name: "build", image: "moby/buildkit:v0.18.2-rootless", args: ["build"] },
          ],
          containers: [
            {
              name: "push",
              image: "quay.io/skopeo/stable:v1.16.1",
              args: ["copy", "oci-archive:/output/image.tar", "docker://registry.example.com/app:abc"],
            },
          ],
        },
      },
    },
  };
}

describe("simulated Jobs", () => {
  let server: MemoryKubernetes;
  let core: k8s.CoreV1Api;
  let batch: k8s.BatchV1Api;
  beforeAll(async () => {
    server = await startMemoryKubernetes({ jobDelayMs: 0 });
    const kc = new k8s.KubeConfig();
    kc.loadFromString(server.kubeconfig);
    core = kc.makeApiClient(k8s.CoreV1Api);
    batch = kc.makeApiClient(k8s.BatchV1Api);
    await core.createNamespace({ body: { metadata: { name: NS } } });
  });
  afterAll(() => server.close());

  const finished = async (name: string) =>
    vi.waitFor(
      async () => {
        const read = await batch.readNamespacedJob({ name, namespace: NS });
        const terminal = read.status?.conditions?.find((c) => ["Complete", "Failed"].includes(c.type));
        if (!terminal) throw new Error("not finished yet");
        return read;
      },
      { timeout: 5_000, interval: 5 },
    );

  it("runs a Job to Complete; its pod carries the Job's labels and a deterministic digest", async () => {
    const created = await batch.createNamespacedJob({ namespace: NS, body: job("ok") });
    const uid = created.metadata?.uid as string;
    const done = await finished("ok");
    expect(done.status).toMatchObject({ succeeded: 1 });
    expect(done.status?.conditions?.map((c) => [c.type, c.status])).toEqual([
      ["SuccessCriteriaMet", "True"],
      ["Complete", "True"],
    ]);
    expect(done.status?.completionTime).toBeDefined();

    const pods = await core.listNamespacedPod({ namespace: NS, labelSelector: `controller-uid=${uid}` });
    expect(pods.items).toHaveLength(1);
    const [pod] = pods.items as [k8s.V1Pod];
    expect(pod.metadata?.labels).toMatchObject({ "job-name": "ok", "controller-uid": uid, app: "build" });
    expect(pod.metadata?.ownerReferences?.[0]).toMatchObject({ kind: "Job", name: "ok", uid });
    expect(pod.status?.phase).toBe("Succeeded");
    const digest = pod.status?.containerStatuses?.[0]?.state?.terminated?.message;
    expect(digest).toMatch(/^sha256:[0-9a-f]{64}$/);
    expect(digest).toBe(simulatedDigest(server.store.get("batch/v1", "Job", NS, "ok") as never));
    expect(pod.status?.initContainerStatuses?.map((s) => s.state?.terminated?.exitCode)).toEqual([0, 0]);

    const log = await core.readNamespacedPodLog({ name: pod.metadata?.name as string, namespace: NS });
    expect(log).toContain(`registry.example.com/app:abc@${digest}`);
    expect(log.split("\n")[0]).toContain("simulated");
  });

  it("fails a Job annotated to fail in its last init container, with a reason, an error exit code and log lines (tailLines honoured)", async () => {
    await batch.createNamespacedJob({ namespace: NS, body: job("broken", { fail: true }) });
    const done = await finished("broken");
    expect(done.status).toMatchObject({ failed: 1 });
    const failed = done.status?.conditions?.find((c) => c.type === "Failed");
    expect(failed).toMatchObject({
      status: "True",
      reason: "BackoffLimitExceeded",
      message: "Job has reached the specified backoff limit",
    });
    const [pod] = (await core.listNamespacedPod({ namespace: NS, labelSelector: "job-name=broken" }))
      .items as [k8s.V1Pod];
    expect(pod.status?.phase).toBe("Failed");
    const [clone, build] = pod.status?.initContainerStatuses ?? [];
    expect(clone?.state?.terminated?.exitCode).toBe(0);
    expect(build?.state?.terminated).toMatchObject({ exitCode: 1, reason: "Error" });
    // As Kubernetes does with restartPolicy Never: after a failed init container, nothing else starts.
    expect(pod.status?.containerStatuses?.[0]?.state).toEqual({ waiting: { reason: "PodInitializing" } });
    const name = pod.metadata?.name as string;
    const tail = await core.readNamespacedPodLog({ name, namespace: NS, container: "build", tailLines: 2 });
    expect(tail.trimEnd().split("\n")).toHaveLength(2);
    expect(tail).toContain("error: failed to solve");
    const all = await core.readNamespacedPodLog({ name, namespace: NS, container: "build" });
    expect(all.trimEnd().split("\n").length).toBeGreaterThan(2);
  });

  const podsOf = async (name: string) =>
    (await core.listNamespacedPod({ namespace: NS, labelSelector: `job-name=${name}` })).items;
  const IGNORE_DISRUPTION: k8s.V1PodFailurePolicy = {
    rules: [{ action: "Ignore", onPodConditions: [{ type: "DisruptionTarget", status: "True" }] }],
  };

  it("evicts a pod a test asks for: Failed, reason Evicted, condition DisruptionTarget, its build step killed", async () => {
    server.faults.evictPods({ namespace: NS, job: "evicted", times: 1, message: "low on memory" });
    await batch.createNamespacedJob({ namespace: NS, body: job("evicted") });
    const done = await finished("evicted");
    // No pod failure policy and backoffLimit 0: the eviction fails the Job.
    expect(done.status?.conditions?.find((c) => c.type === "Failed")?.reason).toBe("BackoffLimitExceeded");
    const [pod] = (await podsOf("evicted")) as [k8s.V1Pod];
    expect(pod.status).toMatchObject({ phase: "Failed", reason: "Evicted", message: "low on memory" });
    expect(pod.status?.conditions).toEqual([
      expect.objectContaining({ type: "DisruptionTarget", status: "True", reason: "TerminationByKubelet" }),
    ]);
    expect(pod.status?.initContainerStatuses?.[1]?.state?.terminated?.exitCode).toBe(137);
  });

  it("honours a pod failure policy: Ignore starts a new pod uncounted, FailJob fails the Job at once, the rest counts against backoffLimit", async () => {
    server.faults.evictPods({ namespace: NS, job: "ignored", times: 2 });
    await batch.createNamespacedJob({
      namespace: NS,
      body: job("ignored", { podFailurePolicy: IGNORE_DISRUPTION }),
    });
    const ignored = await finished("ignored");
    expect(ignored.status?.conditions?.map((c) => c.type)).toContain("Complete");
    expect(ignored.status?.failed ?? 0).toBe(0);
    expect((await podsOf("ignored")).map((pod) => pod.status?.phase).sort()).toEqual([
      "Failed",
      "Failed",
      "Succeeded",
    ]);

    await batch.createNamespacedJob({
      namespace: NS,
      body: job("failjob", {
        fail: true,
        backoffLimit: 3,
        podFailurePolicy: {
          rules: [
            ...IGNORE_DISRUPTION.rules,
            { action: "FailJob", onExitCodes: { containerName: "build", operator: "NotIn", values: [0] } },
          ],
        },
      }),
    });
    const failJob = await finished("failjob");
    const [pod] = (await podsOf("failjob")) as [k8s.V1Pod];
    expect(failJob.status?.conditions?.find((c) => c.type === "Failed")).toMatchObject({
      reason: "PodFailurePolicy",
      message: `Container build for pod ${NS}/${pod.metadata?.name} failed with exit code 1 matching FailJob rule at index 1`,
    });

    await batch.createNamespacedJob({ namespace: NS, body: job("counted", { fail: true, backoffLimit: 1 }) });
    const counted = await finished("counted");
    expect(counted.status).toMatchObject({ failed: 2 });
    expect(counted.status?.conditions?.find((c) => c.type === "Failed")?.reason).toBe("BackoffLimitExceeded");
    expect(await podsOf("counted")).toHaveLength(2);
  });

  it("answers for logs as the API server does: unknown pod 404, unknown container 400", async () => {
    expect((await failure(core.readNamespacedPodLog({ name: "nope", namespace: NS }))).code).toBe(404);
    const [pod] = (await core.listNamespacedPod({ namespace: NS, labelSelector: "job-name=ok" })).items as [
      k8s.V1Pod,
    ];
    const refused = await failure(
      core.readNamespacedPodLog({ name: pod.metadata?.name as string, namespace: NS, container: "other" }),
    );
    expect(refused.code).toBe(400);
    expect(refused.status.message).toContain("container other is not valid");
  });

  it("refuses a second Job of the same name with 409, and deletes a Job's pods with it", async () => {
    expect((await failure(batch.createNamespacedJob({ namespace: NS, body: job("ok") }))).code).toBe(409);
    await batch.createNamespacedJob({ namespace: NS, body: job("gone") });
    await finished("gone");
    expect(
      (await core.listNamespacedPod({ namespace: NS, labelSelector: "job-name=gone" })).items,
    ).toHaveLength(1);
    await batch.deleteNamespacedJob({ name: "gone", namespace: NS, propagationPolicy: "Background" });
    expect(
      (await core.listNamespacedPod({ namespace: NS, labelSelector: "job-name=gone" })).items,
    ).toHaveLength(0);
  });
});
