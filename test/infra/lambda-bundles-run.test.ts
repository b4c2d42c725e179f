/**
 * Every function's bundle, as `npm run synth` builds it, run as Lambda runs it: a fresh Node process
 * imports `index.mjs` with exactly the environment the synthesized template gives that function
 * (Refs and ARNs resolved as CloudFormation would), plus what Lambda adds (region, the execution
 * role's credentials) and `AWS_ENDPOINT_URL`, then handles one realistic event. Local servers stand
 * in for what the function calls: AWS (test/fakes/aws-endpoint.ts), the Kubernetes API (the
 * in-memory one, behind a proxy that can fail requests; its kubeconfig is what the kubeconfig secret
 * holds) and GitLab (test/fakes/gitlab-server.ts). The assertions are on what reached them: the
 * wiring of environment → config → clients → use case, which only these bundles have.
 *
 * Two deploy parameters are the test's own, as a deployer's would be: the GitLab instance (the
 * fake's URL instead of `kubler:gitlabUrl`, also as the policy's issuer) and the task root
 * `/var/task`, where Lambda unpacks the asset (a copy of the bundled policy file).
 */
import { execFile } from "node:child_process";
import { randomUUID } from "node:crypto";
import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { promisify } from "node:util";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { JOB_CREDENTIALS_LIMITS } from "../../functions/job-credentials/limits.js";
import { FUNCTION_SPECS } from "../../infra/function-specs.js";
import { createKubernetesCluster } from "../../shared/adapters/kubernetes-cluster.js";
import { ENV } from "../../shared/config.js";
import { buildJobName } from "../../shared/domain/build-job.js";
import { type DetailType, FUNCTIONS, type FunctionName, sourceOf } from "../../shared/domain/catalog.js";
import { environmentNamespace, namespaceFor } from "../../shared/domain/environment.js";
import { gitlabIdTokenClaims, LocalOidcIssuer } from "../../shared/local/local-oidc-issuer.js";
import { type MemoryKubernetes, startMemoryKubernetes } from "../../shared/local/memory-kubernetes/index.js";
import { type FakeAws, startFakeAws } from "../fakes/aws-endpoint.js";
import {
  isTokenRequest,
  type ProxyAction,
  startFaultyKubernetesProxy,
} from "../fakes/faulty-kubernetes-proxy.js";
import { type FakeGitlab, startFakeGitlab } from "../fakes/gitlab-server.js";
import { ACCOUNT, functionEnvironment, REGION, scheduleInput } from "./cfn-values.js";
import {
  buildStack,
  GITLAB_TOKEN_SECRET_ARN,
  KUBECONFIG_SECRET_ARN,
  REGISTRY_AUTH_SECRET_ARN,
  ROOT,
  type SynthesizedStack,
  synthBundledOnce,
  templateOf,
  testConfig,
} from "./stack-fixture.js";

const run = promisify(execFile);
const ACCESS_KEY = "ASIAEXECUTIONROLE";
const SESSION_TOKEN = "execution-role-session-token";
const GITLAB_TOKEN = "glpat-from-secrets-manager-0123";
const WEBHOOK_TOKEN = "webhook-token-from-secrets-manager";
/** What `kubler:registryAuthSecretArn`'s secret holds (the bundled synth sets the key). */
const REGISTRY_AUTH = JSON.stringify({
  auths: {
    "registry.gitlab.example.com": { auth: Buffer.from("deploy-token:gldt-from-sm").toString("base64") },
  },
});
const SHA = "da1560886d4f094c3e6c9ef40349f7d38b5d27d7";
const PROJECT_PATH = "flightjs/flight-management";
const PROJECT_ID = 2;
const SAMPLE_PROJECT = join(ROOT, "examples/projects", PROJECT_PATH);
const REVIEW = "review/feature-x";
const key = LocalOidcIssuer.generate("kid-bundles");

