/**
 * Kubernetes 429s, 500s and timeouts during deploys and sweeps, injected at the embedded API server
 * and met by the real adapter, the real consumers and the local bus. Each case asserts the end
 * state from the cluster: the environment right, nothing deleted that should stay, nothing left
 * that should go, and every failure that surfaced in the audit trail.
 */
import { afterEach, describe, expect, it } from "vitest";
import {
  type EnvironmentState,
  environmentNamespace,
  namespaceFor,
} from "../../shared/domain/environment.js";
import { sweepExpiredEnvironments } from "../../shared/services/cleanup-environments.js";
import { sequentialIds } from "../fakes/index.js";
import {
  eventually,
  type FaultHarness,
  gitlab,
  PROJECT,
  SHA_1,
  startFaultHarness,
} from "./faults-harness.js";

const HOUR = 3_600_000;
let h: FaultHarness;
afterEach(() => h.close());

const ENVIRONMENT = "review/feature/booking-validation";
const NAMESPACE = namespaceFor(PROJECT, ENVIRONMENT);

describe("deploys under Kubernetes faults", () => {
  it("finishes through 429s, 500s, 503s and a hung request, in one delivery", async () => {
    h = await startFaultHarness({ timeoutMs: 300 });
    const rules = [
      h.k8s.faults.add({ verb: "apply", resource: "namespaces", status: 429, times: 2 }),
      h.k8s.faults.add({ verb: "apply", resource: "deployments", status: 500, times: 2 }),
      h.k8s.faults.add({ verb: "apply", resource: "rolebindings", status: 503, times: 1 }),
      h.k8s.faults.add({ verb: "get", resource: "configmaps", hang: true, times: 1 }),
      h.k8s.faults.add({ verb: "get", resource: "deployments", status: 500, times: 1 }),
    ];
    await h.publish("Deploy Requested", h.deployRequest());
    await h.bus.drain();

    for (const rule of rules) expect(rule.hits).toBeGreaterThan(0);
    expect(h.environment(ENVIRONMENT)).toMatchObject({ status: "succeeded", sha: SHA_1, pipelineId: 100 });
    expect(h.k8s.store.get("apps/v1", "Deployment", NAMESPACE, "flight-management")).toBeDefined();
    const finished = h.events().filter((e) => e["detail-type"] === "Deploy Finished");
    expect(finished.map((e) => e.detail)).toEqual([expect.objectContaining({ status: "succeeded" })]);
    expect(h.deadLetters()).toEqual([]);
    // The adapter absorbed every fault: nothing failed at the step, so nothing failed in the trail.
    expect(h.audit().filter((r) => r.outcome === "failure")).toEqual([]);
    expect(h.audit()).toContainEqual(
      expect.objectContaining({ action: "environment.deploy", outcome: "success" }),
    );
  });

  it("a fault that outlasts the retries: each attempt audited, dead-lettered, then redelivered once fixed", async () => {
    h = await startFaultHarness();
    const broken = h.k8s.faults.add({
      verb: "apply",
      resource: "deployments",
      status: 500,
      message: "etcd down",
    });
    const request = h.deployRequest();
    await h.publish("Deploy Requested", request);
    await h.bus.drain();

    const attempts = h.audit().filter((r) => r.action === "environment.deploy" && r.outcome === "failure");
    expect(attempts).toHaveLength(3);
    expect(attempts[0]).toMatchObject({
      correlationId: "corr-100",
      reason: expect.stringMatching(/etcd down/),
    });
    expect(h.audit()).toContainEqual(
      expect.objectContaining({ action: "bus.deliver", outcome: "failure", function: "deploy-environment" }),
    );
    const [dead] = h.deadLetters();
    expect(dead?.target).toBe("deploy-environment");
    // Half done: the namespace says so, nothing claims success.
    expect(h.environment(ENVIRONMENT)?.status).toBe("deploying");
    expect(h.events().filter((e) => e["detail-type"] === "Deploy Finished")).toEqual([]);

    broken.remove();
    await h.publish("Deploy Requested", dead?.envelope.detail as typeof request);
    await h.bus.drain();
    expect(h.environment(ENVIRONMENT)).toMatchObject({ status: "succeeded", sha: SHA_1 });
    const finished = h.events().filter((e) => e["detail-type"] === "Deploy Finished");
    expect(finished.map((e) => e.detail)).toEqual([expect.objectContaining({ status: "succeeded" })]);
  });
});

