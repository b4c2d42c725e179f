/**
 * A failed build replaced by a new request's (build-image's `rebuild`) against the embedded
 * Kubernetes API over HTTP: the bus redelivering (or an archive replaying) a request the replaced
 * Job already reported is still a repeat, not a new request that builds the commit again.
 */
import { describe, expect, it } from "vitest";
import { buildJobName } from "../../shared/domain/build-job.js";
import type { Detail } from "../../shared/domain/catalog.js";
import { buildImage } from "../../shared/services/build-image.js";
import { reconcileBuilds } from "../../shared/services/reconcile-builds.js";
import {
  BUILDS_NAMESPACE,
  buildsHeard,
  exampleBuildRequest,
  exampleStagingRequest,
  EXAMPLE_FAILING_SHA as FAILING_SHA,
  EXAMPLE_BUILD_PROJECT as gitlab,
  untilJobFinished,
  useBuildTestBed,
} from "../fakes/build-deps.js";

const request = (overrides: Partial<Detail<"Build Requested">> = {}) =>
  exampleBuildRequest({ sha: FAILING_SHA, ...overrides });

const bed = useBuildTestBed();

const jobOf = () => bed.k8s.store.get("batch/v1", "Job", BUILDS_NAMESPACE, buildJobName(gitlab, FAILING_SHA));
const untilFinished = () => untilJobFinished(bed.k8s, BUILDS_NAMESPACE, buildJobName(gitlab, FAILING_SHA));
const reported = () => buildsHeard(bed.publisher);

describe("build-image after a failed build was replaced", () => {
  it("takes a redelivered request the replaced Job already reported for a repeat: no third build, no second report", async () => {
    const original = request();
    expect((await buildImage(bed.build, original)).kind).toBe("created");
    await untilFinished();
    await reconcileBuilds(bed.reconcile);
    // Staging asks for the same commit: its build runs again, in a new Job of the same name.
    const staging = exampleStagingRequest({ sha: FAILING_SHA });
    expect((await buildImage(bed.build, staging)).kind).toBe("created");
    await untilFinished();
    await reconcileBuilds(bed.reconcile);
    expect(reported()).toEqual(["review/feature-x c-1 failed", "staging c-s failed"]);
    const replaced = jobOf();

    // The review environment's first request again (the bus's at-least-once delivery, an archive
    // replay): already built and reported for that request.
    expect((await buildImage(bed.build, original)).kind).toBe("already running");

    expect(jobOf()?.metadata.uid).toBe(replaced?.metadata.uid);
    await reconcileBuilds(bed.reconcile);
    expect(reported()).toEqual(["review/feature-x c-1 failed", "staging c-s failed"]);
  });

  it("keeps what each replaced Job reported through a second replacement", async () => {
    const original = request();
    await buildImage(bed.build, original);
    await untilFinished();
    await reconcileBuilds(bed.reconcile);
    for (const environment of ["staging", "production"]) {
      const other = request({ environment, ref: "main", mrIid: null, correlationId: `c-${environment}` });
      expect((await buildImage(bed.build, other)).kind).toBe("created");
      await untilFinished();
      await reconcileBuilds(bed.reconcile);
    }
    const replaced = jobOf();

    // The first Job's request, redelivered after two replacements: the third Job still knows it.
    expect((await buildImage(bed.build, original)).kind).toBe("already running");

    expect(jobOf()?.metadata.uid).toBe(replaced?.metadata.uid);
    await reconcileBuilds(bed.reconcile);
    expect(reported()).toEqual([
      "review/feature-x c-1 failed",
      "staging c-staging failed",
      "production c-production failed",
    ]);
  });

  it("still builds again for a new request of an environment the replaced Job reported", async () => {
    await buildImage(bed.build, request());
    await untilFinished();
    await reconcileBuilds(bed.reconcile);
    await buildImage(bed.build, exampleStagingRequest({ sha: FAILING_SHA }));
    await untilFinished();
    await reconcileBuilds(bed.reconcile);
    const replaced = jobOf();

    // The MR closed and reopened: a new request (another correlation id) for the review environment.
    expect((await buildImage(bed.build, request({ correlationId: "c-reopen" }))).kind).toBe("created");

    expect(jobOf()?.metadata.uid).not.toBe(replaced?.metadata.uid);
    await untilFinished();
    await reconcileBuilds(bed.reconcile);
    expect(reported()).toEqual([
      "review/feature-x c-1 failed",
      "staging c-s failed",
      "review/feature-x c-reopen failed",
    ]);
  });
});