let stack: SynthesizedStack;
let aws: FakeAws;
let gitlab: FakeGitlab;
let k8s: MemoryKubernetes;
let proxy: Awaited<ReturnType<typeof startFaultyKubernetesProxy>>;
/** What the proxy does with the next TokenRequests, in order; then "pass". */
let tokenRequests: ProxyAction[] = [];
let taskRoot: string;
let home: string;
let instance: { instance: string; projectId: number; projectPath: string };

beforeAll(async () => {
  stack = await synthBundledOnce();
  aws = await startFakeAws();
  // A deleted namespace stays Terminating for the whole file: the sweep's test reads the deletion after
  // the function's process has ended, which took longer than the default 50 ms now and then.
  k8s = await startMemoryKubernetes({ rolloutDelayMs: 0, jobDelayMs: 0, namespaceFinalizeMs: 600_000 });
  proxy = await startFaultyKubernetesProxy(k8s, (request) =>
    isTokenRequest(request) ? (tokenRequests.shift() ?? "pass") : "pass",
  );
  gitlab = await startFakeGitlab({ token: GITLAB_TOKEN, keys: [key] });
  instance = { instance: gitlab.url, projectId: PROJECT_ID, projectPath: PROJECT_PATH };
  gitlab.commit(PROJECT_ID, SHA, sampleProjectFiles());

  aws.secrets.set(KUBECONFIG_SECRET_ARN, proxy.kubeconfig);
  aws.secrets.set(GITLAB_TOKEN_SECRET_ARN, GITLAB_TOKEN);
  aws.secrets.set(REGISTRY_AUTH_SECRET_ARN, REGISTRY_AUTH);
  const webhookSecret = functionEnvironment(
    stack.template,
    "gitlab-webhook",
  ).KUBLER_WEBHOOK_CREDENTIALS_SECRET;
  aws.secrets.set(String(webhookSecret), JSON.stringify({ KUBLER_WEBHOOK_SECRET: WEBHOOK_TOKEN }));

  // Lambda unpacks the asset into /var/task; here the policy the asset carries, issued by the fake GitLab.
  taskRoot = mkdtempSync(join(tmpdir(), "kubler-task-"));
  const policy = readFileSync(join(stack.assets["job-credentials"], "credentials-policy.yaml"), "utf8");
  const issuer = `issuer: ${testConfig().gitlabUrl}\n`;
  expect(policy).toContain(issuer);
  writeFileSync(join(taskRoot, "credentials-policy.yaml"), policy.replace(issuer, `issuer: ${gitlab.url}\n`));
  home = mkdtempSync(join(tmpdir(), "kubler-home-"));
}, 300_000);

afterAll(async () => {
  await Promise.all([aws?.close(), gitlab?.close(), proxy?.close()]);
  await k8s?.close();
  for (const dir of [taskRoot, home]) if (dir) rmSync(dir, { recursive: true, force: true });
});

/** The sample project's kubler.yaml and manifests, as its repository holds them. */
function sampleProjectFiles(): Record<string, string> {
  const files: Record<string, string> = {
    "kubler.yaml": readFileSync(join(SAMPLE_PROJECT, "kubler.yaml"), "utf8"),
  };
  for (const name of readdirSync(join(SAMPLE_PROJECT, "deploy"))) {
    files[`deploy/${name}`] = readFileSync(join(SAMPLE_PROJECT, "deploy", name), "utf8");
  }
  return files;
}

