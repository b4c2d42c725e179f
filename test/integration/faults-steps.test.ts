/**
 * The environment steps when the world misbehaves: a consumer that crashes mid-deploy and gets the
 * event again (the local bus retries, like EventBridge), pipelines delivered out of order, and a
 * schedule that is lost. Each case asserts the end state from the cluster, the bus's events.jsonl
 * and the audit trail's audit.jsonl.
 */
import { afterEach, describe, expect, it } from "vitest";
import { namespaceFor } from "../../shared/domain/environment.js";
import type { KubeObject } from "../../shared/ports.js";
import type { DeployCluster } from "../../shared/services/deploy-environment.js";
import { EXPIRY_GRACE_MS } from "../../shared/services/reconcile-environments.js";
import { eventually, type FaultHarness, PROJECT, SHA_1, SHA_2, startFaultHarness } from "./faults-harness.js";

const REVIEW = "review/feature/booking-validation";
const NAMESPACE = namespaceFor(PROJECT, REVIEW);
const MINUTE = 60_000;

let h: FaultHarness;
afterEach(() => h.close());

/** A cluster whose `crash` decides, per apply, to throw once: before the write, or just after it. */
function crashing(
  when: (object: KubeObject) => "before" | "after" | null,
): (cluster: DeployCluster) => DeployCluster {
  let crashed = false;
  return (cluster) => ({
    get: (ref) => cluster.get(ref),
    list: (...args) => cluster.list(...args),
    delete: (...args) => cluster.delete(...args),
    createToken: (...args) => cluster.createToken(...args),
    removeFinalizers: (...args) => cluster.removeFinalizers(...args),
    create: (object) => cluster.create(object),
    createApplied: (object) => crashOr(object, () => cluster.createApplied(object)),
    apply: (object) => crashOr(object, () => cluster.apply(object)),
  });
  async function crashOr(object: KubeObject, write: () => Promise<KubeObject>): Promise<KubeObject> {
    const moment = crashed ? null : when(object);
    if (moment === "before") {
      crashed = true;
      throw new Error(`consumer crashed before applying ${object.kind} ${object.metadata.name}`);
    }
    const stored = await write();
    if (moment === "after") {
      crashed = true;
      throw new Error(`consumer crashed after applying ${object.kind} ${object.metadata.name}`);
    }
    return stored;
  }
}

function deployFinished() {
  return h
    .events()
    .filter((e) => e["detail-type"] === "Deploy Finished")
    .map((e) => e.detail as { status: string; sha: string; pipelineId: number | null });
}

describe("a consumer crash mid-deploy, then redelivery", () => {
  it("crashing before the workload is applied: the retry finishes the deploy, reported once", async () => {
    h = await startFaultHarness({
      wrapCluster: crashing((o) => (o.kind === "Deployment" ? "before" : null)),
    });
    await h.publish("Deploy Requested", h.deployRequest());
    await h.bus.drain();

    expect(h.retries).toEqual([
      { target: "deploy-environment", error: expect.stringMatching(/crashed before/) },
    ]);
    expect(h.environment(REVIEW)).toMatchObject({ status: "succeeded", sha: SHA_1, pipelineId: 100 });
    const deployment = h.k8s.store.get("apps/v1", "Deployment", NAMESPACE, "flight-management");
    expect(JSON.stringify(deployment)).toContain(`flight-management:${SHA_1}`);
    expect(deployFinished()).toEqual([expect.objectContaining({ status: "succeeded", sha: SHA_1 })]);
    expect(h.scheduler.pending().map((p) => p.name)).toEqual([NAMESPACE]);
    const trail = h.audit().filter((r) => r.action === "environment.deploy");
    expect(trail.map((r) => r.outcome)).toEqual(["failure", "success"]);
    expect(trail[0]).toMatchObject({
      correlationId: "corr-100",
      reason: expect.stringMatching(/crashed before/),
    });
    expect(h.deadLetters()).toEqual([]);
  });

  it("crashing after the namespace says succeeded, before Deploy Finished: the retry reports it, once", async () => {
    const succeeded = (o: KubeObject) =>
      o.kind === "Namespace" && JSON.stringify(o.metadata.annotations ?? {}).includes('"succeeded"');
    h = await startFaultHarness({ wrapCluster: crashing((o) => (succeeded(o) ? "after" : null)) });
    await h.publish("Deploy Requested", h.deployRequest());
    await h.bus.drain();

    expect(h.retries).toHaveLength(1);
    expect(h.environment(REVIEW)).toMatchObject({ status: "succeeded", sha: SHA_1 });
    expect(deployFinished()).toEqual([expect.objectContaining({ status: "succeeded", sha: SHA_1 })]);
    expect(
      h
        .audit()
        .filter((r) => r.action === "environment.deploy")
        .map((r) => r.outcome),
    ).toEqual(["failure", "success"]);
  });
});

