/**
 * Environments waiting on a build always hear how it ended (`Build Finished`), whatever happens to
 * the build Job that records them: reconcile down past the TTL a Job would have had, a failed Job
 * replaced by a new request whose create fails, a replacement racing reconcile's publish. Against
 * the embedded Kubernetes API over HTTP, through the real adapter.
 */
import { describe, expect, it, vi } from "vitest";
import { BUILD_IMAGE_LIMITS } from "../../functions/build-image/limits.js";
import { FUNCTION_SPECS } from "../../infra/function-specs.js";
import { BUILD_ANNOTATION, buildJobName, MAX_BUILD_REQUESTS } from "../../shared/domain/build-job.js";
import type { KubeObject } from "../../shared/domain/kube-object.js";
import { KubernetesConflictError } from "../../shared/errors.js";
import { buildImage } from "../../shared/services/build-image.js";
import { type ReconcileBuildsDeps, reconcileBuilds } from "../../shared/services/reconcile-builds.js";
import {
  BUILDS_NAMESPACE,
  buildsHeard,
  exampleBuildRequest,
  exampleStagingRequest,
  EXAMPLE_FAILING_SHA as FAILING_SHA,
  EXAMPLE_BUILD_PROJECT as gitlab,
  EXAMPLE_BUILD_SHA as SHA,
  slowLambda,
  untilJobFinished,
  useBuildTestBed,
} from "../fakes/build-deps.js";

const DAY_MS = 86_400_000;

const bed = useBuildTestBed();

const request = exampleBuildRequest;
const jobOf = (sha: string) =>
  bed.k8s.store.get("batch/v1", "Job", BUILDS_NAMESPACE, buildJobName(gitlab, sha));
const untilFinished = (sha: string) => untilJobFinished(bed.k8s, BUILDS_NAMESPACE, buildJobName(gitlab, sha));
const heard = () => buildsHeard(bed.publisher);
const requestsOf = (job: KubeObject | undefined) =>
  JSON.parse(job?.metadata.annotations?.[BUILD_ANNOTATION.REQUESTS] ?? "[]") as unknown[];

/**
 * Kubernetes' ttl-after-finished controller, as of `now`: deletes each finished Job whose
 * `ttlSecondsAfterFinished` has run out since its terminal condition (the embedded API runs none).
 */
async function ttlController(now: Date): Promise<string[]> {
  const deleted: string[] = [];
  for (const job of bed.k8s.store.list("batch/v1", "Job", BUILDS_NAMESPACE)) {
    const ttl = (job.spec as { ttlSecondsAfterFinished?: number }).ttlSecondsAfterFinished;
    const conditions = (job.status as { conditions?: { type: string; lastTransitionTime?: string }[] })
      ?.conditions;
    const end = conditions?.find((c) => c.type === "Complete" || c.type === "Failed")?.lastTransitionTime;
    if (ttl === undefined || !end || Date.parse(end) + ttl * 1000 > now.getTime()) continue;
    await bed.cluster.delete({
      apiVersion: "batch/v1",
      kind: "Job",
      name: job.metadata.name,
      namespace: BUILDS_NAMESPACE,
    });
    deleted.push(job.metadata.name);
  }
  return deleted;
}

