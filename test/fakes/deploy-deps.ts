/**
 * A deploy's dependencies as the deploy tests use them: the real Kubernetes adapter over HTTP to the
 * embedded API, the example projects copied to a temp dir (so a test may change its manifests),
 * recording fakes for the rest, and a clock that the rollout waits move forward.
 *
 * @example
 * const { deps, projects } = deployTestDeps(k8s, "kubler-projects-");
 */
import { cpSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, beforeEach } from "vitest";
import { createKubernetesCluster } from "../../shared/adapters/kubernetes-cluster.js";
import type { Detail } from "../../shared/domain/catalog.js";
import { environmentLabels, namespaceFor } from "../../shared/domain/environment.js";
import { DirectoryManifestSource } from "../../shared/local/directory-manifest-source.js";
import { MemoryEnvironmentStops } from "../../shared/local/memory-environment-stops.js";
import {
  type MemoryKubernetes,
  type MemoryKubernetesOptions,
  startMemoryKubernetes,
} from "../../shared/local/memory-kubernetes/index.js";
import type { DeployEnvironmentDeps, DeployTrigger } from "../../shared/services/deploy-environment.js";
import { FixedClock, RecordingAuditLog, RecordingPublisher, RecordingScheduler } from "./index.js";

const EXAMPLES = join(import.meta.dirname, "../../examples/projects");

/** The example project the deploy tests deploy (GitLab project 2), and deployRequested's default. */
export const PROJECT = "flightjs/flight-management";
/** deployRequested's default environment: merge request 16's review app. */
export const ENVIRONMENT = "review/feature/x";
/** The namespace Kubler gives ENVIRONMENT of PROJECT. */
export const NAMESPACE = namespaceFor(PROJECT, ENVIRONMENT);
/** deployRequested's default commit: the first revision a test deploys. */
export const SHA_1 = "1".repeat(40);
/** A second revision, as a later pipeline's deploy request sets it. */
export const SHA_2 = "2".repeat(40);
/** PROJECT's image in its example manifests, without the commit tag (`{sha}` there). */
export const IMAGE = "registry.example.com/flightjs/flight-management";

export type DeployTestDeps = DeployEnvironmentDeps & {
  publisher: RecordingPublisher;
  audit: RecordingAuditLog;
  scheduler: RecordingScheduler;
  clock: FixedClock;
  stops: MemoryEnvironmentStops;
};

export function deployTestDeps(
  k8s: MemoryKubernetes,
  prefix: string,
): { deps: DeployTestDeps; projects: string } {
  const projects = mkdtempSync(join(tmpdir(), prefix));
  cpSync(EXAMPLES, projects, { recursive: true });
  const clock = new FixedClock(new Date("2026-11-21T10:00:00Z"));
  const deps: DeployTestDeps = {
    cluster: createKubernetesCluster({ kubeconfig: k8s.kubeconfig }),
    manifests: new DirectoryManifestSource(projects),
    scheduler: new RecordingScheduler(),
    publisher: new RecordingPublisher(),
    stops: new MemoryEnvironmentStops(clock),
    audit: new RecordingAuditLog(),
    clock,
    sleep: (ms) => {
      clock.advance(ms);
      return new Promise((resolve) => setTimeout(resolve, ms));
    },
    pullSecret: async () => null,
    defaultTtl: "72h",
    rolloutPollMs: 10,
  };
  return { deps, projects };
}

/** What a deploy test file works on: `k8s` for the whole file, the rest made again for each test. */
export interface DeployCluster {
  k8s: MemoryKubernetes;
  deps: DeployTestDeps;
  /** The temp dir of the test's copy of the example projects. */
  projects: string;
  /** PROJECT's files in that copy. */
  files: ExampleProject;
}

/**
 * Registers a deploy test file's hooks: the embedded API started once (rollouts of 20 ms, namespaces
 * finalized in 10 ms, unless `cluster` says otherwise) and closed after; before each test, its faults
 * cleared, fresh deployTestDeps over a new copy of the projects (`prefix`), and the namespace `clear`
 * (NAMESPACE unless told; "all": every namespace; "none": none) deleted. A file's own beforeEach,
 * registered after, runs after this one.
 *
 * @example
 * const env = useDeployCluster("kubler-admission-");
 * it("deploys", async () => {
 *   env.files.setRollout("fail");
 *   await deployEnvironment(env.deps, deployRequested());
 * });
 */
export function useDeployCluster(
  prefix: string,
  { cluster, clear = NAMESPACE }: { cluster?: MemoryKubernetesOptions; clear?: string } = {},
): DeployCluster {
  const env = {} as DeployCluster;
  beforeAll(async () => {
    env.k8s = await startMemoryKubernetes({ rolloutDelayMs: 20, namespaceFinalizeMs: 10, ...cluster });
  });
  afterAll(() => env.k8s?.close());
  beforeEach(async () => {
    env.k8s.faults.clear();
    ({ deps: env.deps, projects: env.projects } = deployTestDeps(env.k8s, prefix));
    env.files = exampleProject(env.projects, PROJECT);
    if (clear !== "none")
      await clearNamespaces(env.k8s, env.deps.cluster, clear === "all" ? undefined : clear);
  });
  return env;
}