describe("pipelines delivered out of order", () => {
  it("an older pipeline after a newer one is refused as stale: the newer keeps running", async () => {
    h = await startFaultHarness();
    await h.publish("Deploy Requested", h.deployRequest({ pipelineId: 101, sha: SHA_2 }));
    await h.bus.drain();
    const newer = h.k8s.store.get("apps/v1", "Deployment", NAMESPACE, "flight-management");
    await h.publish("Deploy Requested", h.deployRequest({ pipelineId: 100, sha: SHA_1 }));
    await h.bus.drain();

    expect(h.environment(REVIEW)).toMatchObject({ status: "succeeded", sha: SHA_2, pipelineId: 101 });
    const deployment = h.k8s.store.get("apps/v1", "Deployment", NAMESPACE, "flight-management");
    expect(deployment?.metadata.resourceVersion).toBe(newer?.metadata.resourceVersion);
    expect(JSON.stringify(deployment)).toContain(`flight-management:${SHA_2}`);
    // The stale one ends too (superseded: its commit status becomes canceled, not running forever).
    expect(deployFinished()).toEqual([
      expect.objectContaining({ sha: SHA_2, pipelineId: 101, status: "succeeded" }),
      expect.objectContaining({ sha: SHA_1, pipelineId: 100, status: "superseded" }),
    ]);
    expect(h.audit()).toContainEqual(
      expect.objectContaining({
        action: "environment.deploy",
        outcome: "ignored",
        correlationId: "corr-100",
        reason: expect.stringMatching(/^stale: pipeline 100/),
      }),
    );
  });

  it("in order, the newer one replaces the older", async () => {
    h = await startFaultHarness();
    await h.publish("Deploy Requested", h.deployRequest({ pipelineId: 100, sha: SHA_1 }));
    await h.bus.drain();
    await h.publish("Deploy Requested", h.deployRequest({ pipelineId: 101, sha: SHA_2 }));
    await h.bus.drain();
    expect(h.environment(REVIEW)).toMatchObject({ status: "succeeded", sha: SHA_2, pipelineId: 101 });
    expect(deployFinished().map((d) => d.pipelineId)).toEqual([100, 101]);
  });
});

describe("the scheduler loses a schedule", () => {
  it("reconcile stops the expired environment; the one without expiry stays; once only", async () => {
    h = await startFaultHarness();
    h.setReviewTtl("30m");
    await h.publish("Deploy Requested", h.deployRequest());
    await h.publish(
      "Deploy Requested",
      h.deployRequest({ environment: "staging", ref: "main", mrIid: null, correlationId: "corr-staging" }),
    );
    await h.bus.drain();
    expect(h.scheduler.pending().map((p) => p.name)).toEqual([NAMESPACE]);

    await h.scheduler.cancel(NAMESPACE); // lost: a restart, a failed Scheduler call, a deleted schedule
    h.clock.advance(31 * MINUTE);
    // Expired a minute ago: left to its schedule, which may still fire, for the grace period.
    expect((await h.reconcile()).stopsRequested).toEqual([]);
    h.clock.advance(EXPIRY_GRACE_MS);
    const report = await h.reconcile();
    expect(report.stopsRequested).toEqual([NAMESPACE]);
    await h.bus.drain();
    await eventually(() => h.environment(REVIEW) === null, "the review namespace to be gone");

    expect(h.environment("staging")).toMatchObject({ status: "succeeded", expiresAt: null });
    expect((await h.reconcile()).stopsRequested).toEqual([]);
    await h.bus.drain();
    const types = h.events().map((e) => e["detail-type"]);
    expect(types.filter((t) => t === "Environment Stop Requested")).toHaveLength(1);
    expect(types.filter((t) => t === "Environment Deleted")).toHaveLength(1);
    const trail = h.audit();
    expect(trail).toContainEqual(
      expect.objectContaining({
        action: "environment.expire",
        reason: expect.stringMatching(/schedule lost/),
      }),
    );
    expect(trail).toContainEqual(
      expect.objectContaining({
        action: "environment.stop",
        outcome: "success",
        reason: "deleted (expired)",
      }),
    );
  });
});