describe("environments waiting on a build", () => {
  it("hear of it when reconcile was down longer than a Job's TTL: the Job is kept until they have", async () => {
    await buildImage(bed.build, request());
    await untilFinished(SHA);
    // Reconcile down for two days: the TTL controller runs all along.
    expect(await ttlController(new Date(Date.now() + 2 * DAY_MS))).toEqual([]);

    expect((await reconcileBuilds(bed.reconcile)).reported).toEqual([
      `${buildJobName(gitlab, SHA)} → review/feature-x: succeeded`,
    ]);
    expect(bed.publisher.entries[0]?.detail).toMatchObject({
      imageDigest: expect.stringMatching(/^sha256:/),
    });
    // Heard: now the TTL may delete it, counted from its finish.
    expect(await ttlController(new Date(Date.now() + 2 * DAY_MS))).toEqual([buildJobName(gitlab, SHA)]);
  });

  it("on a failed build that a new request replaces hear of its failure, even when the replacement's create fails", async () => {
    await buildImage(bed.build, request({ sha: FAILING_SHA }));
    await untilFinished(FAILING_SHA);
    // Not reported yet when staging asks for the same commit; the new Job cannot be made (quota, API):
    // the first create is the one that finds the failed Job (409), the second the replacement's.
    const create = bed.cluster.create.bind(bed.cluster);
    let creates = 0;
    let refused: { hits: number } = { hits: 0 };
    vi.spyOn(bed.cluster, "create").mockImplementation(async (object) => {
      if (++creates === 2) {
        refused = bed.k8s.faults.add({ verb: "create", resource: "jobs", status: 403, times: 1 });
      }
      return create(object);
    });
    const staging = exampleStagingRequest({ sha: FAILING_SHA });

    await expect(buildImage(bed.build, staging)).rejects.toThrow();

    expect(refused.hits).toBe(1);
    expect(jobOf(FAILING_SHA)).toBeUndefined();
    expect(heard()).toEqual(["review/feature-x c-1 failed"]);
    vi.restoreAllMocks();
    // The bus delivers staging's request again: built for it alone.
    expect((await buildImage(bed.build, staging)).kind).toBe("created");
    await untilFinished(FAILING_SHA);
    await reconcileBuilds(bed.reconcile);
    await reconcileBuilds(bed.reconcile);
    expect(heard()).toEqual(["review/feature-x c-1 failed", "staging c-s failed"]);
  });

  it(`never leave a Job holding more than ${MAX_BUILD_REQUESTS} requests when new requests race reconcile's failed publish, and each hears once`, async () => {
    const waiting = Array.from({ length: MAX_BUILD_REQUESTS - 1 }, (_, i) => `review/mr-${i}`);
    await buildImage(
      bed.build,
      request({ sha: FAILING_SHA, environment: "review/mr-0", correlationId: "c-0" }),
    );
    await untilFinished(FAILING_SHA);
    // Nineteen joined while it ran (the embedded cluster ends a Job at once, so they are written here).
    const failed = jobOf(FAILING_SHA) as KubeObject;
    const requests = waiting.map((environment, i) => ({
      environment,
      correlationId: `c-${i}`,
      ref: "feature-x",
      pipelineId: null,
      mrIid: 16,
    }));
    bed.k8s.store.put({
      ...failed,
      metadata: {
        ...failed.metadata,
        annotations: {
          ...failed.metadata.annotations,
          [BUILD_ANNOTATION.REQUESTS]: JSON.stringify(requests),
        },
      },
    });
    const seen = new Set<number>();
    const watch = () => seen.add(requestsOf(jobOf(FAILING_SHA)).length);
    // After reconcile's mark twenty new environments ask for the commit; then PutEvents fails.
    const late = Array.from({ length: MAX_BUILD_REQUESTS }, (_, i) =>
      request({
        sha: FAILING_SHA,
        environment: `late-${i}`,
        ref: "main",
        mrIid: null,
        correlationId: `c-l${i}`,
      }),
    );
    const racing: unknown[] = [];
    const racingPublisher: ReconcileBuildsDeps["publisher"] = {
      publish: async (entries) => {
        for (const detail of late) {
          racing.push(await buildImage(bed.build, detail).catch((error: unknown) => error));
          watch();
        }
        bed.publisher.failNext = 1;
        return bed.publisher.publish(entries);
      },
    };

    await reconcileBuilds({ ...bed.reconcile, publisher: racingPublisher });
    watch();

    expect(racing.every((outcome) => outcome instanceof KubernetesConflictError)).toBe(true);
    await reconcileBuilds(bed.reconcile);
    // The bus delivers each again: one build for the twenty.
    for (const detail of late) await buildImage(bed.build, detail);
    watch();
    await untilFinished(FAILING_SHA);
    await reconcileBuilds(bed.reconcile);
    watch();
    expect(Math.max(...seen)).toBeLessThanOrEqual(MAX_BUILD_REQUESTS);
    expect(heard().sort()).toEqual(
      [
        ...waiting.map((e, i) => `${e} c-${i} failed`),
        ...late.map((_, i) => `late-${i} c-l${i} failed`),
      ].sort(),
    );
  });

  it("on a failed build that a slow build-image replaces hear of its failure: build-image marks them reported only with time left to publish before its Lambda's timeout", async () => {
    await buildImage(bed.build, request({ sha: FAILING_SHA }));
    await untilFinished(FAILING_SHA);
    // A slow API (9 s a call, each within one attempt of the adapter's 10 s): staging asks for the
    // failed commit before reconcile reported it.
    // Lambda ends the invocation at its timeout: a publish after it never happens.
    const lambda = slowLambda(bed, {
      callMs: 9_000,
      timeoutMs: FUNCTION_SPECS["build-image"].timeout.toMilliseconds(),
    });
    const staging = exampleStagingRequest({ sha: FAILING_SHA });

    await Promise.race([
      buildImage(
        { ...bed.build, ...lambda.deps, reportBudgetMs: BUILD_IMAGE_LIMITS.reportBudgetMs },
        staging,
      ).catch(() => {}),
      lambda.killed,
    ]);
    // The next reconcile, the API healthy again.
    await reconcileBuilds(bed.reconcile);

    expect(heard()).toEqual(["review/feature-x c-1 failed"]);
  });

  it("build-image's budget for reporting a failed build leaves its mark, the publish and the unmark inside its Kubernetes deadline, and that inside its timeout", () => {
    const { cluster, kubernetesDeadlineMs, reportBudgetMs } = BUILD_IMAGE_LIMITS;
    // build-image's client: each of the mark, the unmark's read and its write answered within one
    // attempt, however slow the cluster (past the deadline they would fail at once).
    const markAndUnmark = 3 * cluster.timeoutMs;
    // EventBridgePublisher: 4 attempts of at most AWS_REQUEST_LIMITS' 800 ms, 50 + 100 + 200 ms apart.
    const publish = 4 * 800 + 350;
    expect(reportBudgetMs + markAndUnmark + publish).toBeLessThanOrEqual(kubernetesDeadlineMs);
    expect(kubernetesDeadlineMs + publish).toBeLessThanOrEqual(
      FUNCTION_SPECS["build-image"].timeout.toMilliseconds() - 1_000,
    );
  });
});
