/**
 * StatefulSets and DaemonSets on the in-memory Kubernetes API, over HTTP with the real client:
 * served like Deployments (list, get, apply, delete, the status subresource), defaulted, and their
 * rollouts simulated so that `kubectl rollout status`'s reading (shared/domain/rollout.ts) sees them
 * finish, or never finish for a template the fake marks broken. Only order and eventual state.
 */
import * as k8s from "@kubernetes/client-node";
import { afterAll, beforeAll, describe, expect, it, vi } from "vitest";
import { daemonSetRollout, statefulSetRollout } from "../../shared/domain/rollout.js";
import {
  type KubeObject,
  type MemoryKubernetes,
  ROLLOUT_ANNOTATION,
  startMemoryKubernetes,
} from "../../shared/local/memory-kubernetes/index.js";
import { failure } from "../fakes/kubernetes-api.js";

const NS = "workloads";
let server: MemoryKubernetes;
let apps: k8s.AppsV1Api;
let objects: k8s.KubernetesObjectApi;

beforeAll(async () => {
  server = await startMemoryKubernetes({ rolloutDelayMs: 20 });
  const kc = new k8s.KubeConfig();
  kc.loadFromString(server.kubeconfig);
  apps = kc.makeApiClient(k8s.AppsV1Api);
  objects = k8s.KubernetesObjectApi.makeApiClient(kc);
  await kc.makeApiClient(k8s.CoreV1Api).createNamespace({ body: { metadata: { name: NS } } });
});
afterAll(() => server.close());

function template(name: string, options: { fail?: boolean; image?: string }) {
  return {
    metadata: {
      labels: { app: name },
      ...(options.fail ? { annotations: { [ROLLOUT_ANNOTATION]: "fail" } } : {}),
    },
    spec: { containers: [{ name: "app", image: options.image ?? "registry.example.com/app:1" }] },
  };
}

function statefulSet(
  name: string,
  options: { fail?: boolean; image?: string; replicas?: number; updateStrategy?: object } = {},
) {
  return {
    apiVersion: "apps/v1",
    kind: "StatefulSet",
    metadata: { name, namespace: NS },
    spec: {
      serviceName: name,
      replicas: options.replicas ?? 3,
      selector: { matchLabels: { app: name } },
      template: template(name, options),
      ...(options.updateStrategy ? { updateStrategy: options.updateStrategy } : {}),
    },
  };
}

function daemonSet(name: string, options: { fail?: boolean; image?: string; updateStrategy?: object } = {}) {
  return {
    apiVersion: "apps/v1",
    kind: "DaemonSet",
    metadata: { name, namespace: NS },
    spec: {
      selector: { matchLabels: { app: name } },
      template: template(name, options),
      ...(options.updateStrategy ? { updateStrategy: options.updateStrategy } : {}),
    },
  };
}

const apply = (object: object) =>
  objects.patch(
    object as k8s.KubernetesObject,
    undefined,
    undefined,
    "kubler",
    true,
    k8s.PatchStrategy.ServerSideApply,
  );

const stored = (kind: string, name: string) => server.store.get("apps/v1", kind, NS, name) as KubeObject;
const stsState = (name: string) => statefulSetRollout(stored("StatefulSet", name) as never).kind;
const dsState = (name: string) => daemonSetRollout(stored("DaemonSet", name) as never).kind;
/** Past a few rollout delays: long enough for a rollout that was going to finish to have finished. */
const settle = () => new Promise((resolve) => setTimeout(resolve, 150));

