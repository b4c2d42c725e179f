/**
 * A build Job deleted by hand (`kubectl delete job`) before it finished, or before Kubler reported
 * its outcome, still tells the environments waiting on it: Kubler's finalizer holds it (Terminating)
 * until reconcile (or build-image, meeting it) has published their `Build Finished`, then lets it go.
 * Against the embedded Kubernetes API over HTTP (which honours finalizers), through the real adapter.
 */
import { afterEach, describe, expect, it, vi } from "vitest";
import {
  BUILD_ANNOTATION,
  BUILD_FINALIZER,
  buildJobName,
  MAX_BUILD_REQUESTS,
} from "../../shared/domain/build-job.js";
import type { Detail } from "../../shared/domain/catalog.js";
import type { KubeObject } from "../../shared/domain/kube-object.js";
import { type GitlabFact, triageFact } from "../../shared/domain/plan-steps.js";
import { KubernetesConflictError } from "../../shared/errors.js";
import type { ManifestSource } from "../../shared/ports.js";
import { buildImage } from "../../shared/services/build-image.js";
import { reconcileBuilds } from "../../shared/services/reconcile-builds.js";
import {
  BUILDS_NAMESPACE,
  type BuildTestBed,
  buildsHeard,
  EXAMPLE_BUILD_MANIFESTS,
  exampleBuildRequest,
  exampleStagingRequest,
  EXAMPLE_FAILING_SHA as FAILING_SHA,
  EXAMPLE_BUILD_PROJECT as gitlab,
  EXAMPLE_BUILD_SHA as SHA,
  startBuildTestBed,
  untilJobFinished,
} from "../fakes/build-deps.js";

const DAY_MS = 86_400_000;

let bed: BuildTestBed<ManifestSource>;
/** Jobs finish at once, unless `running`: then they run for the whole test. */
async function start({ running = false } = {}) {
  bed = await startBuildTestBed(EXAMPLE_BUILD_MANIFESTS, running ? { jobDelayMs: 600_000 } : {});
}
afterEach(() => bed.close());

const request = exampleBuildRequest;
const staging = exampleStagingRequest;
const nameOf = (sha: string) => buildJobName(gitlab, sha);
const refOf = (sha: string) => ({
  apiVersion: "batch/v1",
  kind: "Job",
  name: nameOf(sha),
  namespace: BUILDS_NAMESPACE,
});
const jobOf = (sha: string) => bed.k8s.store.get("batch/v1", "Job", BUILDS_NAMESPACE, nameOf(sha));
const untilFinished = (sha: string) => untilJobFinished(bed.k8s, BUILDS_NAMESPACE, nameOf(sha));
/** `kubectl delete job <name>`: a DELETE, background propagation. */
const deleteByHand = (sha: string) => bed.cluster.delete(refOf(sha));
const finished = () => bed.publisher.entries.map((e) => e.detail as Detail<"Build Finished">);
const heard = () => buildsHeard(bed.publisher);
const buildAudits = () =>
  bed.audit.records.filter((r) => r.action === "image.build" && r.function === "reconcile");
/**
 * The finalizer back on a reported Job, as a removal that never happened leaves it (on a real cluster
 * the create's field manager keeps it through the TTL's apply; the embedded one tracks apply managers only).
 */
function finalizerLeft(sha: string): KubeObject {
  const job = jobOf(sha) as KubeObject;
  expect(job.metadata.finalizers ?? []).toEqual([]);
  return bed.k8s.store.put({ ...job, metadata: { ...job.metadata, finalizers: [BUILD_FINALIZER] } });
}
const podsOf = (job: KubeObject) =>
  bed.k8s.store
    .list("v1", "Pod", BUILDS_NAMESPACE)
    .filter((pod) => pod.metadata.labels?.["controller-uid"] === job.metadata.uid);

/** Kubernetes' ttl-after-finished controller as of `now` (the embedded API runs none). */
async function ttlController(now: Date): Promise<void> {
  for (const job of bed.k8s.store.list("batch/v1", "Job", BUILDS_NAMESPACE)) {
    const ttl = (job.spec as { ttlSecondsAfterFinished?: number }).ttlSecondsAfterFinished;
    const conditions = (job.status as { conditions?: { type: string; lastTransitionTime?: string }[] })
      ?.conditions;
    const end = conditions?.find((c) => c.type === "Complete" || c.type === "Failed")?.lastTransitionTime;
    if (ttl === undefined || !end || Date.parse(end) + ttl * 1000 > now.getTime()) continue;
    await bed.cluster.delete({ ...refOf(SHA), name: job.metadata.name });
  }
}

