/**
 * A build Job none of whose pods was ever created: the cluster refused each (a ResourceQuota or a
 * LimitRange smaller than the build's resources, a Pod Security level the cluster enforces by
 * default) and Kubernetes failed the Job at its deadline. The Job's verdict alone (DeadlineExceeded)
 * says nothing of that; the reason must say where the cause is. Against the embedded Kubernetes API
 * over HTTP, through the real adapter; the Job's status written as the real controller leaves it.
 */
import { describe, expect, it } from "vitest";
import type { Detail } from "../../shared/domain/catalog.js";
import type { KubeObject } from "../../shared/domain/kube-object.js";
import { buildImage } from "../../shared/services/build-image.js";
import { reconcileBuilds } from "../../shared/services/reconcile-builds.js";
import { BUILDS_NAMESPACE, buildsHeard, exampleBuildRequest, useBuildTestBed } from "../fakes/build-deps.js";

const bed = useBuildTestBed({ jobDelayMs: 60_000 });

describe("a build Job that failed at its deadline without a pod ever created", () => {
  it("is reported failed saying no pod of it ran, and how to see why", async () => {
    const created = await buildImage(bed.build, exampleBuildRequest());
    const name = created.kind === "failed" ? "" : created.job;
    for (const pod of bed.k8s.store.list("v1", "Pod", BUILDS_NAMESPACE)) {
      await bed.cluster.delete({
        apiVersion: "v1",
        kind: "Pod",
        name: pod.metadata.name,
        namespace: BUILDS_NAMESPACE,
      });
    }
    const job = bed.k8s.store.get("batch/v1", "Job", BUILDS_NAMESPACE, name) as KubeObject;
    bed.k8s.store.put({
      ...job,
      status: {
        startTime: "2026-01-01T10:00:00Z",
        conditions: [
          {
            type: "Failed",
            status: "True",
            reason: "DeadlineExceeded",
            message: "Job was active longer than specified deadline",
            lastTransitionTime: "2026-01-01T10:30:00Z",
          },
        ],
      },
    });

    await reconcileBuilds(bed.reconcile);

    expect(buildsHeard(bed.publisher)).toEqual(["review/feature-x c-1 failed"]);
    const reason = (bed.publisher.entries[0]?.detail as Detail<"Build Finished"> | undefined)?.reason ?? "";
    expect(reason).toMatch(/^DeadlineExceeded: Job was active longer than specified deadline/);
    expect(reason).toContain("no pod of it ever ran");
    expect(reason).toContain(`kubectl -n ${BUILDS_NAMESPACE} describe job ${name}`);
  });
});
