/**
 * Builds whose pod the cluster ends (the kubelet evicting it on a node short of memory or disk, a
 * preemption, a drain): the Job's pod failure policy runs the build again in a new pod, and reconcile
 * reports the outcome of the build, not of the node. A Job that still fails (its deadline, or one
 * made before the policy) says the pod was evicted and why. Against the embedded Kubernetes API
 * over HTTP, through the real adapter.
 */
import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import { createKubernetesCluster } from "../../shared/adapters/kubernetes-cluster.js";
import { buildJob, buildJobName } from "../../shared/domain/build-job.js";
import type { Detail } from "../../shared/domain/catalog.js";
import { type MemoryKubernetes, startMemoryKubernetes } from "../../shared/local/memory-kubernetes/index.js";
import type { ManifestSource } from "../../shared/ports.js";
import { type BuildImageDeps, buildImage } from "../../shared/services/build-image.js";
import { type ReconcileBuildsDeps, reconcileBuilds } from "../../shared/services/reconcile-builds.js";
import {
  BUILDS_NAMESPACE,
  type BuildTestBed,
  EXAMPLE_BUILD_MANIFESTS,
  exampleBuildRequest,
  EXAMPLE_FAILING_SHA as FAILING_SHA,
  EXAMPLE_BUILD_PROJECT as gitlab,
  EXAMPLE_BUILD_SHA as SHA,
  startBuildTestBed,
  untilJobFinished,
} from "../fakes/build-deps.js";
import type { RecordingPublisher } from "../fakes/index.js";

const NS = BUILDS_NAMESPACE;
const EVICTION =
  "The node was low on resource: ephemeral-storage. Threshold quantity: 1Gi, available: 512Mi. " +
  "Container build was using 6Gi, request is 0, has larger consumption of ephemeral-storage.";

let k8s: MemoryKubernetes;
let publisher: RecordingPublisher;
let build: BuildImageDeps;
let reconcile: ReconcileBuildsDeps;
let bed: BuildTestBed<ManifestSource>;

beforeEach(async () => {
  bed = await startBuildTestBed(EXAMPLE_BUILD_MANIFESTS);
  ({ k8s, publisher, build, reconcile } = bed);
});
afterEach(() => bed.close());

const request = (sha = SHA) => exampleBuildRequest({ sha });

const jobOf = (sha = SHA) => k8s.store.get("batch/v1", "Job", NS, buildJobName(gitlab, sha));
const podsOf = (sha = SHA) =>
  k8s.store
    .list("v1", "Pod", NS)
    .filter((pod) => pod.metadata.labels?.["job-name"] === buildJobName(gitlab, sha));
type PodStatus = { phase?: string; reason?: string; conditions?: { type: string; status: string }[] };

const untilFinished = (sha = SHA) => untilJobFinished(k8s, NS, buildJobName(gitlab, sha));

