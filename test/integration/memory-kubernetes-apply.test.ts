/**
 * Server-side apply, JSON merge patch, JSON patch and the status subresource of the in-memory
 * Kubernetes API, through the real `@kubernetes/client-node`.
 */
import * as k8s from "@kubernetes/client-node";
import { afterAll, beforeAll, describe, expect, it, vi } from "vitest";
import {
  type KubeObject,
  type MemoryKubernetes,
  startMemoryKubernetes,
} from "../../shared/local/memory-kubernetes/index.js";
import { failure } from "../fakes/kubernetes-api.js";

let server: MemoryKubernetes;
let core: k8s.CoreV1Api;
let apps: k8s.AppsV1Api;
let objects: k8s.KubernetesObjectApi;

beforeAll(async () => {
  server = await startMemoryKubernetes({ rolloutDelayMs: 20 });
  const kc = new k8s.KubeConfig();
  kc.loadFromString(server.kubeconfig);
  core = kc.makeApiClient(k8s.CoreV1Api);
  apps = kc.makeApiClient(k8s.AppsV1Api);
  objects = k8s.KubernetesObjectApi.makeApiClient(kc);
});
afterAll(() => server.close());

let counter = 0;
async function namespace(): Promise<string> {
  const name = `apply-${++counter}`;
  await core.createNamespace({ body: { metadata: { name } } });
  return name;
}

const apply = (
  object: k8s.KubernetesObject,
  manager = "kubler",
  force = true,
): Promise<k8s.KubernetesObject> =>
  objects.patch(object, undefined, undefined, manager, force, k8s.PatchStrategy.ServerSideApply);

const withContentType = (type: string) => k8s.setHeaderOptions("Content-Type", type);

function configMap(namespace: string, name: string, fields: Partial<k8s.V1ConfigMap> = {}): k8s.V1ConfigMap {
  return { apiVersion: "v1", kind: "ConfigMap", metadata: { name, namespace }, ...fields };
}

function deployment(namespace: string, image = "registry.example.com/app@sha256:1") {
  return {
    apiVersion: "apps/v1",
    kind: "Deployment",
    metadata: { name: "web", namespace, labels: { "app.kubernetes.io/managed-by": "kubler" } },
    spec: {
      replicas: 2,
      selector: { matchLabels: { app: "web" } },
      template: { metadata: { labels: { app: "web" } }, spec: { containers: [{ name: "web", image }] } },
    },
  };
}

const stored = (namespace: string, name: string) =>
  server.store.get("v1", "ConfigMap", namespace, name) as KubeObject;

