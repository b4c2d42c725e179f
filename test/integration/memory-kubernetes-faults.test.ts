/**
 * Fault injection and request counters of the in-memory Kubernetes API. Timings are asserted
 * loosely (lower bounds only): the machines are shared.
 */
import * as k8s from "@kubernetes/client-node";
import { afterAll, afterEach, beforeAll, describe, expect, it, vi } from "vitest";
import { type MemoryKubernetes, startMemoryKubernetes } from "../../shared/local/memory-kubernetes/index.js";
import { failure } from "../fakes/kubernetes-api.js";

let server: MemoryKubernetes;
let core: k8s.CoreV1Api;

beforeAll(async () => {
  server = await startMemoryKubernetes();
  const kc = new k8s.KubeConfig();
  kc.loadFromString(server.kubeconfig);
  core = kc.makeApiClient(k8s.CoreV1Api);
  await core.createNamespace({ body: { metadata: { name: "faults" } } });
  await core.createNamespace({ body: { metadata: { name: "calm" } } });
});
afterEach(() => {
  server.faults.clear();
  server.stats.reset();
});
afterAll(() => server.close());

const get = (path: string, signal?: AbortSignal) =>
  fetch(`${server.url}${path}`, {
    headers: { authorization: "Bearer memory" },
    ...(signal ? { signal } : {}),
  });

describe("fault rules", () => {
  it("429 answers carry Retry-After: 1 and a TooManyRequests Status; `times` limits the rule", async () => {
    const rule = server.faults.add({ verb: "list", resource: "namespaces", status: 429, times: 1 });
    const throttled = await failure(core.listNamespace());
    expect(throttled.code).toBe(429);
    expect(throttled.headers["retry-after"]).toBe("1");
    expect(throttled.status).toMatchObject({
      kind: "Status",
      apiVersion: "v1",
      status: "Failure",
      reason: "TooManyRequests",
      code: 429,
      details: { retryAfterSeconds: 1 },
    });
    expect((await core.listNamespace()).items.length).toBeGreaterThan(0);
    expect(rule.hits).toBe(1);
  });

  it("500 until removed, only for what the rule names", async () => {
    const rule = server.faults.add({
      verb: "create",
      resource: "configmaps",
      namespace: "faults",
      status: 500,
      message: "etcd is sad",
    });
    for (let i = 0; i < 2; i++) {
      const broken = await failure(
        core.createNamespacedConfigMap({ namespace: "faults", body: { metadata: { name: `c${i}` } } }),
      );
      expect(broken.code).toBe(500);
      expect(broken.status).toMatchObject({ reason: "InternalError", message: "etcd is sad" });
    }
    // Another namespace, another verb, another resource: untouched.
    await core.createNamespacedConfigMap({ namespace: "calm", body: { metadata: { name: "c" } } });
    await core.listNamespacedConfigMap({ namespace: "faults" });
    await core.createNamespacedSecret({ namespace: "faults", body: { metadata: { name: "s" } } });
    expect(rule.hits).toBe(2);
    rule.remove();
    await core.createNamespacedConfigMap({ namespace: "faults", body: { metadata: { name: "c" } } });
    expect(server.store.get("v1", "ConfigMap", "faults", "c0")).toBeUndefined();
  });

  it("names a single object, a Namespace by its name, and a subresource", async () => {
    server.faults.add({ resource: "namespaces", name: "faults", status: 503 });
    server.faults.add({ verb: "create", subresource: "token", status: 403 });
    expect((await failure(core.readNamespace({ name: "faults" }))).code).toBe(503);
    expect((await core.readNamespace({ name: "calm" })).metadata?.name).toBe("calm");
    const token = await failure(
      core.createNamespacedServiceAccountToken({
        name: "default",
        namespace: "calm",
        body: { spec: { audiences: [] } },
      }),
    );
    expect(token.code).toBe(403);
    expect(token.status.reason).toBe("Forbidden");
    // The ServiceAccount itself is not the token subresource.
    expect(
      (await core.readNamespacedServiceAccount({ name: "default", namespace: "calm" })).metadata?.name,
    ).toBe("default");
  });

  it("a latency rule delays, then serves normally", async () => {
    server.faults.add({ verb: "get", resource: "namespaces", latencyMs: 150, times: 1 });
    const started = performance.now();
    const read = await core.readNamespace({ name: "calm" });
    expect(performance.now() - started).toBeGreaterThanOrEqual(140);
    expect(read.metadata?.name).toBe("calm");
  });

  it("the global latency applies to every request", async () => {
    server.faults.latencyMs = 40;
    const started = performance.now();
    for (let i = 0; i < 3; i++) await core.readNamespace({ name: "calm" });
    expect(performance.now() - started).toBeGreaterThanOrEqual(3 * 40 - 5);
    server.faults.clear();
    expect(server.faults.latencyMs).toBe(0);
  });

  it("a hanging request never answers; the client's timeout ends it and the server keeps serving", async () => {
    const rule = server.faults.add({
      verb: "get",
      resource: "namespaces",
      name: "calm",
      hang: true,
      times: 1,
    });
    const client = new AbortController();
    let answered = false;
    const hanging = get("/api/v1/namespaces/calm", client.signal).finally(() => {
      answered = true;
    });
    // The client's timeout starts once the server holds the request: started with the request, it
    // could end it on a loaded machine before it arrived, leaving the rule unused for the next one.
    await vi.waitFor(() => expect(rule.hits).toBe(1), { timeout: 10_000, interval: 5 });
    await new Promise((resolve) => setTimeout(resolve, 200));
    expect(answered).toBe(false);
    client.abort(new DOMException("The operation was aborted due to timeout", "TimeoutError"));
    await expect(hanging).rejects.toThrow(/abort|timeout/i);
    expect(rule.hits).toBe(1);
    expect((await get("/api/v1/namespaces/calm")).status).toBe(200);
  });

  it("a fault on discovery breaks KubernetesObjectApi like an unavailable API server would", async () => {
    const kc = new k8s.KubeConfig();
    kc.loadFromString(server.kubeconfig);
    const objects = k8s.KubernetesObjectApi.makeApiClient(kc);
    server.faults.add({ verb: "discovery", status: 503, times: 1 });
    await expect(
      objects.read({ apiVersion: "v1", kind: "Namespace", metadata: { name: "calm" } }),
    ).rejects.toThrow();
    const read = await objects.read({ apiVersion: "v1", kind: "Namespace", metadata: { name: "calm" } });
    expect(read.metadata?.name).toBe("calm");
  });
});

