/**
 * A deploy follows the rollout of every StatefulSet and DaemonSet of the manifests as it follows a
 * Deployment's: a broken image there fails the deploy and rolls back instead of becoming the last
 * good revision. Against the embedded Kubernetes API over HTTP, through the real adapter. Neither
 * kind has a progress deadline, so a broken one ends at the rollout timeout: the test's sleep moves
 * the clock 5 s a poll to get there.
 */
import { setTimeout as delay } from "node:timers/promises";
import { beforeEach, describe, expect, it } from "vitest";
import { DEPLOYER_NAME, DEPLOYER_VERBS } from "../../shared/domain/deploy-manifests.js";
import type { KubeObject } from "../../shared/domain/kube-object.js";
import { deployEnvironment } from "../../shared/services/deploy-environment.js";
import { deployRequested, IMAGE, NAMESPACE, SHA_1, SHA_2, useDeployCluster } from "../fakes/deploy-deps.js";

const env = useDeployCluster("kubler-rollout-kinds-");
beforeEach(() => {
  env.deps.sleep = async (ms) => {
    env.deps.clock.advance(5_000);
    await delay(ms);
  };
});

/** A pod template running the commit's image; `broken` is an image the embedded API never gets ready. */
function podTemplate(app: string, broken: boolean): string {
  return `  template:
    metadata:
      labels: { app: ${app} }${broken ? "\n      annotations: { local.kubler.dev/rollout: fail }" : ""}
    spec:
      containers:
        - name: ${app}
          image: ${IMAGE}:{sha}
`;
}

function statefulSet(options: { broken?: boolean; updateStrategy?: string } = {}): string {
  return `apiVersion: apps/v1
kind: StatefulSet
metadata:
  name: db
spec:
  serviceName: db
  replicas: 2
  selector:
    matchLabels: { app: db }
${options.updateStrategy ? `  updateStrategy: { type: ${options.updateStrategy} }\n` : ""}${podTemplate("db", options.broken ?? false)}`;
}

function daemonSet(options: { broken?: boolean } = {}): string {
  return `apiVersion: apps/v1
kind: DaemonSet
metadata:
  name: agent
spec:
  selector:
    matchLabels: { app: agent }
${podTemplate("agent", options.broken ?? false)}`;
}

function imageOf(kind: string, name: string): unknown {
  const object = env.k8s.store.get("apps/v1", kind, NAMESPACE, name) as
    | { spec: { template: { spec: { containers: { image: string }[] } } } }
    | undefined;
  return object?.spec.template.spec.containers[0]?.image;
}

const namespaceAnnotation = (key: string) =>
  env.k8s.store.get("v1", "Namespace", undefined, NAMESPACE)?.metadata.annotations?.[key];

describe("a StatefulSet in the manifests", () => {
  it("whose next commit's image never gets ready fails the deploy, which rolls back to the last good revision", async () => {
    env.files.addManifest("statefulset.yaml", statefulSet());
    expect(await deployEnvironment(env.deps, deployRequested())).toMatchObject({ kind: "succeeded" });

    env.files.addManifest("statefulset.yaml", statefulSet({ broken: true }));
    const next = await deployEnvironment(env.deps, deployRequested({ sha: SHA_2, pipelineId: 101 }));

    expect(next).toMatchObject({
      kind: "rolled_back",
      reason: expect.stringMatching(
        new RegExp(`^rollout timed out: 1 of 2 pods of statefulset db not ready; rolled back to ${SHA_1}$`),
      ),
    });
    expect(imageOf("StatefulSet", "db")).toBe(`${IMAGE}:${SHA_1}`);
    expect(namespaceAnnotation("kubler.dev/sha")).toBe(SHA_1);
  });

  it("broken at its first deploy is a failed deploy, never a succeeded one", async () => {
    env.files.addManifest("statefulset.yaml", statefulSet({ broken: true }));

    const first = await deployEnvironment(env.deps, deployRequested());

    expect(first).toMatchObject({
      kind: "failed",
      reason: expect.stringContaining("statefulset db"),
    });
    expect(namespaceAnnotation("kubler.dev/status")).toBe("failed");
  });

  it("with updateStrategy OnDelete succeeds once its pods are ready, and says its rollout was not followed", async () => {
    env.files.addManifest("statefulset.yaml", statefulSet({ updateStrategy: "OnDelete" }));
    expect(await deployEnvironment(env.deps, deployRequested())).toMatchObject({ kind: "succeeded" });

    env.files.addManifest("statefulset.yaml", statefulSet({ updateStrategy: "OnDelete", broken: true }));
    const next = await deployEnvironment(env.deps, deployRequested({ sha: SHA_2, pipelineId: 101 }));

    const note =
      "statefulset db has updateStrategy OnDelete: its pods take the new template only when deleted, so its rollout is not followed";
    expect(next).toMatchObject({ kind: "succeeded", reason: `deployed ${SHA_2}; ${note}` });
    expect(env.deps.audit.last()?.subject).toMatchObject({ unfollowed: [note] });
    expect(env.deps.publisher.entries.at(-1)?.detail).toMatchObject({
      status: "succeeded",
      reason: `deployed ${SHA_2}; ${note}`,
    });
  });
});

