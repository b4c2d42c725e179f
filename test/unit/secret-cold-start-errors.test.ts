/**
 * What a function's cold start says when the secret a variable names cannot be read: the variable,
 * the secret and Secrets Manager's error, as docs/operations.md's "a variable's name at cold start"
 * row promises (a secret deleted, or not readable by the role). Over a real Secrets Manager client
 * faked at the transport.
 */
import {
  GetSecretValueCommand,
  ResourceNotFoundException,
  SecretsManagerClient,
  SecretsManagerServiceException,
} from "@aws-sdk/client-secrets-manager";
import { type AwsClientStub, mockClient } from "aws-sdk-client-mock";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { kubernetesClusterFromEnv } from "../../shared/adapters/kubernetes-cluster-from-env.js";
import { createSecretReader } from "../../shared/adapters/secret-reader.js";
import { withSecretVariables } from "../../shared/adapters/secret-variables.js";
import { ENV } from "../../shared/config.js";
import { ConfigError } from "../../shared/errors.js";

const ARN = "arn:aws:secretsmanager:eu-west-1:123456789012:secret:kubler/cold-start-AbCdEf";

const accessDenied = () =>
  new SecretsManagerServiceException({
    name: "AccessDeniedException",
    $fault: "client",
    $metadata: { httpStatusCode: 400 },
    message: "not authorized to perform: secretsmanager:GetSecretValue",
  });
const notFound = () =>
  new ResourceNotFoundException({
    message: "Secrets Manager can't find the specified secret.",
    $metadata: {},
  });

let client: SecretsManagerClient;
let sm: AwsClientStub<SecretsManagerClient>;
beforeEach(() => {
  client = new SecretsManagerClient({ region: "eu-west-1", maxAttempts: 1 });
  sm = mockClient(client);
});
afterEach(() => sm.restore());

async function refusal(attempt: Promise<unknown>): Promise<Error> {
  const error = await attempt.then(
    () => null,
    (e: unknown) => e,
  );
  expect(error).toBeInstanceOf(ConfigError);
  return error as Error;
}

describe("a secret a variable names that cannot be read at cold start", () => {
  it.each([
    ["deleted", notFound, "ResourceNotFoundException"],
    ["not readable by the role", accessDenied, "AccessDeniedException"],
  ])(
    "the kubeconfig secret %s: names KUBLER_KUBECONFIG_SECRET, the secret and the error",
    async (_, fail, name) => {
      sm.on(GetSecretValueCommand).rejects(fail());
      const error = await refusal(
        kubernetesClusterFromEnv({ [ENV.KUBECONFIG_SECRET]: ARN }, createSecretReader({ client })),
      );
      expect(error.message).toBe(
        `${ENV.KUBECONFIG_SECRET}: Secrets Manager cannot give secret ${ARN}: ${name}`,
      );
    },
  );

  it.each([
    ["deleted", notFound, "ResourceNotFoundException"],
    ["not readable by the role", accessDenied, "AccessDeniedException"],
  ])(
    "the webhook's credentials secret %s: names its variable, the secret and the error",
    async (_, fail, name) => {
      sm.on(GetSecretValueCommand).rejects(fail());
      const error = await refusal(
        withSecretVariables(
          { [ENV.WEBHOOK_CREDENTIALS_SECRET]: ARN },
          ENV.WEBHOOK_CREDENTIALS_SECRET,
          [ENV.WEBHOOK_SECRET],
          createSecretReader({ client }),
        ),
      );
      expect(error.message).toBe(
        `${ENV.WEBHOOK_CREDENTIALS_SECRET}: Secrets Manager cannot give secret ${ARN}: ${name}`,
      );
    },
  );

  it("an empty secret names its variable too", async () => {
    sm.on(GetSecretValueCommand).resolves({ SecretString: "  \n" });
    const error = await refusal(
      kubernetesClusterFromEnv({ [ENV.KUBECONFIG_SECRET]: ARN }, createSecretReader({ client })),
    );
    expect(error.message).toBe(`${ENV.KUBECONFIG_SECRET}: secret ${ARN} is empty`);
  });
});