/** The template's environment for the function, with the test's deploy parameters (see above). */
function deployedEnvironment(name: FunctionName): Record<string, string> {
  const gitlabUrl = testConfig().gitlabUrl;
  return Object.fromEntries(
    Object.entries(functionEnvironment(stack.template, name)).map(([variable, value]) => [
      variable,
      value === gitlabUrl ? gitlab.url : value.replace(/^\/var\/task\//, `${taskRoot}/`),
    ]),
  );
}

interface Invocation {
  results: unknown[];
  /** Each stdout line that is an audit record. */
  audit: Record<string, unknown>[];
  stdout: string;
  stderr: string;
}

/**
 * A cold start of `kubler-<name>` in a fresh Node process, then each event in turn (a warm
 * container). A handler that throws is reported as `{ thrown: message }`, as Lambda reports it.
 */
async function invoke(
  name: FunctionName,
  events: unknown[],
  /** Variables as another deploy's template would give them (see deployedEnvironment). */
  deployedWith: Record<string, string> = {},
): Promise<Invocation> {
  const bundle = join(stack.assets[name], "index.mjs");
  const script = `const { handler } = await import(${JSON.stringify(bundle)});
    for (const event of ${JSON.stringify(events)}) {
      const context = { awsRequestId: crypto.randomUUID(), functionName: "kubler-${name}" };
      const result = await handler(event, context).then((r) => r ?? null, (e) => ({ thrown: String(e?.message ?? e) }));
      process.stdout.write("RESULT " + JSON.stringify(result) + "\\n");
    }`;
  const { stdout, stderr } = await run(process.execPath, ["--input-type=module", "-e", script], {
    // Only what Lambda sets and what the template gives the function: no profile, no ~/.aws.
    env: {
      PATH: process.env.PATH ?? "",
      HOME: home,
      TZ: ":UTC",
      AWS_REGION: REGION,
      AWS_DEFAULT_REGION: REGION,
      AWS_LAMBDA_FUNCTION_NAME: `kubler-${name}`,
      AWS_ACCESS_KEY_ID: ACCESS_KEY,
      AWS_SECRET_ACCESS_KEY: "execution-role-secret",
      AWS_SESSION_TOKEN: SESSION_TOKEN,
      AWS_ENDPOINT_URL: aws.url,
      ...deployedEnvironment(name),
      ...deployedWith,
    },
    timeout: 60_000,
    maxBuffer: 16 * 1024 * 1024,
  });
  const lines = stdout.split("\n");
  const results = lines.filter((l) => l.startsWith("RESULT ")).map((l) => JSON.parse(l.slice(7)) as unknown);
  expect(results, `${name} stopped early:\n${stderr}`).toHaveLength(events.length);
  const audit = lines
    .filter((l) => l.startsWith("{"))
    .map((l) => JSON.parse(l) as Record<string, unknown>)
    .filter((record) => record.audit === true);
  return { results, audit, stdout, stderr };
}

/** An EventBridge delivery to a rule's Lambda target. */
function busEvent(detailType: DetailType, detail: Record<string, unknown>) {
  return {
    version: "0",
    id: randomUUID(),
    "detail-type": detailType,
    source: sourceOf(detailType),
    account: ACCOUNT,
    time: new Date().toISOString(),
    region: REGION,
    resources: [],
    detail,
  };
}

/** A Function URL request (payload format 2.0). */
function urlEvent(path: string, headers: Record<string, string>, body: string) {
  return {
    version: "2.0",
    routeKey: "$default",
    rawPath: path,
    rawQueryString: "",
    headers: { "content-type": "application/json", ...headers },
    requestContext: {
      accountId: "anonymous",
      apiId: "abcdefgh",
      domainName: "abcdefgh.lambda-url.eu-west-1.on.aws",
      domainPrefix: "abcdefgh",
      http: { method: "POST", path, protocol: "HTTP/1.1", sourceIp: "203.0.113.7", userAgent: "gitlab" },
      requestId: randomUUID(),
      routeKey: "$default",
      stage: "$default",
      time: new Date().toUTCString(),
      timeEpoch: Date.now(),
    },
    body,
    isBase64Encoded: false,
  };
}

/** A step's detail about the sample project at SHA, for `environment`. */
function step(environment: string, extra: Record<string, unknown> = {}) {
  return {
    correlationId: `c-${randomUUID()}`,
    gitlab: instance,
    environment,
    sha: SHA,
    ref: environment === REVIEW ? "feature-x" : "main",
    pipelineId: null,
    mrIid: environment === REVIEW ? 16 : null,
    // As plan-steps carries them today: when GitLab's fact arrived, and whose it was.
    factAt: new Date().toISOString(),
    user: "jsmith",
    ...extra,
  };
}

/** Every AWS call since `from` was signed by the execution role, for the function's region. */
function expectSignedByRole(from: number) {
  const calls = aws.calls.slice(from);
  expect(calls.length).toBeGreaterThan(0);
  for (const call of calls) {
    expect(call, `${call.service}.${call.operation}`).toMatchObject({
      accessKeyId: ACCESS_KEY,
      sessionToken: SESSION_TOKEN,
      region: REGION,
    });
  }
}

/**
 * The function's DynamoDB calls since `from` (at least `atLeast`) are in the template's table, and
 * what its role's dedupe grant allows: those actions, on keys its `dynamodb:LeadingKeys` patterns
 * match (test/infra/kubler-stack.test.ts checks the grant itself). Else IAM refuses them in AWS.
 */
function expectDedupeWithinGrant(name: FunctionName, from: number, atLeast: number) {
  const table = functionEnvironment(stack.template, name).KUBLER_DEDUPE_TABLE;
  const access = FUNCTION_SPECS[name].dedupe;
  // "unprefixed" (the webhook's): any key that no other function's patterns claim.
  const others = FUNCTIONS.flatMap((other) => {
    const keys = FUNCTION_SPECS[other].dedupe?.keys;
    return other === name || !Array.isArray(keys) ? [] : keys;
  });
  const calls = aws.calls.slice(from).filter((c) => c.service === "dynamodb");
  expect(calls.length).toBeGreaterThanOrEqual(atLeast);
  for (const call of calls) {
    const key = ((call.body.Item ?? call.body.Key) as { pk?: { S?: string } } | undefined)?.pk?.S ?? "";
    expect(key, call.operation).not.toBe("");
    expect(call.body.TableName, call.operation).toBe(table);
    expect(access?.actions, key).toContain(call.operation);
    const claimed = (patterns: readonly string[]) => patterns.some((pattern) => globMatches(pattern, key));
    const keys = access?.keys;
    expect(Array.isArray(keys) ? claimed(keys) : !claimed(others), `${call.operation} ${key}`).toBe(true);
  }
}

/** IAM's `StringLike`: `*` is any characters, everything else literal. */
function globMatches(pattern: string, value: string): boolean {
  const literal = (part: string) => part.replace(/[.+?^${}()|[\]\\]/g, "\\$&");
  return new RegExp(`^${pattern.split("*").map(literal).join(".*")}$`).test(value);
}

function putEntries(from: number) {
  return aws.calls
    .slice(from)
    .filter((c) => c.service === "events" && c.operation === "PutEvents")
    .flatMap(
      (c) => c.body.Entries as { EventBusName: string; Source: string; DetailType: string; Detail: string }[],
    )
    .map((e) => ({ ...e, Detail: JSON.parse(e.Detail) as Record<string, unknown> }));
}

function operations(from: number) {
  return aws.calls.slice(from).map((c) => `${c.service}.${c.operation}`);
}

function secretsRead(from: number) {
  return aws.calls
    .slice(from)
    .filter((c) => c.operation === "GetSecretValue")
    .map((c) => c.body.SecretId);
}

describe("each Lambda bundle, run with the environment the template gives it", () => {
  it("gitlab-webhook: reads its token from the generated secret, dedupes in the table, publishes the push on the bus", async () => {
    const env = functionEnvironment(stack.template, "gitlab-webhook");
    const from = aws.calls.length;
    const fixture = readFileSync(join(ROOT, "test/fixtures/gitlab/webhooks/push.json"), "utf8");
    const body = JSON.stringify((JSON.parse(fixture) as { payload: unknown }).payload);
    const { results, stdout } = await invoke("gitlab-webhook", [
      urlEvent(
        "/webhooks/gitlab",
        {
          "x-gitlab-event": "Push Hook",
          "x-gitlab-token": WEBHOOK_TOKEN,
          "idempotency-key": randomUUID(),
          "x-gitlab-instance": "https://gitlab.example.com",
        },
        body,
      ),
    ]);
    const result = results[0] as { statusCode: number; body: string };
    expect(result.statusCode).toBe(202);
    expect(JSON.parse(result.body)).toMatchObject({ published: true });
    expect(operations(from)).toEqual([
      "secretsmanager.GetSecretValue",
      "dynamodb.PutItem",
      "events.PutEvents",
      "dynamodb.UpdateItem",
    ]);
    expect(secretsRead(from)).toEqual([env.KUBLER_WEBHOOK_CREDENTIALS_SECRET]);
    expectDedupeWithinGrant("gitlab-webhook", from, 2);
    expect(putEntries(from)).toMatchObject([
      { EventBusName: env.KUBLER_EVENT_BUS_NAME, Source: "kubler.gitlab", DetailType: "Push" },
    ]);
    expectSignedByRole(from);
    expect(stdout).not.toContain(WEBHOOK_TOKEN);
  });

  it("job-credentials: verifies the ID token with GitLab's keys, assumes the policy's role through STS, mints a token in the cluster; a 503 TokenRequest is retried, within the per-request deadline", async () => {
    const env = functionEnvironment(stack.template, "job-credentials");
    const namespace = namespaceFor("group/app", REVIEW);
    await seedReviewEnvironment(namespace);
    const from = aws.calls.length;
    const proxied = proxy.requests.length;
    const request = () =>
      urlEvent(
        "/v1/credentials",
        { authorization: `Bearer ${idToken()}` },
        JSON.stringify({ environment: REVIEW, format: "json" }),
      );
    // The first request's TokenRequest fails once (503) and is sent again; the second's asks to be
    // retried in a minute, past the request's 5 s deadline for its Kubernetes calls, so it is not.
    tokenRequests = [{ status: 503 }, "pass", { status: 503, retryAfter: "60" }];
    const { results, audit, stdout, stderr } = await invoke("job-credentials", [request(), request()]);

    const issued = results[0] as { statusCode: number; body: string };
    expect(issued.statusCode, issued.body).toBe(200);
    expect(JSON.parse(issued.body)).toMatchObject({
      aws: { accessKeyId: "ASIAFAKEJOBSESSION", sessionToken: "fake-job-session-token" },
      // The cluster of the kubeconfig secret, and a token it minted for the job's ServiceAccount.
      kubernetes: { server: proxy.url, namespace, token: expect.stringMatching(/.{20}/) },
    });
    const assumed = aws.callsOf("sts.AssumeRole").filter((c) => aws.calls.indexOf(c) >= from);
    expect(assumed[0]?.body).toMatchObject({
      RoleArn: "arn:aws:iam::123456789012:role/kubler-review",
      RoleSessionName: expect.stringMatching(/^gl-\d+$/),
    });
    expect(secretsRead(from)).toEqual([env.KUBLER_KUBECONFIG_SECRET]);
    // Each request claims its token's jti; the refused one releases it.
    expectDedupeWithinGrant("job-credentials", from, 3);
    expect(putEntries(from)[0]).toMatchObject({
      EventBusName: env.KUBLER_EVENT_BUS_NAME,
      DetailType: "Credentials Issued",
    });
    expectSignedByRole(from);
    // Beside the namespace's default one: the job's ServiceAccount, whose token was minted.
    expect(k8s.store.list("v1", "ServiceAccount", namespace).length).toBeGreaterThan(1);

    const refused = results[1] as { statusCode: number; body: string };
    expect(refused.statusCode).toBe(503);
    const tokenAttempts = proxy.requests.slice(proxied).filter(isTokenRequest);
    expect(tokenAttempts).toHaveLength(3);
    expect(JSON.stringify(audit.at(-1))).toContain(
      `no time for another within the ${JOB_CREDENTIALS_LIMITS.kubernetesDeadlineMs} ms deadline`,
    );
    const logged = stdout
      .split("\n")
      .filter((line) => !line.startsWith("RESULT "))
      .join("\n");
    expect(logged + stderr).not.toContain("fake-job-session-token");
  });

  it("plan-steps: reads kubler.yaml at the push's SHA with the token from Secrets Manager and publishes the build", async () => {
    const env = functionEnvironment(stack.template, "plan-steps");
    const from = aws.calls.length;
    const read = gitlab.requests.length;
    const push = {
      correlationId: `c-${randomUUID()}`,
      gitlab: instance,
      ref: "refs/heads/main",
      branch: "main",
      before: "95790bf891e76fee5e1747ab589903a6a1f80f22",
      after: SHA,
      change: "updated",
      totalCommits: 1,
      user: "jsmith",
    };
    const { results } = await invoke("plan-steps", [busEvent("Push", push)]);
    expect(results[0]).not.toHaveProperty("thrown");
    expect(gitlab.requests.slice(read)).toContainEqual(
      expect.objectContaining({
        path: `/projects/${PROJECT_ID}/repository/files/kubler.yaml/raw`,
        token: GITLAB_TOKEN,
      }),
    );
    expect(secretsRead(from)).toEqual([env.GITLAB_API_TOKEN_SECRET]);
    expect(putEntries(from)).toMatchObject([
      {
        EventBusName: env.KUBLER_EVENT_BUS_NAME,
        Source: "kubler",
        DetailType: "Build Requested",
        Detail: { environment: "staging", sha: SHA },
      },
    ]);
    expectDedupeWithinGrant("plan-steps", from, 1);
    expectSignedByRole(from);
  });

  it("build-image: creates the build Job in the cluster the kubeconfig secret names", async () => {
    const env = functionEnvironment(stack.template, "build-image");
    // README's prerequisites: the builds namespace and the two Secrets a build Job mounts.
    const secret = (name: string, type: string, key: string) => ({
      apiVersion: "v1",
      kind: "Secret",
      metadata: { name, namespace: "kubler-builds" },
      type,
      data: { [key]: Buffer.from("placeholder").toString("base64") },
    });
    k8s.store.put({ apiVersion: "v1", kind: "Namespace", metadata: { name: "kubler-builds" } });
    k8s.store.put(secret("kubler-git-credentials", "Opaque", "token"));
    k8s.store.put(secret("kubler-registry-push", "kubernetes.io/dockerconfigjson", ".dockerconfigjson"));
    const from = aws.calls.length;
    const { results } = await invoke("build-image", [busEvent("Build Requested", step("staging"))]);
    expect(results[0]).not.toHaveProperty("thrown");
    expect(secretsRead(from).sort()).toEqual(
      [env.GITLAB_API_TOKEN_SECRET, env.KUBLER_KUBECONFIG_SECRET].sort(),
    );
    const job = k8s.store.get("batch/v1", "Job", "kubler-builds", buildJobName(instance, SHA));
    expect(job?.metadata.labels).toMatchObject({ "app.kubernetes.io/managed-by": "kubler" });
    expectSignedByRole(from);
  });

  it("deploy-environment: applies the built image with the registry secret's pull secret, schedules the expiry with the template's group, role and queue, publishes the outcome", async () => {
    const env = functionEnvironment(stack.template, "deploy-environment");
    expect(env.KUBLER_REGISTRY_AUTH_SECRET).toBe(REGISTRY_AUTH_SECRET_ARN);
    const from = aws.calls.length;
    const digest = `sha256:${"5".repeat(64)}`;
    const finished = step(REVIEW, { ttl: "72h", status: "succeeded", imageDigest: digest, reason: null });
    const { results, stdout, stderr } = await invoke("deploy-environment", [
      busEvent("Build Finished", finished),
    ]);
    expect(results[0]).toMatchObject({ kind: "succeeded" });
    const namespace = namespaceFor(PROJECT_PATH, REVIEW);
    const deployment = k8s.store.get("apps/v1", "Deployment", namespace, "flight-management") as unknown as {
      spec: {
        template: { spec: { containers: { image: string }[]; imagePullSecrets?: { name: string }[] } };
      };
    };
    expect(deployment.spec.template.spec.containers[0]?.image).toBe(
      `registry.example.com/flightjs/flight-management@${digest}`,
    );
    // The secret's .dockerconfigjson, read with the function's role, is the environment's pull secret.
    expect(secretsRead(from).sort()).toEqual(
      [env.KUBLER_KUBECONFIG_SECRET, env.GITLAB_API_TOKEN_SECRET, REGISTRY_AUTH_SECRET_ARN].sort(),
    );
    const pullSecret = k8s.store.get("v1", "Secret", namespace, "kubler-registry");
    expect(pullSecret?.type).toBe("kubernetes.io/dockerconfigjson");
    expect(
      Buffer.from(
        (pullSecret?.data as Record<string, string> | undefined)?.[".dockerconfigjson"] ?? "",
        "base64",
      ).toString(),
    ).toBe(REGISTRY_AUTH);
    expect(deployment.spec.template.spec.imagePullSecrets).toEqual([{ name: "kubler-registry" }]);
    expect(stdout + stderr).not.toContain(REGISTRY_AUTH);
    const [schedule] = aws.callsOf("scheduler.CreateSchedule").filter((c) => aws.calls.indexOf(c) >= from);
    expect(schedule?.body).toMatchObject({
      GroupName: env.KUBLER_SCHEDULE_GROUP,
      Target: {
        Arn: env.KUBLER_EVENT_BUS_ARN,
        RoleArn: env.KUBLER_SCHEDULER_ROLE_ARN,
        DeadLetterConfig: { Arn: env.KUBLER_SCHEDULE_DEAD_LETTER_QUEUE_ARN },
      },
    });
    expect(putEntries(from)).toMatchObject([
      {
        EventBusName: env.KUBLER_EVENT_BUS_NAME,
        DetailType: "Deploy Finished",
        Detail: { status: "succeeded", namespace },
      },
    ]);
    // The stop records plan-steps keeps: a deploy asked for before a stop is refused.
    expectDedupeWithinGrant("deploy-environment", from, 1);
    expectSignedByRole(from);
  });

  it("deploy-environment: an environment's namespace enforces the Pod Security level of kubler:podSecurity: restricted", async () => {
    // The template kubler:podSecurity: restricted gives (unbundled: a second bundling would take as
    // long as the first). It differs from the bundled one in KUBLER_POD_SECURITY alone, so the bundle
    // run with that variable is the bundle deployed with that setting.
    const restricted = templateOf(
      buildStack({
        config: testConfig({ registryAuthSecretArn: REGISTRY_AUTH_SECRET_ARN, podSecurity: "restricted" }),
      }),
    ).toJSON() as SynthesizedStack["template"];
    const env = functionEnvironment(restricted, "deploy-environment");
    const bundled = functionEnvironment(stack.template, "deploy-environment");
    const changed = Object.keys({ ...env, ...bundled }).filter(
      (variable) => env[variable] !== bundled[variable],
    );
    expect(changed).toEqual([ENV.POD_SECURITY]);
    expect(env[ENV.POD_SECURITY]).toBe("restricted");

    const staging = step("staging", {
      ttl: "never",
      status: "succeeded",
      imageDigest: `sha256:${"6".repeat(64)}`,
      reason: null,
    });
    const { results } = await invoke("deploy-environment", [busEvent("Build Finished", staging)], {
      [ENV.POD_SECURITY]: env[ENV.POD_SECURITY] as string,
    });
    expect(results[0]).toMatchObject({ kind: "succeeded" });
    const namespace = k8s.store.get("v1", "Namespace", undefined, namespaceFor(PROJECT_PATH, "staging"));
    expect(namespace?.metadata.labels).toMatchObject({ "pod-security.kubernetes.io/enforce": "restricted" });
  });

  it("cleanup-environments: the hourly sweep (its schedule's input) deletes an expired environment and cancels its schedule", async () => {
    const env = functionEnvironment(stack.template, "cleanup-environments");
    const namespace = namespaceFor(PROJECT_PATH, "review/expired");
    k8s.store.put(
      environmentNamespace(environmentState(namespace, "review/expired", new Date(Date.now() - 3_600_000))),
    );
    const from = aws.calls.length;
    const { results } = await invoke("cleanup-environments", [scheduleInput(stack.template, "kubler-sweep")]);
    expect(results[0]).toMatchObject({ deleted: 1, expired: 1 });
    expect(k8s.store.get("v1", "Namespace", undefined, namespace)?.metadata.deletionTimestamp).toBeTruthy();
    const cancelled = aws.callsOf("scheduler.DeleteSchedule").filter((c) => aws.calls.indexOf(c) >= from);
    expect(cancelled.map((c) => c.query.groupName)).toEqual([env.KUBLER_SCHEDULE_GROUP]);
    expect(putEntries(from)).toMatchObject([
      { EventBusName: env.KUBLER_EVENT_BUS_NAME, DetailType: "Environment Deleted" },
    ]);
    expectSignedByRole(from);
  });

  it("report-status: sets the deploy's commit status in GitLab with the token from Secrets Manager", async () => {
    const env = functionEnvironment(stack.template, "report-status");
    const from = aws.calls.length;
    const read = gitlab.requests.length;
    const namespace = namespaceFor(PROJECT_PATH, REVIEW);
    const deployed = step(REVIEW, {
      status: "succeeded",
      namespace,
      url: "https://review-feature-x.apps.example.com",
      reason: null,
    });
    const { results } = await invoke("report-status", [busEvent("Deploy Finished", deployed)]);
    expect(results[0]).not.toHaveProperty("thrown");
    expect(secretsRead(from)).toEqual([env.GITLAB_API_TOKEN_SECRET]);
    expect(gitlab.requests.slice(read).filter((r) => r.method === "POST")).toMatchObject([
      {
        path: `/projects/${PROJECT_ID}/statuses/${SHA}`,
        token: GITLAB_TOKEN,
        body: { state: "success", target_url: "https://review-feature-x.apps.example.com" },
      },
    ]);
    expectSignedByRole(from);
  });

  it("reconcile: the every-minute run reports the finished build Job as Build Finished on the bus", async () => {
    const env = functionEnvironment(stack.template, "reconcile");
    const from = aws.calls.length;
    // The Job build-image created above, finished by the in-memory cluster.
    expect(k8s.store.get("batch/v1", "Job", "kubler-builds", buildJobName(instance, SHA))).toBeDefined();
    const { results } = await invoke("reconcile", [scheduleInput(stack.template, "kubler-reconcile")]);
    expect(results[0]).not.toHaveProperty("thrown");
    expect(secretsRead(from)).toEqual([env.KUBLER_KUBECONFIG_SECRET]);
    expect(putEntries(from)).toContainEqual(
      expect.objectContaining({
        EventBusName: env.KUBLER_EVENT_BUS_NAME,
        DetailType: "Build Finished",
        Detail: expect.objectContaining({ status: "succeeded", environment: "staging", sha: SHA }),
      }),
    );
    expectSignedByRole(from);
  });
});

function environmentState(namespace: string, environment: string, expiresAt: Date) {
  return {
    namespace,
    gitlab: instance,
    environment,
    sha: SHA,
    ref: "feature-x",
    pipelineId: 1,
    mrIid: null,
    ttl: "72h",
    expiresAt,
    deployedAt: new Date(),
    requestedAt: new Date(),
    status: "succeeded" as const,
    rolloutDeadline: null,
    correlationId: "c-seed",
    url: null,
    lastGoodDigest: null,
  };
}

/** What a deploy leaves for job-credentials: the managed namespace and the deployer Role. */
async function seedReviewEnvironment(namespace: string) {
  const cluster = createKubernetesCluster({ kubeconfig: k8s.kubeconfig });
  await cluster.apply(
    environmentNamespace({
      ...environmentState(namespace, REVIEW, new Date(Date.now() + 3_600_000)),
      gitlab: { instance: gitlab.url, projectId: 15, projectPath: "group/app" },
    }),
  );
  await cluster.apply({
    apiVersion: "rbac.authorization.k8s.io/v1",
    kind: "Role",
    metadata: { name: "kubler-deployer", namespace },
    rules: [{ apiGroups: ["apps"], resources: ["deployments"], verbs: ["get", "patch"] }],
  });
  cluster.close();
}

/** A GitLab CI ID token for a review job of group/app, signed with the key the fake GitLab publishes. */
function idToken(): string {
  return key.sign(
    gitlabIdTokenClaims(
      { iss: gitlab.url, aud: "kubler", now: new Date() },
      { project_path: "group/app", project_id: "15", namespace_path: "group", environment: REVIEW },
    ),
  );
}
