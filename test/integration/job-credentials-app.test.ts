/**
 * POST /v1/credentials in-process, with real parts: the jose verifier against a JWKS served over
 * node:http, the in-memory Kubernetes API over HTTP through the real adapter (ServiceAccount,
 * RoleBinding, TokenRequest), the local AWS issuer, the in-memory jti cache.
 */
import { execFileSync } from "node:child_process";
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from "vitest";
import { parse } from "yaml";
import { createJobCredentialsApp } from "../../functions/job-credentials/app.js";
import { JoseIdTokenVerifier } from "../../shared/adapters/jose-id-token-verifier.js";
import { createKubernetesCluster, type KubernetesCluster } from "../../shared/adapters/kubernetes-cluster.js";
import { type AuditRecord, createAuditRedactor, prepareAuditRecord } from "../../shared/domain/audit.js";
import type { IssuedCredentials } from "../../shared/domain/credentials-output.js";
import { parseCredentialsPolicy } from "../../shared/domain/credentials-policy.js";
import { LABEL, namespaceFor } from "../../shared/domain/environment.js";
import { gitlabIdTokenClaims, LocalOidcIssuer } from "../../shared/local/local-oidc-issuer.js";
import { type MemoryKubernetes, startMemoryKubernetes } from "../../shared/local/memory-kubernetes/index.js";
import { jobServiceAccount } from "../../shared/services/mint-job-credentials.js";
import { type JobCredentialsTestDeps, jobCredentialsTestDeps } from "../fakes/job-credentials-deps.js";
import { startJwksServer } from "../fakes/jwks-server.js";
import { seedManagedEnvironment } from "../fakes/managed-environment.js";

type IssuedCredentialsBody = IssuedCredentials & {
  aws: NonNullable<IssuedCredentials["aws"]>;
  kubernetes: NonNullable<IssuedCredentials["kubernetes"]>;
};

const PROJECT = "group/app";
const PROJECT_ID = "15";
const REVIEW = "review/feature-x";
const REVIEW_NAMESPACE = namespaceFor(PROJECT, REVIEW);

const key = LocalOidcIssuer.generate("kid-1");
let jwks: Awaited<ReturnType<typeof startJwksServer>>;
let k8s: MemoryKubernetes;
let cluster: KubernetesCluster;
let deps: JobCredentialsTestDeps;
let errors: unknown[];

beforeAll(async () => {
  jwks = await startJwksServer([key]);
});
afterAll(() => jwks.close());

beforeEach(async () => {
  k8s = await startMemoryKubernetes();
  cluster = createKubernetesCluster({ kubeconfig: k8s.kubeconfig, sleep: async () => {} });
  errors = [];
  deps = jobCredentialsTestDeps(
    jwks.url,
    `
rules:
  - name: review-apps
    match: { project_path: "group/*", environment: "review/*" }
    aws: { roleArn: "arn:aws:iam::123456789012:role/kubler-review", maxDurationSeconds: 3600 }
    kubernetes: { namespace: environment, role: kubler-deployer }
  - name: production
    match: { project_path: group/app, environment: production, ref_protected: true }
    aws: { roleArn: "arn:aws:iam::123456789012:role/app-prod", maxDurationSeconds: 900 }
    kubernetes: { namespace: app-production, role: kubler-deployer }
  - name: other-tool
    match: { project_path: group/tool, environment: staging }
    kubernetes: { namespace: app-production, role: kubler-deployer }
  - name: artifacts
    match: { project_path: group/app, environment: artifacts }
    aws: { roleArn: "arn:aws:iam::123456789012:role/artifacts" }
`,
    cluster,
    { logError: (error) => errors.push(error), logWarning: (error) => errors.push(error) },
  );
  await seedEnvironment(PROJECT, Number(PROJECT_ID), REVIEW, REVIEW_NAMESPACE);
});
afterEach(async () => {
  cluster.close();
  await k8s.close();
});

/** What Kubler's deploy leaves: the managed namespace and the deployer Role. */
function seedEnvironment(projectPath: string, projectId: number, environment: string, namespace: string) {
  return seedManagedEnvironment(cluster, {
    namespace,
    gitlab: { instance: jwks.url, projectId, projectPath },
    environment,
  });
}