describe("StatefulSets", () => {
  it("are served under apps/v1 with a status subresource, and discovered", async () => {
    const kc = new k8s.KubeConfig();
    kc.loadFromString(server.kubeconfig);
    const response = await fetch(`${server.url}/apis/apps/v1`, {
      headers: { authorization: "Bearer memory" },
    });
    const names = ((await response.json()) as { resources: { name: string }[] }).resources.map((r) => r.name);
    expect(names).toEqual(
      expect.arrayContaining(["statefulsets", "statefulsets/status", "daemonsets", "daemonsets/status"]),
    );

    const created = await apps.createNamespacedStatefulSet({ namespace: NS, body: statefulSet("crud") });
    expect(created.metadata?.generation).toBe(1);
    expect(created.spec).toMatchObject({
      podManagementPolicy: "OrderedReady",
      revisionHistoryLimit: 10,
      updateStrategy: { type: "RollingUpdate", rollingUpdate: { partition: 0 } },
    });
    expect((await apps.readNamespacedStatefulSet({ name: "crud", namespace: NS })).metadata?.uid).toBe(
      created.metadata?.uid,
    );
    const listed = await apps.listNamespacedStatefulSet({ namespace: NS });
    expect(listed.items.map((item) => item.metadata?.name)).toContain("crud");

    // A status write leaves the spec alone, a spec write the status. Read from the write's own
    // answer: the simulated controller rewrites the status on its own timer, so a later read races it.
    const patched = await apps.patchNamespacedStatefulSetStatus(
      { name: "crud", namespace: NS, body: { status: { replicas: 3, availableReplicas: 7 } } },
      k8s.setHeaderOptions("Content-Type", k8s.PatchStrategy.MergePatch),
    );
    expect(patched.status).toMatchObject({ availableReplicas: 7 });
    expect(patched.spec).toEqual(created.spec);

    await apps.deleteNamespacedStatefulSet({ name: "crud", namespace: NS });
    expect((await failure(apps.readNamespacedStatefulSet({ name: "crud", namespace: NS }))).code).toBe(404);
  });

  it("refuses a selector that does not match the template, and a changed selector or serviceName", async () => {
    const mismatched = statefulSet("bad-selector");
    mismatched.spec.selector = { matchLabels: { app: "other" } };
    expect((await failure(apply(mismatched))).code).toBe(422);

    await apply(statefulSet("frozen"));
    const renamed = statefulSet("frozen");
    renamed.spec.serviceName = "another";
    const refused = await failure(apply(renamed));
    expect(refused.code).toBe(422);
    expect(refused.status.message).toContain("updates to statefulset spec for fields other than");
  });

  it("roll out: progressing at once, then every pod ready and updated at one revision", async () => {
    const created = (await apply(statefulSet("web"))) as KubeObject;
    expect(statefulSetRollout(created as never).kind).toBe("progressing");
    await vi.waitFor(() => expect(stsState("web")).toBe("available"), { timeout: 5_000 });
    const first = stored("StatefulSet", "web").status as Record<string, unknown>;
    expect(first).toMatchObject({ observedGeneration: 1, replicas: 3, readyReplicas: 3, updatedReplicas: 3 });
    expect(first.currentRevision).toBe(first.updateRevision);

    // The write's own answer is what it stored: a read after it races the controller's timer.
    const updated = (await apply(statefulSet("web", { image: "registry.example.com/app:2" }))) as KubeObject;
    expect(updated.metadata.generation).toBe(2);
    expect(statefulSetRollout(updated as never).kind).toBe("progressing");
    await vi.waitFor(() => expect(stsState("web")).toBe("available"), { timeout: 5_000 });
    const second = stored("StatefulSet", "web").status as Record<string, unknown>;
    expect(second).toMatchObject({ observedGeneration: 2, currentRevision: second.updateRevision });
    expect(second.updateRevision).not.toBe(first.updateRevision);
  });

  it("with a template the fake marks broken: one pod updated and never ready, the rollout never done", async () => {
    await apply(statefulSet("broken"));
    await vi.waitFor(() => expect(stsState("broken")).toBe("available"), { timeout: 5_000 });
    await apply(statefulSet("broken", { fail: true, image: "registry.example.com/app:broken" }));
    // Waited for, then held: the controller's timer under a loaded machine, then no further change.
    await vi.waitFor(
      () =>
        expect(stored("StatefulSet", "broken").status).toMatchObject({
          observedGeneration: 2,
          updatedReplicas: 1,
        }),
      { timeout: 5_000 },
    );
    await settle();
    expect(stored("StatefulSet", "broken").status).toMatchObject({
      observedGeneration: 2,
      replicas: 3,
      readyReplicas: 2,
      updatedReplicas: 1,
    });
    expect(stsState("broken")).toBe("progressing");

    await apply(statefulSet("broken", { image: "registry.example.com/app:fixed" }));
    await vi.waitFor(() => expect(stsState("broken")).toBe("available"), { timeout: 5_000 });
  });

  it("a partition updates only the pods from its ordinal up; OnDelete updates none", async () => {
    const canary = { type: "RollingUpdate", rollingUpdate: { partition: 2 } };
    await apply(statefulSet("canary", { updateStrategy: canary }));
    await vi.waitFor(() => expect(stsState("canary")).toBe("available"), { timeout: 5_000 });
    await apply(statefulSet("canary", { updateStrategy: canary, image: "registry.example.com/app:2" }));
    await vi.waitFor(() => expect(stsState("canary")).toBe("available"), { timeout: 5_000 });
    const status = stored("StatefulSet", "canary").status as Record<string, unknown>;
    expect(status).toMatchObject({ updatedReplicas: 1, currentReplicas: 2, readyReplicas: 3 });
    expect(status.currentRevision).not.toBe(status.updateRevision);

    await apply(statefulSet("manual", { updateStrategy: { type: "OnDelete" } }));
    await vi.waitFor(() => expect(stsState("manual")).toBe("unfollowed"), { timeout: 5_000 });
    await apply(statefulSet("manual", { updateStrategy: { type: "OnDelete" }, fail: true }));
    // Waited for, then held: the controller's timer under a loaded machine, then no further change.
    await vi.waitFor(
      () => expect(stored("StatefulSet", "manual").status).toMatchObject({ observedGeneration: 2 }),
      { timeout: 5_000 },
    );
    await settle();
    // Nothing replaced the running pods: still ready, none at the new revision.
    expect(stored("StatefulSet", "manual").status).toMatchObject({
      observedGeneration: 2,
      readyReplicas: 3,
      updatedReplicas: 0,
    });
  });
});

