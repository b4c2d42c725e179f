/**
 * Reconcile of a build whose pod the kubelet evicted (node short of memory or disk): the Job fails
 * with BackoffLimitExceeded, which says nothing of why; the pod's status does. Against the embedded
 * Kubernetes API over HTTP, through the real adapter.
 */
import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import { createKubernetesCluster, type KubernetesCluster } from "../../shared/adapters/kubernetes-cluster.js";
import { buildJobName } from "../../shared/domain/build-job.js";
import type { Detail } from "../../shared/domain/catalog.js";
import { type MemoryKubernetes, startMemoryKubernetes } from "../../shared/local/memory-kubernetes/index.js";
import { type BuildImageDeps, buildImage } from "../../shared/services/build-image.js";
import { type ReconcileBuildsDeps, reconcileBuilds } from "../../shared/services/reconcile-builds.js";
import { FixedClock, RecordingAuditLog, RecordingPublisher } from "../fakes/index.js";

const SHA = "1111111111111111111111111111111111111111";
const NS = "kubler-builds";
const gitlab = {
  instance: "https://gitlab.example.com",
  projectId: 2,
  projectPath: "flightjs/flight-management",
};
const MANIFEST = `
version: 1
image:
  name: registry.example.com/flightjs/flight-management
deploy:
  manifests: deploy/
  image: app
environments:
  - name: review/{branch}
    on: merge_request
`;
const EVICTION =
  "The node was low on resource: ephemeral-storage. Threshold quantity: 1Gi, available: 512Mi. " +
  "Container build was using 6Gi, request is 0, has larger consumption of ephemeral-storage.";

let k8s: MemoryKubernetes;
let cluster: KubernetesCluster;
let publisher: RecordingPublisher;
let build: BuildImageDeps;
let reconcile: ReconcileBuildsDeps;

beforeEach(async () => {
  k8s = await startMemoryKubernetes({ jobDelayMs: 0 });
  cluster = createKubernetesCluster({ kubeconfig: k8s.kubeconfig, sleep: async () => {} });
  publisher = new RecordingPublisher();
  const audit = new RecordingAuditLog();
  const clock = new FixedClock();
  build = {
    cluster,
    manifests: { readManifest: async () => MANIFEST, readDirectory: async () => new Map() },
    publisher,
    audit,
    clock,
    settings: {
      namespace: NS,
      gitSecret: "kubler-git-credentials",
      registrySecret: "kubler-registry-push",
      images: null,
    },
  };
  reconcile = { cluster, publisher, audit, clock, namespace: NS };
});
afterEach(async () => {
  cluster.close();
  await k8s.close();
});

function request(): Detail<"Build Requested"> {
  return {
    correlationId: "c-1",
    gitlab,
    environment: "review/feature-x",
    sha: SHA,
    ref: "feature-x",
    pipelineId: null,
    mrIid: 16,
  };
}

const jobOf = () => k8s.store.get("batch/v1", "Job", NS, buildJobName(gitlab, SHA));

describe("reconcile of an evicted build", () => {
  it("says the pod was evicted, and why, in Build Finished failed", async () => {
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
