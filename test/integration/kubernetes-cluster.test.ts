import { mkdtempSync, writeFileSync } from "node:fs";
import { createServer as createHttpServer, type IncomingMessage, type ServerResponse } from "node:http";
import { type AddressInfo, createServer } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { KubeConfig } from "@kubernetes/client-node";
import { afterAll, beforeAll, beforeEach, describe, expect, it, vi } from "vitest";
import {
  type CreateKubernetesClusterOptions,
  createKubernetesCluster,
  FIELD_MANAGER,
  KubernetesCluster,
} from "../../shared/adapters/kubernetes-cluster.js";
import {
  ConfigError,
  KubernetesAdmissionDeniedError,
  KubernetesConflictError,
  KubernetesForbiddenError,
  KubernetesInvalidError,
  KubernetesNotFoundError,
  KubernetesUnavailableError,
} from "../../shared/errors.js";
import { type MemoryKubernetes, startMemoryKubernetes } from "../../shared/local/memory-kubernetes/index.js";
import type { KubeObject } from "../../shared/ports.js";

let server: MemoryKubernetes;
let serial = 0;

beforeAll(async () => {
  // Long enough to delete a namespace twice while it is Terminating.
  server = await startMemoryKubernetes({ namespaceFinalizeMs: 400 });
});
afterAll(() => server.close());
beforeEach(() => {
  server.faults.clear();
  server.stats.reset();
});

/** A cluster on the memory server whose backoff sleeps are recorded, not waited. */
function connect(options: CreateKubernetesClusterOptions = {}) {
  const sleeps: number[] = [];
  const cluster = createKubernetesCluster({
    kubeconfig: server.kubeconfig,
    sleep: async (ms) => {
      sleeps.push(ms);
    },
    random: () => 0.5,
    ...options,
  });
  return { cluster, sleeps };
}

function uniqueName(prefix: string): string {
  serial++;
  return `${prefix}-${process.pid}-${serial}`;
}

function namespace(name: string, labels: Record<string, string> = {}): KubeObject {
  return { apiVersion: "v1", kind: "Namespace", metadata: { name, labels } };
}

function configMap(ns: string, name: string, data: Record<string, string>): KubeObject {
  return { apiVersion: "v1", kind: "ConfigMap", metadata: { name, namespace: ns }, data };
}

async function withNamespace(): Promise<string> {
  const name = uniqueName("ns");
  await connect().cluster.apply(namespace(name));
  return name;
}

