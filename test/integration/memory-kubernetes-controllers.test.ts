/**
 * The simulated controllers of the in-memory Kubernetes API: namespace termination and Deployment
 * rollouts, and that close() never waits on them. Timings are loose: only order and eventual state.
 */
import * as k8s from "@kubernetes/client-node";
import { afterAll, beforeAll, describe, expect, it, vi } from "vitest";
import {
  type KubeObject,
  type MemoryKubernetes,
  ROLLOUT_ANNOTATION,
  startMemoryKubernetes,
} from "../../shared/local/memory-kubernetes/index.js";
import { failure } from "../fakes/kubernetes-api.js";

function clients(server: MemoryKubernetes) {
  const kc = new k8s.KubeConfig();
  kc.loadFromString(server.kubeconfig);
  return {
    core: kc.makeApiClient(k8s.CoreV1Api),
    apps: kc.makeApiClient(k8s.AppsV1Api),
    objects: k8s.KubernetesObjectApi.makeApiClient(kc),
  };
}

function deployment(
  name: string,
  namespace: string,
  options: { replicas?: number; fail?: boolean; image?: string } = {},
) {
  return {
    apiVersion: "apps/v1",
    kind: "Deployment",
    metadata: { name, namespace },
    spec: {
      replicas: options.replicas ?? 2,
      selector: { matchLabels: { app: name } },
      template: {
        metadata: {
          labels: { app: name },
          ...(options.fail ? { annotations: { [ROLLOUT_ANNOTATION]: "fail" } } : {}),
        },
        spec: { containers: [{ name: "app", image: options.image ?? "registry.example.com/app:1" }] },
      },
    },
  };
}

const condition = (status: k8s.V1DeploymentStatus | undefined, type: string) =>
  status?.conditions?.find((c) => c.type === type);

describe("namespace termination", () => {
  let server: MemoryKubernetes;
  let core: k8s.CoreV1Api;
  let apps: k8s.AppsV1Api;
  beforeAll(async () => {
    // Long enough to observe Terminating without racing it.
    server = await startMemoryKubernetes({ namespaceFinalizeMs: 1_000, rolloutDelayMs: 20 });
    ({ core, apps } = clients(server));
  });
  afterAll(() => server.close());

  it("Terminating first, then the namespace and everything in it are gone", async () => {
    await core.createNamespace({ body: { metadata: { name: "doomed" } } });
    await core.createNamespacedConfigMap({ namespace: "doomed", body: { metadata: { name: "settings" } } });
    await apps.createNamespacedDeployment({ namespace: "doomed", body: deployment("web", "doomed") });
    await core.createNamespace({ body: { metadata: { name: "bystander" } } });
    await core.createNamespacedConfigMap({
      namespace: "bystander",
      body: { metadata: { name: "settings" } },
    });

    const deleted = (await core.deleteNamespace({ name: "doomed" })) as unknown as KubeObject;
    expect(deleted).toMatchObject({ kind: "Namespace", status: { phase: "Terminating" } });
    const terminating = await core.readNamespace({ name: "doomed" });
    expect(terminating.status?.phase).toBe("Terminating");
    expect(terminating.metadata?.deletionTimestamp).toBeInstanceOf(Date);
    // Content stays readable and updatable while the namespace is emptied...
    await core.readNamespacedConfigMap({ name: "settings", namespace: "doomed" });
    await core.replaceNamespacedConfigMap({
      name: "settings",
      namespace: "doomed",
      body: { metadata: { name: "settings" }, data: { still: "writable" } },
    });
    // ...but nothing new may be created in it.
    const refused = await failure(
      core.createNamespacedConfigMap({ namespace: "doomed", body: { metadata: { name: "new" } } }),
    );
    expect(refused.code).toBe(403);
    expect(refused.status).toMatchObject({
      reason: "Forbidden",
      message:
        'configmaps "new" is forbidden: unable to create new content in namespace doomed because it is being terminated',
    });

    await vi.waitFor(() => expect(server.store.get("v1", "Namespace", undefined, "doomed")).toBeUndefined(), {
      timeout: 5_000,
    });
    expect((await failure(core.readNamespace({ name: "doomed" }))).code).toBe(404);
    expect(server.store.list("v1", "ConfigMap", "doomed")).toEqual([]);
    expect(server.store.list("apps/v1", "Deployment", "doomed")).toEqual([]);
    expect(server.store.list("v1", "ServiceAccount", "doomed")).toEqual([]);
    expect(server.store.list("v1", "ConfigMap", "bystander")).toHaveLength(1);
    expect((await failure(core.deleteNamespace({ name: "doomed" }))).code).toBe(404);
  });

  it("deleting it again while Terminating is the real API's 409 Conflict, and changes nothing", async () => {
    await core.createNamespace({ body: { metadata: { name: "twice" } } });
    const first = (await core.deleteNamespace({ name: "twice" })) as unknown as KubeObject;
    const again = await failure(core.deleteNamespace({ name: "twice" }));
    expect(again.code).toBe(409);
    expect(again.status).toMatchObject({
      reason: "Conflict",
      message: expect.stringContaining("The system is ensuring all content is removed from this namespace"),
    });
    expect(server.store.get("v1", "Namespace", undefined, "twice")?.metadata.resourceVersion).toBe(
      first.metadata.resourceVersion,
    );
    await vi.waitFor(() => expect(server.store.get("v1", "Namespace", undefined, "twice")).toBeUndefined(), {
      timeout: 5_000,
    });
  });

  it("applying into a Terminating namespace is refused too; re-creating after it is gone works", async () => {
    const { objects } = clients(server);
    await core.createNamespace({ body: { metadata: { name: "reborn" } } });
    await core.deleteNamespace({ name: "reborn" });
    const refused = await failure(
      objects.patch(
        { apiVersion: "v1", kind: "ConfigMap", metadata: { name: "x", namespace: "reborn" } },
        undefined,
        undefined,
        "kubler",
        true,
        k8s.PatchStrategy.ServerSideApply,
      ),
    );
    expect(refused.code).toBe(403);
    const recreate = await failure(core.createNamespace({ body: { metadata: { name: "reborn" } } }));
    expect(recreate.code).toBe(409);
    await vi.waitFor(() => expect(server.store.get("v1", "Namespace", undefined, "reborn")).toBeUndefined(), {
      timeout: 5_000,
    });
    const fresh = await core.createNamespace({ body: { metadata: { name: "reborn" } } });
    expect(fresh.status?.phase).toBe("Active");
  });
});

