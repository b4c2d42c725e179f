/**
 * A deploy's dependencies as the deploy tests use them: the real Kubernetes adapter over HTTP to the
 * embedded API, the example projects copied to a temp dir (so a test may change its manifests),
 * recording fakes for the rest, and a clock that the rollout waits move forward.
 *
 * @example
 * const { deps, projects } = deployTestDeps(k8s, "kubler-projects-");
 */
import { cpSync, mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createKubernetesCluster } from "../../shared/adapters/kubernetes-cluster.js";
import { DirectoryManifestSource } from "../../shared/local/directory-manifest-source.js";
import { MemoryEnvironmentStops } from "../../shared/local/memory-environment-stops.js";
import type { MemoryKubernetes } from "../../shared/local/memory-kubernetes/index.js";
import type { DeployEnvironmentDeps } from "../../shared/services/deploy-environment.js";
import { FixedClock, RecordingAuditLog, RecordingPublisher, RecordingScheduler } from "./index.js";

const EXAMPLES = join(import.meta.dirname, "../../examples/projects");

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