describe("server-side apply", () => {
  it("creates when absent (201), then merges into what is stored", async () => {
    const ns = await namespace();
    const created = await apply(configMap(ns, "settings", { data: { a: "1" } }));
    expect(created.metadata?.uid).toBeDefined();
    expect((created as k8s.V1ConfigMap).data).toEqual({ a: "1" });
    // Another writer adds a field this manager never applied: a later apply keeps it.
    await core.patchNamespacedConfigMap(
      { name: "settings", namespace: ns, body: { data: { fromPatch: "x" } } },
      withContentType(k8s.PatchStrategy.MergePatch),
    );
    const merged = await apply(configMap(ns, "settings", { data: { a: "2" } }));
    expect((merged as k8s.V1ConfigMap).data).toEqual({ a: "2", fromPatch: "x" });
    expect(merged.metadata?.uid).toBe(created.metadata?.uid);
  });

  it("a no-op apply changes nothing: same resourceVersion, no write", async () => {
    const ns = await namespace();
    const first = await apply(
      configMap(ns, "same", {
        metadata: { name: "same", namespace: ns, labels: { a: "b" } },
        data: { k: "v" },
      }),
    );
    const second = await apply(
      configMap(ns, "same", {
        metadata: { name: "same", namespace: ns, labels: { a: "b" } },
        data: { k: "v" },
      }),
    );
    expect(second.metadata?.resourceVersion).toBe(first.metadata?.resourceVersion);
    expect(stored(ns, "same").metadata.resourceVersion).toBe(first.metadata?.resourceVersion);
  });

  it("a no-op apply of a Deployment keeps resourceVersion and generation, and starts no rollout", async () => {
    const ns = await namespace();
    const first = await apply(deployment(ns));
    expect(first.metadata?.generation).toBe(1);
    await vi.waitFor(() =>
      expect(server.store.get("apps/v1", "Deployment", ns, "web")?.status).toMatchObject({
        availableReplicas: 2,
      }),
    );
    const available = server.store.get("apps/v1", "Deployment", ns, "web") as KubeObject;
    const again = await apply(deployment(ns));
    expect(again.metadata?.resourceVersion).toBe(available.metadata.resourceVersion);
    expect(again.metadata?.generation).toBe(1);
    expect((again as k8s.V1Deployment).status?.availableReplicas).toBe(2);
  });

  it("a changed spec bumps generation and starts a new rollout", async () => {
    const ns = await namespace();
    await apply(deployment(ns));
    const updated = (await apply(deployment(ns, "registry.example.com/app@sha256:2"))) as k8s.V1Deployment;
    expect(updated.metadata?.generation).toBe(2);
    expect(updated.status).toMatchObject({ observedGeneration: 2, updatedReplicas: 0, availableReplicas: 0 });
    expect(updated.metadata?.annotations?.["deployment.kubernetes.io/revision"]).toBe("2");
    await vi.waitFor(async () => {
      const read = await apps.readNamespacedDeployment({ name: "web", namespace: ns });
      expect(read.status).toMatchObject({ observedGeneration: 2, updatedReplicas: 2, availableReplicas: 2 });
    });
  });

  it("removes fields the manager stopped applying, but not other managers' fields", async () => {
    const ns = await namespace();
    await apply(configMap(ns, "owned", { data: { keep: "1", drop: "2" } }));
    await apply(configMap(ns, "owned", { data: { theirs: "3" } }), "someone-else");
    const pruned = (await apply(configMap(ns, "owned", { data: { keep: "1" } }))) as k8s.V1ConfigMap;
    expect(pruned.data).toEqual({ keep: "1", theirs: "3" });
  });

  it("two managers applying different values conflict (409) unless the second forces", async () => {
    const ns = await namespace();
    await apply(configMap(ns, "shared", { data: { level: "info" } }), "first");
    const conflict = await failure(
      apply(configMap(ns, "shared", { data: { level: "debug" } }), "second", false),
    );
    expect(conflict.code).toBe(409);
    expect(conflict.status.reason).toBe("Conflict");
    expect(conflict.status.message).toContain(
      'Apply failed with 1 conflict: conflict with "first": .data.level',
    );
    expect(conflict.status.details.causes).toEqual([
      { reason: "FieldManagerConflict", message: 'conflict with "first"', field: ".data.level" },
    ]);
    // The same value is shared ownership, not a conflict.
    await apply(configMap(ns, "shared", { data: { level: "info" } }), "third", false);
    const forced = (await apply(
      configMap(ns, "shared", { data: { level: "debug" } }),
      "second",
      true,
    )) as k8s.V1ConfigMap;
    expect(forced.data).toEqual({ level: "debug" });
  });

  it("requires fieldManager (422) and accepts YAML bodies", async () => {
    const ns = await namespace();
    const url = `${server.url}/api/v1/namespaces/${ns}/configmaps/yaml`;
    const headers = { authorization: "Bearer memory", "content-type": "application/apply-patch+yaml" };
    const yaml = `apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: yaml\ndata:\n  greeting: hello\n`;
    const missing = await fetch(url, { method: "PATCH", headers, body: yaml });
    expect(missing.status).toBe(422);
    expect(await missing.json()).toMatchObject({
      reason: "Invalid",
      details: { causes: [{ field: "fieldManager" }] },
    });
    const created = await fetch(`${url}?fieldManager=kubler`, { method: "PATCH", headers, body: yaml });
    expect(created.status).toBe(201);
    expect(stored(ns, "yaml").data).toEqual({ greeting: "hello" });
    const updated = await fetch(`${url}?fieldManager=kubler`, {
      method: "PATCH",
      headers,
      body: yaml.replace("hello", "hi"),
    });
    expect(updated.status).toBe(200);
    expect(stored(ns, "yaml").data).toEqual({ greeting: "hi" });
  });

  it("a stale resourceVersion in the applied object is a 409", async () => {
    const ns = await namespace();
    const first = await apply(configMap(ns, "versioned", { data: { v: "1" } }));
    await apply(configMap(ns, "versioned", { data: { v: "2" } }));
    const stale = await failure(
      apply(
        configMap(ns, "versioned", { metadata: { ...first.metadata, name: "versioned" }, data: { v: "3" } }),
      ),
    );
    expect(stale.code).toBe(409);
    expect(stale.status.message).toContain("the object has been modified");
  });

  it("validates like any write, and dry-run stores nothing", async () => {
    const ns = await namespace();
    const invalid = await failure(
      apply(
        configMap(ns, "bad", { metadata: { name: "bad", namespace: ns, labels: { a: "x".repeat(64) } } }),
      ),
    );
    expect(invalid.code).toBe(422);
    await objects.patch(
      configMap(ns, "dry"),
      undefined,
      "All",
      "kubler",
      true,
      k8s.PatchStrategy.ServerSideApply,
    );
    expect(server.store.get("v1", "ConfigMap", ns, "dry")).toBeUndefined();
  });

  it("404 for the namespace when applying into one that does not exist", async () => {
    const missing = await failure(apply(configMap("no-such-namespace", "x")));
    expect(missing.code).toBe(404);
    expect(missing.status.message).toBe('namespaces "no-such-namespace" not found');
  });
});