function token(overrides: Record<string, unknown> = {}): string {
  return key.sign(
    gitlabIdTokenClaims(
      { iss: jwks.url, aud: "kubler", now: deps.clock.now() },
      {
        project_path: PROJECT,
        project_id: PROJECT_ID,
        namespace_path: "group",
        environment: REVIEW,
        ...overrides,
      },
    ),
  );
}

/** Moves the test clock to the next whole second and returns it: `exp - now` is then exact. */
function onWholeSecond(): number {
  deps.clock.advance(1000 - (deps.clock.now().getTime() % 1000));
  return deps.clock.now().getTime() / 1000;
}

/** The ServiceAccount a production job's credentials would be minted for, if any was. */
function productionServiceAccount() {
  return cluster.get({
    apiVersion: "v1",
    kind: "ServiceAccount",
    name: "kubler-ci-kubler-deployer",
    namespace: "app-production",
  });
}

async function messageOf(response: Response): Promise<string> {
  return ((await response.json()) as { message: string }).message;
}

function post(bearer: string | null, body?: unknown, query = "") {
  const app = createJobCredentialsApp(deps);
  return app.request(`/v1/credentials${query}`, {
    method: "POST",
    headers: { ...(bearer ? { authorization: `Bearer ${bearer}` } : {}), "content-type": "application/json" },
    ...(body === undefined ? {} : { body: typeof body === "string" ? body : JSON.stringify(body) }),
  });
}

