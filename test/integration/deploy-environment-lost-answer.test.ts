/**
 * A namespace write of the deploy whose answer is lost: the API server applied it, but the answer
 * never came back (a dropped connection, a timeout), so the adapter sent it again and met its own
 * write (409, the resourceVersion moved by itself). The deploy must go on as the write's author, not
 * take it for another delivery's: else nobody publishes Deploy Finished (reconcile does not for a
 * namespace that says succeeded or rolled_back) and GitLab's status stays running. Against the
 * embedded Kubernetes API over HTTP, through the real adapter, behind a proxy that drops one answer
 * after the server has acted on the request.
 */
import { afterEach, describe, expect, it } from "vitest";
import { createKubernetesCluster, type KubernetesCluster } from "../../shared/adapters/kubernetes-cluster.js";
import { deployEnvironment } from "../../shared/services/deploy-environment.js";
import { answerDroppingProxy, throughProxy } from "../fakes/answer-dropping-proxy.js";
import { deployRequested, IMAGE, NAMESPACE, SHA_1, SHA_2, useDeployCluster } from "../fakes/deploy-deps.js";

const env = useDeployCluster("kubler-lost-");
let proxy: Awaited<ReturnType<typeof answerDroppingProxy>> | null = null;
let proxied: KubernetesCluster | null = null;
afterEach(async () => {
  proxied?.close();
  await proxy?.close();
  proxy = null;
  proxied = null;
});

/** From now on the deploy's calls go through a proxy that loses the answer to the first write `drop` picks. */
async function loseAnswer(drop: (method: string, path: string, body: string) => boolean): Promise<void> {
  const { server } = throughProxy(env.k8s.kubeconfig);
  proxy = await answerDroppingProxy(server, drop);
  proxied = createKubernetesCluster({
    kubeconfig: throughProxy(env.k8s.kubeconfig, proxy.url).kubeconfig,
    sleep: async () => {},
  });
  env.deps.cluster = proxied;
}

/** A server-side apply of the environment's namespace whose body says `annotation` is `value`. */
const namespaceWrite =
  (...pairs: [string, string][]) =>
  (method: string, path: string, body: string) =>
    method === "PATCH" &&
    path.startsWith(`/api/v1/namespaces/${NAMESPACE}?`) &&
    pairs.every(([key, value]) => body.includes(`"${key}":"${value}"`));

const annotations = () => env.k8s.store.get("v1", "Namespace", undefined, NAMESPACE)?.metadata.annotations;
const image = () =>
  (
    env.k8s.store.get("apps/v1", "Deployment", NAMESPACE, "flight-management") as unknown as {
      spec: { template: { spec: { containers: { image: string }[] } } };
    }
  ).spec.template.spec.containers[0]?.image;
/** Each Deploy Finished: its commit and status. */
const finished = () =>
  env.deps.publisher.entries
    .filter((e) => e.detailType === "Deploy Finished")
    .map((e) => {
      const detail = e.detail as { sha: string; status: string };
      return `${detail.sha.slice(0, 1)} ${detail.status}`;
    });
const broken = () => deployRequested({ sha: SHA_2, pipelineId: 101 });

describe("a deploy whose final namespace write's answer is lost", () => {
  it("publishes the succeeded its own write stands for, once, and moves the schedule", async () => {
    await loseAnswer(namespaceWrite(["kubler.dev/status", "succeeded"]));

    const outcome = await deployEnvironment(env.deps, deployRequested());

    expect(proxy?.dropped()).toBe(1);
    expect(outcome).toMatchObject({ kind: "succeeded", namespace: NAMESPACE });
    expect(finished()).toEqual(["1 succeeded"]);
    expect(annotations()).toMatchObject({ "kubler.dev/status": "succeeded", "kubler.dev/sha": SHA_1 });
    expect([...env.deps.scheduler.schedules.values()].map((s) => s.at.toISOString())).toEqual([
      "2026-11-24T10:00:00.000Z",
    ]);
    expect(env.deps.audit.last()).toMatchObject({
      outcome: "success",
      subject: expect.objectContaining({ status: "succeeded" }),
    });
  });

  it("publishes the rolled_back its own write stands for, once", async () => {
    await deployEnvironment(env.deps, deployRequested());
    env.files.setRollout("fail");
    await loseAnswer(namespaceWrite(["kubler.dev/status", "rolled_back"]));

    const outcome = await deployEnvironment(env.deps, broken());

    expect(proxy?.dropped()).toBe(1);
    expect(outcome).toMatchObject({
      kind: "rolled_back",
      reason: expect.stringContaining(`rolled back to ${SHA_1}`),
    });
    expect(finished()).toEqual(["1 succeeded", "2 rolled_back"]);
    expect(image()).toBe(`${IMAGE}:${SHA_1}`);
  });

  it("publishes the failed its own write stands for, once, when there was nothing to roll back to", async () => {
    env.files.setRollout("fail");
    await loseAnswer(namespaceWrite(["kubler.dev/status", "failed"]));

    const outcome = await deployEnvironment(env.deps, deployRequested());

    expect(proxy?.dropped()).toBe(1);
    expect(outcome).toMatchObject({
      kind: "failed",
      reason: expect.stringContaining("no earlier good revision"),
    });
    expect(finished()).toEqual(["1 failed"]);
  });
});