describe("patch", () => {
  it("merge patch (RFC 7386): objects merge, null deletes, lists replace", async () => {
    const ns = await namespace();
    await core.createNamespacedConfigMap({
      namespace: ns,
      body: { metadata: { name: "m", labels: { a: "1", b: "2" } }, data: { x: "1", y: "2" } },
    });
    const patched = await core.patchNamespacedConfigMap(
      {
        name: "m",
        namespace: ns,
        body: { metadata: { labels: { b: null, c: "3" } }, data: { y: "changed" } },
      },
      withContentType(k8s.PatchStrategy.MergePatch),
    );
    expect(patched.metadata?.labels).toEqual({ a: "1", c: "3" });
    expect(patched.data).toEqual({ x: "1", y: "changed" });
  });

  it("strategic merge patch is treated as a merge patch", async () => {
    const ns = await namespace();
    await apps.createNamespacedDeployment({ namespace: ns, body: deployment(ns) });
    const patched = await apps.patchNamespacedDeployment(
      { name: "web", namespace: ns, body: { spec: { replicas: 5 } } },
      withContentType(k8s.PatchStrategy.StrategicMergePatch),
    );
    expect(patched.spec?.replicas).toBe(5);
    expect(patched.metadata?.generation).toBe(2);
  });

  it("JSON patch (the typed client's default) with a failing test operation is 422", async () => {
    const ns = await namespace();
    await core.createNamespacedConfigMap({
      namespace: ns,
      body: { metadata: { name: "j" }, data: { a: "1" } },
    });
    const patched = await core.patchNamespacedConfigMap({
      name: "j",
      namespace: ns,
      body: [
        { op: "add", path: "/data/b", value: "2" },
        { op: "replace", path: "/data/a", value: "one" },
        { op: "add", path: "/metadata/labels", value: { "kubler.dev/environment": "review-x" } },
      ],
    });
    expect(patched.data).toEqual({ a: "one", b: "2" });
    expect(patched.metadata?.labels).toEqual({ "kubler.dev/environment": "review-x" });
    const failed = await failure(
      core.patchNamespacedConfigMap({
        name: "j",
        namespace: ns,
        body: [
          { op: "test", path: "/data/a", value: "not-one" },
          { op: "remove", path: "/data/a" },
        ],
      }),
    );
    expect(failed.code).toBe(422);
    expect(stored(ns, "j").data).toEqual({ a: "one", b: "2" });
  });

  it("a patch naming a stale resourceVersion is a 409; a patch of a missing object a 404", async () => {
    const ns = await namespace();
    const created = await core.createNamespacedConfigMap({
      namespace: ns,
      body: { metadata: { name: "p" } },
    });
    await core.patchNamespacedConfigMap(
      { name: "p", namespace: ns, body: { data: { a: "1" } } },
      withContentType(k8s.PatchStrategy.MergePatch),
    );
    const stale = await failure(
      core.patchNamespacedConfigMap(
        {
          name: "p",
          namespace: ns,
          body: { metadata: { resourceVersion: created.metadata?.resourceVersion }, data: { a: "2" } },
        },
        withContentType(k8s.PatchStrategy.MergePatch),
      ),
    );
    expect(stale.code).toBe(409);
    const missing = await failure(
      core.patchNamespacedConfigMap(
        { name: "nope", namespace: ns, body: {} },
        withContentType(k8s.PatchStrategy.MergePatch),
      ),
    );
    expect(missing.code).toBe(404);
  });
});

