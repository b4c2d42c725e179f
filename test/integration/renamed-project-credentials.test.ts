/**
 * Job credentials for a renamed or moved project: the ID token names the project by its new path,
 * the environment's namespace keeps the name from the old one. POST /v1/credentials in-process with
 * the jose verifier against a served JWKS and the embedded Kubernetes API through the real adapter.
 */
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from "vitest";
import { createJobCredentialsApp } from "../../functions/job-credentials/app.js";
import { createKubernetesCluster, type KubernetesCluster } from "../../shared/adapters/kubernetes-cluster.js";
import type { IssuedCredentials } from "../../shared/domain/credentials-output.js";
import { namespaceFor } from "../../shared/domain/environment.js";
import { gitlabIdTokenClaims, LocalOidcIssuer } from "../../shared/local/local-oidc-issuer.js";
import { type MemoryKubernetes, startMemoryKubernetes } from "../../shared/local/memory-kubernetes/index.js";
import { type JobCredentialsTestDeps, jobCredentialsTestDeps } from "../fakes/job-credentials-deps.js";
import { startJwksServer } from "../fakes/jwks-server.js";
import { seedManagedEnvironment } from "../fakes/managed-environment.js";

const OLD_PATH = "group/app";
const NEW_PATH = "platform/app";
const PROJECT_ID = 15;
const REVIEW = "review/feature-x";
const OLD_NAMESPACE = namespaceFor(OLD_PATH, REVIEW);
const NEW_NAMESPACE = namespaceFor(NEW_PATH, REVIEW);

const key = LocalOidcIssuer.generate("kid-1");
let jwks: Awaited<ReturnType<typeof startJwksServer>>;
let k8s: MemoryKubernetes;
let cluster: KubernetesCluster;
let deps: JobCredentialsTestDeps;

beforeAll(async () => {
  jwks = await startJwksServer([key]);
});
afterAll(() => jwks.close());

beforeEach(async () => {
  k8s = await startMemoryKubernetes();
  cluster = createKubernetesCluster({ kubeconfig: k8s.kubeconfig, sleep: async () => {} });
  deps = jobCredentialsTestDeps(
    jwks.url,
    `
rules:
  - name: review-apps
    match: { project_id: [15, 16], environment: "review/*" }
    kubernetes: { namespace: environment, role: kubler-deployer }
`,
    cluster,
  );
  // Deployed while the project was group/app.
  await seedManagedEnvironment(cluster, {
    namespace: OLD_NAMESPACE,
    gitlab: { instance: jwks.url, projectId: PROJECT_ID, projectPath: OLD_PATH },
    environment: REVIEW,
  });
});
afterEach(async () => {
  cluster.close();
  await k8s.close();
});

function post(overrides: Record<string, unknown>) {
  const bearer = key.sign(
    gitlabIdTokenClaims(
      { iss: jwks.url, aud: "kubler", now: deps.clock.now() },
      { project_id: String(PROJECT_ID), environment: REVIEW, ...overrides },
    ),
  );
  return createJobCredentialsApp(deps).request("/v1/credentials", {
    method: "POST",
    headers: { authorization: `Bearer ${bearer}`, "content-type": "application/json" },
  });
}

describe("job credentials after the project was renamed", () => {
  it("are for the environment's namespace, named from the old path, and audited as found by identity", async () => {
    const response = await post({ project_path: NEW_PATH, namespace_path: "platform" });

    expect(response.status).toBe(200);
    const body = (await response.json()) as IssuedCredentials;
    expect(body.kubernetes).toMatchObject({
      namespace: OLD_NAMESPACE,
      serviceAccount: "kubler-ci-kubler-deployer",
    });
    const account = await cluster.get({
      apiVersion: "v1",
      kind: "ServiceAccount",
      name: "kubler-ci-kubler-deployer",
      namespace: OLD_NAMESPACE,
    });
    expect(account).not.toBeNull();
    expect(await cluster.get({ apiVersion: "v1", kind: "Namespace", name: NEW_NAMESPACE })).toBeNull();
    expect(deps.audit.last()).toMatchObject({
      outcome: "allow",
      subject: {
        project: NEW_PATH,
        namespace: OLD_NAMESPACE,
        namespaceResolved: expect.stringContaining(
          `no namespace ${NEW_NAMESPACE} for the project's path ${NEW_PATH}`,
        ),
      },
    });
  });

  it("under the old path (a job of a pipeline from before the rename): the fast path, nothing looked up", async () => {
    k8s.stats.reset();
    const response = await post({ project_path: OLD_PATH, namespace_path: "group" });

    expect(response.status).toBe(200);
    expect(((await response.json()) as IssuedCredentials).kubernetes?.namespace).toBe(OLD_NAMESPACE);
    expect(deps.audit.last()?.subject).not.toHaveProperty("namespaceResolved");
    // Two reads: the namespace once (the lookup's read serves the namespace check), the Role; no list.
    expect(k8s.stats.byVerb).toMatchObject({ get: 2 });
    expect(k8s.stats.byVerb).not.toHaveProperty("list");
  });

  it("for another project id under the new path: no namespace, 403, nothing minted", async () => {
    const response = await post({ project_path: NEW_PATH, project_id: "16" });

    expect(response.status).toBe(403);
    expect(((await response.json()) as { message: string }).message).toBe(
      `namespace ${NEW_NAMESPACE} does not exist: Kubler creates an environment's namespace when it first deploys it`,
    );
    const account = await cluster.get({
      apiVersion: "v1",
      kind: "ServiceAccount",
      name: "kubler-ci-kubler-deployer",
      namespace: OLD_NAMESPACE,
    });
    expect(account).toBeNull();
  });
});
