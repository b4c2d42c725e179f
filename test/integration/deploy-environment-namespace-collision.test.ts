/**
 * A namespace name is the project and environment, readable part cut to 54 characters, and 8 hex
 * characters of a hash: for a project path whose slug fills those 54 characters, two environments'
 * namespaces differ by the hash alone, and a branch name that makes `review/<branch>` hash like
 * `production` is 2^32 tries away. The deploy must then refuse the namespace, not write the branch's
 * objects into production's. The collision is set up by naming production's namespace as the
 * review environment's would be, as a found branch name would make it.
 */
import { afterAll, beforeAll, beforeEach, describe, expect, it } from "vitest";
import { namespaceFor } from "../../shared/domain/environment.js";
import type { KubeObject } from "../../shared/domain/kube-object.js";
import { type MemoryKubernetes, startMemoryKubernetes } from "../../shared/local/memory-kubernetes/index.js";
import { deployEnvironment } from "../../shared/services/deploy-environment.js";
import {
  clearNamespaces,
  type DeployTestDeps,
  deployRequested,
  deployTestDeps,
} from "../fakes/deploy-deps.js";

const PROJECT = "flightjs/flight-management";
const REVIEW = "review/feature/x";
const NAMESPACE = namespaceFor(PROJECT, REVIEW);

let k8s: MemoryKubernetes;
let deps: DeployTestDeps;

beforeAll(async () => {
  k8s = await startMemoryKubernetes({ rolloutDelayMs: 20, namespaceFinalizeMs: 10 });
});
afterAll(() => k8s.close());

beforeEach(async () => {
  ({ deps } = deployTestDeps(k8s, "kubler-ns-collision-"));
  await clearNamespaces(k8s, deps.cluster);
});

describe("a namespace another environment of the project holds (a hash collision)", () => {
  it("is refused: the deploy writes nothing there", async () => {
    const productionNs = namespaceFor(PROJECT, "production");
    await deployEnvironment(deps, deployRequested({ environment: "production", ref: "v1.0.0", mrIid: null }));
    const production = k8s.store.get("v1", "Namespace", undefined, productionNs) as KubeObject;
    expect(production.metadata.annotations?.["kubler.dev/environment-name"]).toBe("production");
    // Production's namespace under the name the review environment's hash gives.
    const { uid: _uid, resourceVersion: _rv, ...metadata } = production.metadata;
    k8s.store.put({ ...production, metadata: { ...metadata, name: NAMESPACE } });

    const outcome = await deployEnvironment(
      deps,
      deployRequested({ environment: REVIEW, sha: "2".repeat(40), pipelineId: 200 }),
    );

    expect(outcome).toMatchObject({
      kind: "failed",
      reason: `namespace ${NAMESPACE} belongs to environment production, not ${REVIEW}`,
    });
    const after = k8s.store.get("v1", "Namespace", undefined, NAMESPACE) as KubeObject;
    expect(after.metadata.annotations).toMatchObject({
      "kubler.dev/environment-name": "production",
      "kubler.dev/sha": "1".repeat(40),
    });
    expect(deps.audit.records.at(-1)).toMatchObject({ outcome: "failure" });
  });
});
