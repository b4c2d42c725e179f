/**
 * A mark whose answer is lost: the API server applied reconcile's "reported" mark on a build Job, but
 * the answer never came back (a dropped connection, a timeout), so the adapter sent it again and met
 * its own write (409). The Job is then marked reported by this very run, which must publish its
 * Build Finished: no later run would. Against the embedded Kubernetes API over HTTP, through the real
 * adapter, behind a proxy that drops one answer after the server has acted on the request.
 */
import { describe, expect, it } from "vitest";
import { buildJobName } from "../../shared/domain/build-job.js";
import { buildImage } from "../../shared/services/build-image.js";
import { reconcileBuilds } from "../../shared/services/reconcile-builds.js";
import {
  BUILDS_NAMESPACE,
  buildsHeard,
  exampleBuildRequest,
  EXAMPLE_BUILD_PROJECT as gitlab,
  EXAMPLE_BUILD_SHA as SHA,
  untilJobFinished,
  useBuildTestBed,
  useLostReportedMark,
} from "../fakes/build-deps.js";

const bed = useBuildTestBed();
const lost = useLostReportedMark(bed);
const JOB = buildJobName(gitlab, SHA);

const heard = () => buildsHeard(bed.publisher);

describe("reconcile of builds when the answer to its mark is lost", () => {
  it("publishes the Build Finished its own mark stands for, once, when the mark's retry meets that mark (409)", async () => {
    await buildImage(bed.build, exampleBuildRequest());
    await untilJobFinished(bed.k8s, BUILDS_NAMESPACE, JOB);

    const first = await reconcileBuilds({ ...bed.reconcile, cluster: lost.cluster });
    await reconcileBuilds(bed.reconcile);

    expect(lost.proxy.dropped()).toBe(1);
    expect(first.reported).toEqual([`${JOB} → review/feature-x: succeeded`]);
    expect(heard()).toEqual(["review/feature-x c-1 succeeded"]);
    // Settled once heard: its TTL set, so it goes in time; the mark's name gone with the mark.
    const job = bed.k8s.store.get("batch/v1", "Job", BUILDS_NAMESPACE, JOB);
    const spec = job?.spec as { ttlSecondsAfterFinished?: number } | undefined;
    expect(spec?.ttlSecondsAfterFinished).toBeGreaterThan(0);
    expect(Object.keys(job?.metadata.annotations ?? {})).not.toContain("kubler.dev/build-reporting");
  });
});
