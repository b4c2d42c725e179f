/**
 * The stop hold (stop-hold.ts) is a help for the bus's retry, never a condition of the stop: a
 * cluster or a CI job that refuses it (a ResourceQuota on ConfigMaps, an admission webhook, RBAC, a
 * job's own immutable `kubler-stop-hold`) must not keep the environment from being deleted. Against
 * the embedded Kubernetes API over HTTP, through the real adapter.
 */
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { createCleanupConsumer } from "../../functions/cleanup-environments/consumer.js";
import { FUNCTION_SPECS } from "../../infra/function-specs.js";
import { STOP_HOLD_NAME } from "../../shared/domain/deploy-manifests.js";
import { environmentNamespace } from "../../shared/domain/environment.js";
import type { KubeObject, MemoryKubernetes } from "../../shared/local/memory-kubernetes/index.js";
import { sweepExpiredEnvironments } from "../../shared/services/cleanup-environments.js";
import { STOP_HOLD_FINALIZER, STOP_HOLD_GRACE_MS } from "../../shared/services/stop-hold.js";
import {
  type CleanupTestDeps,
  REVIEW,
  reviewState,
  startCleanupCluster,
  stopEnvelope,
  waitUntil,
} from "../fakes/cleanup-deps.js";

const { sha: SHA, environment: ENVIRONMENT, namespace: NAMESPACE, gitlab } = REVIEW;

let k8s: MemoryKubernetes;
let deps: CleanupTestDeps;

beforeEach(async () => {
  ({ k8s, deps } = await startCleanupCluster());
});
afterEach(() => k8s.close());

function seed(): void {
  k8s.store.put(environmentNamespace(reviewState()));
}

function namespace(): KubeObject | undefined {
  return k8s.store.get("v1", "Namespace", undefined, NAMESPACE);
}

function hold(): KubeObject | undefined {
  return k8s.store.get("v1", "ConfigMap", NAMESPACE, STOP_HOLD_NAME);
}

function stopLines(): [string, string][] {
  return deps.audit.records
    .filter((r) => r.action === "environment.stop")
    .map((r) => [r.outcome, r.reason] as [string, string]);
}

describe("a stop whose hold the cluster refuses", () => {
  it.each([
    [
      403,
      'configmaps "kubler-stop-hold" is forbidden: exceeded quota: team-quota, requested: count/configmaps=1',
    ],
    [422, 'admission webhook "policy.example.com" denied the request: configmaps must carry label team'],
    [
      403,
      'configmaps "kubler-stop-hold" is forbidden: User "kubler" cannot patch resource "configmaps" in the namespace',
    ],
  ])(
    "still deletes the namespace (%i: %s), and its audit line says it was not held",
    async (status, message) => {
      seed();
      k8s.faults.add({ verb: "apply", resource: "configmaps", name: STOP_HOLD_NAME, status, message });

      const outcome = await createCleanupConsumer(deps)(stopEnvelope());

      expect(outcome).toEqual({ kind: "deleted", namespace: NAMESPACE });
      await waitUntil(() => !namespace(), "the namespace is gone");
      expect(deps.publisher.entries.map((e) => e.detail)).toEqual([
        expect.objectContaining({ namespace: NAMESPACE, sha: SHA }),
      ]);
      expect(stopLines()).toEqual([
        ["success", `deleted (merged); not held until told (ConfigMap kubler-stop-hold: ${message})`],
      ]);
    },
  );

  it("says, when its publish then fails, that the namespace was deleted without a hold", async () => {
    seed();
    k8s.faults.add({
      verb: "apply",
      resource: "configmaps",
      name: STOP_HOLD_NAME,
      status: 403,
      message: "exceeded quota",
    });
    deps.publisher.failNext = 1;

    await expect(createCleanupConsumer(deps)(stopEnvelope())).rejects.toThrow(/failed to publish/);

    expect(stopLines()).toEqual([
      [
        "failure",
        expect.stringMatching(
          new RegExp(
            `namespace ${NAMESPACE} deleted, not held until told \\(ConfigMap kubler-stop-hold: .*exceeded quota.*\\): .*failed to publish`,
          ),
        ),
      ],
    ]);
  });
});