describe("a build whose pod the cluster ends", () => {
  it("runs again in a new pod, and is reported succeeded once", async () => {
    const eviction = k8s.faults.evictPods({ namespace: NS, job: buildJobName(gitlab, SHA), times: 1 });
    await buildImage(build, request());
    await untilFinished();

    expect(eviction.hits).toBe(1);
    const pods = podsOf().map((pod) => pod.status as PodStatus);
    expect(pods.map((status) => status.phase).sort()).toEqual(["Failed", "Succeeded"]);
    expect(pods.find((status) => status.phase === "Failed")).toMatchObject({
      reason: "Evicted",
      conditions: [expect.objectContaining({ type: "DisruptionTarget", status: "True" })],
    });
    // Ignored, not counted: the Job has no failed pod.
    expect(jobOf()?.status).toMatchObject({ succeeded: 1 });
    expect((jobOf()?.status as { failed?: number } | undefined)?.failed ?? 0).toBe(0);
    const report = await reconcileBuilds(reconcile);
    await reconcileBuilds(reconcile);
    expect(report.reported).toEqual([`${buildJobName(gitlab, SHA)} → review/feature-x: succeeded`]);
    expect(publisher.entries).toHaveLength(1);
    expect(publisher.entries[0]?.detail).toMatchObject({
      status: "succeeded",
      imageDigest: expect.stringMatching(/^sha256:[0-9a-f]{64}$/),
      reason: null,
    });
  });

  it("fails at once, in one pod, when the build itself fails", async () => {
    await buildImage(build, request(FAILING_SHA));
    await untilFinished(FAILING_SHA);

    expect(podsOf(FAILING_SHA)).toHaveLength(1);
    await reconcileBuilds(reconcile);
    const [finished] = publisher.entries.map((e) => e.detail as Detail<"Build Finished">);
    expect(finished).toMatchObject({ status: "failed", sha: FAILING_SHA });
    const lines = finished?.reason?.split("\n") ?? [];
    expect(lines[0]).toBe("BackoffLimitExceeded: Job has reached the specified backoff limit");
    expect(lines.at(-1)).toContain("error: failed to solve");
  });

  it.each([
    ["its last pod evicted", false, "; pod evicted"],
    ["its last pod killed by the deadline", true, "; earlier pod evicted"],
  ])(
    "fails when evicted again and again until its deadline, saying a pod was evicted and why (%s)",
    async (_, killedByDeadline, said) => {
      const slow = await startMemoryKubernetes({ jobDelayMs: 100 });
      const slowCluster = createKubernetesCluster({ kubeconfig: slow.kubeconfig, sleep: async () => {} });
      try {
        const job = buildJob(
          request(),
          {
            name: "registry.example.com/flightjs/flight-management",
            context: ".",
            dockerfile: "Dockerfile",
            buildArgs: {},
          },
          {
            namespace: NS,
            gitSecret: { name: "kubler-git-credentials", key: "token" },
            registrySecret: "kubler-registry-push",
            activeDeadlineSeconds: 1,
          },
        );
        slow.faults.evictPods({ namespace: NS, job: job.metadata.name, message: EVICTION });
        await slowCluster.apply({ apiVersion: "v1", kind: "Namespace", metadata: { name: NS } });
        await slowCluster.create(job);
        await vi.waitFor(
          () => {
            const status = slow.store.get("batch/v1", "Job", NS, job.metadata.name)?.status as
              | { conditions?: { type: string; reason: string }[] }
              | undefined;
            expect(status?.conditions?.find((c) => c.type === "Failed")?.reason).toBe("DeadlineExceeded");
          },
          { timeout: 10_000, interval: 20 },
        );
        expect(slow.store.list("v1", "Pod", NS).length).toBeGreaterThan(1);
        if (killedByDeadline) {
          // Read before the deadline's deleted pod is gone: its build step killed, no eviction of its own.
          slow.store.put({
            apiVersion: "v1",
            kind: "Pod",
            metadata: {
              name: `${job.metadata.name}-zzzzz`,
              namespace: NS,
              labels: {
                "controller-uid": slow.store.get("batch/v1", "Job", NS, job.metadata.name)?.metadata
                  .uid as string,
              },
              creationTimestamp: new Date(Date.now() + 60_000).toISOString(),
            },
            spec: {},
            status: {
              phase: "Failed",
              initContainerStatuses: [
                { name: "clone", state: { terminated: { exitCode: 0, reason: "Completed" } } },
                { name: "build", state: { terminated: { exitCode: 143, reason: "Error" } } },
              ],
            },
          });
        }

        const report = await reconcileBuilds({ ...reconcile, cluster: slowCluster });

        expect(report.reported).toEqual([`${job.metadata.name} → review/feature-x: failed`]);
        const [finished] = publisher.entries.map((e) => e.detail as Detail<"Build Finished">);
        expect(finished?.reason?.split("\n")[0]).toBe(
          `DeadlineExceeded: Job was active longer than specified deadline${said}: ${EVICTION}`,
        );
      } finally {
        slowCluster.close();
        await slow.close();
      }
    },
  );
});

describe("reconcile of an evicted build failed by its Job", () => {
  it("says the pod was evicted, and why, in Build Finished failed (a Job made before the pod failure policy)", async () => {
    await buildImage(build, request());
    // Finished (as simulated) first, so the simulation cannot write over the eviction below.
    await vi.waitFor(
      () => {
        const conditions = (jobOf()?.status as { conditions?: { type: string }[] } | undefined)?.conditions;
        expect(conditions?.some((c) => c.type === "Complete")).toBe(true);
      },
      { timeout: 5_000, interval: 5 },
    );
    const job = jobOf() as NonNullable<ReturnType<typeof jobOf>>;
    k8s.store.put({
      ...job,
      status: {
        failed: 1,
        conditions: [
          {
            type: "Failed",
            status: "True",
            reason: "BackoffLimitExceeded",
            message: "Job has reached the specified backoff limit",
          },
        ],
      },
    });
    // As the kubelet leaves an evicted pod: the build step killed (137), the push never started.
    const [pod] = k8s.store.list("v1", "Pod", NS);
    k8s.store.put({
      ...(pod as NonNullable<typeof pod>),
      status: {
        phase: "Failed",
        reason: "Evicted",
        message: EVICTION,
        conditions: [
          { type: "DisruptionTarget", status: "True", reason: "TerminationByKubelet", message: EVICTION },
        ],
        initContainerStatuses: [
          { name: "clone", state: { terminated: { exitCode: 0, reason: "Completed" } } },
          { name: "build", state: { terminated: { exitCode: 137, reason: "Error" } } },
        ],
        containerStatuses: [{ name: "push", state: { waiting: { reason: "PodInitializing" } } }],
      },
    });

    const report = await reconcileBuilds(reconcile);

    expect(report.reported).toEqual([`${buildJobName(gitlab, SHA)} → review/feature-x: failed`]);
    const [finished] = publisher.entries.map((e) => e.detail as Detail<"Build Finished">);
    expect(finished?.status).toBe("failed");
    expect(finished?.reason?.split("\n")[0]).toContain(`pod evicted: ${EVICTION}`);
  });
});