describe("sweeps under Kubernetes faults", () => {
  function seed(name: string, overrides: Partial<EnvironmentState>) {
    const environment = `review/${name}`;
    h.k8s.store.put(
      environmentNamespace({
        namespace: namespaceFor(PROJECT, environment),
        gitlab,
        environment,
        sha: SHA_1,
        ref: name,
        pipelineId: 1,
        mrIid: 1,
        ttl: "1h",
        expiresAt: new Date(h.clock.now().getTime() - HOUR),
        deployedAt: new Date(h.clock.now().getTime() - 2 * HOUR),
        requestedAt: new Date(h.clock.now().getTime() - 2 * HOUR),
        status: "succeeded",
        rolloutDeadline: null,
        correlationId: `corr-${name}`,
        url: null,
        lastGoodDigest: null,
        ...overrides,
      }),
    );
    return namespaceFor(PROJECT, environment);
  }

  it("deletes every expired environment it can, isolates the one it cannot, keeps the rest; a later sweep finishes", async () => {
    h = await startFaultHarness({ timeoutMs: 300 });
    const expired = Array.from({ length: 12 }, (_, i) => seed(`old-${i}`, {}));
    const live = Array.from({ length: 8 }, (_, i) =>
      seed(`live-${i}`, { expiresAt: new Date(h.clock.now().getTime() + HOUR) }),
    );
    const forever = seed("forever", { ttl: "never", expiresAt: null });
    h.k8s.store.put({ apiVersion: "v1", kind: "Namespace", metadata: { name: "kube-system", labels: {} } });
    const [stubborn, slow] = expired as [string, string];
    const rules = [
      h.k8s.faults.add({ verb: "list", resource: "namespaces", status: 429, times: 1 }),
      h.k8s.faults.add({ verb: "delete", resource: "namespaces", name: stubborn, status: 500 }),
      h.k8s.faults.add({ verb: "delete", resource: "namespaces", name: slow, hang: true, times: 1 }),
      h.k8s.faults.add({ verb: "delete", resource: "namespaces", status: 503, times: 3 }),
    ];
    const deps = h.steps;

    const report = await sweepExpiredEnvironments(deps, { newId: sequentialIds("sweep"), pageSize: 5 });
    for (const rule of rules) expect(rule.hits).toBeGreaterThan(0);
    expect(report.failed.map((item) => item.namespace)).toEqual([stubborn]);
    expect(report.deleted.map((item) => item.namespace).sort()).toEqual(expired.slice(1).sort());
    const sweepLine = h.audit().find((r) => r.action === "environment.sweep");
    expect(sweepLine).toMatchObject({
      outcome: "failure",
      subject: { failed: [expect.objectContaining({ namespace: stubborn })] },
    });

    h.k8s.faults.clear();
    const again = await sweepExpiredEnvironments(deps, { newId: sequentialIds("sweep2") });
    expect(again.deleted.map((item) => item.namespace)).toEqual([stubborn]);
    await h.bus.drain();
    await eventually(
      () => expired.every((name) => !h.k8s.store.get("v1", "Namespace", undefined, name)),
      "the deleted namespaces to finish terminating",
    );
    const left = new Set(h.k8s.store.list("v1", "Namespace").map((ns) => ns.metadata.name));
    for (const name of expired) expect(left.has(name)).toBe(false);
    for (const name of [...live, forever, "kube-system"]) expect(left.has(name)).toBe(true);
  });
});
