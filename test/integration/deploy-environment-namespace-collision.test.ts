/**
 * A namespace name is the project and environment, readable part cut to 54 characters, and 8 hex
 * characters of a hash: for a project path whose slug fills those 54 characters, two environments'
 * namespaces differ by the hash alone, and a branch name that makes `review/<branch>` hash like
 * `production` is 2^32 tries away. The deploy must then refuse the namespace, not write the branch's
 * objects into production's. The collision is set up by naming production's namespace as the
 * review environment's would be, as a found branch name would make it.
 */
import { describe, expect, it } from "vitest";
import { namespaceFor } from "../../shared/domain/environment.js";
import type { KubeObject } from "../../shared/domain/kube-object.js";
import { deployEnvironment } from "../../shared/services/deploy-environment.js";
import { deployRequested, useDeployCluster } from "../fakes/deploy-deps.js";

const PROJECT = "flightjs/flight-management";
const REVIEW = "review/feature/x";
const NAMESPACE = namespaceFor(PROJECT, REVIEW);

const env = useDeployCluster("kubler-ns-collision-", { clear: "all" });

describe("a namespace another environment of the project holds (a hash collision)", () => {
  it("is refused: the deploy writes nothing there", async () => {
    const productionNs = namespaceFor(PROJECT, "production");
    await deployEnvironment(
      env.deps,
      deployRequested({ environment: "production", ref: "v1.0.0", mrIid: null }),
    );
    const production = env.k8s.store.get("v1", "Namespace", undefined, productionNs) as KubeObject;
    expect(production.metadata.annotations?.["kubler.dev/environment-name"]).toBe("production");
    // Production's namespace under the name the review environment's hash gives.
    const { uid: _uid, resourceVersion: _rv, ...metadata } = production.metadata;
    env.k8s.store.put({ ...production, metadata: { ...metadata, name: NAMESPACE } });

    const outcome = await deployEnvironment(
      env.deps,
      deployRequested({ environment: REVIEW, sha: "2".repeat(40), pipelineId: 200 }),
    );

    expect(outcome).toMatchObject({
      kind: "failed",
      reason: `namespace ${NAMESPACE} belongs to environment production, not ${REVIEW}`,
    });
    const after = env.k8s.store.get("v1", "Namespace", undefined, NAMESPACE) as KubeObject;
    expect(after.metadata.annotations).toMatchObject({
      "kubler.dev/environment-name": "production",
      "kubler.dev/sha": "1".repeat(40),
    });
    expect(env.deps.audit.records.at(-1)).toMatchObject({ outcome: "failure" });
  });
});
