/**
 * A deploy's GitLab reads (kubler.yaml, the manifests directory) are held to the deadline its
 * Kubernetes calls share (`KubernetesCluster.withDeadline`, as the Lambda handler runs it): a GitLab
 * that does not answer ends the attempt as a clear, audited failure thrown back to the bus, instead of
 * the read running the Lambda past its timeout. The real GitLab adapter against a fake GitLab whose
 * chosen requests hang; the real Kubernetes adapter against the embedded API.
 */
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { afterAll, beforeAll, beforeEach, describe, expect, it } from "vitest";
import { createDeployEnvironmentConsumer } from "../../functions/deploy-environment/consumer.js";
import { GitlabManifestSource } from "../../shared/adapters/gitlab-manifest-source.js";
import { createKubernetesCluster, type KubernetesCluster } from "../../shared/adapters/kubernetes-cluster.js";
import { sourceOf } from "../../shared/domain/catalog.js";
import { namespaceFor } from "../../shared/domain/environment.js";
import { type MemoryKubernetes, startMemoryKubernetes } from "../../shared/local/memory-kubernetes/index.js";
import {
  clearNamespaces,
  type DeployTestDeps,
  deployRequested,
  deployTestDeps,
} from "../fakes/deploy-deps.js";
import { type FakeGitlab, startFakeGitlab } from "../fakes/gitlab-server.js";

const TOKEN = "glpat-deadline";
const PROJECT = "flightjs/flight-management";
const NAMESPACE = namespaceFor(PROJECT, "review/feature/x");
const EXAMPLE = join(import.meta.dirname, "../../examples/projects", PROJECT);
/** As the handler runs a deploy (functions/deploy-environment/handler.ts), with a test's budget. */
const DEADLINE_MS = 2_000;

let k8s: MemoryKubernetes;
let gitlab: FakeGitlab;
let deps: DeployTestDeps;
let cluster: KubernetesCluster;
/** Requests to GitLab whose path matches are held until the test ends (or their own timeout). */
let hang: RegExp | null;
let held: (() => void)[];

beforeAll(async () => {
  k8s = await startMemoryKubernetes({ rolloutDelayMs: 20, namespaceFinalizeMs: 10 });
  gitlab = await startFakeGitlab({ token: TOKEN });
  const request = deployRequested().detail;
  const file = (path: string) => readFileSync(join(EXAMPLE, path), "utf8");
  gitlab.commit(request.gitlab.projectId, request.sha, {
    "kubler.yaml": file("kubler.yaml"),
    "deploy/config.yaml": file("deploy/config.yaml"),
    "deploy/deployment.yaml": file("deploy/deployment.yaml"),
    "deploy/service.yaml": file("deploy/service.yaml"),
  });
});
afterAll(async () => {
  await gitlab.close();
  await k8s.close();
});

beforeEach(async () => {
  hang = null;
  held = [];
  ({ deps } = deployTestDeps(k8s, "kubler-gitlab-deadline-"));
  cluster = createKubernetesCluster({ kubeconfig: k8s.kubeconfig });
  deps.cluster = cluster;
  const fetchHanging: typeof fetch = (input, init) => {
    const url = new URL(input instanceof Request ? input.url : String(input));
    if (!hang?.test(decodeURIComponent(url.pathname))) return fetch(input, init);
    return new Promise<Response>((_, reject) => {
      const stop = () => reject(new Error("held by the test"));
      held.push(stop);
      init?.signal?.addEventListener("abort", stop);
    });
  };
  // One attempt of a minute: without the deadline the read outlives the test.
  deps.manifests = new GitlabManifestSource({
    baseUrl: gitlab.url,
    token: async () => TOKEN,
    fetch: fetchHanging,
    maxAttempts: 1,
    timeoutMs: 60_000,
  });
  await clearNamespaces(k8s, deps.cluster, NAMESPACE);
});

function envelope() {
  return {
    version: "0",
    id: "event-1",
    "detail-type": "Deploy Requested",
    source: sourceOf("Deploy Requested"),
    account: "000000000000",
    time: "2026-11-21T10:00:00Z",
    region: "local",
    resources: [],
    detail: deployRequested().detail,
  };
}

describe("deploy-environment's GitLab reads under the deploy's deadline", () => {
  it("deploys from GitLab inside the deadline when GitLab answers", async () => {
    const consume = createDeployEnvironmentConsumer(deps);
    const outcome = await cluster.withDeadline(DEADLINE_MS * 10, () => consume(envelope()));
    expect(outcome).toMatchObject({ kind: "succeeded", namespace: NAMESPACE });
  });

  it.each([
    ["kubler.yaml", /\/repository\/files\/kubler\.yaml\/raw$/, "kubler.yaml at 1111"],
    ["the manifests directory", /\/repository\/tree$/, "deploy/ at 1111"],
  ])(
    "ends a read of %s that GitLab does not answer at the deadline: audited, thrown for the bus to retry, nothing written",
    async (_, path, named) => {
      hang = path;
      const consume = createDeployEnvironmentConsumer(deps);
      try {
        const failure = await cluster.withDeadline(DEADLINE_MS, () => consume(envelope())).catch((e) => e);
        expect(failure).toBeInstanceOf(Error);
        expect((failure as Error).message).toMatch(
          new RegExp(
            `^reading ${named}1+ from GitLab did not end within the deploy's deadline \\(\\d+ ms were left\\): the deploy is retried$`,
          ),
        );
        expect(held.length).toBeGreaterThan(0);
        expect(deps.audit.last()).toMatchObject({
          action: "environment.deploy",
          outcome: "failure",
          correlationId: "corr-100",
          reason: `attempt failed, left to the bus to retry: ${(failure as Error).message}`,
        });
        // Cut before the deploy wrote anything: no namespace, no Deploy Finished (the retry reports).
        expect(k8s.store.get("v1", "Namespace", undefined, NAMESPACE)).toBeUndefined();
        expect(deps.publisher.entries).toEqual([]);
      } finally {
        for (const release of held) release();
      }
    },
    10_000,
  );
});
