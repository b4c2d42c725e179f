/**
 * The cleanup-environments function as invoked for a sweep (the recurring schedule, or `aws lambda
 * invoke` by hand), built with fakes: against the embedded Kubernetes API over HTTP through the real
 * adapter, the scheduler, publisher, audit log and clock faked.
 */
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { createCleanupInvocation } from "../../functions/cleanup-environments/consumer.js";
import { createKubernetesCluster } from "../../shared/adapters/kubernetes-cluster.js";
import { KUBLER_SOURCE } from "../../shared/domain/catalog.js";
import { environmentNamespace, namespaceFor } from "../../shared/domain/environment.js";
import { InvalidDetailError } from "../../shared/errors.js";
import { type MemoryKubernetes, startMemoryKubernetes } from "../../shared/local/memory-kubernetes/index.js";
import { type CleanupTestDeps, cleanupTestDeps } from "../fakes/cleanup-deps.js";
import { sequentialIds } from "../fakes/index.js";
import { environmentState } from "../fakes/managed-environment.js";

const NOW = new Date("2026-11-21T10:00:00Z");
const PROJECT = "flightjs/flight-management";
const ENVIRONMENT = "review/feature/booking-validation";
const NAMESPACE = namespaceFor(PROJECT, ENVIRONMENT);

let k8s: MemoryKubernetes;
let deps: CleanupTestDeps;
let invoke: (event: unknown) => Promise<unknown>;

beforeEach(async () => {
  k8s = await startMemoryKubernetes({ namespaceFinalizeMs: 5 });
  deps = cleanupTestDeps(createKubernetesCluster({ kubeconfig: k8s.kubeconfig, sleep: async () => {} }), NOW);
  invoke = createCleanupInvocation(deps, sequentialIds("corr"));
  // Expired a minute ago.
  k8s.store.put(
    environmentNamespace(
      environmentState({
        namespace: NAMESPACE,
        gitlab: { instance: "https://gitlab.example.com", projectId: 2, projectPath: PROJECT },
        environment: ENVIRONMENT,
        ref: "feature/booking-validation",
        pipelineId: 100,
        mrIid: 16,
        ttl: "1h",
        expiresAt: new Date(NOW.getTime() - 60_000),
        deployedAt: new Date(NOW.getTime() - 3_660_000),
        requestedAt: new Date(NOW.getTime() - 3_660_000),
        correlationId: "corr-deploy",
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
    const stop = {
      version: "0",
      id: "event-stop",
      "detail-type": "Environment Stop Requested",
      source: KUBLER_SOURCE,
      account: "123456789012",
      time: NOW.toISOString(),
      region: "eu-west-1",
      resources: [],
      detail: {
        correlationId: "corr-stop",
        gitlab: { instance: "https://gitlab.example.com", projectId: 2, projectPath: PROJECT },
        environment: ENVIRONMENT,
        reason: "closed",
      },
    };
    expect(await invoke(stop)).toEqual({ kind: "deleted", namespace: NAMESPACE });
    await expect(invoke({ action: "stop" })).rejects.toThrow(InvalidDetailError);
  });
});
