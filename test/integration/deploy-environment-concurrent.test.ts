/**
 * Two deploys of one environment at once (EventBridge invokes the deploy Lambda concurrently; two
 * quick pushes): whatever order their requests land in, the image that runs is the one the namespace
 * records, the newer deploy succeeds and the older one ends superseded. Over the real Kubernetes
 * adapter and the embedded API; a request is held in flight by a wrapper around the adapter.
 */
import { describe, expect, it } from "vitest";
import type { KubeObject } from "../../shared/domain/kube-object.js";
import { deployEnvironment } from "../../shared/services/deploy-environment.js";
import { deployRequested, NAMESPACE, SHA_1, useDeployCluster } from "../fakes/deploy-deps.js";
import { hooked, latch } from "../fakes/hooked-cluster.js";

const OLDER = "2".repeat(40);
const NEWER = "3".repeat(40);

const env = useDeployCluster("kubler-race-");

function running(): { image: string; sha: string | undefined; status: string | undefined } {
  const ns = env.k8s.store.get("v1", "Namespace", undefined, NAMESPACE) as KubeObject;
  const deployment = env.k8s.store.get(
    "apps/v1",
    "Deployment",
    NAMESPACE,
    "flight-management",
  ) as unknown as {
    spec: { template: { spec: { containers: { image: string }[] } } };
  };
  return {
    image: deployment.spec.template.spec.containers[0]?.image ?? "",
    sha: ns.metadata.annotations?.["kubler.dev/sha"],
    status: ns.metadata.annotations?.["kubler.dev/status"],
  };
}

function finished(): { sha: string; status: string; reason: string | null }[] {
  return env.deps.publisher.entries
    .filter((e) => e.detailType === "Deploy Finished")
    .map((e) => e.detail as { sha: string; status: string; reason: string | null });
}

