/**
 * Server-side apply naming a uid (Kubler's guarded writes: `writtenOver`) on the in-memory Kubernetes
 * API, through the real `@kubernetes/client-node` and the KubernetesCluster adapter.
 *
 * The API server's patch handler refuses an apply that names a uid when no object exists: 409
 * Conflict "uid mismatch: the provided object specified uid …, and no existing object was found"
 * (k8s.io/apiserver pkg/endpoints/handlers/patch.go, applyPatch). A resourceVersion alone does not
 * stop the apply creating: the store drops it on create (kubernetes/kubernetes#106745).
 */
import * as k8s from "@kubernetes/client-node";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createKubernetesCluster } from "../../shared/adapters/kubernetes-cluster.js";
import { writtenOver } from "../../shared/domain/kube-object.js";
import { KubernetesConflictError } from "../../shared/errors.js";
import { type MemoryKubernetes, startMemoryKubernetes } from "../../shared/local/memory-kubernetes/index.js";
import type { KubeObject } from "../../shared/ports.js";
import { failure } from "../fakes/kubernetes-api.js";

let server: MemoryKubernetes;
let objects: k8s.KubernetesObjectApi;

beforeAll(async () => {
  server = await startMemoryKubernetes({ namespaceFinalizeMs: 10 });
  const kc = new k8s.KubeConfig();
  kc.loadFromString(server.kubeconfig);
  objects = k8s.KubernetesObjectApi.makeApiClient(kc);
});
afterAll(() => server.close());

const cluster = () => createKubernetesCluster({ kubeconfig: server.kubeconfig, sleep: async () => {} });

let serial = 0;
const uniqueName = (prefix: string) => `${prefix}-${++serial}`;

function namespace(name: string, labels: Record<string, string> = {}): KubeObject {
  return { apiVersion: "v1", kind: "Namespace", metadata: { name, labels } };
}

function configMap(ns: string, name: string, data: Record<string, string>): KubeObject {
  return { apiVersion: "v1", kind: "ConfigMap", metadata: { name, namespace: ns }, data };
}

const applyRaw = (object: KubeObject, dryRun?: string) =>
  objects.patch(
    object as k8s.KubernetesObject,
    undefined,
    dryRun,
    "kubler",
    true,
    k8s.PatchStrategy.ServerSideApply,
  );

const DELETED_UID = "5f0c3a52-0000-4000-8000-00000000dead";

describe("an apply naming the uid of an object that no longer exists", () => {
  it("is a 409 for a namespace deleted since it was read, and recreates nothing", async () => {
    const kube = cluster();
    const name = uniqueName("env");
    const read = await kube.apply(namespace(name, { "kubler.dev/state": "deploying" }));
    const ref = { apiVersion: "v1", kind: "Namespace", name };
    expect(await kube.delete(ref)).toBe("deleted");
    await expect.poll(() => kube.get(ref), { timeout: 3_000 }).toBeNull();

    // A deploy's final write (or reconcile's mark) landing after `kubler stop`.
    const late = kube.apply(writtenOver(namespace(name, { "kubler.dev/state": "ready" }), read.metadata));
    await expect(late).rejects.toBeInstanceOf(KubernetesConflictError);
    await expect(late).rejects.toThrow(
      `uid mismatch: the provided object specified uid ${read.metadata.uid}, and no existing object was found`,
    );
    expect(await kube.get(ref)).toBeNull();
  });

  it("is a 409 for a namespaced object deleted since, and recreates nothing", async () => {
    const kube = cluster();
    const ns = uniqueName("ns");
    await kube.apply(namespace(ns));
    const read = await kube.apply(configMap(ns, "settings", { a: "1" }));
    const ref = { apiVersion: "v1", kind: "ConfigMap", namespace: ns, name: "settings" };
    expect(await kube.delete(ref)).toBe("deleted");

    const late = kube.apply(writtenOver(configMap(ns, "settings", { a: "2" }), read.metadata));
    await expect(late).rejects.toBeInstanceOf(KubernetesConflictError);
    expect(server.store.get("v1", "ConfigMap", ns, "settings")).toBeUndefined();
  });

  it("answers the API server's Status: 409 Conflict naming the resource and the uid", async () => {
    const ns = uniqueName("ns");
    await cluster().apply(namespace(ns));
    const object = configMap(ns, "gone", {});
    object.metadata.uid = DELETED_UID;
    const refused = await failure(applyRaw(object));
    expect(refused.code).toBe(409);
    expect(refused.status).toMatchObject({
      kind: "Status",
      status: "Failure",
      reason: "Conflict",
      code: 409,
      message: `Operation cannot be fulfilled on configmaps "gone": uid mismatch: the provided object specified uid ${DELETED_UID}, and no existing object was found`,
      details: { name: "gone", kind: "configmaps" },
    });
  });

  it("is refused in a dry run too, and before the namespace is looked for", async () => {
    const ns = uniqueName("ns");
    await cluster().apply(namespace(ns));
    const object = configMap(ns, "dry", {});
    object.metadata.uid = DELETED_UID;
    expect((await failure(applyRaw(object, "All"))).code).toBe(409);

    // The uid is checked as the patch is applied, before admission (NamespaceLifecycle) runs.
    const elsewhere = configMap(uniqueName("missing"), "x", {});
    elsewhere.metadata.uid = DELETED_UID;
    expect((await failure(applyRaw(elsewhere))).status.reason).toBe("Conflict");
    const stored = server.store.list("v1", "ConfigMap").map((item) => item.metadata.name);
    expect(stored).not.toContain("dry");
    expect(stored).not.toContain("x");
  });

  it("with a resourceVersion but no uid creates the object, as the API server does", async () => {
    const kube = cluster();
    const ns = uniqueName("ns");
    await kube.apply(namespace(ns));
    const read = await kube.apply(configMap(ns, "recreated", { a: "1" }));
    await kube.delete({ apiVersion: "v1", kind: "ConfigMap", namespace: ns, name: "recreated" });

    const created = await kube.apply(
      writtenOver(configMap(ns, "recreated", { a: "2" }), { resourceVersion: read.metadata.resourceVersion }),
    );
    expect(created.metadata.uid).not.toBe(read.metadata.uid);
    expect(created).toMatchObject({ data: { a: "2" } });
  });

  it("still writes over an object that exists with that uid", async () => {
    const kube = cluster();
    const name = uniqueName("env");
    const read = await kube.apply(namespace(name, { "kubler.dev/state": "deploying" }));
    const written = await kube.apply(
      writtenOver(namespace(name, { "kubler.dev/state": "ready" }), read.metadata),
    );
    expect(written.metadata.uid).toBe(read.metadata.uid);
    expect(written.metadata.labels).toMatchObject({ "kubler.dev/state": "ready" });
  });
});