describe("POST /v1/credentials", () => {
  it("the issuer's JWKS unreadable: 503 with a fixed message, a failure audit line, no URL credentials", async () => {
    // As a GITLAB_URL with user:password@ made it before the config refused one: fetch refuses the
    // URL and repeats it in its error.
    const issuer = "https://kubler:glpat-Xq9vR2mT7wLp4sK8nB3c@gitlab.example.com";
    deps.verifier = new JoseIdTokenVerifier({ issuer, audience: "kubler", clock: deps.clock });
    const bearer = token({ iss: issuer });
    const response = await post(bearer);
    expect(response.status).toBe(503);
    expect(await response.json()).toEqual({
      error: "unavailable",
      message: "cannot read the token issuer's signing keys; retry later",
    });
    expect(deps.audit.records).toHaveLength(1);
    expect(deps.audit.last()).toMatchObject({
      outcome: "failure",
      reason: expect.stringMatching(
        /^the token could not be verified: cannot read the token issuer's signing keys/,
      ),
      actor: { function: "job-credentials" },
      subject: { rejection: "not_verified" },
      gitlab: null,
    });
    const line = JSON.stringify(prepareAuditRecord(deps.audit.last() as AuditRecord, createAuditRedactor()));
    expect(line).not.toContain("glpat-Xq9vR2mT7wLp4sK8nB3c");
    expect(JSON.stringify(deps.audit.records)).not.toContain(bearer);
  });

  it("valid token → AWS credentials and a Kubernetes token for the environment's namespace", async () => {
    const bearer = token();
    const response = await post(bearer);
    expect(response.status).toBe(200);
    expect(response.headers.get("cache-control")).toBe("no-store");
    const body = (await response.json()) as IssuedCredentialsBody;
    expect(body).toMatchObject({
      rule: "review-apps",
      environment: REVIEW,
      jobId: "302",
      aws: {
        issuer: "local",
        roleArn: "arn:aws:iam::123456789012:role/kubler-review",
        assumedRoleArn: "arn:aws:sts::123456789012:assumed-role/kubler-review/gl-302",
        accessKeyId: expect.stringMatching(/^LOCALKUBLER/),
      },
      kubernetes: {
        server: k8s.url,
        insecureSkipTlsVerify: true,
        namespace: REVIEW_NAMESPACE,
        serviceAccount: "kubler-ci-kubler-deployer",
      },
    });
    expect(response.headers.get("x-kubler-expires-at")).toBe(body.expiresAt);

    // The ServiceAccount and its binding to the rule's Role, in the environment's namespace.
    const account = await cluster.get({
      apiVersion: "v1",
      kind: "ServiceAccount",
      name: "kubler-ci-kubler-deployer",
      namespace: REVIEW_NAMESPACE,
    });
    expect(account?.metadata.labels).toMatchObject({
      [LABEL.MANAGED_BY]: "kubler",
      [LABEL.PROJECT_ID]: PROJECT_ID,
    });
    const binding = await cluster.get({
      apiVersion: "rbac.authorization.k8s.io/v1",
      kind: "RoleBinding",
      name: "kubler-ci-kubler-deployer",
      namespace: REVIEW_NAMESPACE,
    });
    expect(binding).toMatchObject({
      roleRef: { apiGroup: "rbac.authorization.k8s.io", kind: "Role", name: "kubler-deployer" },
      subjects: [{ kind: "ServiceAccount", name: "kubler-ci-kubler-deployer", namespace: REVIEW_NAMESPACE }],
    });
    // The TokenRequest's token is a live credential for that ServiceAccount, which the rule's Role
    // lets get Deployments (404: authorized, none of that name); its expiry was read back.
    const probe = await fetch(`${k8s.url}/apis/apps/v1/namespaces/${REVIEW_NAMESPACE}/deployments/web`, {
      headers: { authorization: `Bearer ${body.kubernetes.token}` },
    });
    expect(probe.status).toBe(404);
    const lifetime = (Date.parse(body.kubernetes.expiresAt) - deps.clock.now().getTime()) / 1000;
    expect(lifetime).toBeGreaterThanOrEqual(600);
    expect(lifetime).toBeLessThanOrEqual(3600 + 5);
  });

  it("audits the decision with the claims that decided, the rule, the role and the expiry — never a secret", async () => {
    const response = await post(token());
    const body = (await response.json()) as IssuedCredentialsBody;
    const record = deps.audit.last();
    expect(record).toMatchObject({
      action: "credentials.issue",
      outcome: "allow",
      reason: 'rule "review-apps" matches',
      actor: { user: "sample-user", job: "302", pipeline: "574" },
      subject: {
        project: PROJECT,
        projectId: PROJECT_ID,
        rule: "review-apps",
        environment: REVIEW,
        namespace: REVIEW_NAMESPACE,
        roleArn: "arn:aws:iam::123456789012:role/kubler-review",
        expiresAt: body.expiresAt,
        claims: {
          project_path: PROJECT,
          environment: REVIEW,
          ref: "feature-branch-1",
          ref_protected: "false",
        },
      },
      correlationId: "corr-1",
      gitlab: { instance: jwks.url, event: "id_token" },
      function: "job-credentials",
    });
    const line = JSON.stringify(deps.audit.records);
    for (const secret of [body.aws.secretAccessKey, body.aws.sessionToken, body.kubernetes.token]) {
      expect(line).not.toContain(secret);
    }
    expect(deps.publisher.entries).toEqual([
      {
        detailType: "Credentials Issued",
        detail: {
          correlationId: "corr-1",
          gitlab: { instance: jwks.url, projectId: 15, projectPath: PROJECT },
          environment: REVIEW,
          jobId: 302,
          rule: "review-apps",
          reason: 'rule "review-apps" matches',
          roleArn: "arn:aws:iam::123456789012:role/kubler-review",
        },
      },
    ]);
  });

  it("format env: lines a shell can eval, with the kubeconfig's text", async () => {
    const response = await post(token(), { format: "env" });
    expect(response.status).toBe(200);
    expect(response.headers.get("content-type")).toBe("text/plain; charset=utf-8");
    const text = await response.text();
    const out = execFileSync(
      "sh",
      [
        "-c",
        'eval "$CREDS"; printf "%s|%s|" "$AWS_ACCESS_KEY_ID" "$KUBLER_NAMESPACE"; printf "%s" "$KUBLER_KUBECONFIG_DATA"',
      ],
      { env: { CREDS: text, PATH: process.env.PATH }, encoding: "utf8" },
    );
    const [accessKey, namespace, kubeconfig] = out.split("|");
    expect(accessKey).toMatch(/^LOCALKUBLER/);
    expect(namespace).toBe(REVIEW_NAMESPACE);
    expect(parse(kubeconfig as string)).toMatchObject({
      contexts: [{ context: { namespace: REVIEW_NAMESPACE } }],
    });
  });

  it("format kubeconfig (also as ?format=): server, namespace, token, expiry", async () => {
    const response = await post(token(), undefined, "?format=kubeconfig");
    expect(response.status).toBe(200);
    const text = await response.text();
    expect(text).toMatch(/^# Kubler: ServiceAccount .+\/kubler-ci-kubler-deployer, token expires at \d{4}-/);
    const config = parse(text);
    expect(config).toMatchObject({
      clusters: [{ cluster: { server: k8s.url, "insecure-skip-tls-verify": true } }],
      contexts: [{ context: { namespace: REVIEW_NAMESPACE } }],
      users: [{ user: { token: expect.any(String) } }],
    });
  });

  it("a replayed token is refused (401 replayed)", async () => {
    const bearer = token();
    expect((await post(bearer)).status).toBe(200);
    const again = await post(bearer);
    expect(again.status).toBe(401);
    expect(await again.json()).toEqual({
      error: "unauthorized",
      reason: "replayed",
      message: "this ID token was already used: each token gets credentials once (request them once per job)",
    });
    expect(deps.audit.last()).toMatchObject({ outcome: "deny", subject: { rejection: "replayed" } });
  });

  it("refused tokens: 401 with the reason, audited without their (unverified) claims", async () => {
    const missing = await post(null);
    expect(missing.status).toBe(401);
    expect(await missing.json()).toMatchObject({ reason: "missing_token" });
    const now = deps.clock.now().getTime() / 1000;
    const expired = await post(token({ exp: now - 3600, iat: now - 7200, nbf: now - 7200 }));
    expect(await expired.json()).toMatchObject({ error: "unauthorized", reason: "expired" });
    const audience = await post(token({ aud: "https://vault.example.com" }));
    expect(await audience.json()).toMatchObject({ reason: "wrong_audience" });
    expect(deps.audit.last()).toMatchObject({
      outcome: "deny",
      subject: { rejection: "wrong_audience" },
      gitlab: null,
      actor: { function: "job-credentials" },
    });
    expect(deps.publisher.entries).toEqual([]);
  });

  it("no matching rule → 403 with the job's own claims; why each rule missed is audited and published only", async () => {
    const response = await post(token({ environment: "staging" }));
    expect(response.status).toBe(403);
    const message = await messageOf(response);
    expect(message).toBe(
      "no rule matches this job (project group/app, ref feature-branch-1, environment staging)",
    );
    // Other projects' paths (group/tool's rule) and the rules' patterns stay out of the answer.
    for (const hidden of ["group/tool", "other-tool", "review/*", "production"]) {
      expect(message).not.toContain(hidden);
    }
    const detail = `${message}: review-apps: environment "staging" does not match "review/*"; `;
    expect(deps.audit.last()).toMatchObject({
      outcome: "deny",
      reason: expect.stringContaining(detail),
      subject: { rule: null, environment: "staging" },
    });
    expect(deps.audit.last()?.reason).toContain(
      'other-tool: project_path "group/app" does not match "group/tool"',
    );
    expect(deps.publisher.entries[0]).toMatchObject({
      detailType: "Credentials Denied",
      detail: { reason: expect.stringContaining(detail), jobId: 302 },
    });
    // Denied, so the token was not spent.
    expect((await post(token({ environment: "staging" }))).status).toBe(403);
  });

  it("a requested environment other than the token's is denied", async () => {
    const response = await post(token(), { environment: "review/someone-else" });
    expect(response.status).toBe(403);
    expect(await messageOf(response)).toBe(
      `the job asked for environment "review/someone-else", but its token is for environment "${REVIEW}"`,
    );
  });

  it("a token without an environment claim cannot choose one in the body (403, nothing minted)", async () => {
    // A lint job on protected main, no `environment:` in .gitlab-ci.yml, asking for production.
    await seedEnvironment(PROJECT, Number(PROJECT_ID), "production", "app-production");
    const lint = { ref: "main", ref_protected: "true", environment: null, environment_protected: null };
    const response = await post(token(lint), { environment: "production" });
    expect(response.status).toBe(403);
    expect(await messageOf(response)).toBe(
      'the job asked for environment "production", but its ID token has no environment claim: declare `environment: production` on the job in .gitlab-ci.yml (the request body cannot choose an environment)',
    );
    expect(deps.audit.last()).toMatchObject({
      outcome: "deny",
      subject: { rule: null, environment: null, claims: { environment: null } },
    });
    expect(await productionServiceAccount()).toBeNull();
    // The same job with no body is decided on its claims: no environment, no production rule.
    const bare = await post(token(lint));
    expect(bare.status).toBe(403);
    expect(await messageOf(bare)).toBe(
      "no rule matches this job (project group/app, ref main, no environment)",
    );
  });

  it("never mints into a namespace Kubler does not manage", async () => {
    await cluster.apply({ apiVersion: "v1", kind: "Namespace", metadata: { name: "app-production" } });
    await cluster.apply({
      apiVersion: "rbac.authorization.k8s.io/v1",
      kind: "Role",
      metadata: { name: "kubler-deployer", namespace: "app-production" },
      rules: [],
    });
    const response = await post(token({ environment: "production", ref_protected: "true" }));
    expect(response.status).toBe(403);
    expect(await messageOf(response)).toBe(
      "namespace app-production is not managed by Kubler (no app.kubernetes.io/managed-by=kubler label): no credentials are minted into it",
    );
    expect(await productionServiceAccount()).toBeNull();
  });

  it("a job asking for another project's environment namespace is denied", async () => {
    // app-production is group/app's (project 15); group/tool's rule points at it.
    await seedEnvironment(PROJECT, 15, "production", "app-production");
    const response = await post(
      token({ project_path: "group/tool", project_id: "16", environment: "staging" }),
    );
    expect(response.status).toBe(403);
    expect(await messageOf(response)).toBe(
      "namespace app-production belongs to another project, not to project 16",
    );
    // Refused after the policy allowed it: the line says where the credentials would have gone.
    expect(deps.audit.last()).toMatchObject({
      outcome: "deny",
      subject: { rule: "other-tool", environment: "staging", namespace: "app-production", roleArn: null },
    });
    expect(await productionServiceAccount()).toBeNull();
  });

  it("a job whose environment's namespace another environment of the project holds is denied (a hash collision)", async () => {
    // Once a long project path fills a namespace name's readable part, two environments' names differ
    // by 8 hex digits of a hash alone: a branch found to collide names production's namespace.
    const colliding = "review/evil";
    const held = namespaceFor(PROJECT, colliding);
    await seedEnvironment(PROJECT, Number(PROJECT_ID), "production", held);
    const response = await post(token({ environment: colliding }));
    expect(response.status).toBe(403);
    expect(await messageOf(response)).toBe(
      `namespace ${held} belongs to environment production, not ${colliding}`,
    );
    expect(deps.audit.last()).toMatchObject({
      outcome: "deny",
      subject: {
        rule: "review-apps",
        environment: colliding,
        namespace: held,
        roleArn: "arn:aws:iam::123456789012:role/kubler-review",
      },
    });
    expect(
      await cluster.get({
        apiVersion: "v1",
        kind: "ServiceAccount",
        name: "kubler-ci-kubler-deployer",
        namespace: held,
      }),
    ).toBeNull();
  });

  it("two rules binding different Roles in one namespace: a token is bound to its own rule's Role only", async () => {
    deps.policy = parseCredentialsPolicy(`
rules:
  - name: deploy
    match: { project_path: group/app, environment: "review/*", ref_protected: true }
    kubernetes: { namespace: environment, role: kubler-deployer }
  - name: read
    match: { project_path: group/app, environment: "review/*" }
    kubernetes: { namespace: environment, role: viewer }
`);
    await cluster.apply({
      apiVersion: "rbac.authorization.k8s.io/v1",
      kind: "Role",
      metadata: { name: "viewer", namespace: REVIEW_NAMESPACE },
      rules: [{ apiGroups: ["apps"], resources: ["deployments"], verbs: ["get"] }],
    });
    const deployer = await post(token({ ref_protected: "true", job_id: "401", jti: "jti-401" }));
    expect(deployer.status).toBe(200);
    const reader = await post(token({ ref_protected: "false", job_id: "402", jti: "jti-402" }));
    expect(reader.status).toBe(200);
    const readerAccount = ((await reader.json()) as IssuedCredentialsBody).kubernetes.serviceAccount;
    const { items } = await cluster.list("rbac.authorization.k8s.io/v1", "RoleBinding", {
      namespace: REVIEW_NAMESPACE,
    });
    const rolesOfReader = items
      .filter((binding) =>
        ((binding as unknown as { subjects?: { name: string }[] }).subjects ?? []).some(
          (subject) => subject.name === readerAccount,
        ),
      )
      .map((binding) => (binding as unknown as { roleRef: { name: string } }).roleRef.name);
    // The unprotected job's token must not carry the deployer Role an earlier protected job bound.
    expect(rolesOfReader).toEqual(["viewer"]);
    // A Role name that is no ServiceAccount name still gets an account of its own.
    expect(jobServiceAccount("system:viewer")).toMatch(/^kubler-ci-[0-9a-f]{16}$/);
  });

  it("a namespace that does not exist yet is refused, not created", async () => {
    const response = await post(token({ environment: "review/never-deployed" }));
    expect(response.status).toBe(403);
    expect(await messageOf(response)).toMatch(
      /^namespace group-app-review-never-deployed-[0-9a-f]{8} does not exist/,
    );
    expect(deps.audit.last()).toMatchObject({
      outcome: "deny",
      subject: {
        rule: "review-apps",
        namespace: namespaceFor(PROJECT, "review/never-deployed"),
        roleArn: "arn:aws:iam::123456789012:role/kubler-review",
      },
    });
  });

  it("credentials last what the token has left (1200 s), at least STS's 900 s (120 s left), none once expired", async () => {
    const now = onWholeSecond();
    const ok = await post(token({ exp: now + 1200, jti: "jti-1200" }));
    expect(ok.status).toBe(200);
    const body = (await ok.json()) as IssuedCredentialsBody;
    const lifetime = (iso: string) => Math.round((Date.parse(iso) - deps.clock.now().getTime()) / 1000);
    expect(lifetime(body.aws.expiresAt)).toBe(1200);
    // The in-memory API server stamps expiries on its own (real) clock.
    expect(lifetime(body.kubernetes.expiresAt)).toBeLessThanOrEqual(1200);
    expect(lifetime(body.kubernetes.expiresAt)).toBeGreaterThan(1190);

    // A job whose timeout is under 15 minutes: STS issues nothing shorter than 900 s.
    const short = await post(token({ exp: now + 120, jti: "jti-120" }));
    expect(short.status).toBe(200);
    expect(lifetime(((await short.json()) as IssuedCredentialsBody).aws.expiresAt)).toBe(900);
    const stale = await post(token({ exp: now - 30, iat: now - 3630, nbf: now - 3630, jti: "jti-stale" }));
    expect(stale.status).toBe(401);
    expect(await stale.json()).toEqual({
      error: "unauthorized",
      reason: "expired",
      message:
        "the ID token expired 30 s ago (accepted only within the clock-skew leeway): no AWS credentials for an expired identity",
    });
    expect(deps.audit.last()).toMatchObject({
      outcome: "deny",
      subject: { rule: "review-apps", rejection: "expired", namespace: REVIEW_NAMESPACE },
    });
    // Nothing was minted for the expired one.
    expect(deps.audit.records.filter((r) => r.outcome === "allow")).toHaveLength(2);
  });

  it("a Kubernetes-only rule's floor is TokenRequest's 600 s, not STS's 900", async () => {
    deps.policy = parseCredentialsPolicy(`
rules:
  - name: kube-only
    match: { project_path: group/app, environment: "review/*" }
    kubernetes: { namespace: environment, role: kubler-deployer }
`);
    const now = onWholeSecond();
    const ok = await post(token({ exp: now + 700, jti: "jti-700" }));
    expect(ok.status).toBe(200);
    const body = (await ok.json()) as IssuedCredentialsBody;
    const lifetime = (Date.parse(body.kubernetes.expiresAt) - deps.clock.now().getTime()) / 1000;
    expect(lifetime).toBeLessThanOrEqual(700);
    expect(lifetime).toBeGreaterThan(690);
    const short = await post(token({ exp: now + 500, jti: "jti-500" }));
    expect(short.status).toBe(200);
    const floor =
      (Date.parse(((await short.json()) as IssuedCredentialsBody).kubernetes.expiresAt) -
        deps.clock.now().getTime()) /
      1000;
    expect(floor).toBeLessThanOrEqual(600);
    expect(floor).toBeGreaterThan(590);
  });

  it("a ref STS cannot take as a tag is left out of the session tags, and the audit line says so", async () => {
    const response = await post(token({ ref: "release#1" }));
    expect(response.status).toBe(200);
    expect(deps.audit.last()).toMatchObject({
      outcome: "allow",
      subject: {
        omittedTags: [
          {
            key: "ref",
            reason:
              "left out, not altered: the value has characters STS does not allow in a tag (letters, digits, spaces, _ . : / = + - @)",
          },
        ],
      },
    });
  });

  it("kubeconfig from a rule without Kubernetes access is 422; AWS-only rules work as json", async () => {
    const kubeconfig = await post(token({ environment: "artifacts" }), { format: "kubeconfig" });
    expect(kubeconfig.status).toBe(422);
    expect(await messageOf(kubeconfig)).toBe(
      'rule "artifacts" grants no Kubernetes access: ask for format json or env',
    );
    const json = await post(token({ environment: "artifacts" }));
    expect(json.status).toBe(200);
    expect(await json.json()).toMatchObject({
      rule: "artifacts",
      kubernetes: null,
      aws: { issuer: "local" },
    });
  });

  it("the Kubernetes API down → 503, and the job may retry with the same token", async () => {
    const bearer = token();
    const fault = k8s.faults.add({
      verb: "create",
      resource: "serviceaccounts",
      subresource: "token",
      status: 503,
    });
    const response = await post(bearer);
    expect(response.status).toBe(503);
    expect(await messageOf(response)).toMatch(/^the Kubernetes API is unavailable .*; retry later$/);
    expect(deps.audit.last()).toMatchObject({ outcome: "failure" });
    fault.remove();
    expect((await post(bearer)).status).toBe(200);
  });

  it("an admission policy refusing the job's ServiceAccount → 422 naming the policy, not Kubler's own identity", async () => {
    const denial = `serviceaccounts "kubler-ci-kubler-deployer" is forbidden: admission webhook "validation.gatekeeper.sh" denied the request: [sa-must-have-owner] you must provide labels: {"owner"}`;
    k8s.faults.add({ verb: "apply", resource: "serviceaccounts", status: 403, message: denial });
    const response = await post(token());
    expect(response.status).toBe(422);
    const message = await messageOf(response);
    expect(message).toBe(
      `the cluster's admission policies refused what Kubler writes for the job's Kubernetes access: ${denial}`,
    );
    expect(message).not.toMatch(/Kubler's own Kubernetes identity/);
  });

  it("the replay cache down → 503, audited, nothing minted; the same token works once it is back", async () => {
    const bearer = token();
    const replay = deps.replay;
    deps.replay = {
      claim: async () => {
        throw new Error("DynamoDB: ProvisionedThroughputExceededException");
      },
      reserve: replay.reserve.bind(replay),
      confirm: replay.confirm.bind(replay),
      release: async () => undefined,
    };
    const response = await post(bearer);
    expect(response.status).toBe(503);
    expect(await messageOf(response)).toMatch(/^the replay cache is unavailable/);
    expect(deps.audit.last()).toMatchObject({ outcome: "failure" });
    expect(JSON.stringify(deps.audit.last())).not.toContain("DynamoDB");
    deps.replay = replay;
    expect((await post(bearer)).status).toBe(200);
  });

  it("bad bodies are 400 with what is wrong", async () => {
    const cases: [unknown, string][] = [
      ["{", 'the body is not JSON: send {"environment": "...", "format": "json|env|kubeconfig"} or nothing'],
      [{ format: "yaml" }, 'format must be one of json, env, kubeconfig, got "yaml"'],
      [{ env: "x" }, "unknown field(s) env: the body takes environment and format"],
      ...[7, "", "review/*", "review/?", "review/$" + "{aws:username}", "x".repeat(256)].map(
        (environment): [unknown, string] => [
          { environment },
          "environment must be an environment name: 1-255 letters, digits, spaces, - _ / or .",
        ],
      ),
    ];
    for (const [body, message] of cases) {
      const bearer = token();
      const before = deps.audit.records.length;
      const response = await post(bearer, body);
      expect(response.status).toBe(400);
      expect(await response.json()).toEqual({ error: "bad_request", message });
      // One audit line each, with the verified caller, and never the token.
      expect(deps.audit.records).toHaveLength(before + 1);
      expect(deps.audit.last()).toMatchObject({
        outcome: "deny",
        reason: `bad request: ${message}`,
        actor: { user: "sample-user", job: "302", pipeline: "574" },
        subject: { project: PROJECT, projectId: PROJECT_ID, input: "body" },
      });
      expect(JSON.stringify(deps.audit.last())).not.toContain(bearer);
      // Refused for its body: the token is not spent.
      expect((await post(bearer)).status).toBe(200);
    }
  });

  it("an oversize body is 413 and audited; a bad body with a bad token is audited with the caller unknown", async () => {
    const big = await post(token(), { environment: "x".repeat(5000) });
    expect(big.status).toBe(413);
    expect(deps.audit.last()).toMatchObject({
      outcome: "deny",
      reason: "bad request: body is larger than 4096 bytes",
      actor: { user: "sample-user" },
    });
    const forged = `${token().slice(0, -4)}AAAA`;
    const response = await post(forged, "{");
    expect(response.status).toBe(400);
    expect(deps.audit.last()).toMatchObject({
      outcome: "deny",
      reason: expect.stringMatching(/^bad request: the body is not JSON/),
      actor: { function: "job-credentials" },
      subject: { rejection: "bad_signature" },
      gitlab: null,
    });
    expect(JSON.stringify(deps.audit.records)).not.toContain(forged);
    const anonymous = await post(null, "[]");
    expect(anonymous.status).toBe(400);
    expect(deps.audit.last()).toMatchObject({ subject: { rejection: "missing_token" } });
  });

  it("a chunked body (no Content-Length) is cut off once past 4096 bytes, not read whole into memory", async () => {
    // Anyone who reaches the port can stream an endless body: only what the limit needs may be read.
    const chunk = new Uint8Array(64 * 1024).fill(0x20);
    let pulled = 0;
    const endless = new ReadableStream<Uint8Array>({
      pull(controller) {
        pulled += chunk.length;
        if (pulled > 16 * 1024 * 1024) controller.close();
        else controller.enqueue(chunk);
      },
    });
    const app = createJobCredentialsApp(deps);
    const response = await app.request("/v1/credentials", {
      method: "POST",
      headers: { authorization: `Bearer ${token()}`, "content-type": "application/json" },
      body: endless,
      duplex: "half",
    } as RequestInit);
    expect(response.status).toBe(413);
    expect(await response.json()).toEqual({
      error: "payload_too_large",
      message: "body is larger than 4096 bytes",
    });
    expect(pulled).toBeLessThanOrEqual(4 * chunk.length);
    expect(deps.audit.last()).toMatchObject({
      outcome: "deny",
      reason: "bad request: body is larger than 4096 bytes",
    });
  });

  it("GET, PUT and DELETE /v1/credentials → 405 with Allow: POST", async () => {
    const app = createJobCredentialsApp(deps);
    for (const method of ["GET", "PUT", "DELETE"]) {
      const response = await app.request("/v1/credentials", { method });
      expect(response.status).toBe(405);
      expect(response.headers.get("allow")).toBe("POST");
      expect(await response.json()).toEqual({
        error: "method_not_allowed",
        message: `${method} is not allowed: use POST /v1/credentials`,
      });
    }
    expect((await app.request("/v1/other")).status).toBe(404);
  });

  it("GET /healthz", async () => {
    const response = await createJobCredentialsApp(deps).request("/healthz");
    expect(await response.json()).toEqual({ ok: true });
    expect(errors).toEqual([]);
  });

  it("a production rule that names environment_action: start refuses a job GitLab ran without approval", async () => {
    // `environment: { name: production, action: access }` skips the deployment approval (GitLab 18.0).
    deps.policy = parseCredentialsPolicy(`
rules:
  - name: production
    match: { project_path: group/app, environment: production, environment_action: start, ref_protected: true }
    aws: { roleArn: "arn:aws:iam::123456789012:role/app-prod", maxDurationSeconds: 900 }
    kubernetes: { namespace: app-production, role: kubler-deployer }
`);
    await seedEnvironment(PROJECT, Number(PROJECT_ID), "production", "app-production");
    const production = { environment: "production", environment_protected: "true", ref_protected: "true" };
    const access = await post(token({ ...production, environment_action: "access" }));
    expect(access.status).toBe(403);
    expect(deps.audit.last()).toMatchObject({
      outcome: "deny",
      reason: expect.stringContaining('production: environment_action "access" does not match "start"'),
      subject: { rule: null, claims: { environment_action: "access" } },
    });
    const older = await post(token({ ...production, environment_action: null }));
    expect(older.status).toBe(403);
    expect(deps.audit.last()).toMatchObject({ subject: { claims: { environment_action: null } } });
    const start = await post(token({ ...production, environment_action: "start" }));
    expect(start.status).toBe(200);
    expect(deps.audit.last()).toMatchObject({
      outcome: "allow",
      subject: { rule: "production", claims: { environment_action: "start" } },
    });
  });
});
