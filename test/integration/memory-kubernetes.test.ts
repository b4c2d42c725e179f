/**
 * The in-memory Kubernetes API driven by the real `@kubernetes/client-node` over HTTP: discovery,
 * create/get/list/replace/delete on each kind, admission errors, TokenRequest, auth and robustness.
 * Apply/patch, lists, controllers and faults have their own memory-kubernetes-*.test.ts files.
 */
import * as k8s from "@kubernetes/client-node";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type MemoryKubernetes, startMemoryKubernetes } from "../../shared/local/memory-kubernetes/index.js";
import { failure } from "../fakes/kubernetes-api.js";

let server: MemoryKubernetes;
let core: k8s.CoreV1Api;
let apps: k8s.AppsV1Api;
let rbac: k8s.RbacAuthorizationV1Api;
let batch: k8s.BatchV1Api;
let objects: k8s.KubernetesObjectApi;

beforeAll(async () => {
  server = await startMemoryKubernetes({ rolloutDelayMs: 20 });
  const kc = new k8s.KubeConfig();
  kc.loadFromString(server.kubeconfig);
  core = kc.makeApiClient(k8s.CoreV1Api);
  apps = kc.makeApiClient(k8s.AppsV1Api);
  rbac = kc.makeApiClient(k8s.RbacAuthorizationV1Api);
  batch = kc.makeApiClient(k8s.BatchV1Api);
  objects = k8s.KubernetesObjectApi.makeApiClient(kc);
});
afterAll(() => server.close());

/** The HTTP status and Status body of a failed client call. */

type Resources = { resources: { name: string; kind: string }[] };

async function raw(path: string, init: RequestInit = {}): Promise<{ code: number; body: unknown }> {
  const response = await fetch(`${server.url}${path}`, {
    ...init,
    headers: { authorization: "Bearer memory", ...(init.headers as Record<string, string>) },
  });
  const text = await response.text();
  return { code: response.status, body: text.startsWith("{") ? JSON.parse(text) : text };
}

let counter = 0;
async function namespace(prefix = "ns"): Promise<string> {
  const name = `${prefix}-${++counter}`;
  await core.createNamespace({ body: { metadata: { name } } });
  return name;
}

const deployment = (name: string, namespace: string, labels: Record<string, string> = { app: name }) => ({
  apiVersion: "apps/v1",
  kind: "Deployment",
  metadata: { name, namespace },
  spec: {
    selector: { matchLabels: labels },
    template: {
      metadata: { labels },
      spec: { containers: [{ name: "app", image: "registry.example.com/app:1" }] },
    },
  },
});

describe("discovery", () => {
  it("answers what KubernetesObjectApi resolves kinds with", async () => {
    const core = await raw("/api/v1");
    expect(core.code).toBe(200);
    expect(core.body).toMatchObject({ kind: "APIResourceList", groupVersion: "v1" });
    const resources = (core.body as Resources).resources;
    const names = resources.map((r) => r.name);
    expect(names).toEqual(
      expect.arrayContaining([
        "namespaces",
        "serviceaccounts",
        "serviceaccounts/token",
        "secrets",
        "configmaps",
        "services",
      ]),
    );
    expect(resources.find((r) => r.name === "namespaces")).toMatchObject({
      kind: "Namespace",
      namespaced: false,
      shortNames: ["ns"],
    });
    for (const [path, plural, kind] of [
      ["/apis/apps/v1", "deployments", "Deployment"],
      ["/apis/batch/v1", "jobs", "Job"],
      ["/apis/rbac.authorization.k8s.io/v1", "roles", "Role"],
      ["/apis/rbac.authorization.k8s.io/v1", "rolebindings", "RoleBinding"],
    ] as const) {
      const list = await raw(path);
      expect((list.body as Resources).resources.find((r) => r.name === plural)).toMatchObject({
        kind,
        namespaced: true,
      });
    }
  });

  it("lists groups and versions, and the server version without a token", async () => {
    expect((await raw("/api")).body).toMatchObject({ kind: "APIVersions", versions: ["v1"] });
    const groups = ((await raw("/apis")).body as { groups: { name: string }[] }).groups.map((g) => g.name);
    expect(groups).toEqual(expect.arrayContaining(["apps", "batch", "rbac.authorization.k8s.io"]));
    expect((await raw("/apis/apps")).body).toMatchObject({
      kind: "APIGroup",
      preferredVersion: { groupVersion: "apps/v1" },
    });
    const version = await fetch(`${server.url}/version`);
    expect(version.status).toBe(200);
    expect(await version.json()).toMatchObject({ major: "1", gitVersion: expect.stringContaining("memory") });
    expect((await raw("/openapi/v2")).code).toBe(404);
  });

  it("has the namespaces every cluster starts with", async () => {
    const names = (await core.listNamespace()).items.map((n) => n.metadata?.name);
    expect(names).toEqual(
      expect.arrayContaining(["default", "kube-system", "kube-public", "kube-node-lease"]),
    );
  });
});