describe("a CI job's own kubler-stop-hold", () => {
  it("made immutable before the stop does not keep the stop from deleting the namespace", async () => {
    seed();
    k8s.store.put({
      apiVersion: "v1",
      kind: "ConfigMap",
      immutable: true,
      metadata: { name: STOP_HOLD_NAME, namespace: NAMESPACE },
      data: { why: "a job was here" },
    });

    const outcome = await createCleanupConsumer(deps)(stopEnvelope());

    expect(outcome).toEqual({ kind: "deleted", namespace: NAMESPACE });
    await waitUntil(() => !namespace(), "the namespace is gone");
    expect(stopLines()).toEqual([
      ["success", expect.stringMatching(/^deleted \(merged\); not held until told/)],
    ]);
  });

  it("with Kubler's finalizer put on it by the job is let go once told, the job's own finalizer left", async () => {
    seed();
    k8s.store.put({
      apiVersion: "v1",
      kind: "ConfigMap",
      metadata: {
        name: STOP_HOLD_NAME,
        namespace: NAMESPACE,
        finalizers: ["example.com/job", STOP_HOLD_FINALIZER],
      },
      data: { why: "a job was here" },
    });

    expect(await createCleanupConsumer(deps)(stopEnvelope())).toEqual({
      kind: "deleted",
      namespace: NAMESPACE,
    });

    await waitUntil(
      () => hold()?.metadata.deletionTimestamp !== undefined,
      "the namespace controller is on it",
    );
    expect(hold()?.metadata.finalizers).toEqual(["example.com/job"]);
  });
});

/** A stop whose every attempt failed to publish: what the bus dead-letters, the namespace held. */
async function deadLetteredStop(): Promise<void> {
  seed();
  const consume = createCleanupConsumer(deps);
  deps.publisher.failNext = 3;
  for (let attempt = 0; attempt < 3; attempt++) await expect(consume(stopEnvelope())).rejects.toThrow();
  await waitUntil(
    () => hold()?.metadata.deletionTimestamp !== undefined,
    "the namespace controller waits on the hold",
  );
  deps.audit.records.length = 0;
}

/** The sweep's clock, this long after the namespace was deleted (the embedded API's own clock). */
function sweepClockAfter(ms: number): void {
  const deletedAt = Date.parse(String(namespace()?.metadata.deletionTimestamp));
  deps.clock.advance(deletedAt + ms - deps.clock.now().getTime());
}