describe("deployment rollouts", () => {
  let server: MemoryKubernetes;
  let core: k8s.CoreV1Api;
  let apps: k8s.AppsV1Api;
  beforeAll(async () => {
    server = await startMemoryKubernetes({ rolloutDelayMs: 60 });
    ({ core, apps } = clients(server));
    await core.createNamespace({ body: { metadata: { name: "rollouts" } } });
  });
  afterAll(() => server.close());

  it("reports the rollout in progress at once, then available after the delay", async () => {
    const created = await apps.createNamespacedDeployment({
      namespace: "rollouts",
      body: deployment("ok", "rollouts"),
    });
    expect(created.status).toMatchObject({
      observedGeneration: 1,
      replicas: 2,
      updatedReplicas: 0,
      availableReplicas: 0,
    });
    expect(condition(created.status, "Progressing")).toMatchObject({
      status: "True",
      reason: "ReplicaSetUpdated",
    });
    expect(condition(created.status, "Available")?.status).toBe("False");
    await vi.waitFor(
      async () => {
        const read = await apps.readNamespacedDeployment({ name: "ok", namespace: "rollouts" });
        expect(read.status).toMatchObject({
          observedGeneration: 1,
          replicas: 2,
          updatedReplicas: 2,
          readyReplicas: 2,
          availableReplicas: 2,
        });
        expect(condition(read.status, "Available")).toMatchObject({
          status: "True",
          reason: "MinimumReplicasAvailable",
        });
        expect(condition(read.status, "Progressing")).toMatchObject({
          status: "True",
          reason: "NewReplicaSetAvailable",
        });
      },
      { timeout: 5_000 },
    );
  });

  it("a spec change starts over: new generation observed at once, available again after the delay", async () => {
    await apps.createNamespacedDeployment({ namespace: "rollouts", body: deployment("again", "rollouts") });
    await vi.waitFor(() =>
      expect(server.store.get("apps/v1", "Deployment", "rollouts", "again")?.status).toMatchObject({
        availableReplicas: 2,
      }),
    );
    const updated = await apps.replaceNamespacedDeployment({
      name: "again",
      namespace: "rollouts",
      body: deployment("again", "rollouts", { image: "registry.example.com/app:2", replicas: 3 }),
    });
    expect(updated.metadata?.generation).toBe(2);
    expect(updated.status).toMatchObject({ observedGeneration: 2, updatedReplicas: 0, availableReplicas: 0 });
    await vi.waitFor(
      () =>
        expect(server.store.get("apps/v1", "Deployment", "rollouts", "again")?.status).toMatchObject({
          observedGeneration: 2,
          updatedReplicas: 3,
          availableReplicas: 3,
        }),
      { timeout: 5_000 },
    );
  });

  it("the failing annotation ends in ProgressDeadlineExceeded and never becomes available", async () => {
    await apps.createNamespacedDeployment({
      namespace: "rollouts",
      body: deployment("broken", "rollouts", { fail: true }),
    });
    await vi.waitFor(
      async () => {
        const read = await apps.readNamespacedDeployment({ name: "broken", namespace: "rollouts" });
        expect(condition(read.status, "Progressing")).toMatchObject({
          status: "False",
          reason: "ProgressDeadlineExceeded",
        });
      },
      { timeout: 5_000 },
    );
    await new Promise((resolve) => setTimeout(resolve, 200));
    const later = await apps.readNamespacedDeployment({ name: "broken", namespace: "rollouts" });
    expect(later.status?.availableReplicas).toBe(0);
    expect(condition(later.status, "Available")?.status).toBe("False");
    expect(condition(later.status, "Progressing")?.reason).toBe("ProgressDeadlineExceeded");
  });

  it("a fixed spec after a failed rollout rolls out fine", async () => {
    await apps.createNamespacedDeployment({
      namespace: "rollouts",
      body: deployment("fixed", "rollouts", { fail: true }),
    });
    await vi.waitFor(() =>
      expect(
        condition(
          server.store.get("apps/v1", "Deployment", "rollouts", "fixed")?.status as k8s.V1DeploymentStatus,
          "Progressing",
        )?.reason,
      ).toBe("ProgressDeadlineExceeded"),
    );
    await apps.replaceNamespacedDeployment({
      name: "fixed",
      namespace: "rollouts",
      body: deployment("fixed", "rollouts"),
    });
    await vi.waitFor(
      () =>
        expect(server.store.get("apps/v1", "Deployment", "rollouts", "fixed")?.status).toMatchObject({
          observedGeneration: 2,
          availableReplicas: 2,
        }),
      { timeout: 5_000 },
    );
  });
});