describe("create, get, list, replace, delete", () => {
  it("namespaces: system metadata, phase Active, a default ServiceAccount", async () => {
    const created = await core.createNamespace({
      body: { metadata: { name: "crud-ns", labels: { team: "a" } } },
    });
    expect(created.metadata).toMatchObject({
      name: "crud-ns",
      uid: expect.stringMatching(/^[0-9a-f-]{36}$/),
      resourceVersion: expect.stringMatching(/^\d+$/),
      labels: { team: "a", "kubernetes.io/metadata.name": "crud-ns" },
    });
    expect(created.metadata?.creationTimestamp).toBeInstanceOf(Date);
    expect(created.status?.phase).toBe("Active");
    expect(created.spec?.finalizers).toEqual(["kubernetes"]);
    const read = await core.readNamespace({ name: "crud-ns" });
    expect(read.metadata?.uid).toBe(created.metadata?.uid);
    const accounts = await core.listNamespacedServiceAccount({ namespace: "crud-ns" });
    expect(accounts.items.map((a) => a.metadata?.name)).toEqual(["default"]);
    const again = await failure(core.createNamespace({ body: { metadata: { name: "crud-ns" } } }));
    expect(again.code).toBe(409);
    expect(again.status).toMatchObject({
      kind: "Status",
      apiVersion: "v1",
      status: "Failure",
      reason: "AlreadyExists",
      message: 'namespaces "crud-ns" already exists',
      details: { name: "crud-ns", kind: "namespaces" },
      code: 409,
    });
  });

  it("resourceVersions grow across the whole cluster, as etcd's revision does", async () => {
    const ns = await namespace();
    const a = await core.createNamespacedConfigMap({ namespace: ns, body: { metadata: { name: "a" } } });
    const b = await core.createNamespacedSecret({ namespace: ns, body: { metadata: { name: "b" } } });
    expect(Number(b.metadata?.resourceVersion)).toBeGreaterThan(Number(a.metadata?.resourceVersion));
  });

  it("configmaps: create, get, list, replace, delete, 404 after", async () => {
    const ns = await namespace();
    const created = await core.createNamespacedConfigMap({
      namespace: ns,
      body: { metadata: { name: "settings" }, data: { LOG_LEVEL: "info" } },
    });
    expect(created.metadata?.namespace).toBe(ns);
    const replaced = await core.replaceNamespacedConfigMap({
      name: "settings",
      namespace: ns,
      body: { ...created, data: { LOG_LEVEL: "debug" } },
    });
    expect(replaced.data).toEqual({ LOG_LEVEL: "debug" });
    expect(Number(replaced.metadata?.resourceVersion)).toBeGreaterThan(
      Number(created.metadata?.resourceVersion),
    );
    expect(replaced.metadata?.uid).toBe(created.metadata?.uid);
    const listed = await core.listNamespacedConfigMap({ namespace: ns });
    expect(listed.items.map((c) => c.data)).toEqual([{ LOG_LEVEL: "debug" }]);
    const deleted = (await core.deleteNamespacedConfigMap({
      name: "settings",
      namespace: ns,
    })) as unknown as Record<string, unknown>;
    expect(deleted).toMatchObject({ kind: "Status", status: "Success" });
    const gone = await failure(core.readNamespacedConfigMap({ name: "settings", namespace: ns }));
    expect(gone.code).toBe(404);
    expect(gone.status).toMatchObject({ reason: "NotFound", message: 'configmaps "settings" not found' });
    expect((await failure(core.deleteNamespacedConfigMap({ name: "settings", namespace: ns }))).code).toBe(
      404,
    );
  });

  it("replace with a stale resourceVersion is 409 Conflict; without one it succeeds", async () => {
    const ns = await namespace();
    const first = await core.createNamespacedConfigMap({
      namespace: ns,
      body: { metadata: { name: "c" }, data: { v: "1" } },
    });
    await core.replaceNamespacedConfigMap({ name: "c", namespace: ns, body: { ...first, data: { v: "2" } } });
    const stale = await failure(
      core.replaceNamespacedConfigMap({ name: "c", namespace: ns, body: { ...first, data: { v: "3" } } }),
    );
    expect(stale.code).toBe(409);
    expect(stale.status).toMatchObject({
      reason: "Conflict",
      message:
        'Operation cannot be fulfilled on configmaps "c": the object has been modified; please apply your changes to the latest version and try again',
    });
    const unconditional = await core.replaceNamespacedConfigMap({
      name: "c",
      namespace: ns,
      body: { metadata: { name: "c" }, data: { v: "4" } },
    });
    expect(unconditional.data).toEqual({ v: "4" });
  });

  it("a replace that changes nothing keeps the resourceVersion", async () => {
    const ns = await namespace();
    const created = await core.createNamespacedConfigMap({
      namespace: ns,
      body: { metadata: { name: "same" }, data: { a: "1" } },
    });
    const replaced = await core.replaceNamespacedConfigMap({ name: "same", namespace: ns, body: created });
    expect(replaced.metadata?.resourceVersion).toBe(created.metadata?.resourceVersion);
  });

  it("secrets: stringData is folded into base64 data and never stored", async () => {
    const ns = await namespace();
    const secret = await core.createNamespacedSecret({
      namespace: ns,
      body: { metadata: { name: "pull" }, stringData: { token: "hunter2" } },
    });
    expect(secret.type).toBe("Opaque");
    expect(secret.data).toEqual({ token: Buffer.from("hunter2").toString("base64") });
    expect(secret.stringData).toBeUndefined();
  });

  it("services: a cluster IP is allocated and kept across replaces", async () => {
    const ns = await namespace();
    const service = await core.createNamespacedService({
      namespace: ns,
      body: { metadata: { name: "web" }, spec: { selector: { app: "web" }, ports: [{ port: 80 }] } },
    });
    expect(service.spec?.clusterIP).toMatch(/^10\.96\.\d+\.\d+$/);
    expect(service.spec?.ports?.[0]).toMatchObject({ port: 80, protocol: "TCP", targetPort: 80 });
    const replaced = await core.replaceNamespacedService({
      name: "web",
      namespace: ns,
      body: { metadata: { name: "web" }, spec: { selector: { app: "web2" }, ports: [{ port: 80 }] } },
    });
    expect(replaced.spec?.clusterIP).toBe(service.spec?.clusterIP);
  });

  it("roles and rolebindings; roleRef cannot change", async () => {
    const ns = await namespace();
    await rbac.createNamespacedRole({
      namespace: ns,
      body: {
        metadata: { name: "kubler-deployer" },
        rules: [{ apiGroups: ["apps"], resources: ["deployments"], verbs: ["get", "patch"] }],
      },
    });
    const binding = await rbac.createNamespacedRoleBinding({
      namespace: ns,
      body: {
        metadata: { name: "kubler-deployer" },
        roleRef: { apiGroup: "rbac.authorization.k8s.io", kind: "Role", name: "kubler-deployer" },
        subjects: [{ kind: "ServiceAccount", name: "default", namespace: ns }],
      },
    });
    expect(binding.subjects?.[0]?.name).toBe("default");
    expect((await rbac.listNamespacedRole({ namespace: ns })).items).toHaveLength(1);
    const changed = await failure(
      rbac.replaceNamespacedRoleBinding({
        name: "kubler-deployer",
        namespace: ns,
        body: { ...binding, roleRef: { apiGroup: "rbac.authorization.k8s.io", kind: "Role", name: "other" } },
      }),
    );
    expect(changed.code).toBe(422);
    expect(changed.status.details.causes).toEqual([
      expect.objectContaining({
        field: "roleRef",
        message: expect.stringContaining("cannot change roleRef"),
      }),
    ]);
    await rbac.deleteNamespacedRole({ name: "kubler-deployer", namespace: ns });
    expect((await rbac.listNamespacedRole({ namespace: ns })).items).toHaveLength(0);
  });

  it("deployments: generation 1, defaults, generation bumps only on spec changes", async () => {
    const ns = await namespace();
    const created = await apps.createNamespacedDeployment({ namespace: ns, body: deployment("web", ns) });
    expect(created.metadata?.generation).toBe(1);
    expect(created.spec).toMatchObject({
      replicas: 1,
      revisionHistoryLimit: 10,
      progressDeadlineSeconds: 600,
    });
    expect(created.spec?.strategy?.type).toBe("RollingUpdate");
    const labelled = await apps.replaceNamespacedDeployment({
      name: "web",
      namespace: ns,
      // No resourceVersion: the simulated rollout may write status between these calls.
      body: {
        ...created,
        metadata: { ...created.metadata, resourceVersion: undefined, labels: { tier: "frontend" } },
      },
    });
    expect(labelled.metadata?.generation).toBe(1);
    const scaled = await apps.replaceNamespacedDeployment({
      name: "web",
      namespace: ns,
      body: {
        ...labelled,
        metadata: { ...labelled.metadata, resourceVersion: undefined },
        spec: { ...labelled.spec, replicas: 3 } as k8s.V1DeploymentSpec,
      },
    });
    expect(scaled.metadata?.generation).toBe(2);
    await apps.deleteNamespacedDeployment({ name: "web", namespace: ns });
    expect((await apps.listNamespacedDeployment({ namespace: ns })).items).toEqual([]);
  });

  it("jobs: the controller's selector and pod labels, status left to the test", async () => {
    const ns = await namespace();
    const job = await batch.createNamespacedJob({
      namespace: ns,
      body: {
        metadata: { name: "build-abc" },
        spec: {
          template: {
            spec: { restartPolicy: "Never", containers: [{ name: "buildkit", image: "moby/buildkit" }] },
          },
        },
      },
    });
    expect(job.metadata?.generation).toBe(1);
    expect(job.spec?.selector?.matchLabels).toEqual({
      "batch.kubernetes.io/controller-uid": job.metadata?.uid,
    });
    expect(job.spec?.template.metadata?.labels).toMatchObject({ "job-name": "build-abc" });
    expect(job.spec?.backoffLimit).toBe(6);
    expect(job.status ?? {}).toEqual({});
    const again = await failure(batch.createNamespacedJob({ namespace: ns, body: job }));
    expect(again.code).toBe(400); // resourceVersion set on a create
    const duplicate = await failure(
      batch.createNamespacedJob({ namespace: ns, body: { ...job, metadata: { name: "build-abc" } } }),
    );
    expect(duplicate.status.reason).toBe("AlreadyExists");
    expect(duplicate.status.message).toBe('jobs.batch "build-abc" already exists');
  });

  it("the generic object API reads, lists, replaces and deletes by apiVersion/kind", async () => {
    const ns = await namespace();
    await objects.create({
      apiVersion: "v1",
      kind: "ConfigMap",
      metadata: { name: "generic", namespace: ns },
      data: { a: "1" },
    });
    const read = await objects.read<k8s.V1ConfigMap>({
      apiVersion: "v1",
      kind: "ConfigMap",
      metadata: { name: "generic", namespace: ns },
    });
    expect(read.data).toEqual({ a: "1" });
    const replaced = await objects.replace({ ...read, data: { a: "2" } });
    expect((replaced as k8s.V1ConfigMap).data).toEqual({ a: "2" });
    const listed = await objects.list("v1", "ConfigMap", ns);
    expect(listed.items.map((item) => item.metadata?.name)).toEqual(["generic"]);
    await objects.delete({
      apiVersion: "v1",
      kind: "ConfigMap",
      metadata: { name: "generic", namespace: ns },
    });
    expect(server.store.get("v1", "ConfigMap", ns, "generic")).toBeUndefined();
  });

  it("delete honours uid and resourceVersion preconditions", async () => {
    const ns = await namespace();
    const map = await core.createNamespacedConfigMap({ namespace: ns, body: { metadata: { name: "p" } } });
    const wrongUid = await failure(
      core.deleteNamespacedConfigMap({
        name: "p",
        namespace: ns,
        body: { preconditions: { uid: "not-the-uid" } },
      }),
    );
    expect(wrongUid.code).toBe(409);
    expect(wrongUid.status.message).toContain("Precondition failed: UID in precondition: not-the-uid");
    const staleVersion = await failure(
      core.deleteNamespacedConfigMap({
        name: "p",
        namespace: ns,
        body: { preconditions: { resourceVersion: "1" } },
      }),
    );
    expect(staleVersion.code).toBe(409);
    expect(server.store.get("v1", "ConfigMap", ns, "p")).toBeDefined();
    await core.deleteNamespacedConfigMap({
      name: "p",
      namespace: ns,
      body: { preconditions: { uid: map.metadata?.uid, resourceVersion: map.metadata?.resourceVersion } },
    });
    expect(server.store.get("v1", "ConfigMap", ns, "p")).toBeUndefined();
  });

  it("deletecollection removes what the selector matches", async () => {
    const ns = await namespace();
    for (const [name, tier] of [
      ["a", "x"],
      ["b", "x"],
      ["c", "y"],
    ] as const) {
      await core.createNamespacedConfigMap({ namespace: ns, body: { metadata: { name, labels: { tier } } } });
    }
    await core.deleteCollectionNamespacedConfigMap({ namespace: ns, labelSelector: "tier=x" });
    expect(server.store.list("v1", "ConfigMap", ns).map((c) => c.metadata.name)).toEqual(["c"]);
  });

  it("dryRun=All validates and answers, and stores nothing", async () => {
    const ns = await namespace();
    const created = await core.createNamespacedConfigMap({
      namespace: ns,
      dryRun: "All",
      body: { metadata: { name: "dry" } },
    });
    expect(created.metadata?.name).toBe("dry");
    expect(server.store.get("v1", "ConfigMap", ns, "dry")).toBeUndefined();
    const invalid = await failure(
      core.createNamespacedConfigMap({
        namespace: ns,
        dryRun: "All",
        body: { metadata: { name: "Not_Valid" } },
      }),
    );
    expect(invalid.code).toBe(422);
    await core.createNamespacedConfigMap({ namespace: ns, body: { metadata: { name: "kept" } } });
    await core.deleteNamespacedConfigMap({ name: "kept", namespace: ns, dryRun: "All" });
    expect(server.store.get("v1", "ConfigMap", ns, "kept")).toBeDefined();
    await core.deleteNamespace({ name: ns, dryRun: "All" });
    expect(server.store.get("v1", "Namespace", undefined, ns)?.status).toEqual({ phase: "Active" });
  });

  it("the direct store sees HTTP writes and HTTP sees seeded objects", async () => {
    const ns = await namespace();
    const seeded = server.store.put({
      apiVersion: "batch/v1",
      kind: "Job",
      metadata: { name: "seeded", namespace: ns },
      spec: {},
      status: { succeeded: 1, conditions: [{ type: "Complete", status: "True" }] },
    });
    expect(seeded.metadata.uid).toBeDefined();
    const read = await batch.readNamespacedJob({ name: "seeded", namespace: ns });
    expect(read.status?.succeeded).toBe(1);
    expect(read.metadata?.resourceVersion).toBe(seeded.metadata.resourceVersion);
    expect(() =>
      server.store.put({
        apiVersion: "v1",
        kind: "PersistentVolumeClaim",
        metadata: { name: "x", namespace: ns },
      }),
    ).toThrow(/does not serve v1 PersistentVolumeClaim/);
  });
});

