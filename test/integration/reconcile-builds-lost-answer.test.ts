/**
 * A mark whose answer is lost: the API server applied reconcile's "reported" mark on a build Job, but
 * the answer never came back (a dropped connection, a timeout), so the adapter sent it again and met
 * its own write (409). The Job is then marked reported by this very run, which must publish its
 * Build Finished: no later run would. Against the embedded Kubernetes API over HTTP, through the real
 * adapter, behind a proxy that drops one answer after the server has acted on the request.
 */
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { createKubernetesCluster, type KubernetesCluster } from "../../shared/adapters/kubernetes-cluster.js";
import { BUILD_ANNOTATION, buildJobName } from "../../shared/domain/build-job.js";
import { buildImage } from "../../shared/services/build-image.js";
import { reconcileBuilds } from "../../shared/services/reconcile-builds.js";
import { answerDroppingProxy, throughProxy } from "../fakes/answer-dropping-proxy.js";
import {
  BUILDS_NAMESPACE,
  buildsHeard,
  exampleBuildRequest,
  EXAMPLE_BUILD_PROJECT as gitlab,
  EXAMPLE_BUILD_SHA as SHA,
  untilJobFinished,
  useBuildTestBed,
} from "../fakes/build-deps.js";

const bed = useBuildTestBed();
let proxy: Awaited<ReturnType<typeof answerDroppingProxy>>;
let proxied: KubernetesCluster;
const JOB = buildJobName(gitlab, SHA);

beforeEach(async () => {
  const { server } = throughProxy(bed.k8s.kubeconfig);
  // The first write marking the Job reported (not yet given its TTL) loses its answer.
  proxy = await answerDroppingProxy(
    server,
    (method, path, body) =>
      method === "PATCH" &&
      path.startsWith(`/apis/batch/v1/namespaces/${BUILDS_NAMESPACE}/jobs/${JOB}`) &&
      body.includes(BUILD_ANNOTATION.REPORTED) &&
      body.includes("review/feature-x") &&
      !body.includes("ttlSecondsAfterFinished"),
  );
  proxied = createKubernetesCluster({
    kubeconfig: throughProxy(bed.k8s.kubeconfig, proxy.url).kubeconfig,
    sleep: async () => {},
  });
});
afterEach(async () => {
  proxied.close();
  await proxy.close();
});

const heard = () => buildsHeard(bed.publisher);

describe("reconcile of builds when the answer to its mark is lost", () => {
  it("publishes the Build Finished its own mark stands for, once, when the mark's retry meets that mark (409)", async () => {
    await buildImage(bed.build, exampleBuildRequest());
    await untilJobFinished(bed.k8s, BUILDS_NAMESPACE, JOB);

    const first = await reconcileBuilds({ ...bed.reconcile, cluster: proxied });
    await reconcileBuilds(bed.reconcile);

    expect(proxy.dropped()).toBe(1);
    expect(first.reported).toEqual([`${JOB} → review/feature-x: succeeded`]);
    expect(heard()).toEqual(["review/feature-x c-1 succeeded"]);
    // Settled once heard: its TTL set, so it goes in time; the mark's name gone with the mark.
    const job = bed.k8s.store.get("batch/v1", "Job", BUILDS_NAMESPACE, JOB);
    const spec = job?.spec as { ttlSecondsAfterFinished?: number } | undefined;
    expect(spec?.ttlSecondsAfterFinished).toBeGreaterThan(0);
    expect(Object.keys(job?.metadata.annotations ?? {})).not.toContain("kubler.dev/build-reporting");
  });
});
