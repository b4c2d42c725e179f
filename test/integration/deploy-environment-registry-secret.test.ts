/**
 * The pull secret in AWS: deploy-environment's handler reads the `.dockerconfigjson` from the Secrets
 * Manager secret `KUBLER_REGISTRY_AUTH_SECRET` names, through the redacting secret reader, for every
 * deploy. Composed here as the handler composes it (`registryPullSecret` over
 * `createRedactingSecretReader`, the SDK client faked at the transport), deploying to the embedded
 * Kubernetes API over HTTP; what lands is read back from the cluster.
 */
import { cpSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { GetSecretValueCommand, SecretsManagerClient } from "@aws-sdk/client-secrets-manager";
import { type AwsClientStub, mockClient } from "aws-sdk-client-mock";
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it, vi } from "vitest";
import { createDeployEnvironmentConsumer } from "../../functions/deploy-environment/consumer.js";
import { createKubernetesCluster } from "../../shared/adapters/kubernetes-cluster.js";
import { createRedactingSecretReader } from "../../shared/adapters/secret-reader.js";
import { StdoutAuditLog } from "../../shared/adapters/stdout-audit-log.js";
import { ENV, loadEnvironmentsConfig, registryPullSecret } from "../../shared/config.js";
import { REDACTED } from "../../shared/domain/audit.js";
import { type Detail, sourceOf } from "../../shared/domain/catalog.js";
import { namespaceFor } from "../../shared/domain/environment.js";
import { ConfigError } from "../../shared/errors.js";
import { DirectoryManifestSource } from "../../shared/local/directory-manifest-source.js";
import { MemoryEnvironmentStops } from "../../shared/local/memory-environment-stops.js";
import { type MemoryKubernetes, startMemoryKubernetes } from "../../shared/local/memory-kubernetes/index.js";
import { type DeployEnvironmentDeps, deployEnvironment } from "../../shared/services/deploy-environment.js";
import { FixedClock, RecordingPublisher, RecordingScheduler } from "../fakes/index.js";

const EXAMPLE = join(import.meta.dirname, "../../examples/projects");
const PROJECT = "flightjs/flight-management";
const gitlab = { instance: "https://gitlab.example.com", projectId: 2, projectPath: PROJECT };
const SECRET_ARN = "arn:aws:secretsmanager:eu-west-1:123456789012:secret:kubler/registry-auth-AbCdEf";
const dockerConfig = (auth: string) => JSON.stringify({ auths: { "registry.gitlab.example.com": { auth } } });
/** base64 of "deploy-token:…": the credential pods in the environment can mount. */
const AUTH_ONE = Buffer.from("gitlab+deploy-token-1:gldt-first-0123456789").toString("base64");
const AUTH_TWO = Buffer.from("gitlab+deploy-token-2:gldt-second-0123456789").toString("base64");

let k8s: MemoryKubernetes;
let projects: string;
let sm: AwsClientStub<SecretsManagerClient>;
let lines: string[];
let deps: DeployEnvironmentDeps;
/** Each test deploys an environment of its own: no waiting for an earlier one's namespace to go. */
let environment: string;
let tests = 0;

beforeAll(async () => {
  k8s = await startMemoryKubernetes({ rolloutDelayMs: 20, namespaceFinalizeMs: 10 });
});
afterAll(() => k8s.close());