describe("admission", () => {
  it("a namespaced object in a namespace that does not exist is 404 for the namespace", async () => {
    const missing = await failure(
      core.createNamespacedConfigMap({ namespace: "nowhere", body: { metadata: { name: "a" } } }),
    );
    expect(missing.code).toBe(404);
    expect(missing.status).toMatchObject({ reason: "NotFound", message: 'namespaces "nowhere" not found' });
  });

  it("names: DNS-1123 label for namespaces, subdomain for most, DNS-1035 for services", async () => {
    const ns = await namespace();
    const badNamespace = await failure(
      core.createNamespace({ body: { metadata: { name: "Review_Feature" } } }),
    );
    expect(badNamespace.code).toBe(422);
    expect(badNamespace.status).toMatchObject({
      reason: "Invalid",
      details: {
        name: "Review_Feature",
        kind: "Namespace",
        causes: [
          {
            reason: "FieldValueInvalid",
            field: "metadata.name",
            message: expect.stringContaining(
              "a lowercase RFC 1123 label must consist of lower case alphanumeric",
            ),
          },
        ],
      },
    });
    expect(badNamespace.status.message).toMatch(
      /^Namespace "Review_Feature" is invalid: metadata\.name: Invalid value/,
    );
    const long = await failure(core.createNamespace({ body: { metadata: { name: "a".repeat(64) } } }));
    expect(long.status.details.causes[0]?.message).toContain("must be no more than 63 characters");
    // Dots are fine in a subdomain (ConfigMap) but not in a label (Namespace).
    await core.createNamespacedConfigMap({ namespace: ns, body: { metadata: { name: "a.b" } } });
    expect((await failure(core.createNamespace({ body: { metadata: { name: "a.b" } } }))).code).toBe(422);
    expect(
      (
        await failure(
          core.createNamespacedConfigMap({ namespace: ns, body: { metadata: { name: "a".repeat(254) } } }),
        )
      ).code,
    ).toBe(422);
    const service = await failure(
      core.createNamespacedService({
        namespace: ns,
        body: { metadata: { name: "1web" }, spec: { ports: [{ port: 80 }] } },
      }),
    );
    expect(service.status.details.causes[0]?.message).toContain("DNS-1035 label");
    const noName = await failure(core.createNamespacedConfigMap({ namespace: ns, body: { metadata: {} } }));
    expect(noName.status.details.causes[0]).toMatchObject({
      reason: "FieldValueRequired",
      field: "metadata.name",
      message: "Required value: name or generateName is required",
    });
  });

  it("validation comes before the existence check, as in the API server", async () => {
    const ns = await namespace();
    await core.createNamespacedConfigMap({ namespace: ns, body: { metadata: { name: "taken" } } });
    const invalid = await failure(
      core.createNamespacedConfigMap({
        namespace: ns,
        body: { metadata: { name: "taken", labels: { a: "-" } } },
      }),
    );
    expect(invalid.code).toBe(422);
  });

  it("generateName gets a random suffix", async () => {
    const ns = await namespace();
    const created = await core.createNamespacedConfigMap({
      namespace: ns,
      body: { metadata: { generateName: "run-" } },
    });
    expect(created.metadata?.name).toMatch(/^run-[a-z0-9]{5}$/);
  });

  it("labels: values over 63 characters or with invalid characters, bad keys", async () => {
    const ns = await namespace();
    const long = await failure(
      core.createNamespacedConfigMap({
        namespace: ns,
        body: { metadata: { name: "l", labels: { a: "x".repeat(64) } } },
      }),
    );
    expect(long.code).toBe(422);
    expect(long.status.details.causes).toEqual([
      {
        reason: "FieldValueInvalid",
        field: "metadata.labels",
        message: `Invalid value: "${"x".repeat(64)}": must be no more than 63 characters`,
      },
    ]);
    const chars = await failure(
      core.createNamespacedConfigMap({
        namespace: ns,
        body: { metadata: { name: "l", labels: { a: "review/feature" } } },
      }),
    );
    expect(chars.status.details.causes[0]?.message).toContain("a valid label must be an empty string");
    const key = await failure(
      core.createNamespacedConfigMap({
        namespace: ns,
        body: { metadata: { name: "l", labels: { "-bad": "x" } } },
      }),
    );
    expect(key.code).toBe(422);
    await core.createNamespacedConfigMap({
      namespace: ns,
      body: { metadata: { name: "l", labels: { "app.kubernetes.io/managed-by": "kubler", empty: "" } } },
    });
  });

  it("deployments: selector required, must match the template labels, containers required", async () => {
    const ns = await namespace();
    const { selector: _selector, ...noSelectorSpec } = deployment("d", ns).spec as k8s.V1DeploymentSpec;
    const missing = await failure(
      apps.createNamespacedDeployment({
        namespace: ns,
        body: { ...deployment("d", ns), spec: noSelectorSpec as unknown as k8s.V1DeploymentSpec },
      }),
    );
    expect(missing.code).toBe(422);
    expect(missing.status.details).toMatchObject({ kind: "Deployment", group: "apps" });
    expect(missing.status.details.causes).toContainEqual({
      reason: "FieldValueRequired",
      message: "Required value",
      field: "spec.selector",
    });
    const mismatch = await failure(
      apps.createNamespacedDeployment({
        namespace: ns,
        body: {
          ...deployment("d", ns),
          spec: { ...deployment("d", ns).spec, selector: { matchLabels: { app: "other" } } },
        },
      }),
    );
    expect(mismatch.status.details.causes).toContainEqual(
      expect.objectContaining({
        field: "spec.template.metadata.labels",
        message: expect.stringContaining("`selector` does not match template `labels`"),
      }),
    );
    const expressions = deployment("e", ns);
    expressions.spec.selector = {
      matchExpressions: [{ key: "app", operator: "In", values: ["e", "f"] }],
    } as unknown as typeof expressions.spec.selector;
    await apps.createNamespacedDeployment({ namespace: ns, body: expressions });
    const noContainers = deployment("c", ns);
    noContainers.spec.template.spec.containers = [];
    const empty = await failure(apps.createNamespacedDeployment({ namespace: ns, body: noContainers }));
    expect(empty.status.details.causes).toContainEqual({
      reason: "FieldValueRequired",
      message: "Required value",
      field: "spec.template.spec.containers",
    });
  });

  it("deployments: the selector is immutable", async () => {
    const ns = await namespace();
    await apps.createNamespacedDeployment({ namespace: ns, body: deployment("web", ns) });
    const changed = deployment("web", ns, { app: "web", tier: "x" });
    const error = await failure(
      apps.replaceNamespacedDeployment({ name: "web", namespace: ns, body: changed }),
    );
    expect(error.status.details.causes[0]).toMatchObject({
      field: "spec.selector",
      message: expect.stringContaining("field is immutable"),
    });
  });

  it("roles: every rule needs verbs, api groups and resources", async () => {
    const ns = await namespace();
    const error = await failure(
      rbac.createNamespacedRole({
        namespace: ns,
        body: {
          metadata: { name: "r" },
          rules: [{ apiGroups: [""], resources: ["pods"], verbs: [] }, { verbs: ["get"] }],
        },
      }),
    );
    expect(error.code).toBe(422);
    expect(error.status.details.causes).toEqual([
      {
        reason: "FieldValueRequired",
        field: "rules[0].verbs",
        message: "Required value: verbs must contain at least one value",
      },
      {
        reason: "FieldValueRequired",
        field: "rules[1].apiGroups",
        message: "Required value: resource rules must supply at least one api group",
      },
      {
        reason: "FieldValueRequired",
        field: "rules[1].resources",
        message: "Required value: resource rules must supply at least one resource",
      },
    ]);
    expect(error.status.message).toMatch(
      /^Role\.rbac\.authorization\.k8s\.io "r" is invalid: \[rules\[0\]\.verbs/,
    );
  });

  it("jobs: restartPolicy must be Never or OnFailure", async () => {
    const ns = await namespace();
    const error = await failure(
      batch.createNamespacedJob({
        namespace: ns,
        body: {
          metadata: { name: "j" },
          spec: { template: { spec: { containers: [{ name: "c", image: "i" }] } } },
        },
      }),
    );
    expect(error.status.details.causes).toContainEqual(
      expect.objectContaining({ field: "spec.template.spec.restartPolicy", reason: "FieldValueRequired" }),
    );
  });

  it("a body whose kind or apiVersion does not match the URL is 400", async () => {
    const ns = await namespace();
    const kind = await raw(`/api/v1/namespaces/${ns}/configmaps`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ apiVersion: "v1", kind: "Secret", metadata: { name: "x" } }),
    });
    expect(kind.code).toBe(400);
    expect(kind.body).toMatchObject({ kind: "Status", reason: "BadRequest" });
    const version = await raw(`/api/v1/namespaces/${ns}/configmaps`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ apiVersion: "apps/v1", kind: "ConfigMap", metadata: { name: "x" } }),
    });
    expect(version.code).toBe(400);
    const otherNamespace = await raw(`/api/v1/namespaces/${ns}/configmaps`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({
        apiVersion: "v1",
        kind: "ConfigMap",
        metadata: { name: "x", namespace: "default" },
      }),
    });
    expect(otherNamespace.code).toBe(400);
  });
});

