/**
 * An object Kubler creates (`createApplied`: a create, then an apply over it) must end up owned by its
 * apply manager alone, as on a real API server: the create is recorded in managedFields as an Update
 * by "kubler", which co-owns every field it set, so a later revision that stops setting one could not
 * remove it (kubernetes/kubernetes#99003). The embedded API keeps no managedFields, so a proxy in front
 * of it keeps them as the API server does: a create adds the manager's Update entry, an apply its
 * Apply entry, and a write that sends a non-empty managedFields list replaces the list (a patch that
 * changes nothing else adds no entry). Controllers' writes are made in the store at chosen moments:
 * a Deployment's status, or its revision annotation, which the real controller writes at once.
 */
import { createServer, request as httpRequest } from "node:http";
import type { AddressInfo } from "node:net";
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from "vitest";
import { createKubernetesCluster } from "../../shared/adapters/kubernetes-cluster.js";
import type { KubeObject } from "../../shared/domain/kube-object.js";
import type { MemoryKubernetes } from "../../shared/local/memory-kubernetes/index.js";
import { deployEnvironment } from "../../shared/services/deploy-environment.js";
import { deployRequested, NAMESPACE, useDeployCluster } from "../fakes/deploy-deps.js";

interface Entry {
  manager: string;
  operation: string;
  apiVersion?: string;
  fieldsType?: string;
  fieldsV1?: unknown;
  subresource?: string;
}

interface Seen {
  method: string;
  path: string;
  contentType: string;
  body: Record<string, unknown> | null;
}

/** Before a request is passed on: may write to the store (a controller), or answer it with a status. */
type Before = (request: Seen) => number | undefined;

