/**
 * A rollback and a newer deploy of the same environment at once: a quick fix pushed while the broken
 * revision is rolled back. What the rollback removes (the objects the failed revision added) must not
 * be the newer revision's. Over the real Kubernetes adapter and the embedded API; the newer deploy
 * runs inside the rollback's list of what to remove, as a request landing just then would.
 */
import { describe, expect, it } from "vitest";
import type { KubeObject } from "../../shared/domain/kube-object.js";
import { type DeployEnvironmentDeps, deployEnvironment } from "../../shared/services/deploy-environment.js";
import { deployRequested, NAMESPACE, SHA_1, SHA_2, useDeployCluster } from "../fakes/deploy-deps.js";

const SHA_3 = "3".repeat(40);
const ADDED = "feature-flags";

const env = useDeployCluster("kubler-rollback-race-");

/** The cluster as the deploy sees it, with `list` replaced (the adapter's methods are on its prototype). */
function withList(list: DeployEnvironmentDeps["cluster"]["list"]): DeployEnvironmentDeps["cluster"] {
  return new Proxy(env.deps.cluster, {
    get: (target, name) => {
      const value = name === "list" ? list : Reflect.get(target, name);
      return typeof value === "function" ? value.bind(target) : value;
    },
  });
}

const configMap = `apiVersion: v1\nkind: ConfigMap\nmetadata: { name: ${ADDED} }\ndata: { NEW_SEARCH: "on" }\n`;

describe("a rollback and a newer deploy at once", () => {
  it("the rollback does not delete an object the newer deploy applied meanwhile: the newer revision runs with all of its objects", async () => {
    expect(await deployEnvironment(env.deps, deployRequested({ sha: SHA_1, pipelineId: 100 }))).toMatchObject(
      {
        kind: "succeeded",
      },
    );
    // Revision 2 adds a ConfigMap and its rollout fails; revision 3, the fix, keeps the ConfigMap.
    env.files.addManifest("flags.yaml", configMap);
    env.files.setRollout("fail");
    let newer: Awaited<ReturnType<typeof deployEnvironment>> | null = null;
    const rollingBack = {
      ...env.deps,
      cluster: withList(async (apiVersion, kind, options) => {
        if (kind === "ConfigMap" && newer === null) {
          // The fix's deploy lands now: after the rollback restored revision 1, before it removes
          // what revision 2 added.
          env.files.setRollout("ok");
          newer = await deployEnvironment(
            env.deps,
            deployRequested({ sha: SHA_3, pipelineId: 102, correlationId: "corr-fix" }),
          );
        }
        return env.deps.cluster.list(apiVersion, kind, options);
      }),
    };
    const broken = await deployEnvironment(rollingBack, deployRequested({ sha: SHA_2, pipelineId: 101 }));

    expect(newer).toMatchObject({ kind: "succeeded" });
    const namespace = env.k8s.store.get("v1", "Namespace", undefined, NAMESPACE) as KubeObject;
    expect(namespace.metadata.annotations).toMatchObject({
      "kubler.dev/sha": SHA_3,
      "kubler.dev/status": "succeeded",
    });
    // The rollback stops once it finds the namespace taken, and says so.
    expect(broken).toMatchObject({
      kind: "ignored",
      reason: expect.stringMatching(/^superseded: .*a newer deploy/),
    });
    const told = env.deps.publisher.entries
      .filter((e) => e.detailType === "Deploy Finished")
      .map((e) => e.detail as { sha: string; status: string });
    expect(told.map(({ status, sha }) => `${status} ${sha}`)).toEqual([
      `succeeded ${SHA_1}`,
      `succeeded ${SHA_3}`,
      `superseded ${SHA_2}`,
    ]);
    // Before, the rollback deleted it: revision 3 said succeeded without its ConfigMap.
    expect(env.k8s.store.get("v1", "ConfigMap", NAMESPACE, ADDED)).toMatchObject({
      data: { NEW_SEARCH: "on" },
    });
  });
});