describe("TokenRequest", () => {
  it("issues an opaque token with its expiry, usable as a bearer token", async () => {
    const ns = await namespace();
    await core.createNamespacedServiceAccount({ namespace: ns, body: { metadata: { name: "deployer" } } });
    const before = Date.now();
    const issued = await core.createNamespacedServiceAccountToken({
      name: "deployer",
      namespace: ns,
      body: { spec: { audiences: ["kubler"], expirationSeconds: 900 } },
    });
    const token = issued.status?.token as string;
    expect(token).toMatch(/^[A-Za-z0-9_-]{40,}$/);
    expect(issued.spec.audiences).toEqual(["kubler"]);
    const expiry = issued.status?.expirationTimestamp?.getTime() as number;
    expect(expiry).toBeGreaterThanOrEqual(before + 899_000);
    expect(expiry).toBeLessThanOrEqual(Date.now() + 901_000);
    const asAccount = await fetch(`${server.url}/api/v1/namespaces/${ns}`, {
      headers: { authorization: `Bearer ${token}` },
    });
    // Authenticated (not 401), but no binding grants the account anything: RBAC's 403.
    expect(asAccount.status).toBe(403);
    const second = await core.createNamespacedServiceAccountToken({
      name: "deployer",
      namespace: ns,
      body: { spec: { audiences: ["kubler"] } },
    });
    expect(second.status?.token).not.toBe(token);
    // A deleted ServiceAccount's tokens stop working.
    await core.deleteNamespacedServiceAccount({ name: "deployer", namespace: ns });
    const revoked = await fetch(`${server.url}/api/v1/namespaces/${ns}`, {
      headers: { authorization: `Bearer ${token}` },
    });
    expect(revoked.status).toBe(401);
  });

  it("rejects lifetimes under 10 minutes with 422, like the real API", async () => {
    const ns = await namespace();
    const error = await failure(
      core.createNamespacedServiceAccountToken({
        name: "default",
        namespace: ns,
        body: { spec: { audiences: ["kubler"], expirationSeconds: 599 } },
      }),
    );
    expect(error.code).toBe(422);
    expect(error.status.details.causes).toEqual([
      {
        reason: "FieldValueInvalid",
        field: "spec.expirationSeconds",
        message: "Invalid value: 599: may not specify a duration less than 10 minutes",
      },
    ]);
  });

  it("404 for a ServiceAccount that does not exist", async () => {
    const ns = await namespace();
    const error = await failure(
      core.createNamespacedServiceAccountToken({
        name: "ghost",
        namespace: ns,
        body: { spec: { audiences: [] } },
      }),
    );
    expect(error.code).toBe(404);
    expect(error.status.message).toBe('serviceaccounts "ghost" not found');
  });
});

