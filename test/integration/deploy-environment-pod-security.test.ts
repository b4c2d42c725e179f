/**
 * Pod Security Admission on environment namespaces: Kubler applies a project's workloads as a cluster
 * admin, so the namespace it creates must make the API server refuse what the configured level
 * (`KUBLER_POD_SECURITY`, default baseline) forbids: privileged pods, host paths, host namespaces.
 * Against the embedded Kubernetes API over HTTP, through the real adapter, as the other deploy tests.
 */
import { describe, expect, it } from "vitest";
import { namespaceFor } from "../../shared/domain/environment.js";
import type { KubeObject } from "../../shared/domain/kube-object.js";
import { deployEnvironment } from "../../shared/services/deploy-environment.js";
import { reconcileEnvironments } from "../../shared/services/reconcile-environments.js";
import { deployRequested, useDeployCluster } from "../fakes/deploy-deps.js";
import { sequentialIds } from "../fakes/index.js";

const PROJECT = "flightjs/flight-management";
const ENVIRONMENT = "review/feature/x";
const NAMESPACE = namespaceFor(PROJECT, ENVIRONMENT);

const env = useDeployCluster("kubler-pod-security-");

function labels(): Record<string, string> | undefined {
  return env.k8s.store.get("v1", "Namespace", undefined, NAMESPACE)?.metadata.labels;
}

const enforcing = (level: string) => ({
  "pod-security.kubernetes.io/enforce": level,
  "pod-security.kubernetes.io/enforce-version": "latest",
  "pod-security.kubernetes.io/warn": "restricted",
  "pod-security.kubernetes.io/warn-version": "latest",
  "pod-security.kubernetes.io/audit": "restricted",
  "pod-security.kubernetes.io/audit-version": "latest",
});

describe("environment namespaces' Pod Security", () => {
  it("enforces baseline by default, warning and auditing what restricted would refuse", async () => {
    await deployEnvironment(env.deps, deployRequested());
    expect(labels()).toMatchObject(enforcing("baseline"));
  });

  it("enforces the configured level", async () => {
    await deployEnvironment({ ...env.deps, podSecurity: "restricted" }, deployRequested());
    expect(labels()).toMatchObject(enforcing("restricted"));
  });

  it("puts Kubler's level back on a namespace whose labels someone changed, at the next deploy", async () => {
    await deployEnvironment(env.deps, deployRequested());
    const namespace = env.k8s.store.get("v1", "Namespace", undefined, NAMESPACE) as KubeObject;
    env.k8s.store.put({
      ...namespace,
      metadata: {
        ...namespace.metadata,
        labels: { ...namespace.metadata.labels, "pod-security.kubernetes.io/enforce": "privileged" },
      },
    });
    await deployEnvironment(env.deps, deployRequested({ sha: "2".repeat(40), pipelineId: 101 }));
    expect(labels()).toMatchObject(enforcing("baseline"));
  });

  it("keeps the labels when reconcile marks a stuck rollout failed (its write would drop what it omits)", async () => {
    // The deploy dies during its rollout: the namespace stays "deploying" with a deadline.
    const get = env.deps.cluster.get.bind(env.deps.cluster);
    env.deps.cluster.get = async (ref) => {
      if (ref.kind === "Deployment") throw new Error("the function timed out");
      return get(ref);
    };
    await expect(deployEnvironment(env.deps, deployRequested())).rejects.toThrow("timed out");
    env.deps.cluster.get = get;
    env.deps.clock.advance(60 * 60_000);
    const report = await reconcileEnvironments({ ...env.deps, newId: sequentialIds() });
    expect(report.rolloutsFailed).toEqual([NAMESPACE]);
    expect(env.k8s.store.get("v1", "Namespace", undefined, NAMESPACE)?.metadata.annotations).toMatchObject({
      "kubler.dev/status": "failed",
    });
    expect(labels()).toMatchObject(enforcing("baseline"));
  });
});
