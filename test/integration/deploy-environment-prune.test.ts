/**
 * `deploy.prune` (opt-in): after a successful rollout, a deploy deletes the environment's objects the
 * new revision no longer has. Against the embedded Kubernetes API over HTTP, through the real
 * adapter, as the other deploy tests: what is left on the cluster is asserted from the cluster.
 */
import { readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import type { Detail } from "../../shared/domain/catalog.js";
import { environmentLabels, namespaceFor } from "../../shared/domain/environment.js";
import type { KubeObject } from "../../shared/domain/kube-object.js";
import { KubernetesUnavailableError } from "../../shared/errors.js";
import {
  type DeployEnvironmentDeps,
  type DeployTrigger,
  deployEnvironment,
  LAST_GOOD_CONFIGMAP,
} from "../../shared/services/deploy-environment.js";
import { putOutsiders, useDeployCluster } from "../fakes/deploy-deps.js";

const PROJECT = "flightjs/flight-management";
const SHAS = ["1", "2", "3"].map((digit) => digit.repeat(40));
const gitlab = { instance: "https://gitlab.example.com", projectId: 2, projectPath: PROJECT };
const ENVIRONMENT = "staging";
const NAMESPACE = namespaceFor(PROJECT, ENVIRONMENT);
const WORKER = "flight-management-worker";

const env = useDeployCluster("kubler-prune-", { clear: NAMESPACE });

/** Deploys revision `n` (0-based) of the staging environment, each a newer pipeline. */
function deploy(n: number): ReturnType<typeof deployEnvironment> {
  const trigger: DeployTrigger = {
    detailType: "Deploy Requested",
    time: new Date(Date.parse("2026-11-21T10:00:00Z") + n * 60_000),
    detail: {
      correlationId: `corr-${n}`,
      gitlab,
      environment: ENVIRONMENT,
      sha: SHAS[n] as string,
      ref: "main",
      pipelineId: 100 + n,
      mrIid: null,
    } satisfies Detail<"Deploy Requested">,
  };
  return deployEnvironment(env.deps, trigger);
}

function setPrune(value: string | null): void {
  const file = join(env.projects, PROJECT, "kubler.yaml");
  const text = readFileSync(file, "utf8").replace(/\n {2}prune: .*/, "");
  writeFileSync(file, value === null ? text : text.replace("\ndeploy:\n", `\ndeploy:\n  prune: ${value}\n`));
}

const worker = `apiVersion: apps/v1
kind: Deployment
metadata: { name: ${WORKER} }
spec:
  replicas: 1
  selector: { matchLabels: { app: worker } }
  template:
    metadata: { labels: { app: worker } }
    spec: { containers: [{ name: worker, image: "registry.example.com/flightjs/worker:{sha}" }] }
`;
const configMap = (name: string, annotations = "{}") =>
  `apiVersion: v1\nkind: ConfigMap\nmetadata: { name: ${name}, annotations: ${annotations} }\ndata: { A: b }\n`;
const secret = (name: string) =>
  `apiVersion: v1\nkind: Secret\nmetadata: { name: ${name} }\nstringData: { token: x }\n`;

const get = (apiVersion: string, kind: string, name: string, namespace = NAMESPACE) =>
  env.k8s.store.get(apiVersion, kind, namespace, name);

/** The cluster as the deploy sees it, with some calls replaced (the adapter's methods are on its prototype). */
function around(overrides: Partial<DeployEnvironmentDeps["cluster"]>): DeployEnvironmentDeps["cluster"] {
  const inner = env.deps.cluster;
  return new Proxy(inner, {
    get: (target, name) => {
      const value = (overrides as Record<PropertyKey, unknown>)[name] ?? Reflect.get(target, name);
      return typeof value === "function" ? value.bind(target) : value;
    },
  });
}

describe("deploy.prune", () => {
  it("is off by default: a Deployment dropped from deploy/ keeps running", async () => {
    env.files.addManifest("worker.yaml", worker);
    expect((await deploy(0)).kind).toBe("succeeded");
    env.files.dropManifest("worker.yaml");
    expect(await deploy(1)).toMatchObject({ kind: "succeeded", reason: null });
    expect(get("apps/v1", "Deployment", WORKER)).toBeDefined();
    expect(env.deps.audit.last()?.subject).not.toHaveProperty("pruned");
  });

  it("deletes a Deployment dropped from deploy/, after the rollout succeeded, and audits it", async () => {
    setPrune("true");
    env.files.addManifest("worker.yaml", worker);
    expect((await deploy(0)).kind).toBe("succeeded");
    expect(get("apps/v1", "Deployment", WORKER)).toBeDefined();
    env.files.dropManifest("worker.yaml");
    const calls: string[] = [];
    const inner = env.deps.cluster;
    env.deps.cluster = around({
      apply: (object) => {
        calls.push(`apply ${object.kind}${object.metadata.resourceVersion ? " over" : ""}`);
        return inner.apply(object);
      },
      delete: (ref, preconditions) => {
        calls.push(`delete ${ref.kind}/${ref.name}${preconditions?.uid ? " by uid" : ""}`);
        return inner.delete(ref, preconditions);
      },
    });
    const outcome = await deploy(1);
    expect(outcome).toEqual({
      kind: "succeeded",
      namespace: NAMESPACE,
      reason: `deployed ${SHAS[1]}; pruned Deployment/${WORKER}`,
      url: "https://staging.apps.example.com",
    });
    expect(get("apps/v1", "Deployment", WORKER)).toBeUndefined();
    expect(get("apps/v1", "Deployment", "flight-management")).toBeDefined();
    // After the final write that says succeeded, before the record of the new revision.
    expect(calls.slice(-3)).toEqual([
      "apply Namespace over",
      `delete Deployment/${WORKER} by uid`,
      "apply ConfigMap",
    ]);
    expect(env.deps.publisher.entries.at(-1)?.detail).toMatchObject({ status: "succeeded" });
    expect(env.deps.audit.last()).toMatchObject({
      action: "environment.deploy",
      outcome: "success",
      reason: `deployed ${SHAS[1]}; pruned Deployment/${WORKER}`,
      subject: { status: "succeeded", pruned: [`Deployment/${WORKER}`], notPruned: [] },
    });
  });

  it("keeps an object annotated kubler.dev/prune: disabled, and one without the environment's labels", async () => {
    setPrune("true");
    env.files.addManifest("data.yaml", configMap("data", '{ "kubler.dev/prune": disabled }'));
    env.files.addManifest("cache.yaml", configMap("cache"));
    expect((await deploy(0)).kind).toBe("succeeded");
    // In the namespace but not the environment's (someone else's); the environment's labels, but in
    // another namespace.
    putOutsiders(env.k8s, { namespace: NAMESPACE, projectId: 2, environment: ENVIRONMENT, name: "cache" });
    env.files.dropManifest("data.yaml");
    env.files.dropManifest("cache.yaml");
    const outcome = await deploy(1);
    expect(outcome).toMatchObject({
      kind: "succeeded",
      reason: `deployed ${SHAS[1]}; pruned ConfigMap/cache`,
    });
    expect(get("v1", "ConfigMap", "cache")).toBeUndefined();
    expect(get("v1", "ConfigMap", "data")).toBeDefined();
    expect(get("v1", "ConfigMap", "by-hand")).toBeDefined();
    expect(get("v1", "ConfigMap", "cache", "neighbour")).toBeDefined();
    // Kubler's own objects are of pruned kinds too, and never pruned.
    expect(get("v1", "ConfigMap", LAST_GOOD_CONFIGMAP)).toBeDefined();
    expect(get("v1", "ServiceAccount", "kubler-deployer")).toBeDefined();
  });

  it("prunes nothing of the good revision when the rollout fails and is rolled back", async () => {
    setPrune("true");
    env.files.addManifest("worker.yaml", worker);
    expect((await deploy(0)).kind).toBe("succeeded");
    const uid = get("apps/v1", "Deployment", WORKER)?.metadata.uid;
    env.files.dropManifest("worker.yaml");
    env.files.setRollout("fail");
    const outcome = await deploy(1);
    expect(outcome).toMatchObject({ kind: "rolled_back", reason: expect.not.stringContaining("pruned") });
    // The same object, never deleted (and so not re-created by the rollback either).
    expect(get("apps/v1", "Deployment", WORKER)?.metadata.uid).toBe(uid);
    expect(env.deps.audit.last()?.subject).not.toHaveProperty("pruned");
  });

  it("keeps a deploy whose deletes fail succeeded, names what it left, and the next deploy deletes it", async () => {
    setPrune("true");
    env.files.addManifest("worker.yaml", worker);
    env.files.addManifest("token.yaml", secret("token"));
    expect((await deploy(0)).kind).toBe("succeeded");
    env.files.dropManifest("worker.yaml");
    // The revision after drops the only Secret: no later revision has the kind to list it by.
    env.files.dropManifest("token.yaml");
    env.k8s.faults.add({ verb: "delete", resource: "deployments", name: WORKER, status: 403, times: 1 });
    env.k8s.faults.add({ verb: "delete", resource: "secrets", name: "token", status: 403, times: 1 });
    const outcome = await deploy(1);
    expect(outcome).toMatchObject({
      kind: "succeeded",
      reason: expect.stringContaining(`deployed ${SHAS[1]}; not pruned, the next deploy tries again: `),
    });
    const reason = outcome.kind === "succeeded" ? outcome.reason : "";
    expect(reason).toContain(`Deployment/${WORKER} (`);
    expect(reason).toContain("Secret/token (");
    expect(env.deps.publisher.entries.at(-1)?.detail).toMatchObject({ status: "succeeded" });
    expect(env.deps.audit.last()).toMatchObject({
      outcome: "success",
      subject: { pruned: [], notPruned: expect.arrayContaining([`Deployment/${WORKER}`, "Secret/token"]) },
    });
    expect(get("apps/v1", "Deployment", WORKER)).toBeDefined();
    expect(get("v1", "Secret", "token")).toBeDefined();
    expect(env.k8s.store.get("v1", "Namespace", undefined, NAMESPACE)?.metadata.annotations).toMatchObject({
      "kubler.dev/status": "succeeded",
      "kubler.dev/sha": SHAS[1],
    });
    const next = await deploy(2);
    expect(next).toMatchObject({ kind: "succeeded", reason: expect.stringContaining("pruned ") });
    expect(get("apps/v1", "Deployment", WORKER)).toBeUndefined();
    expect(get("v1", "Secret", "token")).toBeUndefined();
    expect(env.deps.audit.last()?.subject).toMatchObject({
      pruned: expect.arrayContaining([`Deployment/${WORKER}`, "Secret/token"]),
      notPruned: [],
    });
  });

  it("counts a delete answered 404 as done: the object was already gone", async () => {
    setPrune("true");
    env.files.addManifest("worker.yaml", worker);
    expect((await deploy(0)).kind).toBe("succeeded");
    env.files.dropManifest("worker.yaml");
    env.k8s.faults.add({ verb: "delete", resource: "deployments", name: WORKER, status: 404, times: 1 });
    expect(await deploy(1)).toMatchObject({
      kind: "succeeded",
      reason: `deployed ${SHAS[1]}; pruned Deployment/${WORKER}`,
    });
    expect(env.deps.audit.last()?.subject).toMatchObject({ notPruned: [] });
  });

  it("lists a kind again from its first page when its continue token expired, and prunes what the later page had", async () => {
    setPrune("true");
    env.files.addManifest("settings.yaml", configMap("settings"));
    expect((await deploy(0)).kind).toBe("succeeded");
    // More of the environment's ConfigMaps than one page of the prune's list holds (500).
    const labels = environmentLabels(gitlab.projectId, ENVIRONMENT);
    for (let i = 0; i < 501; i++) {
      const name = `left-${String(i).padStart(3, "0")}`;
      env.k8s.store.put({
        apiVersion: "v1",
        kind: "ConfigMap",
        metadata: { name, namespace: NAMESPACE, labels },
      });
    }
    const gone = env.k8s.faults.add({
      verb: "list",
      resource: "configmaps",
      continued: true,
      status: 410,
      times: 1,
    });
    const outcome = await deploy(1);
    expect(gone.hits).toBe(1);
    expect(outcome.kind).toBe("succeeded");
    // Deploy Finished carries the reason and must stay under 8 KB: ten names, then the count of the rest.
    const reason = outcome.kind === "succeeded" ? outcome.reason : null;
    expect(reason).toMatch(
      /^deployed 2{40}; pruned (ConfigMap\/left-\d{3}, ){9}ConfigMap\/left-\d{3} and 491 more \(every one is in the audit line\)$/,
    );
    expect(env.deps.publisher.entries.at(-1)?.detail).toMatchObject({ status: "succeeded", reason });
    expect(env.deps.audit.last()?.subject).toMatchObject({ pruned: expect.any(Array), notPruned: [] });
    expect(env.deps.audit.last()?.subject.pruned).toHaveLength(501);
    expect(get("v1", "ConfigMap", "left-000")).toBeUndefined();
    expect(get("v1", "ConfigMap", "left-500")).toBeUndefined();
    expect(get("v1", "ConfigMap", "settings")).toBeDefined();
  });

  it("stops, leaving the rest to the next deploy, when the namespace was written since the deploy's final write", async () => {
    setPrune("true");
    env.files.addManifest("worker.yaml", worker);
    expect((await deploy(0)).kind).toBe("succeeded");
    env.files.dropManifest("worker.yaml");
    const inner = env.deps.cluster;
    env.deps.cluster = around({
      list: async (apiVersion, kind, options) => {
        const page = await inner.list(apiVersion, kind, options);
        if (kind === "Deployment") {
          // A newer deploy's "deploying" write: from here on, what is in the namespace may be its.
          const namespace = env.k8s.store.get("v1", "Namespace", undefined, NAMESPACE) as KubeObject;
          namespace.metadata.annotations = {
            ...namespace.metadata.annotations,
            "kubler.dev/attempted-sha": SHAS[2] as string,
          };
          env.k8s.store.put(namespace);
        }
        return page;
      },
    });
    const outcome = await deploy(1);
    expect(outcome).toMatchObject({
      kind: "succeeded",
      reason: expect.stringContaining(
        `not pruned, the next deploy tries again: Deployment/${WORKER} (the namespace was written since`,
      ),
    });
    expect(get("apps/v1", "Deployment", WORKER)).toBeDefined();
  });

  it("keeps the deploy succeeded when the namespace cannot be read back during the prune: what is left is named", async () => {
    setPrune("true");
    env.files.addManifest("token.yaml", secret("token"));
    expect((await deploy(0)).kind).toBe("succeeded");
    env.files.dropManifest("token.yaml");
    const inner = env.deps.cluster;
    let concluded = false;
    env.deps.cluster = around({
      apply: async (object) => {
        const written = await inner.apply(object);
        if (object.metadata.annotations?.["kubler.dev/status"] === "succeeded") concluded = true;
        return written;
      },
      get: (ref) => {
        if (concluded && ref.kind === "Namespace") {
          return Promise.reject(
            new KubernetesUnavailableError("get Namespace: HTTP 503: etcd leader changed", 503),
          );
        }
        return inner.get(ref);
      },
    });
    const outcome = await deploy(1);
    expect(outcome).toMatchObject({
      kind: "succeeded",
      reason: expect.stringContaining("not pruned, the next deploy tries again: Secret/token ("),
    });
    expect(env.deps.publisher.entries.at(-1)?.detail).toMatchObject({ status: "succeeded" });
    expect(get("v1", "Secret", "token")).toBeDefined();
    // Recorded for the next deploy, which has no Secret of its own to list them by.
    const record = get("v1", "ConfigMap", LAST_GOOD_CONFIGMAP) as KubeObject & {
      data: Record<string, string>;
    };
    expect(JSON.parse(record.data["unpruned.json"] ?? "[]")).toEqual([{ apiVersion: "v1", kind: "Secret" }]);
    env.deps.cluster = inner;
    expect(await deploy(2)).toMatchObject({
      kind: "succeeded",
      reason: `deployed ${SHAS[2]}; pruned Secret/token`,
    });
  });

  it("a redelivery after the record's write failed still lists the kinds the revision before had", async () => {
    setPrune("true");
    env.files.addManifest("token.yaml", secret("token"));
    expect((await deploy(0)).kind).toBe("succeeded");
    env.files.dropManifest("token.yaml");
    // The first attempt cannot delete the Secret, then cannot write its record (the API went away,
    // or the function timed out there): its outcome is lost, the bus delivers the event again.
    env.k8s.faults.add({ verb: "delete", resource: "secrets", name: "token", status: 403, times: 1 });
    const inner = env.deps.cluster;
    env.deps.cluster = around({
      apply: (object) =>
        object.kind === "ConfigMap" && object.metadata.name === LAST_GOOD_CONFIGMAP
          ? Promise.reject(new KubernetesUnavailableError("apply ConfigMap: HTTP 503", 503))
          : inner.apply(object),
    });
    await expect(deploy(1)).rejects.toThrow(KubernetesUnavailableError);
    env.deps.cluster = inner;
    // The namespace commits to the new record's digest; the record there is still the old one.
    expect(await deploy(1)).toMatchObject({
      kind: "succeeded",
      reason: `deployed ${SHAS[1]}; pruned Secret/token`,
    });
    expect(get("v1", "Secret", "token")).toBeUndefined();
  });

  it("reads unpruned.json leniently: a kind Kubler never deploys, or one named in another API group, is not listed", async () => {
    setPrune("true");
    expect((await deploy(0)).kind).toBe("succeeded");
    // What a CI job that can patch ConfigMaps might write into the record.
    const record = get("v1", "ConfigMap", LAST_GOOD_CONFIGMAP) as KubeObject & {
      data: Record<string, string>;
    };
    record.data["unpruned.json"] = JSON.stringify([
      { apiVersion: "rbac.authorization.k8s.io/v1", kind: "RoleBinding" },
      { apiVersion: "v1", kind: "Namespace" },
      { apiVersion: "apps/v1", kind: "Secret" },
      { kind: "ConfigMap" },
      { apiVersion: "v1?labelSelector=", kind: "Secret" },
      { apiVersion: "/../../api/v1", kind: "Secret" },
      "x",
    ]);
    env.k8s.store.put(record);
    env.k8s.store.put({
      apiVersion: "v1",
      kind: "Secret",
      metadata: { name: "theirs", namespace: NAMESPACE, labels: environmentLabels(2, ENVIRONMENT) },
    });
    env.k8s.store.put({
      apiVersion: "rbac.authorization.k8s.io/v1",
      kind: "RoleBinding",
      metadata: { name: "theirs", namespace: NAMESPACE, labels: environmentLabels(2, ENVIRONMENT) },
      roleRef: { apiGroup: "rbac.authorization.k8s.io", kind: "Role", name: "kubler-deployer" },
      subjects: [],
    });
    const lists: string[] = [];
    const listedVersions: string[] = [];
    const inner = env.deps.cluster;
    env.deps.cluster = around({
      list: (apiVersion, kind, options) => {
        lists.push(kind);
        listedVersions.push(apiVersion);
        return inner.list(apiVersion, kind, options);
      },
    });
    expect(await deploy(1)).toMatchObject({ kind: "succeeded", reason: null });
    expect(lists).not.toContain("RoleBinding");
    expect(lists).not.toContain("Namespace");
    expect(lists).not.toContain("Secret");
    // The revision's own kinds are listed, each by its plain apiVersion only.
    expect(listedVersions.filter((v) => v !== "v1" && v !== "apps/v1")).toEqual([]);
    expect(get("v1", "Secret", "theirs")).toBeDefined();
    expect(get("rbac.authorization.k8s.io/v1", "RoleBinding", "theirs")).toBeDefined();
  });

  it("a rollback leaves what the failed revision added when it is annotated kubler.dev/prune: disabled", async () => {
    expect((await deploy(0)).kind).toBe("succeeded");
    env.files.addManifest("kept.yaml", configMap("kept", '{ "kubler.dev/prune": disabled }'));
    env.files.addManifest("added.yaml", configMap("added"));
    env.files.setRollout("fail");
    expect((await deploy(1)).kind).toBe("rolled_back");
    expect(get("v1", "ConfigMap", "added")).toBeUndefined();
    expect(get("v1", "ConfigMap", "kept")).toBeDefined();
  });

  it('fails a deploy whose kubler.yaml says prune: "yes", naming the path', async () => {
    setPrune('"yes"');
    expect(await deploy(0)).toMatchObject({
      kind: "failed",
      reason: 'kubler.yaml: deploy.prune: expected true or false (unquoted), found "yes"',
    });
    expect(env.k8s.store.get("v1", "Namespace", undefined, NAMESPACE)).toBeUndefined();
  });
});