describe("KubernetesCluster over HTTP against the in-memory API", () => {
  it("applies (creating, then updating), and a re-apply of the same object changes nothing", async () => {
    const { cluster } = connect();
    const name = uniqueName("apply");

    const created = await cluster.apply(namespace(name, { "app.kubernetes.io/managed-by": "kubler" }));
    expect(created).toMatchObject({ apiVersion: "v1", kind: "Namespace", metadata: { name } });
    expect(created.metadata.labels).toMatchObject({ "app.kubernetes.io/managed-by": "kubler" });
    expect(created.metadata.resourceVersion).toEqual(expect.any(String));
    // Served JSON, not client-node's models: timestamps stay RFC 3339 strings.
    expect(typeof created.metadata.creationTimestamp).toBe("string");

    const again = await cluster.apply(namespace(name, { "app.kubernetes.io/managed-by": "kubler" }));
    expect(again.metadata.resourceVersion).toBe(created.metadata.resourceVersion);

    const changed = await cluster.apply(
      namespace(name, { "app.kubernetes.io/managed-by": "kubler", x: "1" }),
    );
    expect(changed.metadata.resourceVersion).not.toBe(created.metadata.resourceVersion);
    expect(server.store.get("v1", "Namespace", undefined, name)?.metadata.labels).toEqual(
      changed.metadata.labels,
    );
    expect(server.stats.byVerb.apply).toBe(3);
  });

  it("applies as field manager kubler, forcing over another manager's fields", async () => {
    const { cluster } = connect();
    const ns = await withNamespace();
    const url = `${server.url}/api/v1/namespaces/${ns}/configmaps/settings?fieldManager=someone-else`;
    const other = await fetch(url, {
      method: "PATCH",
      headers: { authorization: "Bearer memory", "content-type": "application/apply-patch+yaml" },
      body: JSON.stringify(configMap(ns, "settings", { mode: "theirs" })),
    });
    expect(other.status).toBe(201);

    const applied = await cluster.apply(configMap(ns, "settings", { mode: "ours" }));
    expect(applied.data).toEqual({ mode: "ours" });
    expect(FIELD_MANAGER).toBe("kubler");
  });

  it("keeps fields client-node's models do not know", async () => {
    const { cluster } = connect();
    const ns = await withNamespace();
    const applied = await cluster.apply({
      ...configMap(ns, "extra", { a: "1" }),
      immutable: false,
      metadata: { name: "extra", namespace: ns, annotations: { "kubler.dev/ttl": "24h" } },
    });
    expect(applied.metadata.annotations).toEqual({ "kubler.dev/ttl": "24h" });
    expect(applied.immutable).toBe(false);
  });

  it("gets an object, and null when it or its namespace does not exist", async () => {
    const { cluster } = connect();
    const ns = await withNamespace();
    await cluster.apply(configMap(ns, "present", { k: "v" }));

    const found = await cluster.get({ apiVersion: "v1", kind: "ConfigMap", namespace: ns, name: "present" });
    expect(found).toMatchObject({ apiVersion: "v1", kind: "ConfigMap", data: { k: "v" } });
    expect(
      await cluster.get({ apiVersion: "v1", kind: "ConfigMap", namespace: ns, name: "missing" }),
    ).toBeNull();
    expect(await cluster.get({ apiVersion: "v1", kind: "Namespace", name: uniqueName("never") })).toBeNull();
  });

  it("deletes, then reports a second delete as absent", async () => {
    const { cluster } = connect();
    const ns = await withNamespace();
    await cluster.apply(configMap(ns, "doomed", {}));
    const ref = { apiVersion: "v1", kind: "ConfigMap", namespace: ns, name: "doomed" };

    expect(await cluster.delete(ref)).toBe("deleted");
    expect(server.store.get("v1", "ConfigMap", ns, "doomed")).toBeUndefined();
    expect(await cluster.delete(ref)).toBe("absent");
  });

  it("deleting a namespace that is already Terminating is success, not a conflict", async () => {
    const { cluster } = connect();
    const ns = await withNamespace();
    const ref = { apiVersion: "v1", kind: "Namespace", name: ns };

    expect(await cluster.delete(ref)).toBe("deleted");
    expect((await cluster.get(ref))?.metadata.deletionTimestamp).toEqual(expect.any(String));
    // The API answers this one 409 "The system is ensuring all content is removed from this namespace".
    expect(await cluster.delete(ref)).toBe("deleted");
    await expect.poll(() => cluster.get(ref), { timeout: 3_000 }).toBeNull();
    expect(await cluster.delete(ref)).toBe("absent");
  });

  it("deletes only when the preconditions hold; a mismatch is a conflict and deletes nothing", async () => {
    const { cluster } = connect();
    const ns = await withNamespace();
    const stored = await cluster.apply(configMap(ns, "guarded", {}));
    const ref = { apiVersion: "v1", kind: "ConfigMap", namespace: ns, name: "guarded" };

    const wrongUid = cluster.delete(ref, { uid: "00000000-0000-0000-0000-000000000000" });
    await expect(wrongUid).rejects.toBeInstanceOf(KubernetesConflictError);
    await expect(wrongUid).rejects.toThrow(/Precondition failed: UID/);
    await expect(cluster.delete(ref, { resourceVersion: "1" })).rejects.toThrow(KubernetesConflictError);
    expect(server.store.get("v1", "ConfigMap", ns, "guarded")).toBeDefined();
    // A failed precondition is not retried.
    expect(server.stats.byVerb.delete).toBe(2);

    const matching = { uid: stored.metadata.uid, resourceVersion: stored.metadata.resourceVersion };
    expect(await cluster.delete(ref, matching)).toBe("deleted");
  });

  it("sends DeleteOptions with Background propagation and only the preconditions given", async () => {
    const bodies: unknown[] = [];
    const recorder = await startScriptedApi((response, request) => {
      let text = "";
      request.on("data", (chunk) => {
        text += chunk;
      });
      request.on("end", () => {
        bodies.push({ method: request.method, url: request.url, body: JSON.parse(text) });
        response.writeHead(200, { "content-type": "application/json" });
        response.end(JSON.stringify({ kind: "Status", apiVersion: "v1", status: "Success" }));
      });
    });
    try {
      const { cluster } = connect({ kubeconfig: recorder.kubeconfig });
      const ref = { apiVersion: "v1", kind: "Namespace", name: "env-1" };
      expect(await cluster.delete(ref, { uid: "u-1" })).toBe("deleted");
      expect(await cluster.delete(ref)).toBe("deleted");
      expect(bodies).toEqual([
        {
          method: "DELETE",
          url: "/api/v1/namespaces/env-1",
          body: { propagationPolicy: "Background", preconditions: { uid: "u-1" } },
        },
        { method: "DELETE", url: "/api/v1/namespaces/env-1", body: { propagationPolicy: "Background" } },
      ]);
    } finally {
      await recorder.close();
    }
  });

  it("refuses to delete a namespace replaced since it was read, even while that one is Terminating", async () => {
    const { cluster } = connect();
    const ns = await withNamespace();
    const ref = { apiVersion: "v1", kind: "Namespace", name: ns };
    await cluster.delete(ref);
    await expect(cluster.delete(ref, { uid: "not-this-one" })).rejects.toThrow(KubernetesConflictError);
  });

  it("lists in pages with a label selector, every item carrying apiVersion and kind", async () => {
    const { cluster } = connect();
    const batch = uniqueName("batch");
    const names = new Set<string>();
    for (let i = 0; i < 1234; i++) {
      const name = `${batch}-${String(i).padStart(4, "0")}`;
      names.add(name);
      server.store.put(namespace(name, { "kubler.test/batch": batch }));
    }
    for (let i = 0; i < 7; i++)
      server.store.put(namespace(`${batch}-other-${i}`, { "kubler.test/batch": "other" }));

    const pages: number[] = [];
    const seen: string[] = [];
    let token: string | undefined;
    do {
      const page = await cluster.list("v1", "Namespace", {
        labelSelector: `kubler.test/batch=${batch}`,
        limit: 500,
        ...(token ? { continue: token } : {}),
      });
      pages.push(page.items.length);
      for (const item of page.items) {
        expect(item.apiVersion).toBe("v1");
        expect(item.kind).toBe("Namespace");
        seen.push(item.metadata.name);
      }
      token = page.continue ?? undefined;
      if (page.continue !== null) expect(page.continue).not.toBe("");
    } while (token);

    expect(pages).toEqual([500, 500, 234]);
    expect(seen).toHaveLength(1234);
    expect(new Set(seen)).toEqual(names);
    expect(server.stats.byVerb.list).toBe(3);
  });

  it("lists a namespaced kind in one namespace, continue null when everything fit", async () => {
    const { cluster } = connect();
    const ns = await withNamespace();
    await cluster.apply(configMap(ns, "a", {}));
    await cluster.apply(configMap(ns, "b", {}));

    const page = await cluster.list("v1", "ConfigMap", { namespace: ns });
    expect(page.continue).toBeNull();
    expect(page.items.map((item) => [item.apiVersion, item.kind, item.metadata.name])).toEqual([
      ["v1", "ConfigMap", "a"],
      ["v1", "ConfigMap", "b"],
    ]);
  });

  it("maps a 422 to KubernetesInvalidError naming the field, without retrying", async () => {
    const { cluster, sleeps } = connect();
    const ns = await withNamespace();
    server.stats.reset();
    const invalid = cluster.apply({
      apiVersion: "apps/v1",
      kind: "Deployment",
      metadata: { name: "web", namespace: ns },
      spec: {
        replicas: -1,
        selector: { matchLabels: { app: "web" } },
        template: {
          metadata: { labels: { app: "web" } },
          spec: { containers: [{ name: "web", image: "nginx" }] },
        },
      },
    });
    await expect(invalid).rejects.toBeInstanceOf(KubernetesInvalidError);
    await expect(invalid).rejects.toThrow(/spec\.replicas/);
    await expect(invalid).rejects.toMatchObject({ status: 422 });
    expect(server.stats.byVerb.apply).toBe(1);
    expect(sleeps).toEqual([]);
  });

  it("keeps a 422's message as the API wrote it, adding the causes it leaves out", async () => {
    // The memory server's messages already list their causes; a terse one needs a scripted server.
    const scripted = await startScriptedApi((response) => {
      response.writeHead(422, { "content-type": "application/json", "x-secret-header": "hdr-value" });
      response.end(
        JSON.stringify({
          kind: "Status",
          apiVersion: "v1",
          status: "Failure",
          message: 'Namespace "x" is invalid',
          reason: "Invalid",
          details: {
            causes: [
              { field: "metadata.labels", message: 'Invalid value: "-": must start with an alphanumeric' },
              { message: "something without a field" },
            ],
          },
          code: 422,
        }),
      );
    });
    try {
      const { cluster } = connect({ kubeconfig: scripted.kubeconfig });
      const failure = await cluster.apply(namespace("x")).catch((e) => e);
      expect(failure).toBeInstanceOf(KubernetesInvalidError);
      expect(failure.message).toBe(
        'Namespace "x" is invalid: metadata.labels: Invalid value: "-": must start with an alphanumeric; ' +
          "something without a field",
      );
      expect(failure.message).not.toContain("hdr-value");
    } finally {
      await scripted.close();
    }
  });

  it("keeps an injected fault's message as is", async () => {
    const { cluster } = connect();
    server.faults.add({
      verb: "apply",
      resource: "namespaces",
      status: 422,
      message: "Namespace is invalid",
    });
    await expect(cluster.apply(namespace(uniqueName("bad")))).rejects.toThrow(/^Namespace is invalid$/);
  });

  it("maps 409 to KubernetesConflictError and 403 to KubernetesForbiddenError, neither retried", async () => {
    const { cluster, sleeps } = connect();
    const name = uniqueName("denied");
    server.faults.add({
      verb: "apply",
      name,
      status: 409,
      message: `namespaces "${name}" conflict`,
      times: 1,
    });
    await expect(cluster.apply(namespace(name))).rejects.toThrow(KubernetesConflictError);

    const forbidden = server.faults.add({
      verb: "get",
      resource: "namespaces",
      status: 403,
      message: "nope",
    });
    const denied = cluster.get({ apiVersion: "v1", kind: "Namespace", name });
    await expect(denied).rejects.toBeInstanceOf(KubernetesForbiddenError);
    await expect(denied).rejects.toMatchObject({ message: "nope", status: 403 });
    expect(forbidden.hits).toBe(1);
    expect(sleeps).toEqual([]);
  });

  it.each([
    [
      "a webhook's denial (Gatekeeper)",
      'namespaces "x" is forbidden: admission webhook "validation.gatekeeper.sh" denied the request: [ns-must-have-owner] you must provide labels: {"owner"}',
    ],
    [
      "a ValidatingAdmissionPolicy's (reason Forbidden)",
      `namespaces "x" is forbidden: ValidatingAdmissionPolicy 'require-owner' with binding 'require-owner' denied request: failed expression: has(object.metadata.labels.owner)`,
    ],
    [
      "an exceeded ResourceQuota",
      'namespaces "x" is forbidden: exceeded quota: objects, requested: count/namespaces=1, used: count/namespaces=5, limited: count/namespaces=5',
    ],
  ])("maps %s 403 to KubernetesAdmissionDeniedError, a KubernetesForbiddenError", async (_, message) => {
    const { cluster } = connect();
    server.faults.add({ verb: "apply", resource: "namespaces", status: 403, message, times: 1 });
    const failure = await cluster.apply(namespace(uniqueName("admission"))).catch((e) => e);
    expect(failure).toBeInstanceOf(KubernetesAdmissionDeniedError);
    expect(failure).toBeInstanceOf(KubernetesForbiddenError);
    expect(failure).toMatchObject({ message, status: 403 });
  });

  it.each([
    [
      "Kubler's own RBAC",
      'namespaces "x" is forbidden: User "system:serviceaccount:kubler:kubler" cannot patch resource "namespaces" in API group "" at the cluster scope',
    ],
    [
      "a namespace being deleted",
      'configmaps "x" is forbidden: unable to create new content in namespace x because it is being terminated',
    ],
  ])("keeps %s 403 a plain KubernetesForbiddenError", async (_, message) => {
    const { cluster } = connect();
    server.faults.add({ verb: "apply", resource: "namespaces", status: 403, message, times: 1 });
    const failure = await cluster.apply(namespace(uniqueName("refused"))).catch((e) => e);
    expect(failure).toBeInstanceOf(KubernetesForbiddenError);
    expect(failure).not.toBeInstanceOf(KubernetesAdmissionDeniedError);
    expect(failure).toMatchObject({ message, status: 403 });
  });

  it("maps a 401 to KubernetesForbiddenError without leaking the credentials", async () => {
    const { cluster } = connect({
      kubeconfig: server.kubeconfig.replace("token: memory", "token: s3cr3t-token"),
    });
    const failure = await cluster
      .get({ apiVersion: "v1", kind: "Namespace", name: "default" })
      .catch((e) => e);
    expect(failure).toBeInstanceOf(KubernetesForbiddenError);
    expect(failure.status).toBe(401);
    expect(String(failure.message)).not.toContain("s3cr3t-token");
    expect(String(failure.message)).not.toMatch(/authorization/i);
  });

  it("retries a 429, honouring Retry-After, then succeeds", async () => {
    const { cluster, sleeps } = connect();
    const throttled = server.faults.add({
      verb: "get",
      resource: "namespaces",
      name: "default",
      status: 429,
      times: 2,
    });

    const found = await cluster.get({ apiVersion: "v1", kind: "Namespace", name: "default" });
    expect(found?.metadata.name).toBe("default");
    expect(throttled.hits).toBe(2);
    expect(server.stats.byVerb.get).toBe(3);
    // The server says `Retry-After: 1`.
    expect(sleeps).toEqual([1000, 1000]);
  });

  it("gives up on a persistent 500 after maxAttempts with KubernetesUnavailableError", async () => {
    const { cluster, sleeps } = connect({ maxAttempts: 3, baseDelayMs: 100 });
    const name = uniqueName("broken");
    const broken = server.faults.add({
      verb: "apply",
      name,
      status: 500,
      message: "etcdserver: leader changed",
    });

    const failure = await cluster.apply(namespace(name)).catch((e) => e);
    expect(failure).toBeInstanceOf(KubernetesUnavailableError);
    expect(failure.status).toBe(500);
    expect(failure.message).toContain(`apply Namespace ${name}`);
    expect(failure.message).toContain("3 attempt");
    expect(failure.message).toContain("etcdserver: leader changed");
    expect(broken.hits).toBe(3);
    expect(server.stats.byVerb.apply).toBe(3);
    // Full jitter (random 0.5) under ceilings of 100 then 200 ms.
    expect(sleeps).toEqual([50, 100]);
  });

  it("a delete whose retry finds the object gone reports it absent", async () => {
    const ns = await withNamespace();
    const ref = { apiVersion: "v1", kind: "ConfigMap", namespace: ns, name: "raced" };
    const other = connect().cluster;
    await other.apply(configMap(ns, "raced", {}));
    // The first attempt fails with a 503; before the retry, someone else deletes the object.
    server.faults.add({ verb: "delete", resource: "configmaps", namespace: ns, status: 503, times: 1 });
    const { cluster } = connect({
      sleep: async () => {
        await other.delete(ref);
      },
    });
    expect(await cluster.delete(ref)).toBe("absent");
    expect(server.stats.byVerb.delete).toBe(3);
  });

  it("times out a request that never answers, retries it, then gives up", async () => {
    const { cluster, sleeps } = connect({ timeoutMs: 150, maxAttempts: 2 });
    const hung = server.faults.add({ verb: "get", resource: "namespaces", name: "kube-system", hang: true });

    const started = Date.now();
    const failure = await cluster
      .get({ apiVersion: "v1", kind: "Namespace", name: "kube-system" })
      .catch((e) => e);
    expect(failure).toBeInstanceOf(KubernetesUnavailableError);
    expect(failure.message).toContain("get Namespace kube-system failed after 2 attempt(s)");
    expect(failure.message).toContain("no answer within 150 ms");
    expect(hung.hits).toBe(2);
    expect(sleeps).toHaveLength(1);
    expect(Date.now() - started).toBeLessThan(2_000);
  });

  it("a timed-out attempt is retried and the retry's answer returned", async () => {
    const { cluster } = connect({ timeoutMs: 150 });
    server.faults.add({ verb: "list", resource: "namespaces", hang: true, times: 1 });
    const page = await cluster.list("v1", "Namespace", { limit: 1 });
    expect(page.items).toHaveLength(1);
    expect(server.stats.byVerb.list).toBe(2);
  });

  it("clears each attempt's timeout timer once the attempt settles", async () => {
    const timeoutMs = 61_234;
    const { cluster } = connect({ timeoutMs });
    const set = vi.spyOn(globalThis, "setTimeout");
    const clear = vi.spyOn(globalThis, "clearTimeout");
    try {
      await cluster.get({ apiVersion: "v1", kind: "Namespace", name: "default" });
      await cluster.list("v1", "Namespace", { limit: 2 });
      const timers = set.mock.calls.flatMap((call, index) =>
        call[1] === timeoutMs ? [set.mock.results[index]?.value] : [],
      );
      expect(timers).toHaveLength(2);
      const cleared = clear.mock.calls.map((call) => call[0]);
      for (const timer of timers) expect(cleared).toContain(timer);
    } finally {
      set.mockRestore();
      clear.mockRestore();
    }
  });

  it("times out a hung API discovery too, and closes the abandoned connections", async () => {
    const closed: string[] = [];
    const silent = await startScriptedApi(
      () => {},
      (request) => {
        request.socket.on("close", () => closed.push(request.url ?? ""));
      },
    );
    try {
      const { cluster } = connect({ kubeconfig: silent.kubeconfig, timeoutMs: 100, maxAttempts: 2 });
      const failure = await cluster
        .get({ apiVersion: "v1", kind: "Namespace", name: "default" })
        .catch((e) => e);
      expect(failure).toBeInstanceOf(KubernetesUnavailableError);
      expect(failure.message).toContain("no answer within 100 ms");
      // Aborted, not just abandoned: the client closed both discovery requests' connections.
      await expect.poll(() => closed, { timeout: 2_000 }).toEqual(["/api/v1", "/api/v1"]);
    } finally {
      await silent.close();
    }
  });

  it("retries a refused connection, then reports the API unavailable", async () => {
    const port = await closedPort();
    const kubeconfig = server.kubeconfig.replace(server.url, `http://127.0.0.1:${port}`);
    const { cluster, sleeps } = connect({ kubeconfig, maxAttempts: 3 });

    const failure = await cluster
      .get({ apiVersion: "v1", kind: "Namespace", name: "default" })
      .catch((e) => e);
    expect(failure).toBeInstanceOf(KubernetesUnavailableError);
    expect(failure.message).toContain("ECONNREFUSED");
    expect(failure.status).toBe(0);
    expect(sleeps).toHaveLength(2);
  });

  it("refuses a kind the server does not serve without retrying", async () => {
    const { cluster, sleeps } = connect();
    const failure = cluster.get({ apiVersion: "example.com/v1", kind: "Widget", name: "w" });
    await expect(failure).rejects.toBeInstanceOf(KubernetesInvalidError);
    await expect(failure).rejects.toThrow(/no kind Widget in example.com\/v1/);
    expect(sleeps).toEqual([]);
  });

  it("creates a ServiceAccount token with the API's expiry", async () => {
    const { cluster } = connect();
    const ns = await withNamespace();
    await cluster.apply({
      apiVersion: "v1",
      kind: "ServiceAccount",
      metadata: { name: "deployer", namespace: ns },
    });

    const before = Date.now();
    const { token, expiresAt } = await cluster.createToken(
      { namespace: ns, serviceAccount: "deployer" },
      { audiences: ["kubler"], expirationSeconds: 900 },
    );
    expect(token).toMatch(/^\S{20,}$/);
    expect(expiresAt).toBeInstanceOf(Date);
    expect(expiresAt.getTime()).toBeGreaterThanOrEqual(before + 899_000);
    expect(expiresAt.getTime()).toBeLessThanOrEqual(Date.now() + 901_000);

    // The token is a working credential for this server, allowed what RBAC grants its account.
    await cluster.apply({
      apiVersion: "rbac.authorization.k8s.io/v1",
      kind: "Role",
      metadata: { name: "namespace-reader", namespace: ns },
      rules: [{ apiGroups: [""], resources: ["namespaces"], verbs: ["get"] }],
    });
    await cluster.apply({
      apiVersion: "rbac.authorization.k8s.io/v1",
      kind: "RoleBinding",
      metadata: { name: "deployer", namespace: ns },
      roleRef: { apiGroup: "rbac.authorization.k8s.io", kind: "Role", name: "namespace-reader" },
      subjects: [{ kind: "ServiceAccount", name: "deployer", namespace: ns }],
    });
    const withToken = server.kubeconfig.replace("token: memory", `token: ${token}`);
    const seen = await connect({ kubeconfig: withToken }).cluster.get({
      apiVersion: "v1",
      kind: "Namespace",
      name: ns,
    });
    expect(seen?.metadata.name).toBe(ns);
  });

  it("maps TokenRequest failures: missing account 404, too short a lifetime 422", async () => {
    const { cluster } = connect();
    const ns = await withNamespace();
    const missing = cluster.createToken(
      { namespace: ns, serviceAccount: "ghost" },
      { audiences: ["kubler"], expirationSeconds: 900 },
    );
    await expect(missing).rejects.toBeInstanceOf(KubernetesNotFoundError);
    await cluster.apply({
      apiVersion: "v1",
      kind: "ServiceAccount",
      metadata: { name: "sa", namespace: ns },
    });
    const short = cluster.createToken(
      { namespace: ns, serviceAccount: "sa" },
      { audiences: ["kubler"], expirationSeconds: 60 },
    );
    await expect(short).rejects.toBeInstanceOf(KubernetesInvalidError);
    await expect(short).rejects.toThrow(/spec\.expirationSeconds/);
  });

  it("retries a throttled TokenRequest too", async () => {
    const { cluster, sleeps } = connect();
    const ns = await withNamespace();
    await cluster.apply({
      apiVersion: "v1",
      kind: "ServiceAccount",
      metadata: { name: "sa", namespace: ns },
    });
    server.faults.add({ verb: "create", subresource: "token", status: 429, times: 1 });
    const { token } = await cluster.createToken(
      { namespace: ns, serviceAccount: "sa" },
      { audiences: ["a"], expirationSeconds: 600 },
    );
    expect(token).not.toBe("");
    expect(sleeps).toEqual([1000]);
  });
});