/**
 * A Deploy Requested at 10:00Z of the example project flightjs/flight-management (project 2): merge
 * request 16's `review/feature/x` at commit 111…1, pipeline 100, unless `overrides` say otherwise.
 * Its correlation id names its pipeline.
 *
 * @example
 * await deployEnvironment(deps, deployRequested({ sha: "2".repeat(40), pipelineId: 101 }));
 */
export function deployRequested(overrides: Partial<Detail<"Deploy Requested">> = {}): DeployTrigger {
  const pipelineId = overrides.pipelineId ?? 100;
  return {
    detailType: "Deploy Requested",
    time: new Date("2026-11-21T10:00:00Z"),
    detail: {
      correlationId: `corr-${pipelineId}`,
      gitlab: {
        instance: "https://gitlab.example.com",
        projectId: 2,
        projectPath: PROJECT,
      },
      environment: ENVIRONMENT,
      sha: SHA_1,
      ref: "feature/x",
      pipelineId,
      mrIid: 16,
      ...overrides,
    },
  };
}

/**
 * Revision `n` of `environment` of PROJECT, as a later pipeline requests each: commit n…n, pipeline
 * 100 + n, n minutes after 10:00Z, the branch the environment is named after; the rest as
 * deployRequested's.
 *
 * @example
 * await deployEnvironment(deps, revisionRequested("review/jam-1", 2, "jam-1-2"));
 */
export function revisionRequested(environment: string, n: number, correlationId: string): DeployTrigger {
  const trigger = deployRequested({
    correlationId,
    environment,
    sha: String(n).repeat(40),
    ref: environment.replace("review/", ""),
    pipelineId: 100 + n,
  });
  return { ...trigger, time: new Date(Date.parse("2026-11-21T10:00:00Z") + n * 60_000) };
}

/**
 * Deletes every namespace an earlier test left, through the real adapter, and waits (up to 2 s, as
 * the embedded API finalizes them) until `namespace` is gone, or all of them when none is named.
 *
 * @example
 * await clearNamespaces(k8s, deps.cluster, NAMESPACE);
 */
export async function clearNamespaces(
  k8s: MemoryKubernetes,
  cluster: DeployEnvironmentDeps["cluster"],
  namespace?: string,
): Promise<void> {
  for (const ns of k8s.store.list("v1", "Namespace"))
    await cluster.delete({ apiVersion: "v1", kind: "Namespace", name: ns.metadata.name });
  const left = () =>
    namespace === undefined
      ? k8s.store.list("v1", "Namespace").length > 0
      : k8s.store.get("v1", "Namespace", undefined, namespace) !== undefined;
  for (let i = 0; i < 200 && left(); i++) {
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
}

/** A copied example project's files, changed as a developer would between two pipelines. */
export interface ExampleProject {
  addManifest(name: string, text: string): void;
  dropManifest(name: string): void;
  /** The simulated rollout of deploy/deployment.yaml fails (annotation local.kubler.dev/rollout), or succeeds again. */
  setRollout(outcome: "fail" | "ok"): void;
}

/**
 * @example
 * const files = exampleProject(projects, "flightjs/flight-management");
 * files.setRollout("fail");
 */
export function exampleProject(projects: string, project: string): ExampleProject {
  const deployDir = join(projects, project, "deploy");
  return {
    addManifest: (name, text) => writeFileSync(join(deployDir, name), text),
    dropManifest: (name) => rmSync(join(deployDir, name)),
    setRollout: (outcome) => {
      const file = join(deployDir, "deployment.yaml");
      const text = readFileSync(file, "utf8").replace(/\n {6}annotations:\n.*\n/, "\n");
      writeFileSync(
        file,
        outcome === "fail"
          ? text.replace(
              "    metadata:\n      labels:",
              "    metadata:\n      annotations:\n        local.kubler.dev/rollout: fail\n      labels:",
            )
          : text,
      );
    },
  };
}

/**
 * Puts what a prune or a rollback must leave alone: a ConfigMap `by-hand` in the environment's
 * namespace without its labels (someone else's), and a ConfigMap `name` with the environment's labels
 * in another namespace, `neighbour`.
 */
export function putOutsiders(
  k8s: MemoryKubernetes,
  at: { namespace: string; projectId: number; environment: string; name: string },
): void {
  k8s.store.put({
    apiVersion: "v1",
    kind: "ConfigMap",
    metadata: { name: "by-hand", namespace: at.namespace },
  });
  k8s.store.put({ apiVersion: "v1", kind: "Namespace", metadata: { name: "neighbour" } });
  k8s.store.put({
    apiVersion: "v1",
    kind: "ConfigMap",
    metadata: {
      name: at.name,
      namespace: "neighbour",
      labels: environmentLabels(at.projectId, at.environment),
    },
  });
}