describe("the sweep and a stop whose retries were all spent (dead-lettered)", () => {
  it("tells what ran there and lets the namespace go once the stop's retries are surely over", async () => {
    await deadLetteredStop();
    sweepClockAfter(STOP_HOLD_GRACE_MS + 1_000);

    const report = await sweepExpiredEnvironments(deps, { newId: () => "sweep-id" });

    expect(deps.publisher.entries).toEqual([
      {
        detailType: "Environment Deleted",
        detail: {
          correlationId: "corr-deploy",
          gitlab,
          environment: ENVIRONMENT,
          namespace: NAMESPACE,
          sha: SHA,
          ref: "feature/booking-validation",
          pipelineId: 100,
        },
      },
    ]);
    await waitUntil(() => !namespace(), "the namespace is gone");
    expect(report.released).toEqual([{ namespace: NAMESPACE, reason: expect.stringContaining(SHA) }]);
    const line = deps.audit.records.find((r) => r.action === "environment.sweep.release");
    expect(line).toMatchObject({
      outcome: "success",
      reason: expect.stringMatching(
        new RegExp(
          `^held by a stop that never told what ran there \\(deleted at .*\\): told now \\(${SHA}\\), namespace let go$`,
        ),
      ),
      subject: { namespace: NAMESPACE, environment: ENVIRONMENT },
    });
  });

  it("leaves a hold younger than that to the stop's own retries, and a dry run leaves every hold", async () => {
    await deadLetteredStop();
    sweepClockAfter(STOP_HOLD_GRACE_MS - 60_000);
    await sweepExpiredEnvironments(deps, { newId: () => "sweep-id" });
    sweepClockAfter(STOP_HOLD_GRACE_MS + 1_000);
    await sweepExpiredEnvironments(deps, { dryRun: true, newId: () => "sweep-id" });

    expect(deps.publisher.entries).toEqual([]);
    expect(hold()?.metadata.finalizers).toEqual([STOP_HOLD_FINALIZER]);
    expect(namespace()).toBeDefined();
  });

  it("keeps the hold when it cannot tell, and reports that as a failure to try again next hour", async () => {
    await deadLetteredStop();
    sweepClockAfter(STOP_HOLD_GRACE_MS + 1_000);
    deps.publisher.failNext = 1;

    const report = await sweepExpiredEnvironments(deps, { newId: () => "sweep-id" });

    expect(report.failed).toEqual([
      { namespace: NAMESPACE, reason: expect.stringMatching(/^stop hold kept: .*failed to publish/) },
    ]);
    expect(hold()?.metadata.finalizers).toEqual([STOP_HOLD_FINALIZER]);
    expect(deps.audit.records.find((r) => r.action === "environment.sweep.release")?.outcome).toBe("failure");

    await sweepExpiredEnvironments(deps, { newId: () => "sweep-id" });
    await waitUntil(() => !namespace(), "the namespace is gone");
  });

  it("lets go only Kubler's finalizer, and tells once: a hold it let go is not told again", async () => {
    await deadLetteredStop();
    const held = hold();
    k8s.store.put({
      ...(held as KubeObject),
      metadata: { ...(held as KubeObject).metadata, finalizers: ["example.com/job", STOP_HOLD_FINALIZER] },
    });
    sweepClockAfter(STOP_HOLD_GRACE_MS + 1_000);

    await sweepExpiredEnvironments(deps, { newId: () => "sweep-id" });
    expect(hold()?.metadata.finalizers).toEqual(["example.com/job"]);
    expect(deps.publisher.entries).toHaveLength(1);

    await sweepExpiredEnvironments(deps, { newId: () => "sweep-id" });
    expect(deps.publisher.entries).toHaveLength(1);
  });
});

describe("STOP_HOLD_GRACE_MS", () => {
  it("outlasts a stop's own attempts: three of the function's timeout, Lambda's retries 1 and 2 minutes apart", () => {
    const spec = FUNCTION_SPECS["cleanup-environments"];
    const attempts = 1 + (spec.asyncInvoke?.retryAttempts ?? 2);
    expect(STOP_HOLD_GRACE_MS).toBeGreaterThan(attempts * spec.timeout.toMilliseconds() + 3 * 60_000);
  });
});

describe("a stop racing a deploy", () => {
  it("whose delete meets the namespace written since it was read leaves no hold on the namespace that stays", async () => {
    seed();
    // What the API answers a delete held to a resourceVersion a deploy's write has moved on.
    k8s.faults.add({
      verb: "delete",
      resource: "namespaces",
      status: 409,
      message: "the object has been modified",
      times: 1,
    });

    await expect(createCleanupConsumer(deps)(stopEnvelope())).rejects.toThrow(/modified/);

    expect(namespace()?.metadata.deletionTimestamp).toBeUndefined();
    expect(hold()?.metadata.finalizers).toBeUndefined();
    expect(deps.publisher.entries).toEqual([]);
    // The bus's retry reads it again and stops it as the stop still applies.
    expect(await createCleanupConsumer(deps)(stopEnvelope())).toEqual({
      kind: "deleted",
      namespace: NAMESPACE,
    });
    await waitUntil(() => !namespace(), "the namespace is gone");
  });
});

describe("two deliveries of one stop at once (at-least-once)", () => {
  it("both succeed, both tell the same sha, and the namespace goes", async () => {
    seed();
    const consume = createCleanupConsumer(deps);

    const outcomes = await Promise.all([consume(stopEnvelope()), consume(stopEnvelope())]);

    // Which one deletes is a race; neither fails, and one of them does.
    expect(outcomes.every((o) => o.kind === "deleted" || o.kind === "already_gone")).toBe(true);
    expect(outcomes.some((o) => o.kind === "deleted")).toBe(true);
    expect(deps.publisher.entries.map((e) => e.detail)).toEqual([
      expect.objectContaining({ sha: SHA }),
      expect.objectContaining({ sha: SHA }),
    ]);
    await waitUntil(() => !namespace(), "the namespace is gone");
  });
});