describe("DaemonSets", () => {
  it("are served with defaults, roll out on the simulated node, and delete", async () => {
    const created = await apps.createNamespacedDaemonSet({ namespace: NS, body: daemonSet("agent") });
    expect(created.spec?.updateStrategy).toEqual({
      type: "RollingUpdate",
      rollingUpdate: { maxUnavailable: 1, maxSurge: 0 },
    });
    expect(daemonSetRollout(created as never).kind).toBe("progressing");
    await vi.waitFor(() => expect(dsState("agent")).toBe("available"), { timeout: 5_000 });
    expect(stored("DaemonSet", "agent").status).toMatchObject({
      observedGeneration: 1,
      desiredNumberScheduled: 1,
      updatedNumberScheduled: 1,
      numberAvailable: 1,
    });
    const listed = await apps.listNamespacedDaemonSet({ namespace: NS });
    expect(listed.items.map((item) => item.metadata?.name)).toContain("agent");
    await apps.deleteNamespacedDaemonSet({ name: "agent", namespace: NS });
    expect((await failure(apps.readNamespacedDaemonSet({ name: "agent", namespace: NS }))).code).toBe(404);
  });

  it("with a template the fake marks broken: its new pod is never available", async () => {
    await apply(daemonSet("logs"));
    await vi.waitFor(() => expect(dsState("logs")).toBe("available"), { timeout: 5_000 });
    await apply(daemonSet("logs", { fail: true }));
    // Waited for, then held: the controller's timer under a loaded machine, then no further change.
    await vi.waitFor(
      () => expect(stored("DaemonSet", "logs").status).toMatchObject({ observedGeneration: 2 }),
      { timeout: 5_000 },
    );
    await settle();
    expect(stored("DaemonSet", "logs").status).toMatchObject({ observedGeneration: 2, numberAvailable: 0 });
    expect(dsState("logs")).toBe("progressing");
  });

  it("refuses a changed selector", async () => {
    await apply(daemonSet("fixed-selector"));
    const changed = daemonSet("fixed-selector");
    changed.spec.selector = { matchLabels: { app: "fixed-selector", tier: "x" } as never };
    changed.spec.template.metadata.labels = { app: "fixed-selector", tier: "x" } as never;
    expect((await failure(apply(changed))).code).toBe(422);
  });
});
