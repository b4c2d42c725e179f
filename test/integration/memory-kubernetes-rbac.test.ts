/**
 * RBAC of the in-memory Kubernetes API over HTTP: which token is checked, what bindings the server
 * reads (live, ClusterRoleBindings and groups included), and a server-side apply that creates.
 */
import * as k8s from "@kubernetes/client-node";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type MemoryKubernetes, startMemoryKubernetes } from "../../shared/local/memory-kubernetes/index.js";

const RBAC = "rbac.authorization.k8s.io";
let server: MemoryKubernetes;
let core: k8s.CoreV1Api;
let rbac: k8s.RbacAuthorizationV1Api;

beforeAll(async () => {
  server = await startMemoryKubernetes();
  const kc = new k8s.KubeConfig();
  kc.loadFromString(server.kubeconfig);
  core = kc.makeApiClient(k8s.CoreV1Api);
  rbac = kc.makeApiClient(k8s.RbacAuthorizationV1Api);
});
afterAll(() => server.close());

let counter = 0;
/** A fresh namespace with a ServiceAccount `ci` and a token for it. */
async function account(): Promise<{ namespace: string; token: string }> {
  const namespace = `rbac-${++counter}`;
  await core.createNamespace({ body: { metadata: { name: namespace } } });
  await core.createNamespacedServiceAccount({ namespace, body: { metadata: { name: "ci" } } });
  const issued = await core.createNamespacedServiceAccountToken({
    name: "ci",
    namespace,
    body: { spec: { audiences: ["kubler"] } },
  });
  return { namespace, token: issued.status?.token as string };
}

const as = (token: string, path: string, init: RequestInit = {}) =>
  fetch(`${server.url}${path}`, {
    ...init,
    headers: { authorization: `Bearer ${token}`, ...(init.headers as Record<string, string>) },
  });

const configMapReader = (namespace?: string) => ({
  metadata: { name: "configmap-reader", ...(namespace ? { namespace } : {}) },
  rules: [{ apiGroups: [""], resources: ["configmaps"], verbs: ["get", "list"] }],
});

describe("RBAC on the in-memory Kubernetes API", () => {
  it("leaves the admin token unrestricted, and discovery to every authenticated token", async () => {
    const { token } = await account();
    expect((await as("memory", "/api/v1/secrets")).status).toBe(200);
    expect((await as(token, "/api/v1")).status).toBe(200);
    expect((await as(token, "/apis/apps/v1")).status).toBe(200);
    expect((await as("not-a-token", "/api/v1")).status).toBe(401);
  });

  it("an account without bindings gets the API server's 403 Status", async () => {
    const { namespace, token } = await account();
    const response = await as(token, `/api/v1/namespaces/${namespace}/configmaps`);
    expect(response.status).toBe(403);
    expect(await response.json()).toEqual({
      kind: "Status",
      apiVersion: "v1",
      metadata: {},
      status: "Failure",
      message: `configmaps is forbidden: User "system:serviceaccount:${namespace}:ci" cannot list resource "configmaps" in API group "" in the namespace "${namespace}"`,
      reason: "Forbidden",
      details: { kind: "configmaps" },
      code: 403,
    });
  });

  it("reads bindings live: a RoleBinding grants at once, its deletion revokes at once", async () => {
    const { namespace, token } = await account();
    await rbac.createNamespacedRole({ namespace, body: configMapReader() });
    const path = `/api/v1/namespaces/${namespace}/configmaps`;
    expect((await as(token, path)).status).toBe(403);
    await rbac.createNamespacedRoleBinding({
      namespace,
      body: {
        metadata: { name: "ci" },
        roleRef: { apiGroup: RBAC, kind: "Role", name: "configmap-reader" },
        subjects: [{ kind: "ServiceAccount", name: "ci" }],
      },
    });
    expect((await as(token, path)).status).toBe(200);
    expect((await as(token, `/api/v1/namespaces/${namespace}/secrets`)).status).toBe(403);
    await rbac.deleteNamespacedRoleBinding({ name: "ci", namespace });
    expect((await as(token, path)).status).toBe(403);
  });

  it("serves ClusterRoles and ClusterRoleBindings; a group subject binds every ServiceAccount of a namespace", async () => {
    const { namespace, token } = await account();
    const other = await account();
    await rbac.createClusterRole({ body: configMapReader() });
    await rbac.createClusterRoleBinding({
      body: {
        metadata: { name: `ci-of-${namespace}` },
        roleRef: { apiGroup: RBAC, kind: "ClusterRole", name: "configmap-reader" },
        subjects: [{ kind: "Group", name: `system:serviceaccounts:${namespace}`, apiGroup: RBAC }],
      },
    });
    expect((await as(token, "/api/v1/namespaces/kube-system/configmaps")).status).toBe(200);
    expect((await as(token, "/api/v1/configmaps")).status).toBe(200);
    expect((await as(other.token, "/api/v1/configmaps")).status).toBe(403);
    await rbac.deleteClusterRoleBinding({ name: `ci-of-${namespace}` });
    await rbac.deleteClusterRole({ name: "configmap-reader" });
  });

  it("a server-side apply that would create its object needs create as well as patch", async () => {
    const { namespace, token } = await account();
    await rbac.createNamespacedRole({
      namespace,
      body: {
        metadata: { name: "patcher" },
        rules: [{ apiGroups: [""], resources: ["configmaps"], verbs: ["patch"] }],
      },
    });
    await rbac.createNamespacedRoleBinding({
      namespace,
      body: {
        metadata: { name: "ci" },
        roleRef: { apiGroup: RBAC, kind: "Role", name: "patcher" },
        subjects: [{ kind: "ServiceAccount", name: "ci", namespace }],
      },
    });
    const applyConfigMap = (name: string) =>
      as(token, `/api/v1/namespaces/${namespace}/configmaps/${name}?fieldManager=ci`, {
        method: "PATCH",
        headers: { "content-type": "application/apply-patch+yaml" },
        body: JSON.stringify({ apiVersion: "v1", kind: "ConfigMap", metadata: { name }, data: { a: "1" } }),
      });
    const refused = await applyConfigMap("new");
    expect(refused.status).toBe(403);
    expect(((await refused.json()) as { message: string }).message).toContain(
      `configmaps "new" is forbidden: User "system:serviceaccount:${namespace}:ci" cannot create resource "configmaps"`,
    );
    await core.createNamespacedConfigMap({ namespace, body: { metadata: { name: "existing" } } });
    expect((await applyConfigMap("existing")).status).toBe(200);
  });
});
