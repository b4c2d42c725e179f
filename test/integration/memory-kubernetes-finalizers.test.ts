/**
 * Finalizers in the embedded Kubernetes API, as a real API server honours them: a DELETE of an object
 * that has some marks it (deletionTimestamp) and keeps it until a write empties metadata.finalizers,
 * which removes it; meanwhile its name is taken (create: 409 AlreadyExists) and no new finalizer may
 * be added. A namespace being deleted waits for the content its finalizers hold. Driven over HTTP
 * with @kubernetes/client-node, as Kubler's adapter and a CI job drive it.
 */
import * as k8s from "@kubernetes/client-node";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type MemoryKubernetes, startMemoryKubernetes } from "../../shared/local/memory-kubernetes/index.js";
import { failure } from "../fakes/kubernetes-api.js";

const HOLD = "example.com/hold";
const mergePatch = k8s.setHeaderOptions("Content-Type", k8s.PatchStrategy.MergePatch);
const jsonPatch = k8s.setHeaderOptions("Content-Type", k8s.PatchStrategy.JsonPatch);

let server: MemoryKubernetes;
let core: k8s.CoreV1Api;

beforeAll(async () => {
  server = await startMemoryKubernetes({ namespaceFinalizeMs: 5 });
  const kc = new k8s.KubeConfig();
  kc.loadFromString(server.kubeconfig);
  core = kc.makeApiClient(k8s.CoreV1Api);
});
afterAll(() => server.close());

let counter = 0;
async function namespace(): Promise<string> {
  const name = `finalizers-${++counter}`;
  await core.createNamespace({ body: { metadata: { name } } });
  return name;
}

async function heldConfigMap(ns: string, finalizers = [HOLD]): Promise<k8s.V1ConfigMap> {
  return core.createNamespacedConfigMap({
    namespace: ns,
    body: { metadata: { name: "held", finalizers }, data: { a: "1" } },
  });
}

function stored(ns: string, name = "held") {
  return server.store.get("v1", "ConfigMap", ns, name);
}

async function until(condition: () => boolean): Promise<void> {
  for (let i = 0; i < 400 && !condition(); i++) await new Promise((resolve) => setTimeout(resolve, 5));
}

