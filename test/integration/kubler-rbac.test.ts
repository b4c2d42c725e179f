/**
 * The least-privilege rights README tells operators to give Kubler (examples/kubernetes/kubler-rbac.yaml)
 * are enough, and no more than its flows need: the shipped file is parsed and applied to the embedded
 * Kubernetes API, which enforces RBAC and its escalation check for the ServiceAccount tokens it issues;
 * a ServiceAccount is bound by the file's own bindings, and Kubler's real adapter, loaded from a
 * KUBECONFIG file holding that account's token, runs deploys (first, pruned, rolled back), a build,
 * job credentials, a stop, the expiry sweep and reconcile. Nothing may be refused. And a rule taken out
 * of the file makes the flow that needs it fail with the API server's 403.
 */
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, afterEach, beforeAll, describe, expect, it, vi } from "vitest";
import { parseAllDocuments } from "yaml";
import { createJobCredentialsApp } from "../../functions/job-credentials/app.js";
import { createKubernetesCluster, type KubernetesCluster } from "../../shared/adapters/kubernetes-cluster.js";
import type { IssuedCredentials } from "../../shared/domain/credentials-output.js";
import {
  DEPLOYABLE_KINDS,
  DEPLOYER_NAME,
  LAST_GOOD_CONFIGMAP,
  roleRulesFor,
} from "../../shared/domain/deploy-manifests.js";
import { environmentNamespace, namespaceFor } from "../../shared/domain/environment.js";
import type { KubeObject } from "../../shared/domain/kube-object.js";
import { gitlabIdTokenClaims, LocalOidcIssuer } from "../../shared/local/local-oidc-issuer.js";
import {
  MEMORY_TOKEN,
  type MemoryKubernetes,
  startMemoryKubernetes,
} from "../../shared/local/memory-kubernetes/index.js";
import { type PolicyRule, uncoveredRules } from "../../shared/local/memory-kubernetes/rbac.js";
import { buildImage } from "../../shared/services/build-image.js";
import { stopEnvironment, sweepExpiredEnvironments } from "../../shared/services/cleanup-environments.js";
import { deployEnvironment } from "../../shared/services/deploy-environment.js";
import { reconcileBuilds } from "../../shared/services/reconcile-builds.js";
import { reconcileEnvironments } from "../../shared/services/reconcile-environments.js";
import {
  BUILDS_NAMESPACE,
  createBuildSecrets,
  EXAMPLE_BUILD_MANIFESTS,
  EXAMPLE_FAILING_SHA,
  exampleBuildRequest,
  GIT_SECRET,
  REGISTRY_SECRET,
  untilJobFinished,
} from "../fakes/build-deps.js";
import { cleanupTestDeps, stopRequested } from "../fakes/cleanup-deps.js";
import {
  deployRequested,
  deployTestDeps,
  ENVIRONMENT,
  exampleProject,
  NAMESPACE,
  PROJECT,
  SHA_2,
} from "../fakes/deploy-deps.js";
import { FixedClock, RecordingAuditLog, RecordingPublisher, sequentialIds } from "../fakes/index.js";
import { jobCredentialsTestDeps } from "../fakes/job-credentials-deps.js";
import { startJwksServer } from "../fakes/jwks-server.js";
import { environmentState } from "../fakes/managed-environment.js";

const RBAC_FILE = join(import.meta.dirname, "../../examples/kubernetes/kubler-rbac.yaml");
const RBAC = "rbac.authorization.k8s.io";
/** Where Kubler's own identity lives in the test cluster: an EKS access entry stands for it in AWS. */
const KUBLER = { namespace: "kubler-system", serviceAccount: "kubler" };
const SHA_3 = "3".repeat(40);

/** Every object of the shipped file, as kubectl apply -f reads it. */
function shippedObjects(): KubeObject[] {
  return parseAllDocuments(readFileSync(RBAC_FILE, "utf8"))
    .map((document) => document.toJS() as KubeObject | null)
    .filter((object): object is KubeObject => object !== null);
}

function clusterRoleRules(objects: KubeObject[]): PolicyRule[] {
  const role = objects.find((o) => o.kind === "ClusterRole" && o.metadata.name === "kubler-control-plane");
  return (role?.rules ?? []) as PolicyRule[];
}

