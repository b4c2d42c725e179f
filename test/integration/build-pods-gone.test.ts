/**
 * A build that succeeded, whose pods are gone before reconcile reads the digest the push left in its
 * termination message: a node removed by the cluster's autoscaler (Karpenter, Cluster Autoscaler)
 * takes its finished pods with it (PodGC deletes pods bound to a node that no longer exists), and the
 * cluster's terminated-pod garbage collection deletes the oldest finished pods. After a reconcile
 * outage, every build finished meanwhile on such a cluster is in this state. Against the embedded
 * Kubernetes API over HTTP, through the real adapter.
 */
import { describe, expect, it } from "vitest";
import { BUILD_ANNOTATION, MAX_BUILD_REQUESTS } from "../../shared/domain/build-job.js";
import type { Detail } from "../../shared/domain/catalog.js";
import type { KubeObject } from "../../shared/domain/kube-object.js";
import { buildImage } from "../../shared/services/build-image.js";
import { reconcileBuilds } from "../../shared/services/reconcile-builds.js";
import {
  BUILDS_NAMESPACE,
  buildsHeard,
  exampleBuildRequest,
  exampleStagingRequest,
  untilJobFinished,
  useBuildTestBed,
} from "../fakes/build-deps.js";

const bed = useBuildTestBed();

/** What PodGC does to the pods of a node that is gone: each deleted, the Job left Complete. */
async function podsCollected(): Promise<void> {
  const pods = bed.k8s.store.list("v1", "Pod", BUILDS_NAMESPACE) as KubeObject[];
  expect(pods.length).toBeGreaterThan(0);
  for (const pod of pods) {
    await bed.cluster.delete({
      apiVersion: "v1",
      kind: "Pod",
      name: pod.metadata.name,
      namespace: BUILDS_NAMESPACE,
    });
  }
}

const finished = () => bed.publisher.entries.map((e) => e.detail as Detail<"Build Finished">);

describe("a succeeded build whose pods were deleted before its digest was read", () => {
  it("is reported failed saying its pods went and what to do, and a new request for the commit builds it again instead of joining it for the same failure", async () => {
    const first = await buildImage(bed.build, exampleBuildRequest());
    await untilJobFinished(bed.k8s, BUILDS_NAMESPACE, first.kind === "failed" ? "" : first.job);
    await podsCollected();

    await reconcileBuilds(bed.reconcile);

    expect(buildsHeard(bed.publisher)).toEqual(["review/feature-x c-1 failed"]);
    const reason = finished()[0]?.reason ?? "";
    // Not the push's fault: its pods, and the digest they held, are gone.
    expect(reason).toMatch(/pods were deleted/);
    expect(reason).toMatch(/push again/);

    // Another environment at that commit (or the same one asking again): a build, not the same
    // failure for as long as the Job is kept (a day).
    const again = await buildImage(bed.build, exampleStagingRequest());
    expect(again.kind).toBe("created");
    await untilJobFinished(bed.k8s, BUILDS_NAMESPACE, again.kind === "failed" ? "" : again.job);
    await reconcileBuilds(bed.reconcile);
    expect(buildsHeard(bed.publisher)).toEqual(["review/feature-x c-1 failed", "staging c-s succeeded"]);
  });

  it("reported succeeded, its pods gone since: a request for the commit a moment later (a tag for production) builds it again, and hears it succeeded, not failed", async () => {
    const first = await buildImage(bed.build, exampleBuildRequest());
    await untilJobFinished(bed.k8s, BUILDS_NAMESPACE, first.kind === "failed" ? "" : first.job);
    await reconcileBuilds(bed.reconcile);
    expect(buildsHeard(bed.publisher)).toEqual(["review/feature-x c-1 succeeded"]);
    await podsCollected();

    const production = exampleStagingRequest({
      environment: "production",
      ref: "v1.0.0",
      correlationId: "c-p",
    });
    const again = await buildImage(bed.build, production);
    expect(again.kind).toBe("created");
    const line = bed.audit.records.find((r) => r.correlationId === "c-p" && r.function === "build-image");
    expect(line?.reason).toMatch(
      /succeeded, but its pods and the digest they held are gone: built again for production/,
    );
    await untilJobFinished(bed.k8s, BUILDS_NAMESPACE, again.kind === "failed" ? "" : again.job);
    await reconcileBuilds(bed.reconcile);
    expect(buildsHeard(bed.publisher)).toEqual([
      "review/feature-x c-1 succeeded",
      "production c-p succeeded",
    ]);
    // The first environment, reported before, is not told again.
    await reconcileBuilds(bed.reconcile);
    expect(bed.publisher.entries).toHaveLength(2);
  });

  it(`reported to ${MAX_BUILD_REQUESTS} environments, its pods gone since: one more is built for, not refused as a Job with no room (the replacement carries only those still waiting)`, async () => {
    const first = await buildImage(bed.build, exampleBuildRequest());
    const name = first.kind === "failed" ? "" : first.job;
    await untilJobFinished(bed.k8s, BUILDS_NAMESPACE, name);
    await reconcileBuilds(bed.reconcile);
    // Nineteen more joined and were reported since (the embedded cluster ends a Job at once, so
    // they are written here): the Job holds as many requests as it may, none waiting.
    const job = bed.k8s.store.get("batch/v1", "Job", BUILDS_NAMESPACE, name) as KubeObject;
    const requests = Array.from({ length: MAX_BUILD_REQUESTS }, (_, i) => ({
      environment: `review/mr-${i}`,
      correlationId: `c-${i}`,
      ref: "feature-x",
      pipelineId: null,
      mrIid: 16,
    }));
    bed.k8s.store.put({
      ...job,
      metadata: {
        ...job.metadata,
        annotations: {
          ...job.metadata.annotations,
          [BUILD_ANNOTATION.REQUESTS]: JSON.stringify(requests),
          [BUILD_ANNOTATION.REPORTED]: JSON.stringify(requests.map((r) => r.environment)),
        },
      },
    });
    await podsCollected();

    const production = exampleStagingRequest({
      environment: "production",
      ref: "v1.0.0",
      correlationId: "c-p",
    });
    const again = await buildImage(bed.build, production);

    expect(again.kind).toBe("created");
    await untilJobFinished(bed.k8s, BUILDS_NAMESPACE, name);
    await reconcileBuilds(bed.reconcile);
    expect(buildsHeard(bed.publisher)).toEqual([
      "review/feature-x c-1 succeeded",
      "production c-p succeeded",
    ]);
  });
});