describe("an object with finalizers", () => {
  it("is only marked by a DELETE, answered with the object, and a second DELETE changes nothing", async () => {
    const ns = await namespace();
    await heldConfigMap(ns);
    // client-node reads the answer as a Status: its kind is all that says it is the object.
    const answer = await core.deleteNamespacedConfigMap({ name: "held", namespace: ns });
    expect(answer.kind).toBe("ConfigMap");
    const marked = stored(ns);
    expect(marked?.metadata).toMatchObject({ finalizers: [HOLD], deletionGracePeriodSeconds: 0 });
    expect(marked?.metadata.deletionTimestamp).toBeDefined();

    await core.deleteNamespacedConfigMap({ name: "held", namespace: ns });
    expect(stored(ns)?.metadata.resourceVersion).toBe(marked?.metadata.resourceVersion);
    expect(stored(ns)?.metadata.deletionTimestamp).toBe(marked?.metadata.deletionTimestamp);
  });

  it("keeps its name while Terminating: a create of it is 409 AlreadyExists", async () => {
    const ns = await namespace();
    await heldConfigMap(ns);
    await core.deleteNamespacedConfigMap({ name: "held", namespace: ns });
    const { code, status } = await failure(
      core.createNamespacedConfigMap({ namespace: ns, body: { metadata: { name: "held" } } }),
    );
    expect(code).toBe(409);
    expect(status.reason).toBe("AlreadyExists");
  });

  it("goes once a merge patch empties its finalizers, and not while one is left", async () => {
    const ns = await namespace();
    await heldConfigMap(ns, [HOLD, "example.com/other"]);
    await core.deleteNamespacedConfigMap({ name: "held", namespace: ns });
    await core.patchNamespacedConfigMap(
      { name: "held", namespace: ns, body: { metadata: { finalizers: ["example.com/other"] } } },
      mergePatch,
    );
    expect(stored(ns)?.metadata.finalizers).toEqual(["example.com/other"]);
    await core.patchNamespacedConfigMap(
      { name: "held", namespace: ns, body: { metadata: { finalizers: null } } },
      mergePatch,
    );
    expect(stored(ns)).toBeUndefined();
    await core.createNamespacedConfigMap({ namespace: ns, body: { metadata: { name: "held" } } });
    expect(stored(ns)?.metadata.deletionTimestamp).toBeUndefined();
  });

  it("goes once an update (PUT) empties its finalizers", async () => {
    const ns = await namespace();
    await heldConfigMap(ns);
    await core.deleteNamespacedConfigMap({ name: "held", namespace: ns });
    const current = await core.readNamespacedConfigMap({ name: "held", namespace: ns });
    await core.replaceNamespacedConfigMap({
      name: "held",
      namespace: ns,
      body: { ...current, metadata: { ...current.metadata, finalizers: [] } },
    });
    expect(stored(ns)).toBeUndefined();
  });

  it("goes once a JSON patch removes its finalizers, and a resourceVersion precondition still holds", async () => {
    const ns = await namespace();
    const created = await heldConfigMap(ns);
    await core.deleteNamespacedConfigMap({ name: "held", namespace: ns });
    // Read before the DELETE marked it: refused, and it stays.
    const stale = await failure(
      core.patchNamespacedConfigMap(
        {
          name: "held",
          namespace: ns,
          body: { metadata: { finalizers: null, resourceVersion: created.metadata?.resourceVersion } },
        },
        mergePatch,
      ),
    );
    expect(stale.code).toBe(409);
    expect(stored(ns)).toBeDefined();
    await core.patchNamespacedConfigMap(
      { name: "held", namespace: ns, body: [{ op: "remove", path: "/metadata/finalizers" }] },
      jsonPatch,
    );
    expect(stored(ns)).toBeUndefined();
  });

  it("takes no new finalizer once Terminating (422), and keeps the ones it has", async () => {
    const ns = await namespace();
    await heldConfigMap(ns);
    await core.deleteNamespacedConfigMap({ name: "held", namespace: ns });
    const { code, status } = await failure(
      core.patchNamespacedConfigMap(
        { name: "held", namespace: ns, body: { metadata: { finalizers: [HOLD, "example.com/more"] } } },
        mergePatch,
      ),
    );
    expect(code).toBe(422);
    expect(status.details.causes).toEqual([
      expect.objectContaining({ field: "metadata.finalizers", reason: "FieldValueForbidden" }),
    ]);
    expect(stored(ns)?.metadata.finalizers).toEqual([HOLD]);
  });

  it("of an immutable ConfigMap can still lose its finalizers: only its values are frozen", async () => {
    const ns = await namespace();
    await core.createNamespacedConfigMap({
      namespace: ns,
      body: { metadata: { name: "held", finalizers: [HOLD] }, immutable: true, data: { a: "1" } },
    });
    await core.deleteNamespacedConfigMap({ name: "held", namespace: ns });
    await core.patchNamespacedConfigMap(
      { name: "held", namespace: ns, body: { metadata: { finalizers: null } } },
      mergePatch,
    );
    expect(stored(ns)).toBeUndefined();
  });

  it("is marked, not removed, by a deletecollection; the rest go", async () => {
    const ns = await namespace();
    await heldConfigMap(ns);
    await core.createNamespacedConfigMap({ namespace: ns, body: { metadata: { name: "free" } } });
    await core.deleteCollectionNamespacedConfigMap({ namespace: ns });
    expect(stored(ns, "free")).toBeUndefined();
    expect(stored(ns)?.metadata.deletionTimestamp).toBeDefined();
  });

  it("without finalizers (or an empty list) goes at once, as before", async () => {
    const ns = await namespace();
    await heldConfigMap(ns, []);
    await core.deleteNamespacedConfigMap({ name: "held", namespace: ns });
    expect(stored(ns)).toBeUndefined();
  });
});

describe("a namespace being deleted", () => {
  it("waits for the content its finalizers hold, which is marked, then goes with it once released", async () => {
    const ns = await namespace();
    await heldConfigMap(ns);
    await core.createNamespacedConfigMap({ namespace: ns, body: { metadata: { name: "free" } } });
    await core.deleteNamespace({ name: ns });
    await until(() => stored(ns, "free") === undefined);
    expect(stored(ns, "free")).toBeUndefined();
    expect(stored(ns)?.metadata.deletionTimestamp).toBeDefined();
    // Several finalization delays later, still held.
    await new Promise((resolve) => setTimeout(resolve, 30));
    expect(server.store.get("v1", "Namespace", undefined, ns)?.status).toMatchObject({
      phase: "Terminating",
    });

    await core.patchNamespacedConfigMap(
      { name: "held", namespace: ns, body: { metadata: { finalizers: null } } },
      mergePatch,
    );
    await until(() => server.store.get("v1", "Namespace", undefined, ns) === undefined);
    expect(server.store.get("v1", "Namespace", undefined, ns)).toBeUndefined();
  });
});
