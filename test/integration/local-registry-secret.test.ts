/**
 * The local runtime takes the pull secret from Secrets Manager too (`KUBLER_REGISTRY_AUTH_SECRET`,
 * as the AWS stack sets it), through the real SDK client and `AWS_ENDPOINT_URL_*`: pointed at a
 * LocalStack-style endpoint it behaves as the deploy function does in AWS.
 */
import { afterAll, beforeAll, expect, it } from "vitest";
import { loadLocalConfig } from "../../shared/config.js";
import { startFakeAws } from "../fakes/aws-endpoint.js";
import { deployStaging, type LocalTestRuntime, startLocalTestRuntime } from "../fakes/local-runtime.js";

const SECRET = "arn:aws:secretsmanager:eu-west-1:123456789012:secret:kubler/registry-AbCdEf";
const DOCKER_CONFIG = JSON.stringify({ auths: { "registry.example.com": { auth: "cHVsbDpvbmx5" } } });

let aws: Awaited<ReturnType<typeof startFakeAws>>;
let local: LocalTestRuntime;
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
  local = await startLocalTestRuntime("kubler-registry-secret-", { KUBLER_REGISTRY_AUTH_SECRET: SECRET });
}, 30_000);

afterAll(async () => {
  await local?.close();
  await aws?.close();
  process.env = saved;
});

it("writes the secret's .dockerconfigjson into the environment as its pull secret, read through AWS_ENDPOINT_URL_SECRETS_MANAGER", async () => {
  const namespace = await deployStaging(local.runtime, "registry-1");
  const pull = await local.runtime.environments.cluster.get({
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
