/**
 * A CI job's own finalizer on a build Job survives Kubler's server-side applies of it (a request
 * joining puts Kubler's finalizer back, reconcile's TTL mark leaves it out) and Kubler's release of
 * its own: `metadata.finalizers` is a set each field manager owns item by item, so an apply keeps what
 * another writer added. Against the embedded Kubernetes API over HTTP, which merges it so, with the
 * CI job's write a plain merge patch of the whole list, as clients without apply make it.
 */
import * as k8s from "@kubernetes/client-node";
import { expect, it } from "vitest";
import { BUILD_FINALIZER, buildJobName } from "../../shared/domain/build-job.js";
import type { Detail } from "../../shared/domain/catalog.js";
import { buildImage } from "../../shared/services/build-image.js";
import { reconcileBuilds } from "../../shared/services/reconcile-builds.js";
import {
  BUILDS_NAMESPACE,
  exampleBuildRequest,
  exampleStagingRequest,
  EXAMPLE_BUILD_PROJECT as gitlab,
  EXAMPLE_BUILD_SHA as SHA,
  untilJobFinished,
  useBuildTestBed,
} from "../fakes/build-deps.js";

const CI = "ci.example.com/hold";
const name = buildJobName(gitlab, SHA);

const bed = useBuildTestBed();

const finalizers = () => bed.k8s.store.get("batch/v1", "Job", BUILDS_NAMESPACE, name)?.metadata.finalizers;

it("a CI job's finalizer on a build Job outlives Kubler's TTL mark, a join and its release; Kubler's own comes and goes", async () => {
  const kc = new k8s.KubeConfig();
  kc.loadFromString(bed.k8s.kubeconfig);
  const batch = kc.makeApiClient(k8s.BatchV1Api);

  await buildImage(bed.build, exampleBuildRequest());
  await untilJobFinished(bed.k8s, BUILDS_NAMESPACE, name);
  expect(finalizers()).toEqual([BUILD_FINALIZER]);
  await batch.patchNamespacedJob(
    { name, namespace: BUILDS_NAMESPACE, body: { metadata: { finalizers: [BUILD_FINALIZER, CI] } } },
    k8s.setHeaderOptions("Content-Type", k8s.PatchStrategy.MergePatch),
  );

  // Reported: its TTL applied without Kubler's finalizer, which is then released; the CI job's stays.
  await reconcileBuilds(bed.reconcile);
  expect(finalizers()).toEqual([CI]);

  // Another environment joins: Kubler's finalizer is applied back, after the CI job's.
  const staging = exampleStagingRequest();
  expect((await buildImage(bed.build, staging)).kind).toBe("joined");
  expect(finalizers()).toEqual([CI, BUILD_FINALIZER]);

  await reconcileBuilds(bed.reconcile);
  expect(finalizers()).toEqual([CI]);
  expect(bed.publisher.entries.map((e) => (e.detail as Detail<"Build Finished">).environment)).toEqual([
    "review/feature-x",
    "staging",
  ]);
});