describe("createKubernetesCluster configuration", () => {
  it("honours KUBECONFIG from the env it is given", async () => {
    const dir = mkdtempSync(join(tmpdir(), "kubler-kubeconfig-"));
    const path = join(dir, "config");
    writeFileSync(path, server.kubeconfig);

    const cluster = createKubernetesCluster({ env: { KUBECONFIG: path } });
    expect(cluster.describe()).toEqual({ server: server.url, context: "kubler-memory" });
    expect((await cluster.get({ apiVersion: "v1", kind: "Namespace", name: "default" }))?.metadata.name).toBe(
      "default",
    );
  });

  it("prefers the kubeconfig text given over KUBECONFIG", () => {
    const cluster = createKubernetesCluster({
      kubeconfig: server.kubeconfig,
      env: { KUBECONFIG: "/nonexistent" },
    });
    expect(cluster.describe().server).toBe(server.url);
  });

  it("fails with a ConfigError naming KUBECONFIG when there is no configuration", () => {
    const home = mkdtempSync(join(tmpdir(), "kubler-home-"));
    expect(() => createKubernetesCluster({ env: { HOME: home } })).toThrow(ConfigError);
    expect(() => createKubernetesCluster({ env: { HOME: home } })).toThrow(/KUBECONFIG/);
    expect(() => createKubernetesCluster({ env: { KUBECONFIG: join(home, "missing") } })).toThrow(
      /KUBECONFIG file .*missing cannot be loaded/,
    );
  });
});