describe("two deploys of one environment at once", () => {
  it("an older deploy's manifest write landing after the newer deploy's is refused: what runs is what the namespace says", async () => {
    await deployEnvironment(env.deps, deployRequested({ sha: SHA_1, pipelineId: 99 }));
    const newerApplied = latch();
    const olderWrites: KubeObject[] = [];
    // The older deploy's Deployment write is slow (throttled, retried): it lands after the newer deploy's.
    const older = {
      ...env.deps,
      cluster: hooked(
        env.deps.cluster,
        { before: async (o) => (o.kind === "Deployment" ? newerApplied.wait : undefined) },
        olderWrites,
      ),
    };
    const newer = {
      ...env.deps,
      cluster: hooked(env.deps.cluster, {
        after: (o) => (o.kind === "Deployment" ? newerApplied.open() : undefined),
      }),
    };
    const a = deployEnvironment(older, deployRequested({ sha: OLDER, pipelineId: 100 }));
    await new Promise((resolve) => setTimeout(resolve, 50));
    const b = deployEnvironment(newer, deployRequested({ sha: NEWER, pipelineId: 101 }));
    const [outcomeA, outcomeB] = await Promise.all([a, b]);

    const now = running();
    expect(now.image.endsWith(now.sha ?? "?")).toBe(true);
    expect(now).toMatchObject({ sha: NEWER, status: "succeeded" });
    expect(outcomeB).toMatchObject({ kind: "succeeded" });
    expect(outcomeA).toMatchObject({
      kind: "ignored",
      reason: expect.stringMatching(/^superseded: .*a newer deploy/),
    });
    // Its Deployment never landed; GitLab hears the older commit was not deployed (canceled).
    expect(olderWrites.filter((o) => o.kind === "Deployment")).toEqual([]);
    expect(finished().filter((f) => f.sha === OLDER)).toEqual([
      expect.objectContaining({ status: "superseded", reason: expect.stringMatching(/^superseded: /) }),
    ]);
    expect(finished().filter((f) => f.sha === NEWER)).toEqual([
      expect.objectContaining({ status: "succeeded" }),
    ]);
    expect(
      env.deps.audit.records.filter((r) => r.subject.sha === OLDER && r.outcome === "ignored"),
    ).toHaveLength(1);
  });

  it("the older deploy whose 'deploying' write comes after the newer one's read again, stops as stale and writes no object", async () => {
    await deployEnvironment(env.deps, deployRequested({ sha: SHA_1, pipelineId: 99 }));
    const newerTook = latch();
    let held = false;
    const olderWrites: KubeObject[] = [];
    const older = {
      ...env.deps,
      cluster: hooked(
        env.deps.cluster,
        {
          // Its first namespace write waits until the newer deploy has taken the namespace.
          before: async (o) => {
            if (o.kind === "Namespace" && !held) {
              held = true;
              await newerTook.wait;
            }
          },
        },
        olderWrites,
      ),
    };
    const newer = {
      ...env.deps,
      cluster: hooked(env.deps.cluster, {
        after: (o) => (o.kind === "Namespace" ? newerTook.open() : undefined),
      }),
    };
    const a = deployEnvironment(older, deployRequested({ sha: OLDER, pipelineId: 100 }));
    while (!held) await new Promise((resolve) => setTimeout(resolve, 5));
    const b = deployEnvironment(newer, deployRequested({ sha: NEWER, pipelineId: 101 }));
    const [outcomeA, outcomeB] = await Promise.all([a, b]);

    expect(outcomeB).toMatchObject({ kind: "succeeded" });
    expect(outcomeA).toMatchObject({
      kind: "ignored",
      reason: expect.stringMatching(/^stale: pipeline 100/),
    });
    // Before, its namespace write went through over the newer one's: the older sha was recorded as attempted.
    expect(olderWrites.filter((o) => o.kind !== "Namespace")).toEqual([]);
    expect(running()).toMatchObject({ sha: NEWER, status: "succeeded" });
    expect(running().image.endsWith(NEWER)).toBe(true);
    expect(finished().filter((f) => f.sha === OLDER)).toEqual([
      expect.objectContaining({ status: "superseded" }),
    ]);
  });

  it("two first deploys at once: one creates the namespace, the other reads it again and decides (the newer wins)", async () => {
    const newerCreated = latch();
    const olderWrites: KubeObject[] = [];
    let waiting = false;
    const older = {
      ...env.deps,
      cluster: hooked(
        env.deps.cluster,
        {
          before: async (o) => {
            if (o.kind === "Namespace" && !waiting) {
              waiting = true;
              await newerCreated.wait;
            }
          },
        },
        olderWrites,
      ),
    };
    const newer = {
      ...env.deps,
      cluster: hooked(env.deps.cluster, {
        after: (o) => (o.kind === "Namespace" ? newerCreated.open() : undefined),
      }),
    };
    const a = deployEnvironment(older, deployRequested({ sha: OLDER, pipelineId: 100 }));
    while (!waiting) await new Promise((resolve) => setTimeout(resolve, 5));
    const b = deployEnvironment(newer, deployRequested({ sha: NEWER, pipelineId: 101 }));
    const [outcomeA, outcomeB] = await Promise.all([a, b]);

    expect(outcomeB).toMatchObject({ kind: "succeeded" });
    // Applied, the older deploy's namespace would have gone over the newer one's as if it made it.
    expect(outcomeA).toMatchObject({ kind: "ignored", reason: expect.stringMatching(/^stale: /) });
    expect(olderWrites.filter((o) => o.kind !== "Namespace")).toEqual([]);
    expect(running()).toMatchObject({ sha: NEWER, status: "succeeded" });
    expect(running().image.endsWith(NEWER)).toBe(true);
  });

  it("the newer deploy reading the namespace just after the older one created it still goes ahead, and the older one stops", async () => {
    // The older creates first and is then held before its next write; the newer takes it over.
    const newerTook = latch();
    let olderCreated = false;
    const older = {
      ...env.deps,
      cluster: hooked(env.deps.cluster, {
        before: async (o) => {
          if (olderCreated && o.kind !== "Namespace") await newerTook.wait;
        },
        after: (o) => {
          if (o.kind === "Namespace") olderCreated = true;
        },
      }),
    };
    const newer = {
      ...env.deps,
      cluster: hooked(env.deps.cluster, {
        after: (o) => (o.kind === "Deployment" ? newerTook.open() : undefined),
      }),
    };
    const a = deployEnvironment(older, deployRequested({ sha: OLDER, pipelineId: 100 }));
    while (!olderCreated) await new Promise((resolve) => setTimeout(resolve, 5));
    const b = deployEnvironment(newer, deployRequested({ sha: NEWER, pipelineId: 101 }));
    const [outcomeA, outcomeB] = await Promise.all([a, b]);

    expect(outcomeB).toMatchObject({ kind: "succeeded" });
    expect(outcomeA).toMatchObject({ kind: "ignored", reason: expect.stringMatching(/^superseded: /) });
    const now = running();
    expect(now).toMatchObject({ sha: NEWER, status: "succeeded" });
    expect(now.image.endsWith(NEWER)).toBe(true);
  });
});
