/**
 * A mark whose answer is lost, and a request joining the Job before the mark's retry: the API server
 * applied reconcile's "reported" mark, its answer never came back, and while the adapter waited to
 * send it again build-image added another environment to the Job (a tag at the same commit, another
 * merge request). The retry meets a Job written since (409); the mark is still this run's, and its
 * Build Finished this run's to publish: no later run would (the Job says reported). Against the
 * embedded Kubernetes API over HTTP, through the real adapter, behind a proxy that drops one answer
 * after the server has acted on the request.
 */
import { beforeEach, describe, expect, it } from "vitest";
import { BUILD_ANNOTATION, BUILD_FINALIZER, buildJobName } from "../../shared/domain/build-job.js";
import { buildImage } from "../../shared/services/build-image.js";
import { reconcileBuilds } from "../../shared/services/reconcile-builds.js";
import {
  BUILDS_NAMESPACE,
  buildsHeard,
  exampleBuildRequest,
  exampleStagingRequest,
  EXAMPLE_BUILD_PROJECT as gitlab,
  EXAMPLE_BUILD_SHA as SHA,
  untilJobFinished,
  useBuildTestBed,
  useLostReportedMark,
} from "../fakes/build-deps.js";

const bed = useBuildTestBed();
let joins: string[];
/** The request that joins while the lost mark waits for its retry. */
let joining: ReturnType<typeof exampleStagingRequest>;
const JOB = buildJobName(gitlab, SHA);
// While the adapter waits to send the lost mark again, staging asks for the same commit.
const lost = useLostReportedMark(bed, async () => {
  if (lost.proxy.dropped() === 1 && joins.length === 0) {
    joins.push((await buildImage(bed.build, joining)).kind);
  }
});

beforeEach(() => {
  joins = [];
  joining = exampleStagingRequest();
});

describe("reconcile of builds when the answer to its mark is lost and a request joins before its retry", () => {
  it("publishes the Build Finished its own mark stands for, and the joined environment's on the next run, each once", async () => {
    await buildImage(bed.build, exampleBuildRequest());
    await untilJobFinished(bed.k8s, BUILDS_NAMESPACE, JOB);

    await reconcileBuilds({ ...bed.reconcile, cluster: lost.cluster });
    expect(buildsHeard(bed.publisher)).toEqual(["review/feature-x c-1 succeeded"]);
    // Staging still waits: no TTL yet, Kubler's finalizer kept, the mark's name gone with the next write.
    const waiting = bed.k8s.store.get("batch/v1", "Job", BUILDS_NAMESPACE, JOB);
    expect(
      (waiting?.spec as { ttlSecondsAfterFinished?: number } | undefined)?.ttlSecondsAfterFinished,
    ).toBeUndefined();
    expect(waiting?.metadata.finalizers).toEqual([BUILD_FINALIZER]);
    await reconcileBuilds(bed.reconcile);
    const settled = bed.k8s.store.get("batch/v1", "Job", BUILDS_NAMESPACE, JOB);
    expect(
      (settled?.spec as { ttlSecondsAfterFinished?: number } | undefined)?.ttlSecondsAfterFinished,
    ).toBeGreaterThan(0);
    expect(Object.keys(settled?.metadata.annotations ?? {})).not.toContain(BUILD_ANNOTATION.REPORTING);
    await reconcileBuilds(bed.reconcile);

    expect(lost.proxy.dropped()).toBe(1);
    expect(joins).toEqual(["joined"]);
    expect(buildsHeard(bed.publisher).sort()).toEqual([
      "review/feature-x c-1 succeeded",
      "staging c-s succeeded",
    ]);
  });

  it("the marked environment asking again meanwhile (its merge request closed and reopened) hears its new request too, on the next run", async () => {
    joining = exampleBuildRequest({ correlationId: "c-2", factAt: "2026-11-21T10:05:00.000Z" });
    await buildImage(bed.build, exampleBuildRequest());
    await untilJobFinished(bed.k8s, BUILDS_NAMESPACE, JOB);

    await reconcileBuilds({ ...bed.reconcile, cluster: lost.cluster });
    await reconcileBuilds(bed.reconcile);
    await reconcileBuilds(bed.reconcile);

    expect(lost.proxy.dropped()).toBe(1);
    expect(joins).toEqual(["joined"]);
    expect(buildsHeard(bed.publisher)).toEqual([
      "review/feature-x c-1 succeeded",
      "review/feature-x c-2 succeeded",
    ]);
  });
});