describe("options and lifecycle", () => {
  it("failRollout decides which Deployments fail", async () => {
    const server = await startMemoryKubernetes({
      rolloutDelayMs: 10,
      failRollout: (d) => d.metadata.name.startsWith("bad-"),
    });
    try {
      const { apps } = clients(server);
      await apps.createNamespacedDeployment({ namespace: "default", body: deployment("bad-one", "default") });
      await apps.createNamespacedDeployment({
        namespace: "default",
        body: deployment("good-one", "default"),
      });
      await vi.waitFor(() => {
        const bad = server.store.get("apps/v1", "Deployment", "default", "bad-one")
          ?.status as k8s.V1DeploymentStatus;
        const good = server.store.get("apps/v1", "Deployment", "default", "good-one")
          ?.status as k8s.V1DeploymentStatus;
        expect(condition(bad, "Progressing")?.reason).toBe("ProgressDeadlineExceeded");
        expect(good.availableReplicas).toBe(2);
      });
    } finally {
      await server.close();
    }
  });

  it("close() does not wait for pending rollouts, namespace finalization, keep-alive sockets or hung requests", async () => {
    const server = await startMemoryKubernetes({
      rolloutDelayMs: 60_000,
      namespaceFinalizeMs: 60_000,
      port: 0,
    });
    const { core, apps } = clients(server);
    await apps.createNamespacedDeployment({ namespace: "default", body: deployment("slow", "default") });
    await core.createNamespace({ body: { metadata: { name: "slow-ns" } } });
    await core.deleteNamespace({ name: "slow-ns" });
    server.faults.add({ verb: "get", hang: true });
    const hung = fetch(`${server.url}/api/v1/namespaces/default`, {
      headers: { authorization: "Bearer memory" },
    }).catch((error: unknown) => error);
    await vi.waitFor(() => expect(server.stats.byVerb.get).toBe(1));
    const started = Date.now();
    await server.close();
    expect(Date.now() - started).toBeLessThan(2_000);
    expect(await hung).toBeInstanceOf(Error);
    await expect(fetch(`${server.url}/version`)).rejects.toThrow();
  });
});