async function startFieldManagersProxy(upstream: MemoryKubernetes) {
  /** By uid: the managedFields the API server would keep. */
  const managed = new Map<string, Entry[]>();
  let before: Before = () => undefined;
  const server = createServer((request, response) => {
    const chunks: Buffer[] = [];
    request.on("data", (chunk: Buffer) => chunks.push(chunk));
    request.on("end", () => {
      const text = Buffer.concat(chunks).toString("utf8");
      const url = new URL(request.url ?? "/", upstream.url);
      const seen: Seen = {
        method: request.method ?? "GET",
        path: url.pathname,
        contentType: String(request.headers["content-type"] ?? ""),
        body: text && request.headers["content-type"]?.includes("json") ? JSON.parse(text) : null,
      };
      const refused = before(seen);
      if (refused !== undefined) {
        response.writeHead(refused, { "content-type": "application/json" });
        response.end(
          JSON.stringify({ kind: "Status", status: "Failure", message: "by the proxy", code: refused }),
        );
        return;
      }
      const manager = url.searchParams.get("fieldManager") ?? "unknown";
      const forwarded = httpRequest(
        url,
        { method: seen.method, headers: { ...request.headers, "content-length": Buffer.byteLength(text) } },
        (answer) => {
          const parts: Buffer[] = [];
          answer.on("data", (chunk: Buffer) => parts.push(chunk));
          answer.on("end", () => {
            let out = Buffer.concat(parts).toString("utf8");
            const status = answer.statusCode ?? 502;
            const object = status < 300 && out.startsWith("{") ? (JSON.parse(out) as KubeObject) : null;
            const uid = object?.metadata?.uid;
            if (object && uid && !seen.path.endsWith("/token")) {
              const entries = managed.get(uid) ?? [];
              const sent = (seen.body?.metadata as { managedFields?: Entry[] } | undefined)?.managedFields;
              const mine = (operation: string) => ({ manager, operation, apiVersion: object.apiVersion });
              if (seen.method === "POST") entries.splice(0, entries.length, mine("Update"));
              else if (seen.contentType.includes("apply-patch")) {
                if (!entries.some((e) => e.manager === manager && e.operation === "Apply"))
                  entries.push(mine("Apply"));
              } else if (Array.isArray(sent) && sent.length > 0) entries.splice(0, entries.length, ...sent);
              managed.set(uid, entries);
              object.metadata.managedFields = entries;
              out = JSON.stringify(object);
            }
            response.writeHead(status, { ...answer.headers, "content-length": Buffer.byteLength(out) });
            response.end(out);
          });
        },
      );
      forwarded.on("error", () => response.destroy());
      forwarded.end(text);
    });
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  return {
    kubeconfig: upstream.kubeconfig.replace(upstream.url, url),
    /** The managedFields of an object as stored now. */
    managedFields: (object: KubeObject | undefined) => managed.get(object?.metadata.uid ?? "") ?? [],
    set before(hook: Before) {
      before = hook;
    },
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  };
}

const env = useDeployCluster("kubler-field-managers-");
let proxy: Awaited<ReturnType<typeof startFieldManagersProxy>>;
beforeAll(async () => {
  proxy = await startFieldManagersProxy(env.k8s);
});
afterAll(() => proxy.close());
beforeEach(() => {
  env.deps.cluster = createKubernetesCluster({ kubeconfig: proxy.kubeconfig, sleep: async () => {} });
});
afterEach(() => {
  proxy.before = () => undefined;
});

const isDeployment = (path: string) => /\/namespaces\/[^/]+\/deployments\/[^/]+$/.test(path);

function deployment(): KubeObject {
  const [found] = env.k8s.store.list("apps/v1", "Deployment", NAMESPACE);
  if (!found) throw new Error("no Deployment was deployed");
  return found;
}

/** The entries naming Kubler, as `manager/operation`. */
function kublerEntries(object: KubeObject | undefined): string[] {
  return proxy
    .managedFields(object)
    .filter((entry) => entry.manager === "kubler" && !entry.subresource)
    .map((entry) => `${entry.manager}/${entry.operation}`);
}

function finishedStatuses(): string[] {
  return env.deps.publisher.entries
    .filter((e) => e.detailType === "Deploy Finished")
    .map((e) => (e.detail as { status: string }).status);
}

describe("an object a deploy creates is its apply manager's alone, as managedFields say on a real API server", () => {
  it("with no controller in between: the create's Update entry is dropped", async () => {
    expect(await deployEnvironment(env.deps, deployRequested())).toMatchObject({ kind: "succeeded" });
    expect(kublerEntries(deployment())).toEqual(["kubler/Apply"]);
    const service = env.k8s.store.list("v1", "Service", NAMESPACE)[0];
    expect(kublerEntries(service)).toEqual(["kubler/Apply"]);
    // The environment's namespace is created then applied over too (writeDeploying): before, its
    // create's entry stayed, so an annotation a later deploy stops setting was never removed.
    expect(kublerEntries(env.k8s.store.get("v1", "Namespace", undefined, NAMESPACE))).toEqual([
      "kubler/Apply",
    ]);
  });

  it("a controller's status write between the apply and the drop of the create's entry: read again, dropped all the same", async () => {
    let wrote = false;
    proxy.before = (request) => {
      const dropping = request.method === "PATCH" && request.contentType.includes("merge-patch");
      if (!wrote && dropping && isDeployment(request.path)) {
        wrote = true;
        // Written again as it is (a new resourceVersion): a status write that changes nothing the
        // rollout reads, whenever it lands.
        env.k8s.store.put(deployment());
      }
      return undefined;
    };
    expect(await deployEnvironment(env.deps, deployRequested())).toMatchObject({ kind: "succeeded" });
    expect(wrote).toBe(true);
    // Before, the 409 left the create's entry there for good.
    expect(kublerEntries(deployment())).toEqual(["kubler/Apply"]);
  });

  it("the Deployment controller's revision annotation written between the create and the apply: the deploy succeeds once, no rollback, and the create's entry is dropped", async () => {
    let wrote = false;
    proxy.before = (request) => {
      const applying = request.method === "PATCH" && request.contentType.includes("apply-patch");
      if (!wrote && applying && isDeployment(request.path)) {
        wrote = true;
        const created = deployment();
        // The embedded API sets the revision in the create already; the real controller writes it
        // after, in a write of its own: that write is this one (a value the create did not have).
        const annotations = { ...created.metadata.annotations, "deployment.kubernetes.io/revision": "2" };
        env.k8s.store.put({ ...created, metadata: { ...created.metadata, annotations } });
      }
      return undefined;
    };
    expect(await deployEnvironment(env.deps, deployRequested())).toMatchObject({ kind: "succeeded" });
    expect(wrote).toBe(true);
    expect(finishedStatuses()).toEqual(["succeeded"]);
    expect(deployment().metadata.annotations?.["deployment.kubernetes.io/revision"]).toBe("2");
    // Before, the apply made again by applyHeld over what it read kept the create's entry.
    expect(kublerEntries(deployment())).toEqual(["kubler/Apply"]);
  });

  it("the apply after the create fails (5xx until its retries are spent): the redelivered deploy converges, the create's entry dropped", async () => {
    let failing = true;
    proxy.before = (request) => {
      const applying = request.method === "PATCH" && request.contentType.includes("apply-patch");
      return failing && applying && isDeployment(request.path) ? 503 : undefined;
    };
    await expect(deployEnvironment(env.deps, deployRequested())).rejects.toThrow();
    expect(kublerEntries(deployment())).toEqual(["kubler/Update"]);
    expect(finishedStatuses()).toEqual([]);
    failing = false;
    expect(await deployEnvironment(env.deps, deployRequested())).toMatchObject({ kind: "succeeded" });
    expect(finishedStatuses()).toEqual(["succeeded"]);
    // Before, the redelivery's apply over the object it read kept the create's entry.
    expect(kublerEntries(deployment())).toEqual(["kubler/Apply"]);
  });

  it("the apply after the create is refused (server-side apply validates more than a create): the object created is removed, not left running what was refused", async () => {
    proxy.before = (request) => {
      const applying = request.method === "PATCH" && request.contentType.includes("apply-patch");
      return applying && isDeployment(request.path) ? 422 : undefined;
    };
    const outcome = await deployEnvironment(env.deps, deployRequested());
    expect(outcome.kind).not.toBe("succeeded");
    // Before, the Deployment the create made stayed, outside what the deploy recorded as written.
    expect(env.k8s.store.list("apps/v1", "Deployment", NAMESPACE)).toEqual([]);
  });
});
