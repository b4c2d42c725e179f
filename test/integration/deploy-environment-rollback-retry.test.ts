/**
 * A deploy whose rollback the Lambda's deadline cuts short is retried by the bus: the retry finds the
 * rollback recorded on the namespace for the same attempt (`kubler.dev/rolling-back-to`) and finishes
 * it, instead of starting from the top and applying the revision that just failed its rollout again.
 * The cut is the real one: the Kubernetes adapter's `withDeadline`, its clock moved past the deadline
 * once the rollback has begun, as the handler runs a deploy.
 */
import { describe, expect, it } from "vitest";
import { createDeployEnvironmentConsumer } from "../../functions/deploy-environment/consumer.js";
import { createKubernetesCluster } from "../../shared/adapters/kubernetes-cluster.js";
import { type Detail, sourceOf } from "../../shared/domain/catalog.js";
import type { KubeObject } from "../../shared/domain/kube-object.js";
import { deployEnvironment } from "../../shared/services/deploy-environment.js";
import { deployRequested, IMAGE, NAMESPACE, SHA_1, SHA_2, useDeployCluster } from "../fakes/deploy-deps.js";
import { hooked } from "../fakes/hooked-cluster.js";

const DEADLINE_MS = 60_000;

const env = useDeployCluster("kubler-rollback-retry-");

const broken = (): Detail<"Deploy Requested"> =>
  deployRequested({ sha: SHA_2, pipelineId: 101, factAt: "2026-11-21T10:01:00.000Z" }).detail;

function envelope(detail: Detail<"Deploy Requested">) {
  return {
    version: "0",
    id: "event-2",
    "detail-type": "Deploy Requested",
    source: sourceOf("Deploy Requested"),
    account: "000000000000",
    time: "2026-11-21T10:01:00Z",
    region: "local",
    resources: [],
    detail,
  };
}

const annotations = () => env.k8s.store.get("v1", "Namespace", undefined, NAMESPACE)?.metadata.annotations;
const image = () =>
  (
    env.k8s.store.get("apps/v1", "Deployment", NAMESPACE, "flight-management") as unknown as {
      spec: { template: { spec: { containers: { image: string }[] } } };
    }
  ).spec.template.spec.containers[0]?.image;
/** Each published entry's commit and, for Deploy Finished, its status. */
const published = () =>
  env.deps.publisher.entries.map((e) => {
    const detail = e.detail as { sha?: string; status?: string };
    return [detail.sha, detail.status];
  });
const rollingBack = (object: KubeObject) =>
  object.kind === "Namespace" && Boolean(object.metadata.annotations?.["kubler.dev/rolling-back-to"]);

/**
 * Runs the broken deploy as the handler does, under the adapter's deadline, and moves the adapter's
 * clock past it once `cut` says so: every Kubernetes call after fails at once, and the attempt is
 * thrown back to the bus.
 */
async function cutShort(cut: (object: KubeObject, rollbackBegun: boolean) => boolean): Promise<Error> {
  let skewMs = 0;
  const adapter = createKubernetesCluster({ kubeconfig: env.k8s.kubeconfig, now: () => Date.now() + skewMs });
  let begun = false;
  const cluster = hooked(adapter, {
    after: (object) => {
      begun ||= rollingBack(object);
      if (cut(object, begun)) skewMs = DEADLINE_MS * 2;
    },
  });
  const consume = createDeployEnvironmentConsumer({ ...env.deps, cluster });
  return adapter
    .withDeadline(DEADLINE_MS, () => consume(envelope(broken())))
    .then(
      () => {
        throw new Error("the deploy was not cut short");
      },
      (error: Error) => error,
    );
}

describe("a deploy cut short mid-rollback, retried", () => {
  it.each([
    ["as its rollback began (the broken revision still in place)", (o: KubeObject) => rollingBack(o)],
    [
      "once its rollback had restored the Deployment",
      (o: KubeObject, begun: boolean) => begun && o.kind === "Deployment",
    ],
  ])("finishes the rollback %s, never applying the failed revision again", async (_, cut) => {
    await deployEnvironment(env.deps, deployRequested());
    env.files.setRollout("fail");

    const error = await cutShort(cut);
    expect(error.message).toContain("deadline for this request's Kubernetes calls has passed");
    expect(annotations()).toMatchObject({
      "kubler.dev/status": "deploying",
      "kubler.dev/attempted-sha": SHA_2,
      "kubler.dev/rolling-back-to": SHA_1,
    });
    expect(env.deps.audit.last()).toMatchObject({
      outcome: "failure",
      reason: expect.stringContaining("attempt failed, left to the bus to retry"),
    });
    expect(published()).toEqual([[SHA_1, "succeeded"]]);

    // The bus's retry: the same event, a fresh invocation.
    const writes: KubeObject[] = [];
    const cluster = hooked(createKubernetesCluster({ kubeconfig: env.k8s.kubeconfig }), {}, writes);
    const outcome = await createDeployEnvironmentConsumer({ ...env.deps, cluster })(envelope(broken()));

    expect(outcome).toMatchObject({
      kind: "rolled_back",
      reason: expect.stringMatching(
        new RegExp(
          `cut short while rolling back to ${SHA_1}: finished here, ${SHA_2} not applied again; rolled back to ${SHA_1}$`,
        ),
      ),
    });
    const applied = writes.filter((o) => o.kind === "Deployment").map((o) => JSON.stringify(o));
    expect(applied.length).toBeGreaterThan(0);
    for (const written of applied) expect(written).not.toContain(SHA_2);
    expect(image()).toBe(`${IMAGE}:${SHA_1}`);
    expect(annotations()).toMatchObject({
      "kubler.dev/status": "rolled_back",
      "kubler.dev/sha": SHA_1,
      "kubler.dev/attempted-sha": SHA_2,
      "kubler.dev/rolling-back-to": "",
      "kubler.dev/rollout-deadline": "",
    });
    expect(published()).toEqual([
      [SHA_1, "succeeded"],
      [SHA_2, "rolled_back"],
    ]);
    expect(env.deps.audit.last()).toMatchObject({
      action: "environment.deploy",
      outcome: "failure",
      correlationId: "corr-101",
      reason: outcome.kind === "ignored" ? "" : outcome.reason,
      subject: expect.objectContaining({ status: "rolled_back" }),
    });

    // Another delivery after that is a repeat, as for any attempt that ended.
    expect(await createDeployEnvironmentConsumer(env.deps)(envelope(broken()))).toMatchObject({
      kind: "rolled_back",
      reason: expect.stringContaining("repeat"),
    });
  });

  it("starts again from the top when the cut came before any rollback: the rollout had not failed yet", async () => {
    await deployEnvironment(env.deps, deployRequested());
    const error = await cutShort((object) => object.kind === "Deployment");
    expect(error.message).toContain("deadline");
    expect(annotations()).toMatchObject({
      "kubler.dev/status": "deploying",
      "kubler.dev/rolling-back-to": "",
    });
    const outcome = await createDeployEnvironmentConsumer(env.deps)(envelope(broken()));
    expect(outcome).toMatchObject({ kind: "succeeded" });
    expect(image()).toBe(`${IMAGE}:${SHA_2}`);
  });
});
