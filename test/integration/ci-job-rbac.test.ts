/**
 * What a CI job's Kubernetes token may do, end to end, on the embedded cluster that now enforces RBAC:
 * the local runtime deploys the sample project (with a Secret and a ServiceAccount added), `kubler
 * credentials` mints the job's kubeconfig through POST /v1/credentials, and the real
 * `@kubernetes/client-node` acts as the job. Every answer comes from the Role Kubler wrote
 * (`roleRulesFor`): these tests fail if it grew narrower than README promises, or broader.
 */
import { cpSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import * as k8s from "@kubernetes/client-node";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { parse } from "yaml";
import { credentialsCommand } from "../../cli/credentials-command.js";
import { type LocalRuntime, startLocalRuntime } from "../../cli/local-runtime.js";
import { loadLocalConfig } from "../../shared/config.js";
import { loadCredentialsConfig } from "../../shared/credentials-config.js";
import type { Detail } from "../../shared/domain/catalog.js";
import {
  DEPLOYER_NAME,
  LAST_GOOD_CONFIGMAP,
  PULL_SECRET_NAME,
} from "../../shared/domain/deploy-manifests.js";
import { namespaceFor } from "../../shared/domain/environment.js";
import { failure } from "../fakes/kubernetes-api.js";

const EXAMPLE = join(import.meta.dirname, "../../examples/projects");
const PROJECT = "flightjs/flight-management";
const REVIEW = "review/feature/booking-validation";
const NAMESPACE = namespaceFor(PROJECT, REVIEW);
const STAGING_NAMESPACE = namespaceFor(PROJECT, "staging");
const JOB_USER = `system:serviceaccount:${NAMESPACE}:kubler-ci-${DEPLOYER_NAME}`;
/** Added to the sample's manifests: the Role grants Secrets by name, and ServiceAccounts by kind. */
const DB_SECRET = "flight-management-db";

let runtime: LocalRuntime;
let dataDir: string;
let projects: string;
let manifestsDir: string;
let job: {
  core: k8s.CoreV1Api;
  apps: k8s.AppsV1Api;
  rbac: k8s.RbacAuthorizationV1Api;
  objects: k8s.KubernetesObjectApi;
  kc: k8s.KubeConfig;
};

function deployRequested(environment: string, pipelineId: number): Detail<"Deploy Requested"> {
  return {
    correlationId: `rbac-${pipelineId}`,
    gitlab: { instance: "https://gitlab.example.com", projectId: 2, projectPath: PROJECT },
    environment,
    sha: String(pipelineId).repeat(40).slice(0, 40),
    ref: environment === "staging" ? "main" : "feature/booking-validation",
    pipelineId,
    mrIid: null,
  };
}

/** `kubler credentials` as README runs it for the sample's review app. */
async function jobCredentials(format: "kubeconfig" | "json"): Promise<string> {
  const printed: string[] = [];
  const code = await credentialsCommand({
    url: runtime.url,
    dataDir,
    environment: REVIEW,
    format,
    claims: { project_path: PROJECT, project_id: "2", namespace_path: "flightjs" },
    print: (text) => printed.push(text),
  });
  expect(code, printed.join("\n")).toBe(0);
  return printed.join("\n");
}

beforeAll(async () => {
  dataDir = mkdtempSync(join(tmpdir(), "kubler-ci-rbac-"));
  projects = mkdtempSync(join(tmpdir(), "kubler-ci-rbac-projects-"));
  cpSync(EXAMPLE, projects, { recursive: true });
  manifestsDir = join(projects, PROJECT, "deploy");
  writeFileSync(
    join(manifestsDir, "secret.yaml"),
    `apiVersion: v1\nkind: Secret\nmetadata:\n  name: ${DB_SECRET}\ndata:\n  password: c2VjcmV0\n`,
  );
  writeFileSync(
    join(manifestsDir, "service-account.yaml"),
    "apiVersion: v1\nkind: ServiceAccount\nmetadata:\n  name: flight-management\n",
  );
  const registryAuth = join(dataDir, "registry.json");
  writeFileSync(
    registryAuth,
    JSON.stringify({ auths: { "registry.example.com": { auth: "cHVsbDpvbmx5" } } }),
  );
  const env = {
    PORT: "0",
    KUBLER_DATA_DIR: dataDir,
    KUBLER_PROJECTS_DIR: projects,
    KUBLER_REGISTRY_AUTH_FILE: registryAuth,
  };
  runtime = await startLocalRuntime(loadLocalConfig(env), {
    credentials: loadCredentialsConfig(env, { local: true }),
    simulatedRolloutMs: 0,
    onAudit: () => {},
    onError: () => {},
  });
  await runtime.bus.publish([
    { detailType: "Deploy Requested", detail: deployRequested(REVIEW, 101) },
    { detailType: "Deploy Requested", detail: deployRequested("staging", 102) },
  ]);
  await runtime.bus.drain();
  for (const namespace of [NAMESPACE, STAGING_NAMESPACE]) {
    const deployed = await runtime.environments.cluster.get({
      apiVersion: "v1",
      kind: "Namespace",
      name: namespace,
    });
    expect(deployed?.metadata.annotations?.["kubler.dev/status"], namespace).toBe("succeeded");
  }

  const kc = new k8s.KubeConfig();
  kc.loadFromString(await jobCredentials("kubeconfig"));
  job = {
    kc,
    core: kc.makeApiClient(k8s.CoreV1Api),
    apps: kc.makeApiClient(k8s.AppsV1Api),
    rbac: kc.makeApiClient(k8s.RbacAuthorizationV1Api),
    objects: k8s.KubernetesObjectApi.makeApiClient(kc),
  };
}, 30_000);

afterAll(async () => {
  await runtime?.close();
  rmSync(dataDir, { recursive: true, force: true });
  rmSync(projects, { recursive: true, force: true });
});

/** Server-side apply as `kubectl apply --server-side` does it: a PATCH to the object's URL. */
const apply = (object: k8s.KubernetesObject) =>
  job.objects.patch(object, undefined, undefined, "ci-job", true, k8s.PatchStrategy.ServerSideApply);

const mergePatch = k8s.setHeaderOptions("Content-Type", k8s.PatchStrategy.MergePatch);

/** The project's manifests as the job has them in its checkout, into its namespace. */
function projectManifests(): k8s.KubernetesObject[] {
  return readdirSync(manifestsDir)
    .sort()
    .map((file) => parse(readFileSync(join(manifestsDir, file), "utf8")) as k8s.KubernetesObject)
    .map((object) => {
      const text = JSON.stringify(object).replaceAll("{sha}", "ci");
      const copy = JSON.parse(text) as k8s.KubernetesObject;
      copy.metadata = { ...copy.metadata, namespace: NAMESPACE };
      return copy;
    });
}

/** A refusal must be RBAC's 403 for this job, naming the verb and resource it was refused. */
async function forbidden(call: Promise<unknown>, verb: string, resource: string, namespace = NAMESPACE) {
  const { code, status } = await failure(call);
  expect(code).toBe(403);
  expect(status).toMatchObject({ kind: "Status", status: "Failure", reason: "Forbidden", code: 403 });
  const scope = namespace ? `in the namespace "${namespace}"` : "at the cluster scope";
  expect(status.message).toContain(`is forbidden: User "${JOB_USER}" cannot ${verb} resource "${resource}"`);
  expect(status.message).toMatch(new RegExp(`${scope.replaceAll(/[.*+?^${}()|[\]\\]/g, "\\$&")}$`));
}

describe("README's local walkthrough on the embedded cluster", () => {
  it("the curl block lists the environment's Deployments with the job's token", async () => {
    const { kubernetes } = JSON.parse(await jobCredentials("json")) as {
      kubernetes: { server: string; namespace: string; token: string };
    };
    expect(kubernetes.namespace).toBe(NAMESPACE);
    const response = await fetch(
      `${kubernetes.server}/apis/apps/v1/namespaces/${kubernetes.namespace}/deployments`,
      {
        headers: { Authorization: `Bearer ${kubernetes.token}` },
      },
    );
    expect(response.status).toBe(200);
    const body = (await response.json()) as { items: { metadata: { name: string } }[] };
    expect(body.items.map((item) => item.metadata.name)).toContain("flight-management");
  });
});

describe("a CI job's Kubernetes token, as the Role Kubler writes allows it", () => {
  it("server-side applies every manifest of its project, the Secret it names included", async () => {
    for (const object of projectManifests()) {
      const applied = await apply(object);
      expect(applied.metadata?.namespace).toBe(NAMESPACE);
    }
    const deployment = (
      await runtime.environments.cluster.get({
        apiVersion: "apps/v1",
        kind: "Deployment",
        name: "flight-management",
        namespace: NAMESPACE,
      })
    )?.spec as { template: { spec: { containers: { image: string }[] } } };
    expect(deployment.template.spec.containers[0]?.image).toBe(
      "registry.example.com/flightjs/flight-management:ci",
    );
  });

  it("server-side applies NEW objects of the kinds its manifests contain, under names Kubler never saw", async () => {
    const worker = await apply({
      apiVersion: "apps/v1",
      kind: "Deployment",
      metadata: { name: "flight-management-worker", namespace: NAMESPACE },
      spec: {
        selector: { matchLabels: { app: "worker" } },
        template: {
          metadata: { labels: { app: "worker" } },
          spec: { containers: [{ name: "worker", image: "registry.example.com/flightjs/worker:ci" }] },
        },
      },
    } as k8s.KubernetesObject);
    expect(worker.metadata?.uid).toBeDefined();
    const settings = await apply({
      apiVersion: "v1",
      kind: "ConfigMap",
      metadata: { name: "flight-management-feature-flags", namespace: NAMESPACE },
      data: { BOOKING_VALIDATION: "on" },
    } as k8s.KubernetesObject);
    expect(settings.metadata?.uid).toBeDefined();
  });

  it("gets, lists and watches its Deployments (what kubectl rollout status and kubectl wait do)", async () => {
    const deployment = await job.apps.readNamespacedDeployment({
      name: "flight-management",
      namespace: NAMESPACE,
    });
    expect(deployment.metadata?.name).toBe("flight-management");
    const list = await job.apps.listNamespacedDeployment({ namespace: NAMESPACE });
    expect(list.items.map((item) => item.metadata?.name)).toContain("flight-management");
    // The embedded API serves no watch: an authorized watch gets its 405, a refused one RBAC's 403.
    const watchCode = (namespace: string) =>
      new Promise<number>((resolve, reject) => {
        new k8s.Watch(job.kc)
          .watch(
            `/apis/apps/v1/namespaces/${namespace}/deployments`,
            {},
            () => {},
            (error) => resolve((error as { statusCode?: number } | null)?.statusCode ?? 200),
          )
          .catch(reject);
      });
    expect(await watchCode(NAMESPACE)).toBe(405);
    expect(await watchCode(STAGING_NAMESPACE)).toBe(403);
  });

  it("creates a new Secret, and gets and patches the Secret the deployed revision names", async () => {
    const created = await job.core.createNamespacedSecret({
      namespace: NAMESPACE,
      body: { metadata: { name: "ci-made" }, stringData: { token: "x" } },
    });
    expect(created.metadata?.name).toBe("ci-made");
    const secret = await job.core.readNamespacedSecret({ name: DB_SECRET, namespace: NAMESPACE });
    expect(secret.data?.password).toBe("c2VjcmV0");
    const patched = await job.core.patchNamespacedSecret(
      { name: DB_SECRET, namespace: NAMESPACE, body: { metadata: { annotations: { rotated: "yes" } } } },
      mergePatch,
    );
    expect(patched.metadata?.annotations?.rotated).toBe("yes");
  });

  it("cannot list Secrets, nor read the registry pull secret or a Secret the revision does not name", async () => {
    await forbidden(job.core.listNamespacedSecret({ namespace: NAMESPACE }), "list", "secrets");
    await forbidden(
      job.core.listNamespacedSecret({
        namespace: NAMESPACE,
        fieldSelector: `metadata.name=${PULL_SECRET_NAME}`,
      }),
      "list",
      "secrets",
    );
    const pullSecret = await runtime.environments.cluster.get({
      apiVersion: "v1",
      kind: "Secret",
      name: PULL_SECRET_NAME,
      namespace: NAMESPACE,
    });
    expect(pullSecret, "the pull secret this test tries to read exists").toBeDefined();
    await forbidden(
      job.core.readNamespacedSecret({ name: PULL_SECRET_NAME, namespace: NAMESPACE }),
      "get",
      "secrets",
    );
    await forbidden(
      job.core.readNamespacedSecret({ name: "ci-made", namespace: NAMESPACE }),
      "get",
      "secrets",
    );
    // A new Secret by server-side apply is a PATCH on a name the Role does not list.
    await forbidden(
      apply({ apiVersion: "v1", kind: "Secret", metadata: { name: "ci-applied", namespace: NAMESPACE } }),
      "patch",
      "secrets",
    );
  });

  it("reads Kubler's own objects of the kinds its project ships, as README says it can", async () => {
    const record = await job.core.readNamespacedConfigMap({
      name: LAST_GOOD_CONFIGMAP,
      namespace: NAMESPACE,
    });
    expect(record.data?.["objects.json"]).toBeDefined();
    const deployer = await job.core.readNamespacedServiceAccount({
      name: DEPLOYER_NAME,
      namespace: NAMESPACE,
    });
    expect(deployer.metadata?.name).toBe(DEPLOYER_NAME);
  });

  it("cannot replace (PUT) an object nor write a rollout's status: its verbs are apply's and rollout's", async () => {
    const current = await job.apps.readNamespacedDeployment({
      name: "flight-management",
      namespace: NAMESPACE,
    });
    await forbidden(
      job.apps.replaceNamespacedDeployment({
        name: "flight-management",
        namespace: NAMESPACE,
        body: current,
      }),
      "update",
      "deployments",
    );
    // A job that could write status could tell Kubler's rollout wait that a broken revision is available.
    await forbidden(
      job.apps.patchNamespacedDeploymentStatus(
        { name: "flight-management", namespace: NAMESPACE, body: { status: { availableReplicas: 2 } } },
        mergePatch,
      ),
      "patch",
      "deployments/status",
    );
  });

  it("cannot delete anything, not even what it may apply", async () => {
    await forbidden(
      job.apps.deleteNamespacedDeployment({ name: "flight-management", namespace: NAMESPACE }),
      "delete",
      "deployments",
    );
    await forbidden(
      job.apps.deleteCollectionNamespacedDeployment({ namespace: NAMESPACE }),
      "deletecollection",
      "deployments",
    );
    await forbidden(
      job.core.deleteNamespacedConfigMap({ name: LAST_GOOD_CONFIGMAP, namespace: NAMESPACE }),
      "delete",
      "configmaps",
    );
    await forbidden(job.core.deleteNamespace({ name: NAMESPACE }), "delete", "namespaces");
  });

  it("cannot touch RBAC, nor mint a token for another ServiceAccount", async () => {
    await forbidden(
      job.rbac.createNamespacedRoleBinding({
        namespace: NAMESPACE,
        body: {
          metadata: { name: "escalate" },
          roleRef: { apiGroup: "rbac.authorization.k8s.io", kind: "Role", name: DEPLOYER_NAME },
          subjects: [{ kind: "ServiceAccount", name: "default", namespace: NAMESPACE }],
        },
      }),
      "create",
      "rolebindings",
    );
    await forbidden(
      job.rbac.patchNamespacedRole(
        { name: DEPLOYER_NAME, namespace: NAMESPACE, body: { rules: [] } },
        mergePatch,
      ),
      "patch",
      "roles",
    );
    await forbidden(job.rbac.listNamespacedRoleBinding({ namespace: NAMESPACE }), "list", "rolebindings");
    await forbidden(
      job.core.createNamespacedServiceAccountToken({
        name: DEPLOYER_NAME,
        namespace: NAMESPACE,
        body: { spec: { audiences: ["kubler"] } },
      }),
      "create",
      "serviceaccounts/token",
    );
  });

  it("cannot reach another environment's namespace, kube-system, or anything cluster-wide", async () => {
    await forbidden(
      job.apps.readNamespacedDeployment({ name: "flight-management", namespace: STAGING_NAMESPACE }),
      "get",
      "deployments",
      STAGING_NAMESPACE,
    );
    await forbidden(
      job.apps.listNamespacedDeployment({ namespace: STAGING_NAMESPACE }),
      "list",
      "deployments",
      STAGING_NAMESPACE,
    );
    await forbidden(
      apply({
        apiVersion: "v1",
        kind: "ConfigMap",
        metadata: { name: "flight-management", namespace: STAGING_NAMESPACE },
        data: { LOG_LEVEL: "debug" },
      } as k8s.KubernetesObject),
      "patch",
      "configmaps",
      STAGING_NAMESPACE,
    );
    await forbidden(
      job.core.listNamespacedConfigMap({ namespace: "kube-system" }),
      "list",
      "configmaps",
      "kube-system",
    );
    await forbidden(job.apps.listDeploymentForAllNamespaces(), "list", "deployments", "");
    await forbidden(job.core.listNamespace(), "list", "namespaces", "");
  });

  it("cannot apply a kind its manifests do not contain", async () => {
    await forbidden(
      apply({
        apiVersion: "batch/v1",
        kind: "Job",
        metadata: { name: "migrate", namespace: NAMESPACE },
        spec: {
          template: {
            spec: {
              restartPolicy: "Never",
              containers: [{ name: "migrate", image: "registry.example.com/m:1" }],
            },
          },
        },
      } as k8s.KubernetesObject),
      "patch",
      "jobs",
    );
  });
});