describe("robustness", () => {
  it("requires a token it knows", async () => {
    expect((await fetch(`${server.url}/api/v1/namespaces`)).status).toBe(401);
    const wrong = await fetch(`${server.url}/api/v1/namespaces`, {
      headers: { authorization: "Bearer nope" },
    });
    expect(wrong.status).toBe(401);
    expect(await wrong.json()).toMatchObject({ kind: "Status", reason: "Unauthorized", code: 401 });
  });

  it("malformed JSON is a 400 Status, unknown paths a 404 Status, and the server keeps serving", async () => {
    const ns = await namespace();
    const malformed = await raw(`/api/v1/namespaces/${ns}/configmaps`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: "{not json",
    });
    expect(malformed.code).toBe(400);
    expect(malformed.body).toMatchObject({ kind: "Status", status: "Failure", reason: "BadRequest" });
    for (const path of [
      "/nope",
      "/api/v1/namespaces/%zz",
      "/api/v2",
      "/apis/apps/v2",
      "/apis/example.com/v1/widgets",
      "/api/v1/persistentvolumeclaims",
    ]) {
      const unknown = await raw(path);
      expect(unknown.code, path).toBe(404);
      expect(unknown.body).toMatchObject({ kind: "Status", reason: "NotFound" });
    }
    const patchNoType = await raw(`/api/v1/namespaces/${ns}`, {
      method: "PATCH",
      headers: { "content-type": "text/plain" },
      body: "x",
    });
    expect(patchNoType.code).toBe(415);
    expect((await core.readNamespace({ name: ns })).metadata?.name).toBe(ns);
  });
});
