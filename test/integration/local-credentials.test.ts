/**
 * The newcomer's path: the local runtime serves POST /v1/credentials and its own OIDC issuer, and
 * `kubler credentials` gets credentials from it with examples/policy.yaml, no GitLab involved.
 */
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { parse } from "yaml";
import { credentialsCommand } from "../../cli/credentials-command.js";
import { type LocalRuntime, startLocalRuntime } from "../../cli/local-runtime.js";
import { loadLocalConfig } from "../../shared/config.js";
import { loadCredentialsConfig } from "../../shared/credentials-config.js";
import { namespaceFor } from "../../shared/domain/environment.js";
import { seedManagedEnvironment } from "../fakes/managed-environment.js";

let runtime: LocalRuntime;
let dataDir: string;
const audits: { action: string; outcome: string; reason: string }[] = [];

beforeAll(async () => {
  dataDir = mkdtempSync(join(tmpdir(), "kubler-credentials-"));
  const env = { PORT: "0", KUBLER_DATA_DIR: dataDir };
  runtime = await startLocalRuntime(loadLocalConfig(env), {
    credentials: loadCredentialsConfig(env, { local: true }),
    onAudit: (record) => audits.push(record),
    onError: () => {},
  });
});
afterAll(async () => {
  await runtime.close();
  rmSync(dataDir, { recursive: true, force: true });
});

async function run(options: Partial<Parameters<typeof credentialsCommand>[0]> = {}) {
  const printed: string[] = [];
  const code = await credentialsCommand({
    url: runtime.url,
    dataDir,
    print: (text) => printed.push(text),
    ...options,
  });
  return { code, output: printed.join("\n") };
}

describe("local job credentials", () => {
  it("serves the local issuer's JWKS where GitLab serves its own", async () => {
    expect(runtime.jobCredentials).toMatchObject({
      localIssuer: true,
      awsIssuer: "local",
      policyFile: "examples/policy.yaml",
    });
    expect(runtime.jobCredentials.issuer()).toBe(`${runtime.url}/local/gitlab`);
    const jwks = await (await fetch(`${runtime.url}/local/gitlab/oauth/discovery/keys`)).json();
    expect(jwks).toMatchObject({ keys: [{ kty: "RSA", alg: "RS256", use: "sig", kid: expect.any(String) }] });
  });

  it("kubler credentials: the documented token gets labelled local AWS credentials", async () => {
    const { code, output } = await run();
    expect(code).toBe(0);
    expect(JSON.parse(output)).toMatchObject({
      rule: "documented-example",
      environment: "test-environment2",
      aws: { issuer: "local", accessKeyId: expect.stringMatching(/^LOCALKUBLER/) },
      kubernetes: null,
    });
    expect(audits.at(-1)).toMatchObject({ action: "credentials.issue", outcome: "allow" });
  });

  it("takes --url with a trailing slash, as kubler send does (the issuer and the path stay GitLab's)", async () => {
    const { code, output } = await run({ url: `${runtime.url}/` });
    expect(output).not.toMatch(/^404/);
    expect(code).toBe(0);
    expect(JSON.parse(output)).toMatchObject({ rule: "documented-example" });
  });

  it("kubler credentials --format kubeconfig for the sample project's deployed review app", async () => {
    const project = "flightjs/flight-management";
    const environment = "review/feature/booking-validation";
    const namespace = namespaceFor(project, environment);
    const cluster = runtime.environments.cluster;
    await seedManagedEnvironment(cluster, {
      namespace,
      gitlab: { instance: "https://gitlab.example.com", projectId: 2, projectPath: project },
      environment,
      rules: [],
    });
    const { code, output } = await run({
      environment,
      format: "kubeconfig",
      claims: { project_path: project, project_id: "2", namespace_path: "flightjs" },
    });
    expect(code).toBe(0);
    expect(parse(output)).toMatchObject({
      contexts: [{ context: { namespace } }],
      users: [{ user: { token: expect.any(String) } }],
    });
  });

  it("a denial is printed with its status and reason; why each rule missed goes to the audit line only", async () => {
    const { code, output } = await run({
      claims: { project_path: "someone/else", namespace_path: "someone" },
    });
    expect(code).toBe(1);
    expect(output.slice(0, 4)).toBe("403 ");
    expect(JSON.parse(output.slice(4)).message).toBe(
      "no rule matches this job (project someone/else, ref feature-branch-1, environment test-environment2)",
    );
    expect(output).not.toContain("flightjs");
    expect(audits.at(-1)).toMatchObject({
      outcome: "deny",
      reason: expect.stringContaining(
        'sample-review-apps: project_path "someone/else" does not match "flightjs/*"',
      ),
    });
  });
});