describe("a build Job deleted by hand", () => {
  it("while it ran: each environment waiting on it hears Build Finished failed, saying so and what to do, one audit line each, and the Job goes", async () => {
    await start({ running: true });
    await buildImage(bed.build, request());
    expect((await buildImage(bed.build, staging())).kind).toBe("joined");
    expect(jobOf(SHA)?.metadata.finalizers).toEqual([BUILD_FINALIZER]);

    await deleteByHand(SHA);
    expect(jobOf(SHA)?.metadata.deletionTimestamp).toBeTruthy();
    const report = await reconcileBuilds(bed.reconcile);

    expect(report.reported.sort()).toEqual([
      `${nameOf(SHA)} → review/feature-x: failed`,
      `${nameOf(SHA)} → staging: failed`,
    ]);
    expect(heard().sort()).toEqual(["review/feature-x c-1 failed", "staging c-s failed"]);
    for (const detail of finished()) {
      expect(detail.imageDigest).toBeNull();
      expect(detail.reason).toMatch(/was deleted .*before it finished/);
      expect(detail.reason).toMatch(/push again/);
    }
    const lines = buildAudits();
    expect(lines.map((r) => [r.correlationId, r.outcome])).toEqual(
      expect.arrayContaining([
        ["c-1", "failure"],
        ["c-s", "failure"],
      ]),
    );
    expect(lines).toHaveLength(2);
    expect(lines.every((r) => /deleted .*before it finished/.test(r.reason))).toBe(true);
    expect(jobOf(SHA)).toBeUndefined();
    // Nothing twice.
    await reconcileBuilds(bed.reconcile);
    expect(finished()).toHaveLength(2);
  });

  it("once finished but not yet reported, its pods gone with it (foreground): failed, saying its outcome was not reported", async () => {
    await start();
    await buildImage(bed.build, request());
    await untilFinished(SHA);
    const job = jobOf(SHA) as KubeObject;
    // Foreground deletion takes the pods first, and with them the digest in the push's termination message.
    for (const pod of podsOf(job)) {
      await bed.cluster.delete({
        apiVersion: "v1",
        kind: "Pod",
        name: pod.metadata.name,
        namespace: BUILDS_NAMESPACE,
      });
    }
    await deleteByHand(SHA);

    await reconcileBuilds(bed.reconcile);

    expect(heard()).toEqual(["review/feature-x c-1 failed"]);
    expect(finished()[0]?.reason).toMatch(/was deleted .*before its outcome was reported/);
    expect(finished()[0]?.reason).toMatch(/push again/);
    expect(buildAudits().map((r) => r.outcome)).toEqual(["failure"]);
    expect(jobOf(SHA)).toBeUndefined();
  });

  it("once finished, its pods still there: its real outcome, the digest it pushed", async () => {
    await start();
    await buildImage(bed.build, request());
    await untilFinished(SHA);
    await deleteByHand(SHA);

    await reconcileBuilds(bed.reconcile);

    expect(heard()).toEqual(["review/feature-x c-1 succeeded"]);
    expect(finished()[0]?.imageDigest).toMatch(/^sha256:[0-9a-f]{64}$/);
    expect(jobOf(SHA)).toBeUndefined();
  });

  it("once failed: its real failure", async () => {
    await start();
    await buildImage(bed.build, request({ sha: FAILING_SHA }));
    await untilFinished(FAILING_SHA);
    await deleteByHand(FAILING_SHA);

    await reconcileBuilds(bed.reconcile);

    expect(heard()).toEqual(["review/feature-x c-1 failed"]);
    expect(finished()[0]?.reason).toMatch(/^BackoffLimitExceeded/);
    expect(jobOf(FAILING_SHA)).toBeUndefined();
  });

  it(`holding ${MAX_BUILD_REQUESTS} requests: each of them hears`, async () => {
    await start({ running: true });
    await buildImage(bed.build, request({ environment: "review/mr-0", correlationId: "c-0" }));
    for (let i = 1; i < MAX_BUILD_REQUESTS; i++) {
      await buildImage(bed.build, request({ environment: `review/mr-${i}`, correlationId: `c-${i}` }));
    }
    await expect(buildImage(bed.build, staging())).resolves.toMatchObject({ kind: "failed" });
    bed.publisher.entries.length = 0;
    await deleteByHand(SHA);

    await reconcileBuilds(bed.reconcile);

    expect(heard().sort()).toEqual(
      Array.from({ length: MAX_BUILD_REQUESTS }, (_, i) => `review/mr-${i} c-${i} failed`).sort(),
    );
    expect(jobOf(SHA)).toBeUndefined();
  });

  it("holding a request edited by hand so that its Build Finished is refused: the others still hear, that one is audited, and the Job goes instead of staying Terminating for good", async () => {
    await start({ running: true });
    await buildImage(bed.build, request());
    expect((await buildImage(bed.build, staging())).kind).toBe("joined");
    const job = jobOf(SHA) as KubeObject;
    const requests = JSON.parse(job.metadata.annotations?.[BUILD_ANNOTATION.REQUESTS] ?? "[]") as {
      environment: string;
      ref: string;
    }[];
    // An empty ref: readBuildRequests takes it, the catalog refuses it in Build Finished, every run.
    const edited = requests.map((r) => (r.environment === "staging" ? { ...r, ref: "" } : r));
    const annotations = { ...job.metadata.annotations, [BUILD_ANNOTATION.REQUESTS]: JSON.stringify(edited) };
    bed.k8s.store.put({ ...job, metadata: { ...job.metadata, annotations } });
    await deleteByHand(SHA);

    await reconcileBuilds(bed.reconcile);
    await reconcileBuilds(bed.reconcile);

    expect(heard()).toEqual(["review/feature-x c-1 failed"]);
    const staged = buildAudits().filter((r) => r.correlationId === "c-s");
    expect(staged.map((r) => r.outcome)).toEqual(["failure"]);
    expect(staged[0]?.reason).toMatch(/^not reported to staging: its Build Finished is refused .*ref/);
    expect(jobOf(SHA)).toBeUndefined();
  });

  it("says what makes Kubler build again, as plan-steps decides it: a new commit, not a merge request edited without one nor a pipeline run again", async () => {
    await start({ running: true });
    await buildImage(bed.build, request());
    await deleteByHand(SHA);

    await reconcileBuilds(bed.reconcile);

    const reason = finished()[0]?.reason ?? "";
    expect(reason).toMatch(/push again, a new commit/);
    // Neither of these asks Kubler for a build: advice naming them sends the user nowhere.
    const edited = { detailType: "Merge Request", detail: { action: "update", oldrev: null, iid: 7 } };
    expect(triageFact(edited as unknown as GitlabFact)).toMatchObject({ kind: "ignored" });
    expect(reason).not.toMatch(/merge request updated/);
    expect(reason).toMatch(/a pipeline run again does not ask Kubler for a build/);
  });

  it("and met by a new request for its commit before reconcile: build-image tells its waiters, lets it go, and the retry builds again", async () => {
    await start({ running: true });
    await buildImage(bed.build, request());
    await deleteByHand(SHA);

    await expect(buildImage(bed.build, staging())).rejects.toThrow(KubernetesConflictError);
    expect(heard()).toEqual(["review/feature-x c-1 failed"]);
    expect(finished()[0]?.reason).toMatch(/before it finished/);
    expect(jobOf(SHA)).toBeUndefined();

    // The bus delivers staging's request again.
    expect(await buildImage(bed.build, staging())).toMatchObject({ kind: "created" });
    expect(jobOf(SHA)?.metadata.finalizers).toEqual([BUILD_FINALIZER]);
    expect(await reconcileBuilds(bed.reconcile)).toMatchObject({ running: 1, reported: [] });
  });
});

