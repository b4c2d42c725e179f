/**
 * POST /v1/credentials when the Kubernetes API blips: the app as the handler wires it (the cluster
 * with job-credentials' own limits, one deadline per request), the real adapter over HTTP to the
 * in-memory API through a proxy that resets or fails TokenRequests. The adapter's clock is fake:
 * backoff sleeps (and the proxy, for a slow answer) move it, so attempts are counted, never timed.
 */
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from "vitest";
import { createJobCredentialsApp } from "../../functions/job-credentials/app.js";
import { JOB_CREDENTIALS_LIMITS as LIMITS } from "../../functions/job-credentials/limits.js";
import { createKubernetesCluster, type KubernetesCluster } from "../../shared/adapters/kubernetes-cluster.js";
import { namespaceFor } from "../../shared/domain/environment.js";
import { gitlabIdTokenClaims, LocalOidcIssuer } from "../../shared/local/local-oidc-issuer.js";
import { type MemoryKubernetes, startMemoryKubernetes } from "../../shared/local/memory-kubernetes/index.js";
import {
  firstN,
  isTokenRequest,
  type ProxyAction,
  startFaultyKubernetesProxy,
} from "../fakes/faulty-kubernetes-proxy.js";
import { type JobCredentialsTestDeps, jobCredentialsTestDeps } from "../fakes/job-credentials-deps.js";
import { startJwksServer } from "../fakes/jwks-server.js";
import { seedManagedEnvironment } from "../fakes/managed-environment.js";

const PROJECT = "group/app";
const REVIEW = "review/feature-x";
const NAMESPACE = namespaceFor(PROJECT, REVIEW);

const key = LocalOidcIssuer.generate("kid-1");
let jwks: Awaited<ReturnType<typeof startJwksServer>>;
let k8s: MemoryKubernetes;
let proxy: Awaited<ReturnType<typeof startFaultyKubernetesProxy>>;
let cluster: KubernetesCluster;
let deps: JobCredentialsTestDeps;
/** The adapter's clock, in ms. */
let now: number;
let sleeps: number[];
/** What the proxy does with each TokenRequest; every other request passes. */
let tokenRequest: () => ProxyAction;

beforeAll(async () => {
  jwks = await startJwksServer([key]);
});
afterAll(() => jwks.close());

beforeEach(async () => {
  k8s = await startMemoryKubernetes();
  now = 1_000_000;
  sleeps = [];
  tokenRequest = () => "pass";
  proxy = await startFaultyKubernetesProxy(k8s, (request) =>
    isTokenRequest(request) ? tokenRequest() : "pass",
  );
  cluster = createKubernetesCluster({
    kubeconfig: proxy.kubeconfig,
    ...LIMITS.cluster,
    random: () => 0.5,
    now: () => now,
    sleep: async (ms) => {
      sleeps.push(ms);
      now += ms;
    },
  });
  deps = jobCredentialsTestDeps(
    jwks.url,
    `
rules:
  - name: review-apps
    match: { project_path: "group/*", environment: "review/*" }
    aws: { roleArn: "arn:aws:iam::123456789012:role/kubler-review", maxDurationSeconds: 3600 }
    kubernetes: { namespace: environment, role: kubler-deployer }
`,
    cluster,
    // As functions/job-credentials/handler.ts does.
    { perRequest: (work) => cluster.withDeadline(LIMITS.kubernetesDeadlineMs, work) },
  );
  await seedEnvironment();
});
afterEach(async () => {
  cluster.close();
  await proxy.close();
  await k8s.close();
});

/** What Kubler's deploy leaves: the managed namespace and the deployer Role. */
function seedEnvironment() {
  return seedManagedEnvironment(cluster, {
    namespace: NAMESPACE,
    gitlab: { instance: jwks.url, projectId: 15, projectPath: PROJECT },
    environment: REVIEW,
  });
}

function token(): string {
  return key.sign(
    gitlabIdTokenClaims(
      { iss: jwks.url, aud: "kubler", now: deps.clock.now() },
      { project_path: PROJECT, project_id: "15", namespace_path: "group", environment: REVIEW },
    ),
  );
}

function post(bearer: string) {
  return createJobCredentialsApp(deps).request("/v1/credentials", {
    method: "POST",
    headers: { authorization: `Bearer ${bearer}` },
  });
}

const tokenRequests = () => proxy.requests.filter(isTokenRequest).length;

describe("job credentials when the Kubernetes API blips", () => {
  it.each<[string, ProxyAction]>([
    ["a 503", { status: 503, message: "etcd leader changed" }],
    ["a reset connection", "reset"],
  ])("%s on the TokenRequest: the job still gets credentials, in exactly 2 attempts", async (_, blip) => {
    tokenRequest = firstN(1, blip);
    const response = await post(token());
    expect(response.status).toBe(200);
    expect(await response.json()).toMatchObject({ kubernetes: { token: expect.any(String) } });
    expect(tokenRequests()).toBe(2);
    expect(sleeps).toHaveLength(1);
  });

  it("a persistent failure: 503 once the deadline leaves no time for another attempt; the token is not spent", async () => {
    // Each TokenRequest answers 503 after 2 s of the adapter's clock.
    tokenRequest = () => {
      now += 2_000;
      return { status: 503, message: "etcd leader changed" };
    };
    const bearer = token();
    const started = now;
    const response = await post(bearer);
    expect(response.status).toBe(503);
    expect(((await response.json()) as { message: string }).message).toMatch(
      /^the Kubernetes API is unavailable .*failed after 2 attempt\(s\), with no time for another within the \d+ ms deadline/,
    );
    // A third attempt (maxAttempts allows it) would have ended past the deadline.
    expect(tokenRequests()).toBe(2);
    expect(LIMITS.cluster.maxAttempts).toBeGreaterThan(2);
    expect(now - started).toBeLessThanOrEqual(LIMITS.kubernetesDeadlineMs);
    expect(deps.audit.last()).toMatchObject({ outcome: "failure" });

    // The jti was released: the same token works once the API is back, under a deadline of its own.
    tokenRequest = () => "pass";
    expect((await post(bearer)).status).toBe(200);
  });

  it("a 403 is not retried", async () => {
    tokenRequest = () => ({ status: 403, message: "serviceaccounts/token is forbidden for kubler" });
    const response = await post(token());
    expect(response.status).toBe(422);
    expect(((await response.json()) as { message: string }).message).toMatch(
      /^Kubler's own Kubernetes identity was refused/,
    );
    expect(tokenRequests()).toBe(1);
    expect(sleeps).toEqual([]);
  });

  it("a Retry-After beyond the deadline: no retry, 503 at once; one within it is waited out", async () => {
    tokenRequest = firstN(1, { status: 429, retryAfter: "6", message: "slow down" });
    const refused = await post(token());
    expect(refused.status).toBe(503);
    expect(tokenRequests()).toBe(1);
    expect(sleeps).toEqual([]);

    tokenRequest = firstN(1, { status: 429, retryAfter: "2", message: "slow down" });
    expect((await post(token())).status).toBe(200);
    expect(tokenRequests()).toBe(3);
    expect(sleeps).toEqual([2_000]);
  });
});