describe("stats", () => {
  it("counts requests by verb", async () => {
    await core.listNamespace();
    await core.readNamespace({ name: "calm" });
    await core.createNamespacedConfigMap({ namespace: "calm", body: { metadata: { name: "counted" } } });
    await core.replaceNamespacedConfigMap({
      name: "counted",
      namespace: "calm",
      body: { metadata: { name: "counted" } },
    });
    await core.patchNamespacedConfigMap({ name: "counted", namespace: "calm", body: [] });
    await core.deleteNamespacedConfigMap({ name: "counted", namespace: "calm" });
    await core.deleteCollectionNamespacedConfigMap({ namespace: "calm" });
    expect(server.stats.requests).toBe(7);
    expect(server.stats.byVerb).toEqual({
      list: 1,
      get: 1,
      create: 1,
      update: 1,
      patch: 1,
      delete: 1,
      deletecollection: 1,
    });
    server.stats.reset();
    expect(server.stats).toMatchObject({ requests: 0, byVerb: {}, inFlightMax: 0 });
  });

  it("inFlightMax is the most requests open at once", async () => {
    server.faults.add({ verb: "get", latencyMs: 100 });
    await core.readNamespace({ name: "calm" });
    expect(server.stats.inFlightMax).toBe(1);
    await Promise.all(Array.from({ length: 8 }, () => core.readNamespace({ name: "calm" })));
    expect(server.stats.inFlightMax).toBeGreaterThanOrEqual(2);
    expect(server.stats.inFlightMax).toBeLessThanOrEqual(8);
    expect(server.stats.requests).toBe(9);
  });
});