describe("Kubler's finalizer on a build Job", () => {
  it("is removed with the TTL once every waiter has heard: the TTL's deletion is never held", async () => {
    await start();
    await buildImage(bed.build, request());
    await untilFinished(SHA);

    await reconcileBuilds(bed.reconcile);

    const job = jobOf(SHA) as KubeObject;
    expect((job.spec as { ttlSecondsAfterFinished?: number }).ttlSecondsAfterFinished).toBeGreaterThan(0);
    expect(job.metadata.finalizers ?? []).toEqual([]);
    await ttlController(new Date(Date.now() + 2 * DAY_MS));
    expect(jobOf(SHA)).toBeUndefined();
  });

  it("comes back when an environment joins a reported Job, so deleting it then still tells that one", async () => {
    await start();
    await buildImage(bed.build, request());
    await untilFinished(SHA);
    await reconcileBuilds(bed.reconcile);
    expect(jobOf(SHA)?.metadata.finalizers ?? []).toEqual([]);

    expect((await buildImage(bed.build, staging())).kind).toBe("joined");
    expect(jobOf(SHA)?.metadata.finalizers).toEqual([BUILD_FINALIZER]);
    await deleteByHand(SHA);
    await reconcileBuilds(bed.reconcile);

    expect(heard()).toEqual(["review/feature-x c-1 succeeded", "staging c-s succeeded"]);
    expect(jobOf(SHA)).toBeUndefined();
  });

  it("left on a reported Job (its removal lost) is removed by the next reconcile, held to what it read, and by a deletion's, publishing nothing again", async () => {
    await start();
    await buildImage(bed.build, request());
    await untilFinished(SHA);
    await reconcileBuilds(bed.reconcile);
    const left = finalizerLeft(SHA);
    const removal = vi.spyOn(bed.cluster, "removeFinalizers");

    await reconcileBuilds(bed.reconcile);
    expect(jobOf(SHA)?.metadata.finalizers ?? []).toEqual([]);
    expect(removal.mock.calls.map(([, preconditions, options]) => [preconditions, options])).toEqual([
      [{ uid: left.metadata.uid, resourceVersion: left.metadata.resourceVersion }, { keep: [] }],
    ]);

    // The same, the Job deleted meanwhile: released, not reported again.
    await buildImage(bed.build, request({ sha: FAILING_SHA }));
    await untilFinished(FAILING_SHA);
    await reconcileBuilds(bed.reconcile);
    finalizerLeft(FAILING_SHA);
    await deleteByHand(FAILING_SHA);
    expect(jobOf(FAILING_SHA)?.metadata.deletionTimestamp).toBeTruthy();
    await reconcileBuilds(bed.reconcile);
    expect(jobOf(FAILING_SHA)).toBeUndefined();
    expect(heard()).toEqual(["review/feature-x c-1 succeeded", "review/feature-x c-1 failed"]);
  });

  it("is the only one removed: another's finalizer keeps holding a deleted Job", async () => {
    await start();
    await buildImage(bed.build, request());
    await untilFinished(SHA);
    await reconcileBuilds(bed.reconcile);
    const job = finalizerLeft(SHA);
    bed.k8s.store.put({
      ...job,
      metadata: { ...job.metadata, finalizers: ["example.com/hold", BUILD_FINALIZER] },
    });
    await deleteByHand(SHA);

    await reconcileBuilds(bed.reconcile);

    expect(jobOf(SHA)?.metadata.finalizers).toEqual(["example.com/hold"]);
    expect(jobOf(SHA)?.metadata.deletionTimestamp).toBeTruthy();
    expect(heard()).toEqual(["review/feature-x c-1 succeeded"]);
  });

  it("left on a failed, reported Job does not stop a new request from building the commit again", async () => {
    await start();
    await buildImage(bed.build, request({ sha: FAILING_SHA }));
    await untilFinished(FAILING_SHA);
    await reconcileBuilds(bed.reconcile);
    const failed = finalizerLeft(FAILING_SHA);

    expect(await buildImage(bed.build, staging({ sha: FAILING_SHA }))).toMatchObject({ kind: "created" });

    const replacement = jobOf(FAILING_SHA) as KubeObject;
    expect(replacement.metadata.uid).not.toBe(failed.metadata.uid);
    expect(replacement.metadata.finalizers).toEqual([BUILD_FINALIZER]);
    expect(JSON.parse(replacement.metadata.annotations?.[BUILD_ANNOTATION.REQUESTS] ?? "[]")).toEqual([
      expect.objectContaining({ environment: "staging" }),
    ]);
  });

  it("on a Job without Kubler's build labels is never touched: deleted, it stays Terminating and nobody is told", async () => {
    await start({ running: true });
    await buildImage(bed.build, request());
    const job = jobOf(SHA) as KubeObject;
    const { "app.kubernetes.io/component": _, ...labels } = job.metadata.labels ?? {};
    bed.k8s.store.put({ ...job, metadata: { ...job.metadata, labels } });
    await deleteByHand(SHA);

    await reconcileBuilds(bed.reconcile);

    expect(heard()).toEqual([]);
    expect(jobOf(SHA)?.metadata.finalizers).toEqual([BUILD_FINALIZER]);
  });
});