describe("a kubeconfig server URL with credentials", () => {
  const PASSWORD = "s3cr3t-Pa55w0rd";
  const kubeconfig = (server: string) =>
    JSON.stringify({
      apiVersion: "v1",
      kind: "Config",
      clusters: [{ name: "c", cluster: { server } }],
      users: [{ name: "u", user: { token: "t0ken" } }],
      contexts: [{ name: "ctx", context: { cluster: "c", user: "u" } }],
      "current-context": "ctx",
    });

  it("is refused when the cluster is loaded, naming where it came from, never quoting it", () => {
    for (const server of [`http://admin:${PASSWORD}@127.0.0.1:1`, `https://${PASSWORD}@eks.example.com/`]) {
      const given = (() => {
        try {
          createKubernetesCluster({ kubeconfig: kubeconfig(server) });
        } catch (error) {
          return error;
        }
      })();
      expect(given).toBeInstanceOf(ConfigError);
      expect((given as Error).message).toMatch(
        /^The kubeconfig given: cluster "c" has credentials \(user:password@\) in its server URL; a Kubernetes API server does not take basic auth in the URL/,
      );
      expect((given as Error).message).not.toContain(PASSWORD);

      const path = join(mkdtempSync(join(tmpdir(), "kubler-kubeconfig-")), "config");
      writeFileSync(path, kubeconfig(server));
      expect(() => createKubernetesCluster({ env: { KUBECONFIG: path } })).toThrow(
        `KUBECONFIG file ${path}: cluster "c" has credentials`,
      );
    }
  });

  it("never reaches describe() or endpoint(), even when the kubeconfig changes after loading", () => {
    const kubeConfig = new KubeConfig();
    kubeConfig.loadFromString(kubeconfig("https://eks.example.com:6443"));
    const cluster = new KubernetesCluster(kubeConfig);
    expect(cluster.describe()).toEqual({ server: "https://eks.example.com:6443", context: "ctx" });
    kubeConfig.clusters = kubeConfig.clusters.map((c) => ({
      ...c,
      server: `https://admin:${PASSWORD}@eks.example.com:6443`,
    }));
    expect(cluster.describe()).toEqual({ server: "https://eks.example.com:6443", context: "ctx" });
    expect(cluster.endpoint().server).toBe("https://eks.example.com:6443");
  });
});

