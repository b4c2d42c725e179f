/**
 * Cleanup's dependencies as the cleanup tests use them: the cluster a test connects (the real
 * adapter to its embedded API), and recording fakes for the scheduler, publisher and audit log, on a
 * clock fixed at `now`. Beside them, what the stop and sweep tests share: the review environment
 * they stop, its managed namespace, the stop as the bus delivers it, and the embedded API started
 * with the deps connected to it.
 *
 * @example
 * const deps = cleanupTestDeps(createKubernetesCluster({ kubeconfig: k8s.kubeconfig }), NOW);
 */
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import {
  type CreateKubernetesClusterOptions,
  createKubernetesCluster,
} from "../../shared/adapters/kubernetes-cluster.js";
import { type Detail, KUBLER_SOURCE } from "../../shared/domain/catalog.js";
import { type EnvironmentState, namespaceFor } from "../../shared/domain/environment.js";
import { COMMIT_STATUSES_FILE, JsonlCommitStatuses } from "../../shared/local/jsonl-commit-statuses.js";
import { JsonlFile } from "../../shared/local/jsonl-file.js";
import { type MemoryKubernetes, startMemoryKubernetes } from "../../shared/local/memory-kubernetes/index.js";
import type { EnvironmentCluster, FinalizerRemover } from "../../shared/ports.js";
import type { StopDeps } from "../../shared/services/cleanup-environments.js";
import { reportStatus } from "../../shared/services/report-status.js";
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

/** The time the cleanup tests' clock is fixed at. */
export const CLEANUP_NOW = new Date("2026-11-21T10:00:00Z");

const HOUR = 3_600_000;
const PROJECT = "flightjs/flight-management";
const ENVIRONMENT = "review/feature/booking-validation";

/** The environment the cleanup tests stop and sweep: merge request 16 of project 2, commit 111…1. */
export const REVIEW = {
  project: PROJECT,
  environment: ENVIRONMENT,
  namespace: namespaceFor(PROJECT, ENVIRONMENT),
  gitlab: { instance: "https://gitlab.example.com", projectId: 2, projectPath: PROJECT },
  sha: "1111111111111111111111111111111111111111",
};

/**
 * The review environment as a succeeded deploy left it a day before CLEANUP_NOW, expiring two days
 * after (ttl 72h), unless `overrides` say otherwise; stored with `environmentNamespace`.
 *
 * @example
 * k8s.store.put(environmentNamespace(reviewState({ expiresAt: new Date(CLEANUP_NOW.getTime() - 60_000) })));
 */
export function reviewState(overrides: Partial<EnvironmentState> = {}): EnvironmentState {
  return {
    namespace: REVIEW.namespace,
    gitlab: REVIEW.gitlab,
    environment: REVIEW.environment,
    sha: REVIEW.sha,
    ref: "feature/booking-validation",
    pipelineId: 100,
    mrIid: 16,
    ttl: "72h",
    expiresAt: new Date(CLEANUP_NOW.getTime() + 48 * HOUR),
    deployedAt: new Date(CLEANUP_NOW.getTime() - 24 * HOUR),
    requestedAt: new Date(CLEANUP_NOW.getTime() - 24 * HOUR),
    status: "succeeded",
    rolloutDeadline: null,
    correlationId: "corr-deploy",
    url: null,
    lastGoodDigest: null,
    ...overrides,
  };
}

/** A stop of the review environment on its merge (correlation id corr-stop), unless `overrides` say otherwise. */
export function stopRequested(
  overrides: Partial<Detail<"Environment Stop Requested">> = {},
): Detail<"Environment Stop Requested"> {
  return {
    correlationId: "corr-stop",
    gitlab: REVIEW.gitlab,
    environment: REVIEW.environment,
    reason: "merged",
    ...overrides,
  };
}

/**
 * The stop as the bus delivers it to cleanup-environments, published at `time`.
 *
 * @example
 * await createCleanupConsumer(deps)(stopEnvelope(stopRequested({ reason: "closed" })));
 */
export function stopEnvelope(
  detail: Detail<"Environment Stop Requested"> = stopRequested(),
  time: string = CLEANUP_NOW.toISOString(),
) {
  return {
    version: "0",
    id: "event-stop",
    "detail-type": "Environment Stop Requested",
    source: KUBLER_SOURCE,
    account: "123456789012",
    time,
    region: "eu-west-1",
    resources: [],
    detail,
  };
}

/**
 * The embedded Kubernetes API (a deleted namespace emptied and gone in 5 ms) and cleanup's deps on
 * it through the real adapter, whose backoff sleeps are not waited; `k8s.close()` stops it.
 *
 * @example
 * beforeEach(async () => ({ k8s, deps } = await startCleanupCluster()));
 * afterEach(() => k8s.close());
 */
export async function startCleanupCluster(
  options: CreateKubernetesClusterOptions = {},
): Promise<{ k8s: MemoryKubernetes; deps: CleanupTestDeps }> {
  const k8s = await startMemoryKubernetes({ namespaceFinalizeMs: 5 });
  const cluster = createKubernetesCluster({ kubeconfig: k8s.kubeconfig, sleep: async () => {}, ...options });
  return { k8s, deps: cleanupTestDeps(cluster, CLEANUP_NOW) };
}

/**
 * Resolves once `condition` holds (the embedded API's namespace controller works in the background),
 * checked every 5 ms, 400 times at most; then fails naming `what`.
 *
 * @example
 * await waitUntil(() => !k8s.store.get("v1", "Namespace", undefined, name), "the namespace is gone");
 */
export async function waitUntil(condition: () => boolean, what: string): Promise<void> {
  for (let i = 0; i < 400; i++) {
    if (condition()) return;
    await new Promise((resolve) => setTimeout(resolve, 5));
  }
  throw new Error(`timed out waiting until ${what}`);
}

/**
 * What report-status makes of the Environment Deleted events `deps` published, in order: each
 * outcome, and the commit statuses it wrote (a JSONL file in a temp dir, removed after).
 *
 * @example
 * expect((await reportedStatuses(deps)).outcomes).toEqual([{ kind: "set", state: "canceled" }]);
 */
export async function reportedStatuses(
  deps: CleanupTestDeps,
): Promise<{ outcomes: unknown[]; written: unknown[] }> {
  const dir = mkdtempSync(join(tmpdir(), "kubler-stop-statuses-"));
  try {
    const file = new JsonlFile(join(dir, COMMIT_STATUSES_FILE));
    const report = {
      statuses: new JsonlCommitStatuses(file, deps.clock),
      audit: deps.audit,
      clock: deps.clock,
    };
    const outcomes = [];
    for (const entry of deps.publisher.entries) {
      if (entry.detailType !== "Environment Deleted") continue;
      outcomes.push(await reportStatus(report, { ...entry, time: deps.clock.now() }));
    }
    await file.close();
    const text = readFileSync(file.path, "utf8").trim();
    return { outcomes, written: text ? text.split("\n").map((line) => JSON.parse(line)) : [] };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}
