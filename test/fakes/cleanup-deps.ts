/**
 * Cleanup's dependencies as the cleanup tests use them: the cluster a test connects (the real
 * adapter to its embedded API), and recording fakes for the scheduler, publisher and audit log, on a
 * clock fixed at `now`.
 *
 * @example
 * const deps = cleanupTestDeps(createKubernetesCluster({ kubeconfig: k8s.kubeconfig }), NOW);
 */
import type { EnvironmentCluster, FinalizerRemover } from "../../shared/ports.js";
import type { StopDeps } from "../../shared/services/cleanup-environments.js";
import { FixedClock, RecordingAuditLog, RecordingPublisher, RecordingScheduler } from "./index.js";

export type CleanupTestDeps = StopDeps & {
  scheduler: RecordingScheduler;
  publisher: RecordingPublisher;
  audit: RecordingAuditLog;
  clock: FixedClock;
};

export function cleanupTestDeps(cluster: EnvironmentCluster & FinalizerRemover, now: Date): CleanupTestDeps {
  return {
    cluster,
    scheduler: new RecordingScheduler(),
    publisher: new RecordingPublisher(),
    audit: new RecordingAuditLog(),
    clock: new FixedClock(now),
  };
}
