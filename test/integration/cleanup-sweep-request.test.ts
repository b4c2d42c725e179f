/**
 * The cleanup-environments function as invoked for a sweep (the recurring schedule, or `aws lambda
 * invoke` by hand), built with fakes: against the embedded Kubernetes API over HTTP through the real
 * adapter, the scheduler, publisher, audit log and clock faked.
 */
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { createCleanupInvocation } from "../../functions/cleanup-environments/consumer.js";
import { environmentNamespace } from "../../shared/domain/environment.js";
import { InvalidDetailError } from "../../shared/errors.js";
import type { MemoryKubernetes } from "../../shared/local/memory-kubernetes/index.js";
import {
  CLEANUP_NOW,
  type CleanupTestDeps,
  REVIEW,
  reviewState,
  startCleanupCluster,
  stopEnvelope,
  stopRequested,
} from "../fakes/cleanup-deps.js";
import { sequentialIds } from "../fakes/index.js";

const NOW = CLEANUP_NOW;
const NAMESPACE = REVIEW.namespace;

let k8s: MemoryKubernetes;
let deps: CleanupTestDeps;
let invoke: (event: unknown) => Promise<unknown>;

beforeEach(async () => {
  ({ k8s, deps } = await startCleanupCluster());
  invoke = createCleanupInvocation(deps, sequentialIds("corr"));
  // Expired a minute ago.
  k8s.store.put(
    environmentNamespace(
      reviewState({
        ttl: "1h",
        expiresAt: new Date(NOW.getTime() - 60_000),
        deployedAt: new Date(NOW.getTime() - 3_660_000),
        requestedAt: new Date(NOW.getTime() - 3_660_000),
      }),
    ),
  );
});
afterEach(() => k8s.close());

function deletionTimestamp(): string | undefined {
  return k8s.store.get("v1", "Namespace", undefined, NAMESPACE)?.metadata.deletionTimestamp;
}

describe("cleanup-environments invoked for a sweep", () => {
  it("refuses a dry run it cannot read rather than deleting: a string, a misspelled key, an extra key", async () => {
    for (const request of [
      { action: "sweep", dryRun: "true" },
      { action: "sweep", dryRun: 1 },
      { action: "sweep", dryRun: null },
      { action: "sweep", dry_run: true },
      { action: "sweep", dryrun: true },
      { action: "sweep", dryRun: true, force: true },
    ]) {
      const what = JSON.stringify(request);
      deps.audit.records.length = 0;
      const refused = invoke(request);
      await expect(refused, what).rejects.toThrow(InvalidDetailError);
      await expect(refused, what).rejects.toThrow(/^sweep refused, nothing deleted: .*dryRun/);
      // Exactly its deny line, at the injected clock's time.
      expect(deps.audit.records, what).toEqual([
        expect.objectContaining({
          action: "environment.sweep",
          outcome: "deny",
          reason: expect.stringMatching(/^sweep refused, nothing deleted: /),
          correlationId: null,
          at: NOW.toISOString(),
        }),
      ]);
    }
    expect(deps.audit.records.at(-1)?.reason).toMatch(/unknown field\(s\) "force"/);
    expect(deletionTimestamp()).toBeUndefined();
    expect(k8s.stats.byVerb.delete).toBeUndefined();
    expect(deps.scheduler.calls).toEqual([]);
    expect(deps.publisher.entries).toEqual([]);
  });

  it("reports without deleting on dryRun: true, and deletes on a plain sweep", async () => {
    expect(await invoke({ action: "sweep", dryRun: true })).toMatchObject({
      dryRun: true,
      expired: 1,
      deleted: 0,
    });
    expect(deletionTimestamp()).toBeUndefined();
    expect(deps.scheduler.calls).toEqual([]);

    // As the recurring schedule sends it (infra/scheduling.ts SWEEP_INPUT).
    expect(await invoke({ action: "sweep" })).toMatchObject({ dryRun: false, expired: 1, deleted: 1 });
    expect(deps.scheduler.calls).toEqual([`cancel ${NAMESPACE}`]);
    expect(deps.publisher.entries).toMatchObject([{ detailType: "Environment Deleted" }]);
    expect(await invoke({ action: "sweep", dryRun: false })).toMatchObject({ dryRun: false });
  });

  it("takes anything but a sweep request for a bus event: a stop stops, as the bus consumer does", async () => {
    const stop = stopEnvelope(stopRequested({ reason: "closed" }));
    expect(await invoke(stop)).toEqual({ kind: "deleted", namespace: NAMESPACE });
    await expect(invoke({ action: "stop" })).rejects.toThrow(InvalidDetailError);
  });
});