describe("a DaemonSet in the manifests", () => {
  it("whose next commit's image never gets available fails the deploy, which rolls back", async () => {
    env.files.addManifest("daemonset.yaml", daemonSet());
    expect(await deployEnvironment(env.deps, deployRequested())).toMatchObject({ kind: "succeeded" });

    env.files.addManifest("daemonset.yaml", daemonSet({ broken: true }));
    const next = await deployEnvironment(env.deps, deployRequested({ sha: SHA_2, pipelineId: 101 }));

    expect(next).toMatchObject({
      kind: "rolled_back",
      reason: expect.stringContaining("daemon set agent"),
    });
    expect(imageOf("DaemonSet", "agent")).toBe(`${IMAGE}:${SHA_1}`);
  });
});

describe("kubectl rollout status from a CI job, for these kinds", () => {
  it("needs get, list and watch on the kind only, which the Role grants: no controllerrevisions", async () => {
    env.files.addManifest("statefulset.yaml", statefulSet());
    env.files.addManifest("daemonset.yaml", daemonSet());
    expect(await deployEnvironment(env.deps, deployRequested())).toMatchObject({ kind: "succeeded" });

    const role = env.k8s.store.get(
      "rbac.authorization.k8s.io/v1",
      "Role",
      NAMESPACE,
      DEPLOYER_NAME,
    ) as KubeObject & {
      rules: { apiGroups: string[]; resources: string[]; verbs: string[] }[];
    };
    expect(role.rules.filter((rule) => rule.apiGroups.includes("apps"))).toEqual([
      {
        apiGroups: ["apps"],
        resources: ["daemonsets", "deployments", "statefulsets"],
        verbs: [...DEPLOYER_VERBS],
      },
    ]);

    // What `kubectl rollout status statefulset/db` sends: a GET, then a list and a watch by name.
    const admin = { authorization: "Bearer memory", "content-type": "application/json" };
    const issued = await fetch(
      `${env.k8s.url}/api/v1/namespaces/${NAMESPACE}/serviceaccounts/${DEPLOYER_NAME}/token`,
      { method: "POST", headers: admin, body: JSON.stringify({ spec: { audiences: ["kubler"] } }) },
    );
    const token = ((await issued.json()) as { status: { token: string } }).status.token;
    const as = (path: string) =>
      fetch(`${env.k8s.url}${path}`, { headers: { authorization: `Bearer ${token}` } });
    for (const [plural, name] of [
      ["statefulsets", "db"],
      ["daemonsets", "agent"],
    ]) {
      const base = `/apis/apps/v1/namespaces/${NAMESPACE}/${plural}`;
      expect((await as(`${base}/${name}`)).status, plural).toBe(200);
      expect((await as(`${base}?fieldSelector=metadata.name%3D${name}`)).status, plural).toBe(200);
      // The embedded API serves no watch: authorized, it answers 405; refused, RBAC's 403.
      expect((await as(`${base}?fieldSelector=metadata.name%3D${name}&watch=true`)).status, plural).toBe(405);
    }
  });
});
