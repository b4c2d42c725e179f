/**
 * A rollback and a newer deploy of the same environment at once: a quick fix pushed while the broken
 * revision is rolled back. What the rollback removes (the objects the failed revision added) must not
 * be the newer revision's. Over the real Kubernetes adapter and the embedded API; the newer deploy
 * runs inside the rollback's list of what to remove, as a request landing just then would.
 */
import { afterAll, beforeAll, beforeEach, describe, expect, it } from "vitest";
import type { KubeObject } from "../../shared/domain/kube-object.js";
import { type MemoryKubernetes, startMemoryKubernetes } from "../../shared/local/memory-kubernetes/index.js";
import { type DeployEnvironmentDeps, deployEnvironment } from "../../shared/services/deploy-environment.js";
import {
  clearNamespaces,
  type DeployTestDeps,
  deployRequested,
  deployTestDeps,
  type ExampleProject,
  exampleProject,
  NAMESPACE,
  PROJECT,
  SHA_1,
  SHA_2,
} from "../fakes/deploy-deps.js";

const SHA_3 = "3".repeat(40);
const ADDED = "feature-flags";

let k8s: MemoryKubernetes;
let deps: DeployTestDeps;
let files: ExampleProject;
beforeAll(async () => {
  k8s = await startMemoryKubernetes({ rolloutDelayMs: 20, namespaceFinalizeMs: 10 });
});
afterAll(() => k8s.close());
beforeEach(async () => {
  let projects: string;
  ({ deps, projects } = deployTestDeps(k8s, "kubler-rollback-race-"));
  files = exampleProject(projects, PROJECT);
  await clearNamespaces(k8s, deps.cluster, NAMESPACE);
});

/** The cluster as the deploy sees it, with `list` replaced (the adapter's methods are on its prototype). */
function withList(list: DeployEnvironmentDeps["cluster"]["list"]): DeployEnvironmentDeps["cluster"] {
  return new Proxy(deps.cluster, {
    get: (target, name) => {
      const value = name === "list" ? list : Reflect.get(target, name);
      return typeof value === "function" ? value.bind(target) : value;
    },
  });
}

const configMap = `apiVersion: v1\nkind: ConfigMap\nmetadata: { name: ${ADDED} }\ndata: { NEW_SEARCH: "on" }\n`;

describe("a rollback and a newer deploy at once", () => {
  it("the rollback does not delete an object the newer deploy applied meanwhile: the newer revision runs with all of its objects", async () => {
    expect(await deployEnvironment(deps, deployRequested({ sha: SHA_1, pipelineId: 100 }))).toMatchObject({
      kind: "succeeded",
    });
    // Revision 2 adds a ConfigMap and its rollout fails; revision 3, the fix, keeps the ConfigMap.
    files.addManifest("flags.yaml", configMap);
    files.setRollout("fail");
    let newer: Awaited<ReturnType<typeof deployEnvironment>> | null = null;
    const rollingBack = {
      ...deps,
      cluster: withList(async (apiVersion, kind, options) => {
        if (kind === "ConfigMap" && newer === null) {
          // The fix's deploy lands now: after the rollback restored revision 1, before it removes
          // what revision 2 added.
          files.setRollout("ok");
          newer = await deployEnvironment(
            deps,
            deployRequested({ sha: SHA_3, pipelineId: 102, correlationId: "corr-fix" }),
          );
        }
        return deps.cluster.list(apiVersion, kind, options);
      }),
    };
    const broken = await deployEnvironment(rollingBack, deployRequested({ sha: SHA_2, pipelineId: 101 }));

    expect(newer).toMatchObject({ kind: "succeeded" });
    const namespace = k8s.store.get("v1", "Namespace", undefined, NAMESPACE) as KubeObject;
    expect(namespace.metadata.annotations).toMatchObject({
      "kubler.dev/sha": SHA_3,
      "kubler.dev/status": "succeeded",
    });
    // The rollback stops once it finds the namespace taken, and says so.
    expect(broken).toMatchObject({
      kind: "ignored",
      reason: expect.stringMatching(/^superseded: .*a newer deploy/),
    });
    const told = deps.publisher.entries
      .filter((e) => e.detailType === "Deploy Finished")
      .map((e) => e.detail as { sha: string; status: string });
    expect(told.map(({ status, sha }) => `${status} ${sha}`)).toEqual([
      `succeeded ${SHA_1}`,
      `succeeded ${SHA_3}`,
      `superseded ${SHA_2}`,
    ]);
    // Before, the rollback deleted it: revision 3 said succeeded without its ConfigMap.
    expect(k8s.store.get("v1", "ConfigMap", NAMESPACE, ADDED)).toMatchObject({
      data: { NEW_SEARCH: "on" },
    });
  });
});