describe("a deploy whose other guarded namespace writes lose their answer", () => {
  it("rolls back and publishes rolled_back when the rollback's mark (its new deadline) lost its answer", async () => {
    await deployEnvironment(env.deps, deployRequested());
    env.files.setRollout("fail");
    await loseAnswer(
      namespaceWrite(["kubler.dev/status", "deploying"], ["kubler.dev/rolling-back-to", SHA_1]),
    );

    const outcome = await deployEnvironment(env.deps, broken());

    expect(proxy?.dropped()).toBe(1);
    expect(outcome).toMatchObject({ kind: "rolled_back" });
    expect(finished()).toEqual(["1 succeeded", "2 rolled_back"]);
    expect(image()).toBe(`${IMAGE}:${SHA_1}`);
    expect(annotations()).toMatchObject({
      "kubler.dev/status": "rolled_back",
      "kubler.dev/rolling-back-to": "",
    });
  });

  it("publishes succeeded when a redelivery's write of the digest its record has lost its answer", async () => {
    await deployEnvironment(env.deps, deployRequested());
    // The namespace vouches for another record than the one saved (an earlier write lost): a
    // redelivery saves the record again and writes the namespace its digest.
    const namespace = env.k8s.store.get("v1", "Namespace", undefined, NAMESPACE);
    const digest = namespace?.metadata.annotations?.["kubler.dev/last-good-digest"] as string;
    if (!namespace) throw new Error("no namespace");
    env.k8s.store.put({
      ...namespace,
      metadata: {
        ...namespace.metadata,
        annotations: { ...namespace.metadata.annotations, "kubler.dev/last-good-digest": "0" },
      },
    });
    await loseAnswer(
      namespaceWrite(["kubler.dev/status", "succeeded"], ["kubler.dev/last-good-digest", digest]),
    );

    const outcome = await deployEnvironment(env.deps, deployRequested());

    expect(proxy?.dropped()).toBe(1);
    expect(outcome).toMatchObject({ kind: "succeeded" });
    expect(finished()).toEqual(["1 succeeded", "1 succeeded"]);
    expect(annotations()?.["kubler.dev/last-good-digest"]).toBe(digest);
  });

  it("deploys and publishes succeeded when its 'deploying' take-over lost its answer", async () => {
    await deployEnvironment(env.deps, deployRequested());
    await loseAnswer(namespaceWrite(["kubler.dev/status", "deploying"], ["kubler.dev/attempted-sha", SHA_2]));

    const outcome = await deployEnvironment(env.deps, deployRequested({ sha: SHA_2, pipelineId: 101 }));

    expect(proxy?.dropped()).toBe(1);
    expect(outcome).toMatchObject({ kind: "succeeded" });
    expect(finished()).toEqual(["1 succeeded", "2 succeeded"]);
    expect(image()).toBe(`${IMAGE}:${SHA_2}`);
  });

  it("deploys and publishes succeeded when the create of its first namespace lost its answer", async () => {
    await loseAnswer(
      (method, path, body) =>
        method === "POST" && path.startsWith("/api/v1/namespaces") && body.includes(NAMESPACE),
    );

    const outcome = await deployEnvironment(env.deps, deployRequested());

    expect(proxy?.dropped()).toBe(1);
    expect(outcome).toMatchObject({ kind: "succeeded" });
    expect(finished()).toEqual(["1 succeeded"]);
  });
});
