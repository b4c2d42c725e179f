/**
 * A cluster's admission policies refuse objects with 403 Forbidden as often as with 422: a webhook
 * built on controller-runtime (Gatekeeper) answers 403, a ValidatingAdmissionPolicy's denial and an
 * exceeded ResourceQuota are 403 too. Such a refusal is the manifest's, as a 422 is: the deploy rolls
 * back and ends with Deploy Finished naming it. A 403 that is not about the object (Kubler's own RBAC,
 * a namespace being deleted) is still thrown for the bus to retry and the alarms to see.
 */
import { describe, expect, it } from "vitest";
import { deployEnvironment } from "../../shared/services/deploy-environment.js";
import { deployRequested, NAMESPACE, SHA_1, SHA_2, useDeployCluster } from "../fakes/deploy-deps.js";
import { hooked } from "../fakes/hooked-cluster.js";

const env = useDeployCluster("kubler-admission-");

const GATEKEEPER = `admission webhook "validation.gatekeeper.sh" denied the request: [container-must-have-limits] container <flight-management> has no resource limits`;
const POLICY = `deployments.apps "flight-management" is forbidden: ValidatingAdmissionPolicy 'require-team-label' with binding 'require-team-label' denied request: expression 'has(object.metadata.labels.team)' resulted in error`;
const QUOTA = `deployments.apps "flight-management" is forbidden: exceeded quota: objects, requested: count/deployments.apps=1, used: count/deployments.apps=5, limited: count/deployments.apps=5`;

function told(): { sha: string; status: string; reason: string | null }[] {
  return env.deps.publisher.entries
    .filter((e) => e.detailType === "Deploy Finished")
    .map((e) => e.detail as { sha: string; status: string; reason: string | null });
}

describe("an object refused by an admission policy with 403", () => {
  it.each([
    ["a webhook's denial (Gatekeeper)", GATEKEEPER],
    ["a ValidatingAdmissionPolicy's denial", POLICY],
  ])("%s rolls the deploy back and names the refusal in Deploy Finished", async (_, message) => {
    expect(await deployEnvironment(env.deps, deployRequested({ sha: SHA_1, pipelineId: 100 }))).toMatchObject(
      {
        kind: "succeeded",
      },
    );
    env.k8s.faults.add({ verb: "apply", resource: "deployments", status: 403, message, times: 1 });
    const outcome = await deployEnvironment(env.deps, deployRequested({ sha: SHA_2, pipelineId: 101 }));
    const reason = `the cluster refused a manifest: ${message}; rolled back to ${SHA_1}`;
    expect(outcome).toMatchObject({ kind: "rolled_back", reason });
    expect(told().at(-1)).toMatchObject({ sha: SHA_2, status: "rolled_back", reason });
  });

  it("a first deploy refused so (an exceeded quota) fails, naming it", async () => {
    env.k8s.faults.add({ verb: "create", resource: "deployments", status: 403, message: QUOTA, times: 1 });
    const outcome = await deployEnvironment(env.deps, deployRequested({ sha: SHA_1, pipelineId: 100 }));
    expect(outcome).toMatchObject({
      kind: "failed",
      reason: `the cluster refused a manifest: ${QUOTA}; no earlier good revision to roll back to`,
    });
    expect(told()).toEqual([expect.objectContaining({ sha: SHA_1, status: "failed" })]);
  });

  it("Kubler's own identity refused (RBAC) is thrown for the bus to retry, nothing published", async () => {
    const rbac = `deployments.apps "flight-management" is forbidden: User "system:serviceaccount:kubler:kubler" cannot patch resource "deployments" in API group "apps" in the namespace "${NAMESPACE}"`;
    env.k8s.faults.add({ verb: "create", resource: "deployments", status: 403, message: rbac, times: 1 });
    await expect(
      deployEnvironment(env.deps, deployRequested({ sha: SHA_1, pipelineId: 100 })),
    ).rejects.toThrow(rbac);
    expect(told()).toEqual([]);
  });

  it("a namespace being deleted (a stop raced the deploy) is thrown for the bus to retry", async () => {
    const terminating = `deployments.apps "flight-management" is forbidden: unable to create new content in namespace ${NAMESPACE} because it is being terminated`;
    env.k8s.faults.add({
      verb: "create",
      resource: "deployments",
      status: 403,
      message: terminating,
      times: 1,
    });
    await expect(
      deployEnvironment(env.deps, deployRequested({ sha: SHA_1, pipelineId: 100 })),
    ).rejects.toThrow(terminating);
    expect(told()).toEqual([]);
  });
});

describe("a rollback the cluster refuses", () => {
  it("ends the deploy failed, naming the rollout's failure and the refusal, instead of throwing on every retry", async () => {
    expect(await deployEnvironment(env.deps, deployRequested({ sha: SHA_1, pipelineId: 100 }))).toMatchObject(
      {
        kind: "succeeded",
      },
    );
    env.files.setRollout("fail");
    // A policy added since revision 1 ran refuses its Deployment: the rollback's apply of it.
    let applied = false;
    const refusing = {
      ...env.deps,
      cluster: hooked(env.deps.cluster, {
        after: (o) => {
          if (o.kind !== "Deployment" || applied) return;
          applied = true;
          env.k8s.faults.add({ verb: "apply", resource: "deployments", status: 403, message: GATEKEEPER });
        },
      }),
    };
    const outcome = await deployEnvironment(refusing, deployRequested({ sha: SHA_2, pipelineId: 101 }));
    const reason = expect.stringMatching(
      new RegExp(
        `^deployment flight-management exceeded its progress deadline; the rollback to ${SHA_1} was refused by the cluster: .*validation\\.gatekeeper\\.sh`,
      ),
    );
    expect(outcome).toMatchObject({ kind: "failed", reason });
    expect(told().at(-1)).toMatchObject({ sha: SHA_2, status: "failed", reason });
    const namespace = env.k8s.store.get("v1", "Namespace", undefined, NAMESPACE);
    expect(namespace?.metadata.annotations).toMatchObject({
      "kubler.dev/status": "failed",
      "kubler.dev/rolling-back-to": "",
    });
  });
});

describe("Kubler's own objects refused by the cluster's admission", () => {
  it("a namespace a policy refuses (required labels) ends the deploy failed, naming the refusal, instead of throwing on every retry", async () => {
    const message = `admission webhook "validation.gatekeeper.sh" denied the request: [ns-must-have-owner] you must provide labels: {"owner"}`;
    env.k8s.faults.add({ verb: "create", resource: "namespaces", status: 403, message });
    const outcome = await deployEnvironment(env.deps, deployRequested({ sha: SHA_1, pipelineId: 100 }));
    const reason = expect.stringMatching(
      new RegExp(
        `^the cluster refused the environment's namespace ${NAMESPACE}: admission webhook .*"owner"`,
      ),
    );
    expect(outcome).toMatchObject({ kind: "failed", reason });
    expect(told()).toEqual([expect.objectContaining({ sha: SHA_1, status: "failed", reason })]);
  });
});
