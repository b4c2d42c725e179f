/**
 * Server-side apply of `metadata.finalizers` in the embedded Kubernetes API, as a real API server
 * merges it: the list is a set (`x-kubernetes-list-type: set`), each field manager owns the items it
 * applied (managedFields `f:finalizers: {"v:\"name\"": {}}`), so an apply keeps the items others added
 * (by apply or by a plain write) and removes only the items the same manager applied before and now
 * leaves out. Items carry no value, so two managers never conflict over one. Driven over HTTP with
 * @kubernetes/client-node, as Kubler's adapter and a CI job drive it.
 */
import * as k8s from "@kubernetes/client-node";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type MemoryKubernetes, startMemoryKubernetes } from "../../shared/local/memory-kubernetes/index.js";

const KUBLER = "kubler.dev/build";
const CI = "ci.example.com/job";
const OTHER = "example.com/other";
const mergePatch = k8s.setHeaderOptions("Content-Type", k8s.PatchStrategy.MergePatch);

let server: MemoryKubernetes;
let core: k8s.CoreV1Api;
let objects: k8s.KubernetesObjectApi;

beforeAll(async () => {
  server = await startMemoryKubernetes();
  const kc = new k8s.KubeConfig();
  kc.loadFromString(server.kubeconfig);
  core = kc.makeApiClient(k8s.CoreV1Api);
  objects = k8s.KubernetesObjectApi.makeApiClient(kc);
});
afterAll(() => server.close());

let counter = 0;
async function namespace(): Promise<string> {
  const name = `apply-finalizers-${++counter}`;
  await core.createNamespace({ body: { metadata: { name } } });
  return name;
}

/** Applies the ConfigMap `held` with these finalizers (none: the field left out), unforced. */
function apply(ns: string, manager: string, finalizers?: string[], data?: Record<string, string>) {
  const body: k8s.V1ConfigMap = {
    apiVersion: "v1",
    kind: "ConfigMap",
    metadata: { name: "held", namespace: ns, ...(finalizers ? { finalizers } : {}) },
    ...(data ? { data } : {}),
  };
  return objects.patch(body, undefined, undefined, manager, false, k8s.PatchStrategy.ServerSideApply);
}

const finalizers = (ns: string) => server.store.get("v1", "ConfigMap", ns, "held")?.metadata.finalizers;

describe("server-side apply of metadata.finalizers (a set, owned item by item)", () => {
  it("two managers each applying their own finalizer keep both, without a conflict", async () => {
    const ns = await namespace();
    await apply(ns, "kubler", [KUBLER], { a: "1" });
    await apply(ns, "ci-job", [CI]);
    expect(finalizers(ns)).toEqual([KUBLER, CI]);
    const written = server.store.get("v1", "ConfigMap", ns, "held")?.metadata.resourceVersion;
    // Applying again (same items) changes nothing, for either of them: not even a write.
    await apply(ns, "kubler", [KUBLER], { a: "1" });
    await apply(ns, "ci-job", [CI]);
    expect(finalizers(ns)).toEqual([KUBLER, CI]);
    expect(server.store.get("v1", "ConfigMap", ns, "held")?.metadata.resourceVersion).toBe(written);
  });

  it("a manager that drops an item it applied removes it, and only it", async () => {
    const ns = await namespace();
    await apply(ns, "kubler", [KUBLER, OTHER]);
    await apply(ns, "ci-job", [CI]);
    await apply(ns, "kubler", [KUBLER]);
    expect(finalizers(ns)).toEqual([KUBLER, CI]);
    // Leaving the field out altogether drops every item it owned; the CI job's stays.
    await apply(ns, "kubler");
    expect(finalizers(ns)).toEqual([CI]);
    await apply(ns, "ci-job", []);
    expect(finalizers(ns)).toBeUndefined();
  });

  it("an item two managers applied stays until both have dropped it", async () => {
    const ns = await namespace();
    await apply(ns, "kubler", [KUBLER]);
    await apply(ns, "ci-job", [KUBLER, CI]);
    await apply(ns, "kubler", []);
    expect(finalizers(ns)).toEqual([KUBLER, CI]);
    await apply(ns, "ci-job", [CI]);
    expect(finalizers(ns)).toEqual([CI]);
  });

  it("keeps an item a plain write (merge patch) added when another manager applies", async () => {
    const ns = await namespace();
    await apply(ns, "kubler", [KUBLER], { a: "1" });
    // A CI job adds its finalizer with a patch of the whole list, as clients without apply do.
    await core.patchNamespacedConfigMap(
      { name: "held", namespace: ns, body: { metadata: { finalizers: [KUBLER, CI] } } },
      mergePatch,
    );
    await apply(ns, "kubler", [KUBLER], { a: "2" });
    expect(finalizers(ns)).toEqual([KUBLER, CI]);
    // Kubler dropping its own removes its own; the CI job's is not Kubler's to remove.
    await apply(ns, "kubler", undefined, { a: "2" });
    expect(finalizers(ns)).toEqual([CI]);
  });

  it("holds a deleted object while another manager's item is left; the last release removes it", async () => {
    const ns = await namespace();
    await apply(ns, "kubler", [KUBLER]);
    await apply(ns, "ci-job", [CI]);
    await core.deleteNamespacedConfigMap({ name: "held", namespace: ns });
    await apply(ns, "kubler", []);
    expect(finalizers(ns)).toEqual([CI]);
    expect(server.store.get("v1", "ConfigMap", ns, "held")?.metadata.deletionTimestamp).toBeDefined();
    await apply(ns, "ci-job", []);
    expect(server.store.get("v1", "ConfigMap", ns, "held")).toBeUndefined();
  });
});
