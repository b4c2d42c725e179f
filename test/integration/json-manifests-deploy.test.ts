/**
 * A project whose manifests are `.json`, as `kubectl get -o json` writes them and `kubectl apply -f
 * dir/` applies them: deployed from the local projects directory and from GitLab, through the real
 * Kubernetes adapter over HTTP to the embedded API, as the other deploy tests. They were skipped
 * without a word, so the Deployment never reached the cluster.
 */
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { parse } from "yaml";
import { GitlabManifestSource } from "../../shared/adapters/gitlab-manifest-source.js";
import { deployEnvironment } from "../../shared/services/deploy-environment.js";
import { deployRequested, NAMESPACE, PROJECT, SHA_1, useDeployCluster } from "../fakes/deploy-deps.js";
import { type FakeGitlab, startFakeGitlab } from "../fakes/gitlab-server.js";

const TOKEN = "glpat-json-manifests-0123456789";
const EXAMPLE = join(import.meta.dirname, "../../examples/projects", PROJECT);
const example = (path: string) => readFileSync(join(EXAMPLE, path), "utf8");
/** The sample's Deployment as `kubectl get -o json` would write it. */
const DEPLOYMENT_JSON = `${JSON.stringify(parse(example("deploy/deployment.yaml")), null, 4)}\n`;
const BROKEN_JSON =
  '{\n    "apiVersion": "v1",\n    "kind": "ConfigMap"\n    "metadata": {"name": "extra"}\n}\n';
const BROKEN_REASON = `deploy/broken.json: not valid JSON: expected ',' or '}', found "\\"" at line 4, column 5`;

const env = useDeployCluster("kubler-json-manifests-");

/** The deployed Deployment's first image and Kubler's labels, or undefined when it was not applied. */
function deployed() {
  const object = env.k8s.store.get("apps/v1", "Deployment", NAMESPACE, "flight-management") as
    | {
        metadata: { labels: Record<string, string> };
        spec: { template: { spec: { containers: { image: string }[] } } };
      }
    | undefined;
  if (!object) return undefined;
  return {
    image: object.spec.template.spec.containers[0]?.image,
    managedBy: object.metadata.labels["app.kubernetes.io/managed-by"],
  };
}

describe("a .json Deployment in the local projects directory", () => {
  it("is deployed, its rollout followed, as the same YAML is", async () => {
    env.files.dropManifest("deployment.yaml");
    env.files.addManifest("deployment.json", DEPLOYMENT_JSON);

    const outcome = await deployEnvironment(env.deps, deployRequested());

    expect(outcome).toMatchObject({ kind: "succeeded" });
    expect(deployed()).toEqual({
      image: `registry.example.com/flightjs/flight-management:${SHA_1}`,
      managedBy: "kubler",
    });
    expect(env.k8s.store.get("v1", "Service", NAMESPACE, "flight-management")).toBeDefined();
  });

  it("fails the deploy when one is not valid JSON, naming the file, line and column, applying nothing", async () => {
    env.files.addManifest("broken.json", BROKEN_JSON);

    const outcome = await deployEnvironment(env.deps, deployRequested());

    expect(outcome).toMatchObject({ kind: "failed", reason: expect.stringContaining(BROKEN_REASON) });
    expect(env.deps.audit.last()).toMatchObject({
      outcome: "failure",
      reason: expect.stringContaining(BROKEN_REASON),
    });
    expect(env.k8s.store.get("v1", "Namespace", undefined, NAMESPACE)).toBeUndefined();
  });
});

describe("a .json Deployment in a GitLab repository", () => {
  let gitlab: FakeGitlab;

  beforeAll(async () => {
    gitlab = await startFakeGitlab({ token: TOKEN });
  });
  afterAll(() => gitlab.close());

  /** The sample project at `sha` in GitLab, its Deployment in JSON, plus `extra` files. */
  function commit(sha: string, extra: Record<string, string> = {}) {
    gitlab.commit(2, sha, {
      "kubler.yaml": example("kubler.yaml"),
      "deploy/config.yaml": example("deploy/config.yaml"),
      "deploy/deployment.json": DEPLOYMENT_JSON,
      "deploy/service.yaml": example("deploy/service.yaml"),
      ...extra,
    });
    env.deps.manifests = new GitlabManifestSource({ baseUrl: gitlab.url, token: async () => TOKEN });
  }

  it("is read through the GitLab API and deployed", async () => {
    commit(SHA_1);

    const outcome = await deployEnvironment(env.deps, deployRequested());

    expect(outcome).toMatchObject({ kind: "succeeded" });
    expect(deployed()).toEqual({
      image: `registry.example.com/flightjs/flight-management:${SHA_1}`,
      managedBy: "kubler",
    });
    const reads = gitlab.requests.filter((request) => request.path.endsWith("/raw")).map((r) => r.path);
    expect(reads).toContain("/projects/2/repository/files/deploy/deployment.json/raw");
  });

  it("fails the deploy when one is not valid JSON, naming the file, line and column", async () => {
    const sha = "3".repeat(40);
    commit(sha, { "deploy/broken.json": BROKEN_JSON });

    const outcome = await deployEnvironment(env.deps, deployRequested({ sha }));

    expect(outcome).toMatchObject({ kind: "failed", reason: expect.stringContaining(BROKEN_REASON) });
    expect(env.k8s.store.get("v1", "Namespace", undefined, NAMESPACE)).toBeUndefined();
  });
});