beforeEach(() => {
  // Only Date: the reader's 5-minute cache is measured with Date.now; HTTP timers stay real.
  vi.useFakeTimers({ toFake: ["Date"], now: new Date("2026-11-21T10:00:00Z") });
  sm = mockClient(SecretsManagerClient);
  projects = mkdtempSync(join(tmpdir(), "kubler-projects-"));
  cpSync(EXAMPLE, projects, { recursive: true });
  lines = [];
  const audit = new StdoutAuditLog((line) => lines.push(line));
  const clock = new FixedClock(new Date("2026-11-21T10:00:00Z"));
  deps = {
    cluster: createKubernetesCluster({ kubeconfig: k8s.kubeconfig }),
    manifests: new DirectoryManifestSource(projects),
    scheduler: new RecordingScheduler(),
    publisher: new RecordingPublisher(),
    stops: new MemoryEnvironmentStops(clock),
    audit,
    clock,
    sleep: (ms) => {
      clock.advance(ms);
      return new Promise((resolve) => setTimeout(resolve, ms));
    },
    // As functions/deploy-environment/handler.ts builds it from the variables the stack sets.
    pullSecret: registryPullSecret(
      loadEnvironmentsConfig({ [ENV.REGISTRY_AUTH_SECRET]: SECRET_ARN }),
      createRedactingSecretReader(audit, { region: "eu-west-1" }),
    ),
    defaultTtl: "72h",
    rolloutPollMs: 10,
  };
  environment = `review/registry-${++tests}`;
});

afterEach(() => {
  sm.restore();
  vi.useRealTimers();
  rmSync(projects, { recursive: true, force: true });
});

function detail(sha: string, pipelineId: number): Detail<"Deploy Requested"> {
  return {
    correlationId: `corr-${pipelineId}`,
    gitlab,
    environment,
    sha,
    ref: environment.replace("review/", ""),
    pipelineId,
    mrIid: 16,
  };
}

function pullSecretInCluster(): string | undefined {
  const secret = k8s.store.get("v1", "Secret", namespaceFor(PROJECT, environment), "kubler-registry");
  if (!secret) return undefined;
  expect(secret.type).toBe("kubernetes.io/dockerconfigjson");
  const data = (secret.data as Record<string, string> | undefined)?.[".dockerconfigjson"] ?? "";
  return Buffer.from(data, "base64").toString();
}

describe("deploy-environment with KUBLER_REGISTRY_AUTH_SECRET", () => {
  it("writes the .dockerconfigjson the secret holds as the kubler-registry pull secret, which pods use, and redacts it from audit lines", async () => {
    sm.on(GetSecretValueCommand, { SecretId: SECRET_ARN }).resolves({ SecretString: dockerConfig(AUTH_ONE) });
    const outcome = await deployEnvironment(deps, {
      detailType: "Deploy Requested",
      detail: detail("1".repeat(40), 100),
      time: new Date(),
    });
    expect(outcome).toMatchObject({ kind: "succeeded" });
    expect(sm.commandCalls(GetSecretValueCommand).map((c) => c.args[0].input)).toEqual([
      { SecretId: SECRET_ARN },
    ]);
    expect(pullSecretInCluster()).toBe(dockerConfig(AUTH_ONE));
    const deployment = k8s.store.get(
      "apps/v1",
      "Deployment",
      namespaceFor(PROJECT, environment),
      "flight-management",
    ) as unknown as {
      spec: { template: { spec: { imagePullSecrets?: { name: string }[] } } };
    };
    expect(deployment.spec.template.spec.imagePullSecrets).toEqual([{ name: "kubler-registry" }]);

    // Whatever later quotes the value (an error from the cluster, say) is redacted.
    deps.audit.record({
      fn: "deploy-environment",
      action: "environment.deploy",
      outcome: "failure",
      reason: `the API server refused ${dockerConfig(AUTH_ONE)}`,
    } as never);
    expect(lines.join("")).toContain(REDACTED);
    expect(lines.join("")).not.toContain(AUTH_ONE);
  });

  it("picks up a rotated secret once the 5-minute cache expires, without a restart", async () => {
    sm.on(GetSecretValueCommand)
      .resolvesOnce({ SecretString: dockerConfig(AUTH_ONE) })
      .resolves({ SecretString: dockerConfig(AUTH_TWO) });
    const deploy = (sha: string, pipelineId: number) =>
      deployEnvironment(deps, {
        detailType: "Deploy Requested",
        detail: detail(sha, pipelineId),
        time: new Date(),
      });
    expect(await deploy("1".repeat(40), 100)).toMatchObject({ kind: "succeeded" });
    expect(pullSecretInCluster()).toBe(dockerConfig(AUTH_ONE));

    vi.setSystemTime(new Date("2026-11-21T10:04:00Z"));
    expect(await deploy("2".repeat(40), 101)).toMatchObject({ kind: "succeeded" });
    expect(sm.commandCalls(GetSecretValueCommand)).toHaveLength(1);
    expect(pullSecretInCluster()).toBe(dockerConfig(AUTH_ONE));

    vi.setSystemTime(new Date("2026-11-21T10:06:00Z"));
    expect(await deploy("3".repeat(40), 102)).toMatchObject({ kind: "succeeded" });
    expect(sm.commandCalls(GetSecretValueCommand)).toHaveLength(2);
    expect(pullSecretInCluster()).toBe(dockerConfig(AUTH_TWO));
  });

  it.each([
    ["not JSON", `user:${AUTH_ONE}`, "is not JSON"],
    [
      "JSON without auths",
      JSON.stringify({ credHelpers: { "registry.example.com": AUTH_ONE } }),
      '"auths" object',
    ],
  ])(
    "fails the deploy on a secret that is %s, naming the variable and the secret, never its content",
    async (_, value, reason) => {
      sm.on(GetSecretValueCommand).resolves({ SecretString: value });
      const consume = createDeployEnvironmentConsumer(deps);
      const attempt = consume({
        version: "0",
        id: "e-1",
        "detail-type": "Deploy Requested",
        source: sourceOf("Deploy Requested"),
        account: "123456789012",
        time: "2026-11-21T10:00:00Z",
        region: "eu-west-1",
        resources: [],
        detail: detail("1".repeat(40), 100),
      });
      await expect(attempt).rejects.toThrow(ConfigError);
      await attempt.catch((error: Error) => {
        expect(error.message).toContain(`${ENV.REGISTRY_AUTH_SECRET}: secret ${SECRET_ARN}`);
        expect(error.message).toContain(reason);
        expect(error.message).not.toContain(AUTH_ONE);
      });
      expect(pullSecretInCluster()).toBeUndefined();
      // The failed attempt is audited (left to the bus to retry) with the secret named, not quoted.
      const audited = lines.join("");
      expect(audited).toContain(SECRET_ARN);
      expect(audited).not.toContain(AUTH_ONE);
    },
  );
});

