/**
 * build-image's and reconcile-builds' dependencies as the build tests use them: an embedded
 * Kubernetes API of its own (Jobs finish at once; a Job of `failingSha`, EXAMPLE_FAILING_SHA unless
 * told, fails; the builds namespace
 * and its Secrets there unless `secrets: false`), the real adapter over
 * HTTP to it (backoff sleeps not waited), and recording fakes sharing one clock.
 *
 * @example
 * const bed = await startBuildTestBed(manifests); // EXAMPLE_FAILING_SHA's Job fails
 * await buildImage(bed.build, request);
 * await untilJobFinished(bed.k8s, BUILDS_NAMESPACE, buildJobName(gitlab, sha));
 * await bed.close();
 */
import { afterEach, beforeEach, expect, vi } from "vitest";
import { createKubernetesCluster, type KubernetesCluster } from "../../shared/adapters/kubernetes-cluster.js";
import { BUILD_ANNOTATION, buildJobName } from "../../shared/domain/build-job.js";
import type { Detail } from "../../shared/domain/catalog.js";
import { type MemoryKubernetes, startMemoryKubernetes } from "../../shared/local/memory-kubernetes/index.js";
import type { BuildCluster, EventPublisher, ManifestSource } from "../../shared/ports.js";
import type { BuildImageDeps } from "../../shared/services/build-image.js";
import type { ReconcileBuildsDeps } from "../../shared/services/reconcile-builds.js";
import { answerDroppingProxy, throughProxy } from "./answer-dropping-proxy.js";
import { FixedClock, RecordingAuditLog, RecordingPublisher } from "./index.js";

export const BUILDS_NAMESPACE = "kubler-builds";

export interface BuildTestBed<M extends ManifestSource> {
  k8s: MemoryKubernetes;
  cluster: KubernetesCluster;
  publisher: RecordingPublisher;
  audit: RecordingAuditLog;
  build: BuildImageDeps & { manifests: M };
  reconcile: ReconcileBuildsDeps;
  close(): Promise<void>;
}

/** The example project the build tests build: GitLab's own fixtures' flightjs/flight-management. */
export const EXAMPLE_BUILD_PROJECT = {
  instance: "https://gitlab.example.com",
  projectId: 2,
  projectPath: "flightjs/flight-management",
};