function closedPort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const probe = createServer();
    probe.once("error", reject);
    probe.listen(0, "127.0.0.1", () => {
      const address = probe.address();
      const port = typeof address === "object" && address ? address.port : 0;
      probe.close(() => resolve(port));
    });
  });
}

/**
 * A bare HTTP server standing in for the API: `answer` handles every request after discovery
 * (`GET /api/v1` serving namespaces); `onDiscovery`, when given, takes discovery over.
 */
async function startScriptedApi(
  answer: (response: ServerResponse, request: IncomingMessage) => void,
  onDiscovery?: (request: IncomingMessage) => void,
) {
  const api = createHttpServer((request, response) => {
    if (request.url === "/api/v1") {
      if (onDiscovery) return onDiscovery(request);
      response.writeHead(200, { "content-type": "application/json" });
      response.end(
        JSON.stringify({
          kind: "APIResourceList",
          groupVersion: "v1",
          resources: [{ name: "namespaces", namespaced: false, kind: "Namespace", verbs: [] }],
        }),
      );
      return;
    }
    answer(response, request);
  });
  await new Promise<void>((resolve) => api.listen(0, "127.0.0.1", resolve));
  const { port } = api.address() as AddressInfo;
  return {
    kubeconfig: server.kubeconfig.replace(server.url, `http://127.0.0.1:${port}`),
    close: () =>
      new Promise<void>((resolve) => {
        api.close(() => resolve());
        api.closeAllConnections();
      }),
  };
}