describe("status subresource", () => {
  it("writes to the main resource leave status alone; /status writes only status", async () => {
    const ns = await namespace();
    const job = {
      metadata: { name: "build" },
      spec: {
        // Suspended: the simulated Job controller starts no pod, so the status stays the test's to write.
        suspend: true,
        template: { spec: { restartPolicy: "Never", containers: [{ name: "b", image: "buildkit" }] } },
      },
    };
    const batch = k8s.KubernetesObjectApi.makeApiClient(
      (() => {
        const kc = new k8s.KubeConfig();
        kc.loadFromString(server.kubeconfig);
        return kc;
      })(),
    );
    const created: k8s.KubernetesObject = await batch.create({
      apiVersion: "batch/v1",
      kind: "Job",
      ...job,
      metadata: { ...job.metadata, namespace: ns },
    });
    const url = `${server.url}/apis/batch/v1/namespaces/${ns}/jobs/build`;
    const headers = { authorization: "Bearer memory", "content-type": "application/merge-patch+json" };
    const ignored = await fetch(url, {
      method: "PATCH",
      headers,
      body: JSON.stringify({ status: { succeeded: 1 } }),
    });
    expect(ignored.status).toBe(200);
    expect(((await ignored.json()) as KubeObject).status).toEqual({});
    const statusPatch = await fetch(`${url}/status`, {
      method: "PATCH",
      headers,
      body: JSON.stringify({ metadata: { labels: { ignored: "yes" } }, status: { succeeded: 1 } }),
    });
    expect(statusPatch.status).toBe(200);
    const after = server.store.get("batch/v1", "Job", ns, "build") as KubeObject;
    expect(after.status).toEqual({ succeeded: 1 });
    expect(after.metadata.labels).toBeUndefined();
    expect(after.metadata.generation).toBe(created.metadata?.generation);
    const put = await fetch(`${url}/status`, {
      method: "PUT",
      headers: { ...headers, "content-type": "application/json" },
      body: JSON.stringify({ ...after, status: { failed: 1 } }),
    });
    expect(put.status).toBe(200);
    expect(server.store.get("batch/v1", "Job", ns, "build")?.status).toEqual({ failed: 1 });
  });

  it("apply to /status sets status only", async () => {
    const ns = await namespace();
    server.store.put({ ...deployment(ns), metadata: { ...deployment(ns).metadata }, status: {} });
    const response = await fetch(
      `${server.url}/apis/apps/v1/namespaces/${ns}/deployments/web/status?fieldManager=status-writer&force=true`,
      {
        method: "PATCH",
        headers: { authorization: "Bearer memory", "content-type": "application/apply-patch+yaml" },
        body: JSON.stringify({
          apiVersion: "apps/v1",
          kind: "Deployment",
          metadata: { name: "web", namespace: ns },
          spec: { replicas: 9 },
          status: { observedGeneration: 1, readyReplicas: 1 },
        }),
      },
    );
    expect(response.status).toBe(200);
    const after = server.store.get("apps/v1", "Deployment", ns, "web") as KubeObject;
    expect(after.status).toEqual({ observedGeneration: 1, readyReplicas: 1 });
    expect((after.spec as { replicas: number }).replicas).toBe(2);
  });

  it("the typed client reads and replaces deployment status", async () => {
    const ns = await namespace();
    await apps.createNamespacedDeployment({ namespace: ns, body: deployment(ns) });
    const read = await apps.readNamespacedDeploymentStatus({ name: "web", namespace: ns });
    const replaced = await apps.replaceNamespacedDeploymentStatus({
      name: "web",
      namespace: ns,
      // No resourceVersion: the simulated controller may write status between the read and this write.
      body: {
        ...read,
        metadata: { ...read.metadata, resourceVersion: undefined },
        status: { ...read.status, readyReplicas: 7 },
      },
    });
    expect(replaced.status?.readyReplicas).toBe(7);
    expect(replaced.metadata?.generation).toBe(1);
  });
});