interface KublerCluster {
  k8s: MemoryKubernetes;
  /** The cluster's admin: sets up what an operator would, and reads what Kubler did. */
  admin: KubernetesCluster;
  /** Kubler's real adapter, authenticated as the ServiceAccount the shipped bindings bind. */
  kubler: KubernetesCluster;
  close(): Promise<void>;
}

/**
 * The embedded API with the file's objects applied (`edit` may change them first, as an operator's
 * narrower copy would), a ServiceAccount added to each of its bindings' subjects (its Group stays
 * there), and Kubler's adapter loaded from a KUBECONFIG file with that account's token.
 */
async function startAsKubler(edit: (objects: KubeObject[]) => void = () => {}): Promise<KublerCluster> {
  const k8s = await startMemoryKubernetes({
    rolloutDelayMs: 0,
    namespaceFinalizeMs: 5,
    jobDelayMs: 0,
    failJob: (job) =>
      job.metadata.namespace === BUILDS_NAMESPACE &&
      job.metadata.labels?.["kubler.dev/sha"] === EXAMPLE_FAILING_SHA,
  });
  const admin = createKubernetesCluster({ kubeconfig: k8s.kubeconfig, sleep: async () => {} });
  const objects = shippedObjects();
  edit(objects);
  await admin.apply({ apiVersion: "v1", kind: "Namespace", metadata: { name: KUBLER.namespace } });
  await admin.apply({
    apiVersion: "v1",
    kind: "ServiceAccount",
    metadata: { name: KUBLER.serviceAccount, namespace: KUBLER.namespace },
  });
  for (const object of objects) {
    const isBinding = object.kind === "ClusterRoleBinding" || object.kind === "RoleBinding";
    const subjects = [
      ...((object.subjects as unknown[] | undefined) ?? []),
      { kind: "ServiceAccount", name: KUBLER.serviceAccount, namespace: KUBLER.namespace },
    ];
    await admin.apply(isBinding ? { ...object, subjects } : object);
  }
  const { token } = await admin.createToken(
    { namespace: KUBLER.namespace, serviceAccount: KUBLER.serviceAccount },
    { audiences: [], expirationSeconds: 3600 },
  );
  const dir = mkdtempSync(join(tmpdir(), "kubler-rbac-"));
  const kubeconfig = join(dir, "kubeconfig");
  writeFileSync(kubeconfig, k8s.kubeconfig.replace(`token: ${MEMORY_TOKEN}`, `token: ${token}`), {
    mode: 0o600,
  });
  const kubler = createKubernetesCluster({ env: { KUBECONFIG: kubeconfig }, sleep: async () => {} });
  return {
    k8s,
    admin,
    kubler,
    async close() {
      kubler.close();
      admin.close();
      await k8s.close();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

/** A Deployment-less StatefulSet, a Job, a Secret and a ServiceAccount beside the example's ConfigMap, Deployment and Service. */
const EXTRA_MANIFESTS: Record<string, string> = {
  "statefulset.yaml": `apiVersion: apps/v1
kind: StatefulSet
metadata:
  name: cache
spec:
  serviceName: cache
  replicas: 1
  selector:
    matchLabels: { app: cache }
  template:
    metadata:
      labels: { app: cache }
    spec:
      containers:
        - name: cache
          image: redis:7
`,
  "migrate.yaml": `apiVersion: batch/v1
kind: Job
metadata:
  name: migrate
spec:
  template:
    spec:
      restartPolicy: Never
      containers:
        - name: migrate
          image: registry.example.com/flightjs/flight-management:{sha}
`,
  "secret.yaml": `apiVersion: v1
kind: Secret
metadata:
  name: flight-management-db
stringData:
  password: not-a-real-one
`,
  "service-account.yaml": `apiVersion: v1
kind: ServiceAccount
metadata:
  name: flight-management
`,
};

/** Whatever any audit line says, none may be a refusal of Kubler's own identity. */
function refusals(...audits: RecordingAuditLog[]): string[] {
  return audits
    .flatMap((audit) => audit.records)
    .map((record) => JSON.stringify(record))
    .filter((line) => /forbidden|\b403\b|cannot (get|list|create|patch|delete|watch)/i.test(line));
}

describe("examples/kubernetes/kubler-rbac.yaml", () => {
  it("holds every rule a deployer Role can be written with, so no deploy needs escalate", () => {
    const everyKind = Object.entries(DEPLOYABLE_KINDS).map(([kind, { group }]) => ({
      apiVersion: group ? `${group}/v1` : "v1",
      kind,
      metadata: { name: `a-${kind.toLowerCase()}` },
    }));
    const held = clusterRoleRules(shippedObjects());
    expect(uncoveredRules(held, roleRulesFor(everyKind))).toEqual([]);
    // And delete on each kind: prune and rollback remove what a revision dropped.
    const deletes = Object.values(DEPLOYABLE_KINDS).map(({ group, resource }) => ({
      apiGroups: [group],
      resources: [resource],
      verbs: ["delete", "list"],
    }));
    expect(uncoveredRules(held, deletes)).toEqual([]);
    // No wildcard, and neither escalate, bind nor impersonate anywhere in the file.
    const rules = shippedObjects().flatMap((o) => (o.rules ?? []) as PolicyRule[]);
    for (const rule of rules) {
      expect([...rule.verbs, ...(rule.resources ?? []), ...(rule.apiGroups ?? [])]).not.toContain("*");
      expect(rule.verbs.filter((verb) => ["escalate", "bind", "impersonate"].includes(verb))).toEqual([]);
    }
  });
});

describe("Kubler's flows as an identity bound by kubler-rbac.yaml alone", () => {
  let bed: KublerCluster;
  let projects: string;
  let jwks: Awaited<ReturnType<typeof startJwksServer>>;
  const key = LocalOidcIssuer.generate("kid-rbac");
  const audits: RecordingAuditLog[] = [];

  beforeAll(async () => {
    bed = await startAsKubler();
    jwks = await startJwksServer([key]);
  });
  afterAll(async () => {
    await jwks.close();
    await bed.close();
    if (projects) rmSync(projects, { recursive: true, force: true });
  });

  it("deploys, prunes, rolls back, builds, mints job credentials, stops, sweeps and reconciles: nothing refused", async () => {
    const { k8s, admin, kubler } = bed;
    const setup = deployTestDeps(k8s, "kubler-rbac-projects-");
    projects = setup.projects;
    const deps = { ...setup.deps, cluster: kubler, pullSecret: async () => '{"auths":{}}' };
    audits.push(deps.audit);
    const project = exampleProject(projects, PROJECT);
    for (const [name, text] of Object.entries(EXTRA_MANIFESTS)) project.addManifest(name, text);
    const manifest = join(projects, PROJECT, "kubler.yaml");
    writeFileSync(manifest, readFileSync(manifest, "utf8").replace("deploy/\n", "deploy/\n  prune: true\n"));

    // A first deploy: namespace, pull secret, deployer RBAC (its Role written under the escalation
    // check), every manifest created, rollouts followed, the last good record written.
    const first = await deployEnvironment(deps, deployRequested());
    expect(first).toMatchObject({ kind: "succeeded", reason: null });
    const role = await admin.get({
      apiVersion: `${RBAC}/v1`,
      kind: "Role",
      name: DEPLOYER_NAME,
      namespace: NAMESPACE,
    });
    expect(role?.rules).toContainEqual(
      expect.objectContaining({ apiGroups: ["apps"], verbs: expect.arrayContaining(["watch"]) }),
    );

    // A second revision drops the StatefulSet: pruned once rolled out. The Job's template changed
    // with the commit: replaced (deleted, created again).
    project.dropManifest("statefulset.yaml");
    const second = await deployEnvironment(deps, deployRequested({ sha: SHA_2, pipelineId: 101 }));
    expect(second).toMatchObject({ kind: "succeeded" });
    expect(second.kind !== "ignored" && second.reason).toContain("pruned");
    expect(
      await admin.get({ apiVersion: "apps/v1", kind: "StatefulSet", name: "cache", namespace: NAMESPACE }),
    ).toBeNull();

    // A third whose rollout fails, adding a ConfigMap: rolled back to the second, the ConfigMap removed.
    project.setRollout("fail");
    project.addManifest(
      "extra.yaml",
      "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: extra\ndata: { a: b }\n",
    );
    const third = await deployEnvironment(deps, deployRequested({ sha: SHA_3, pipelineId: 102 }));
    expect(third).toMatchObject({ kind: "rolled_back" });
    expect(
      await admin.get({ apiVersion: "v1", kind: "ConfigMap", name: "extra", namespace: NAMESPACE }),
    ).toBeNull();
    expect(
      await admin.get({
        apiVersion: "v1",
        kind: "ConfigMap",
        name: LAST_GOOD_CONFIGMAP,
        namespace: NAMESPACE,
      }),
    ).not.toBeNull();
    project.setRollout("ok");
    project.dropManifest("extra.yaml");

    // A build: its Secrets checked, the Job created, read until it ends, its pods listed for the
    // digest, a failed one's log read, Kubler's finalizer removed once reported.
    await createBuildSecrets(admin);
    const buildAudit = new RecordingAuditLog();
    audits.push(buildAudit);
    const publisher = new RecordingPublisher();
    const clock = new FixedClock();
    const buildDeps = {
      cluster: kubler,
      manifests: EXAMPLE_BUILD_MANIFESTS,
      publisher,
      audit: buildAudit,
      clock,
      settings: {
        namespace: BUILDS_NAMESPACE,
        gitSecret: GIT_SECRET,
        registrySecret: REGISTRY_SECRET,
        images: null,
      },
    };
    const built = await buildImage(buildDeps, exampleBuildRequest());
    const failed = await buildImage(
      buildDeps,
      exampleBuildRequest({ sha: EXAMPLE_FAILING_SHA, correlationId: "c-2" }),
    );
    expect(built).toMatchObject({ kind: "created" });
    expect(failed).toMatchObject({ kind: "created" });
    const jobs = [built, failed].map((outcome) => ("job" in outcome ? outcome.job : ""));
    for (const job of jobs) await untilJobFinished(k8s, BUILDS_NAMESPACE, job);
    const report = await reconcileBuilds({
      cluster: kubler,
      publisher,
      audit: buildAudit,
      clock,
      namespace: BUILDS_NAMESPACE,
    });
    expect(report.skipped).toEqual([]);
    expect(report.reported.map((line) => line.replace(/^.* → /, ""))).toEqual(
      expect.arrayContaining(["review/feature-x: succeeded", "review/feature-x: failed"]),
    );
    const reasons = publisher.entries.map((entry) => (entry.detail as { reason?: string }).reason ?? "");
    expect(reasons.join("\n")).toContain("simulated");
    for (const job of jobs) {
      const read = await admin.get({
        apiVersion: "batch/v1",
        kind: "Job",
        name: job,
        namespace: BUILDS_NAMESPACE,
      });
      expect(read?.metadata.finalizers ?? []).toEqual([]);
    }

    // Job credentials: the job's ServiceAccount applied, bound to kubler-deployer, a token minted.
    const credentials = jobCredentialsTestDeps(
      jwks.url,
      `rules:\n  - name: review-apps\n    match: { project_path: "${PROJECT}", environment: "review/*" }\n    kubernetes: { namespace: environment, role: ${DEPLOYER_NAME} }\n`,
      kubler,
    );
    audits.push(credentials.audit);
    const bearer = key.sign(
      gitlabIdTokenClaims(
        { iss: jwks.url, aud: "kubler", now: credentials.clock.now() },
        { project_id: "2", project_path: PROJECT, namespace_path: "flightjs", environment: ENVIRONMENT },
      ),
    );
    const minted = await createJobCredentialsApp(credentials).request("/v1/credentials", {
      method: "POST",
      headers: { authorization: `Bearer ${bearer}`, "content-type": "application/json" },
    });
    expect(minted.status, await minted.clone().text()).toBe(200);
    expect(((await minted.json()) as IssuedCredentials).kubernetes).toMatchObject({
      namespace: NAMESPACE,
      serviceAccount: `kubler-ci-${DEPLOYER_NAME}`,
      token: expect.any(String),
    });

    // Reconcile: a rollout past its deadline is marked failed (a write of its namespace).
    const stuck = namespaceFor(PROJECT, "review/stuck");
    await admin.apply(
      environmentNamespace(
        environmentState({
          namespace: stuck,
          gitlab: { instance: "https://gitlab.example.com", projectId: 2, projectPath: PROJECT },
          environment: "review/stuck",
          status: "deploying",
          ttl: "72h",
          expiresAt: new Date("2026-11-24T10:00:00Z"),
          rolloutDeadline: new Date("2026-11-21T09:00:00Z"),
        }),
      ),
    );
    const reconcileDeps = {
      cluster: kubler,
      publisher: new RecordingPublisher(),
      audit: new RecordingAuditLog(),
      clock: new FixedClock(new Date("2026-11-21T10:00:00Z")),
      newId: sequentialIds("r"),
    };
    audits.push(reconcileDeps.audit);
    const reconciled = await reconcileEnvironments(reconcileDeps);
    expect(reconciled.rolloutsFailed).toContain(stuck);
    expect(reconciled.skipped).toEqual([]);

    // The merge request's stop: the stop hold left (its finalizer), the namespace deleted, then let go.
    const stopDeps = cleanupTestDeps(kubler, new Date("2026-11-21T11:00:00Z"));
    audits.push(stopDeps.audit);
    const stopped = await stopEnvironment(stopDeps, stopRequested({ environment: ENVIRONMENT }));
    expect(stopped).toMatchObject({ kind: "deleted", namespace: NAMESPACE });
    expect(stopDeps.audit.last()?.reason).not.toContain("not held");
    await vi.waitFor(async () =>
      expect(await admin.get({ apiVersion: "v1", kind: "Namespace", name: NAMESPACE })).toBeNull(),
    );

    // The expiry sweep, days later: the stuck environment (72h) is past its expiry, and deleted.
    const sweepDeps = cleanupTestDeps(kubler, new Date("2026-12-01T10:00:00Z"));
    audits.push(sweepDeps.audit);
    const sweep = await sweepExpiredEnvironments(sweepDeps, { newId: sequentialIds("s") });
    expect(sweep.failed).toEqual([]);
    expect(sweep.deleted.map((item) => item.namespace)).toEqual([stuck]);

    expect(refusals(...audits)).toEqual([]);
  });
});

describe("a rule taken out of kubler-rbac.yaml fails the flow that needs it, with the API server's 403", () => {
  let bed: KublerCluster | undefined;
  let projects: string | undefined;
  afterEach(async () => {
    await bed?.close();
    if (projects) rmSync(projects, { recursive: true, force: true });
  });

  /** The ClusterRole's rule on `resource` without `verb`. */
  const without =
    (resource: string, verb: string) =>
    (objects: KubeObject[]): void => {
      const rule = clusterRoleRules(objects).find((r) => r.resources?.includes(resource));
      if (!rule) throw new Error(`no rule on ${resource} in the shipped file`);
      (rule as { verbs: string[] }).verbs = rule.verbs.filter((v) => v !== verb);
    };

  it("without delete on namespaces, a stop is refused: cannot delete namespaces", async () => {
    bed = await startAsKubler(without("namespaces", "delete"));
    const setup = deployTestDeps(bed.k8s, "kubler-rbac-narrow-");
    projects = setup.projects;
    expect(await deployEnvironment({ ...setup.deps, cluster: bed.kubler }, deployRequested())).toMatchObject({
      kind: "succeeded",
    });
    const stopDeps = cleanupTestDeps(bed.kubler, new Date("2026-11-21T11:00:00Z"));
    await expect(stopEnvironment(stopDeps, stopRequested({ environment: ENVIRONMENT }))).rejects.toThrow(
      `namespaces "${NAMESPACE}" is forbidden: User "system:serviceaccount:${KUBLER.namespace}:${KUBLER.serviceAccount}" cannot delete resource "namespaces" in API group "" in the namespace "${NAMESPACE}"`,
    );
    expect(await bed.admin.get({ apiVersion: "v1", kind: "Namespace", name: NAMESPACE })).not.toBeNull();
  });

  it("without watch on Deployments, the deployer Role Kubler writes is an escalation: the deploy is refused", async () => {
    bed = await startAsKubler(without("deployments", "watch"));
    const setup = deployTestDeps(bed.k8s, "kubler-rbac-narrow-");
    projects = setup.projects;
    await expect(
      deployEnvironment({ ...setup.deps, cluster: bed.kubler }, deployRequested()),
    ).rejects.toThrow(
      /roles\.rbac\.authorization\.k8s\.io "kubler-deployer" is forbidden: user ".*" \(groups=.*\) is attempting to grant RBAC permissions not currently held:\n\{APIGroups:\["apps"\], Resources:\["deployments"\], Verbs:\["watch"\]\}/,
    );
  });
});