describe("registryPullSecret", () => {
  it("refuses both the file and the secret, and gives no pull secret with neither", async () => {
    const dir = mkdtempSync(join(tmpdir(), "kubler-registry-"));
    try {
      const file = join(dir, "registry.json");
      writeFileSync(file, dockerConfig(AUTH_ONE));
      const readSecret = async () => {
        throw new Error("not read");
      };
      expect(() =>
        registryPullSecret(
          loadEnvironmentsConfig({ [ENV.REGISTRY_AUTH_FILE]: file, [ENV.REGISTRY_AUTH_SECRET]: SECRET_ARN }),
          readSecret,
        ),
      ).toThrow(
        new ConfigError(
          `set ${ENV.REGISTRY_AUTH_FILE} or ${ENV.REGISTRY_AUTH_SECRET}, not both: which one is meant is unclear`,
        ),
      );
      expect(await registryPullSecret(loadEnvironmentsConfig({}), readSecret)()).toBeNull();
      expect(
        await registryPullSecret(loadEnvironmentsConfig({ [ENV.REGISTRY_AUTH_FILE]: file }), readSecret)(),
      ).toBe(dockerConfig(AUTH_ONE));
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it("reads the file again for every deploy, so a token rotated in it lands without a restart", async () => {
    const dir = mkdtempSync(join(tmpdir(), "kubler-registry-"));
    try {
      const file = join(dir, "registry.json");
      writeFileSync(file, dockerConfig(AUTH_ONE));
      const pullSecret = registryPullSecret(loadEnvironmentsConfig({ [ENV.REGISTRY_AUTH_FILE]: file }), () =>
        Promise.reject(new Error("not read")),
      );
      expect(await pullSecret()).toBe(dockerConfig(AUTH_ONE));
      writeFileSync(file, dockerConfig(AUTH_TWO));
      expect(await pullSecret()).toBe(dockerConfig(AUTH_TWO));
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
