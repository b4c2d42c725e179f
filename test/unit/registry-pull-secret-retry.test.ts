/**
 * A registry secret put with the wrong shape fails the deploy, which the bus retries (Lambda's two
 * async retries, about 1 and 3 minutes later). The wrong value must not be cached like a good one:
 * put right between the attempts, the retry deploys instead of being dead-lettered.
 */
import { GetSecretValueCommand, SecretsManagerClient } from "@aws-sdk/client-secrets-manager";
import { type AwsClientStub, mockClient } from "aws-sdk-client-mock";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { createSecretReader } from "../../shared/adapters/secret-reader.js";
import { ENV, loadEnvironmentsConfig, registryPullSecret } from "../../shared/config.js";
import { ConfigError } from "../../shared/errors.js";

const ARN = "arn:aws:secretsmanager:eu-west-1:123456789012:secret:kubler/registry-auth-AbCdEf";
const GOOD = JSON.stringify({ auths: { "registry.example.com": { auth: "ZGVwbG95OnRva2Vu" } } });

describe("registryPullSecret over the caching secret reader", () => {
  let sm: AwsClientStub<SecretsManagerClient>;
  let client: SecretsManagerClient;
  let now = 0;
  beforeEach(() => {
    client = new SecretsManagerClient({ region: "eu-west-1", maxAttempts: 1 });
    sm = mockClient(client);
    now = 1_000;
  });
  afterEach(() => sm.restore());

  it("reads a secret of the wrong shape again on the next attempt, so a fix lands before the bus gives up", async () => {
    sm.on(GetSecretValueCommand)
      .resolvesOnce({ SecretString: "deploy:token" })
      .resolves({ SecretString: GOOD });
    const seen: string[] = [];
    const pullSecret = registryPullSecret(
      loadEnvironmentsConfig({ [ENV.REGISTRY_AUTH_SECRET]: ARN }),
      createSecretReader({ client, now: () => now, onSecret: (value) => seen.push(value) }),
    );
    await expect(pullSecret()).rejects.toThrow(ConfigError);
    now += 60_000; // Lambda's first retry of the failed deploy
    expect(await pullSecret()).toBe(GOOD);
    // Both values were handed over for redaction, the wrong one too (it may well be a credential).
    expect(seen).toEqual(["deploy:token", GOOD]);
    // A good value is cached as before.
    now += 60_000;
    expect(await pullSecret()).toBe(GOOD);
    expect(sm.commandCalls(GetSecretValueCommand)).toHaveLength(2);
  });
});
