/**
 * The local runtime takes the pull secret from Secrets Manager too (`KUBLER_REGISTRY_AUTH_SECRET`,
 * as the AWS stack sets it), through the real SDK client and `AWS_ENDPOINT_URL_*`: pointed at a
 * LocalStack-style endpoint it behaves as the deploy function does in AWS.
 */
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, expect, it } from "vitest";
import { type LocalRuntime, startLocalRuntime } from "../../cli/local-runtime.js";
import { loadLocalConfig } from "../../shared/config.js";
import type { Detail } from "../../shared/domain/catalog.js";
import { namespaceFor } from "../../shared/domain/environment.js";
import { startFakeAws } from "../fakes/aws-endpoint.js";

const PROJECT = "flightjs/flight-management";
const ENVIRONMENT = "staging";
const SECRET = "arn:aws:secretsmanager:eu-west-1:123456789012:secret:kubler/registry-AbCdEf";
const DOCKER_CONFIG = JSON.stringify({ auths: { "registry.example.com": { auth: "cHVsbDpvbmx5" } } });

let aws: Awaited<ReturnType<typeof startFakeAws>>;
let runtime: LocalRuntime;
let dataDir: string;
const saved = { ...process.env };

beforeAll(async () => {
  aws = await startFakeAws();
  aws.secrets.set(SECRET, DOCKER_CONFIG);
  // The SDK reads these from the process environment, as in Lambda.
  Object.assign(process.env, {
    AWS_ENDPOINT_URL_SECRETS_MANAGER: aws.url,
    AWS_REGION: "eu-west-1",
    AWS_ACCESS_KEY_ID: "AKIDLOCAL",
    AWS_SECRET_ACCESS_KEY: "local-secret-key",
  });
  dataDir = mkdtempSync(join(tmpdir(), "kubler-registry-secret-"));
  runtime = await startLocalRuntime(
    loadLocalConfig({ PORT: "0", KUBLER_DATA_DIR: dataDir, KUBLER_REGISTRY_AUTH_SECRET: SECRET }),
    { simulatedRolloutMs: 0, onAudit: () => {}, onError: () => {} },
  );
}, 30_000);

afterAll(async () => {
  await runtime?.close();
  await aws?.close();
  process.env = saved;
  rmSync(dataDir, { recursive: true, force: true });
});

it("writes the secret's .dockerconfigjson into the environment as its pull secret, read through AWS_ENDPOINT_URL_SECRETS_MANAGER", async () => {
  const detail: Detail<"Deploy Requested"> = {
    correlationId: "registry-1",
    gitlab: { instance: "https://gitlab.example.com", projectId: 2, projectPath: PROJECT },
    environment: ENVIRONMENT,
    sha: "1".repeat(40),
    ref: "main",
    pipelineId: 1,
    mrIid: null,
  };
  await runtime.bus.publish([{ detailType: "Deploy Requested", detail }]);
  await runtime.bus.drain();

  const namespace = namespaceFor(PROJECT, ENVIRONMENT);
  const pull = await runtime.environments.cluster.get({
    apiVersion: "v1",
    kind: "Secret",
    name: "kubler-registry",
    namespace,
  });
  const data = (pull as { data?: Record<string, string> } | null)?.data ?? {};
  expect(Buffer.from(data[".dockerconfigjson"] ?? "", "base64").toString("utf8")).toBe(DOCKER_CONFIG);
  expect(aws.calls.filter((c) => c.operation === "GetSecretValue")).toMatchObject([
    { service: "secretsmanager", region: "eu-west-1", accessKeyId: "AKIDLOCAL", body: { SecretId: SECRET } },
  ]);
});

it("refuses a start with both KUBLER_REGISTRY_AUTH_FILE and KUBLER_REGISTRY_AUTH_SECRET, naming them", () => {
  expect(() =>
    loadLocalConfig({ KUBLER_REGISTRY_AUTH_FILE: "/tmp/registry.json", KUBLER_REGISTRY_AUTH_SECRET: SECRET }),
  ).toThrow(/set KUBLER_REGISTRY_AUTH_FILE or KUBLER_REGISTRY_AUTH_SECRET, not both/);
});