/** Its kubler.yaml: built images, review environments for merge requests. */
export const EXAMPLE_BUILD_MANIFEST = `
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

/** A source with only that kubler.yaml, for every commit. */
export const EXAMPLE_BUILD_MANIFESTS: ManifestSource = {
  readManifest: async () => EXAMPLE_BUILD_MANIFEST,
  readDirectory: async () => new Map<string, string>(),
};

/** The commit the build tests build by default. */
export const EXAMPLE_BUILD_SHA = "1111111111111111111111111111111111111111";

/** The commit whose build Job the test bed's cluster fails, unless told another (`failingSha`). */
export const EXAMPLE_FAILING_SHA = "2222222222222222222222222222222222222222";

/** A `Build Requested` of the example project: review/feature-x's merge request 16, at EXAMPLE_BUILD_SHA. */
export function exampleBuildRequest(
  overrides: Partial<Detail<"Build Requested">> = {},
): Detail<"Build Requested"> {
  return {
    correlationId: "c-1",
    gitlab: EXAMPLE_BUILD_PROJECT,
    environment: "review/feature-x",
    sha: EXAMPLE_BUILD_SHA,
    ref: "feature-x",
    pipelineId: null,
    mrIid: 16,
    ...overrides,
  };
}

/**
 * The same commit asked for by staging (branch main, no merge request), correlation id "c-s": the
 * second environment most build tests have wait on one Job.
 *
 * @example
 * await buildImage(bed.build, exampleStagingRequest({ sha: EXAMPLE_FAILING_SHA })); // "staging c-s"
 */
export function exampleStagingRequest(
  overrides: Partial<Detail<"Build Requested">> = {},
): Detail<"Build Requested"> {
  return exampleBuildRequest({
    environment: "staging",
    ref: "main",
    mrIid: null,
    correlationId: "c-s",
    ...overrides,
  });
}

export const GIT_SECRET = "kubler-git-credentials";
export const REGISTRY_SECRET = "kubler-registry-push";

/**
 * The builds namespace and its two Secrets as README's prerequisites create them (values are
 * placeholders: the embedded cluster runs no pod). `secrets: false` leaves the cluster empty.
 */
export async function createBuildSecrets(cluster: KubernetesCluster): Promise<void> {
  await cluster.apply({ apiVersion: "v1", kind: "Namespace", metadata: { name: BUILDS_NAMESPACE } });
  const base64 = (text: string) => Buffer.from(text).toString("base64");
  await cluster.create({
    apiVersion: "v1",
    kind: "Secret",
    metadata: { name: GIT_SECRET, namespace: BUILDS_NAMESPACE },
    type: "Opaque",
    data: { token: base64("glpat-placeholder") },
  });
  await cluster.create({
    apiVersion: "v1",
    kind: "Secret",
    metadata: { name: REGISTRY_SECRET, namespace: BUILDS_NAMESPACE },
    type: "kubernetes.io/dockerconfigjson",
    data: { ".dockerconfigjson": base64('{"auths":{}}') },
  });
}

export async function startBuildTestBed<M extends ManifestSource>(
  manifests: M,
  {
    failingSha = EXAMPLE_FAILING_SHA,
    secrets = true,
    jobDelayMs = 0,
  }: {
    failingSha?: string;
    secrets?: boolean;
    /** How long the embedded cluster's Jobs run: long keeps one running for the whole test. */
    jobDelayMs?: number;
  } = {},
): Promise<BuildTestBed<M>> {
  const k8s = await startMemoryKubernetes({
    jobDelayMs,
    failJob: (job) => job.metadata.labels?.["kubler.dev/sha"] === failingSha,
  });
  const cluster = createKubernetesCluster({ kubeconfig: k8s.kubeconfig, sleep: async () => {} });
  if (secrets) await createBuildSecrets(cluster);
  const publisher = new RecordingPublisher();
  const audit = new RecordingAuditLog();
  const clock = new FixedClock();
  return {
    k8s,
    cluster,
    publisher,
    audit,
    build: {
      cluster,
      manifests,
      publisher,
      audit,
      clock,
      settings: {
        namespace: BUILDS_NAMESPACE,
        gitSecret: GIT_SECRET,
        registrySecret: REGISTRY_SECRET,
        images: null,
      },
    },
    reconcile: { cluster, publisher, audit, clock, namespace: BUILDS_NAMESPACE },
    close: async () => {
      cluster.close();
      await k8s.close();
    },
  };
}

/**
 * Registers a build test file's hooks: before each test a new startBuildTestBed of
 * EXAMPLE_BUILD_MANIFESTS (`options` as startBuildTestBed's), closed after it. The bed returned is
 * one object for the whole file, its fields those of the test's bed: read them in tests, not at
 * load. A file's own beforeEach, registered after, runs after this one, and its own afterEach before
 * the close.
 *
 * @example
 * const bed = useBuildTestBed();
 * it("builds", async () => {
 *   await buildImage(bed.build, exampleBuildRequest());
 * });
 */
export function useBuildTestBed(
  options?: Parameters<typeof startBuildTestBed>[1],
): BuildTestBed<ManifestSource> {
  const bed = {} as BuildTestBed<ManifestSource>;
  beforeEach(async () => {
    Object.assign(bed, await startBuildTestBed(EXAMPLE_BUILD_MANIFESTS, options));
  });
  afterEach(() => bed.close());
  return bed;
}

/**
 * For each test, the bed's cluster reached through a proxy that loses the answer to reconcile's first
 * write marking the example Job reported to review/feature-x (before its TTL is given): the API
 * server applies it, the adapter hears nothing and, after `sleep`, sends it again. `cluster` is the
 * adapter behind the proxy; `proxy.dropped()` counts the answers lost.
 *
 * @example
 * const lost = useLostReportedMark(bed);
 * await reconcileBuilds({ ...bed.reconcile, cluster: lost.cluster });
 */
export function useLostReportedMark(
  bed: BuildTestBed<ManifestSource>,
  sleep: (ms: number) => Promise<void> = async () => {},
): { proxy: Awaited<ReturnType<typeof answerDroppingProxy>>; cluster: KubernetesCluster } {
  const lost = {} as ReturnType<typeof useLostReportedMark>;
  const job = buildJobName(EXAMPLE_BUILD_PROJECT, EXAMPLE_BUILD_SHA);
  beforeEach(async () => {
    const { server } = throughProxy(bed.k8s.kubeconfig);
    lost.proxy = await answerDroppingProxy(
      server,
      (method, path, body) =>
        method === "PATCH" &&
        path.startsWith(`/apis/batch/v1/namespaces/${BUILDS_NAMESPACE}/jobs/${job}`) &&
        body.includes(BUILD_ANNOTATION.REPORTED) &&
        body.includes("review/feature-x") &&
        !body.includes("ttlSecondsAfterFinished"),
    );
    lost.cluster = createKubernetesCluster({
      kubeconfig: throughProxy(bed.k8s.kubeconfig, lost.proxy.url).kubeconfig,
      sleep,
    });
  });
  afterEach(async () => {
    lost.cluster.close();
    await lost.proxy.close();
  });
  return lost;
}

/**
 * Who heard what of their builds: each `Build Finished` `publisher` published, as "environment
 * correlationId status", in publish order.
 *
 * @example
 * expect(buildsHeard(bed.publisher)).toEqual(["review/feature-x c-1 failed", "staging c-s failed"]);
 */
export function buildsHeard(publisher: RecordingPublisher): string[] {
  return publisher.entries.map((e) => {
    const detail = e.detail as Detail<"Build Finished">;
    return `${detail.environment} ${detail.correlationId} ${detail.status}`;
  });
}

/** Waits (up to 5 s) until the embedded cluster has finished the Job `name`: Complete or Failed. */
export async function untilJobFinished(
  k8s: MemoryKubernetes,
  namespace: string,
  name: string,
): Promise<void> {
  await vi.waitFor(
    () => {
      const status = k8s.store.get("batch/v1", "Job", namespace, name)?.status as
        | { conditions?: { type: string }[] }
        | undefined;
      expect(status?.conditions?.some((c) => c.type === "Complete" || c.type === "Failed")).toBe(true);
    },
    { timeout: 5_000, interval: 5 },
  );
}

/**
 * A run against a slow API inside a Lambda that ends at its timeout: each call of `cluster` (the
 * bed's) moves `clock` on by `callMs`; `publisher` publishes to the bed's until `timeoutMs` after
 * the start, and past it never answers and settles `killed` (race the run against it).
 *
 * @example
 * const lambda = slowLambda(bed, { callMs: 5_000, timeoutMs });
 * await Promise.race([reconcileBuilds({ ...bed.reconcile, ...lambda.deps }), lambda.killed]);
 */
export function slowLambda(
  bed: Pick<BuildTestBed<ManifestSource>, "cluster" | "publisher">,
  { callMs, timeoutMs }: { callMs: number; timeoutMs: number },
): {
  start: number;
  killed: Promise<void>;
  deps: { cluster: BuildCluster; publisher: EventPublisher; clock: FixedClock };
} {
  const clock = new FixedClock();
  const start = clock.now().getTime();
  const { cluster } = bed;
  const slowly =
    <A extends unknown[], R>(call: (...args: A) => Promise<R>) =>
    (...args: A) => {
      clock.advance(callMs);
      return call(...args);
    };
  let kill = () => {};
  const killed = new Promise<void>((resolve) => {
    kill = resolve;
  });
  return {
    start,
    killed,
    deps: {
      clock,
      cluster: {
        get: slowly(cluster.get.bind(cluster)),
        list: slowly(cluster.list.bind(cluster)),
        apply: slowly(cluster.apply.bind(cluster)),
        create: slowly(cluster.create.bind(cluster)),
        delete: slowly(cluster.delete.bind(cluster)),
        removeFinalizers: slowly(cluster.removeFinalizers.bind(cluster)),
        readLog: slowly(cluster.readLog.bind(cluster)),
      },
      publisher: {
        publish: (entries) => {
          if (clock.now().getTime() - start < timeoutMs) return bed.publisher.publish(entries);
          kill();
          return new Promise(() => {});
        },
      },
    },
  };
}
