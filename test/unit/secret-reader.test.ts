import {
  GetSecretValueCommand,
  InternalServiceError,
  ResourceNotFoundException,
  SecretsManagerClient,
} from "@aws-sdk/client-secrets-manager";
import { type AwsClientStub, mockClient } from "aws-sdk-client-mock";
import "aws-sdk-client-mock-vitest/extend";
import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import {
  createRedactingSecretReader,
  createSecretReader,
  gitlabApiToken,
} from "../../shared/adapters/secret-reader.js";
import { StdoutAuditLog } from "../../shared/adapters/stdout-audit-log.js";
import { ENV, loadEnvironmentsConfig, registryPullSecret } from "../../shared/config.js";
import { REDACTED } from "../../shared/domain/audit.js";
import { ConfigError, UnavailableError } from "../../shared/errors.js";

const ARN = "arn:aws:secretsmanager:eu-west-1:123456789012:secret:kubler/gitlab-AbCdEf";
const REGISTRY_ARN = "arn:aws:secretsmanager:eu-west-1:123456789012:secret:kubler/registry-auth-AbCdEf";
const DOCKER_CONFIG = JSON.stringify({ auths: { "registry.example.com": { auth: "ZGVwbG95OnRva2Vu" } } });

describe("createSecretReader", () => {
  let sm: AwsClientStub<SecretsManagerClient>;
  let client: SecretsManagerClient;
  let now = 0;
  beforeEach(() => {
    client = new SecretsManagerClient({ region: "eu-west-1", maxAttempts: 1 });
    sm = mockClient(client);
    now = 1_000;
  });
  afterEach(() => sm.restore());

  it("reads the secret once per TTL, and again after it (a rotation lands)", async () => {
    sm.on(GetSecretValueCommand)
      .resolvesOnce({ SecretString: "glpat-one\n" })
      .resolves({ SecretString: "glpat-two" });
    const read = createSecretReader({ client, ttlMs: 60_000, now: () => now });
    expect(await Promise.all([read(ARN), read(ARN)])).toEqual(["glpat-one", "glpat-one"]);
    now += 59_000;
    expect(await read(ARN)).toBe("glpat-one");
    expect(sm).toHaveReceivedCommandTimes(GetSecretValueCommand, 1);
    expect(sm).toHaveReceivedCommandWith(GetSecretValueCommand, { SecretId: ARN });
    now += 2_000;
    expect(await read(ARN)).toBe("glpat-two");
    expect(sm).toHaveReceivedCommandTimes(GetSecretValueCommand, 2);
  });

  it("reads a refused value again past the cache, once for refusals that overlap or follow the new value", async () => {
    sm.on(GetSecretValueCommand)
      .resolvesOnce({ SecretString: "glpat-old" })
      .resolves({ SecretString: "glpat-new" });
    const read = createSecretReader({ client, now: () => now });
    expect(await read(ARN)).toBe("glpat-old");
    // Three requests refused together: one read, the rest share it.
    expect(await Promise.all([1, 2, 3].map(() => read(ARN, undefined, "glpat-old")))).toEqual([
      "glpat-new",
      "glpat-new",
      "glpat-new",
    ]);
    expect(sm).toHaveReceivedCommandTimes(GetSecretValueCommand, 2);
    // A request that took the old value before the renewal, refused after it arrived, and the next
    // ordinary read: the renewed value, from the cache.
    expect(await read(ARN, undefined, "glpat-old")).toBe("glpat-new");
    expect(await read(ARN)).toBe("glpat-new");
    expect(sm).toHaveReceivedCommandTimes(GetSecretValueCommand, 2);
  });

  it("reads a refused value again once per refusal while the secret still holds it, so an update lands on the next one", async () => {
    sm.on(GetSecretValueCommand).resolves({ SecretString: "glpat-old" });
    const read = createSecretReader({ client, now: () => now });
    await read(ARN);
    expect(await read(ARN, undefined, "glpat-old")).toBe("glpat-old");
    expect(await read(ARN, undefined, "glpat-old")).toBe("glpat-old");
    expect(await read(ARN)).toBe("glpat-old");
    expect(sm).toHaveReceivedCommandTimes(GetSecretValueCommand, 3);
    sm.on(GetSecretValueCommand).resolves({ SecretString: "glpat-new" });
    expect(await read(ARN, undefined, "glpat-old")).toBe("glpat-new");
    expect(sm).toHaveReceivedCommandTimes(GetSecretValueCommand, 4);
  });

  it("tells onSecret each value it reads, once per read, so logs can redact it", async () => {
    sm.on(GetSecretValueCommand).resolves({ SecretString: "an-old-style-token-20c" });
    const seen: string[] = [];
    const read = createSecretReader({ client, onSecret: (value) => seen.push(value), now: () => now });
    await Promise.all([read(ARN), read(ARN)]);
    expect(seen).toEqual(["an-old-style-token-20c"]);
  });

  it("reads a binary secret as UTF-8", async () => {
    sm.on(GetSecretValueCommand).resolves({ SecretBinary: new TextEncoder().encode("kubeconfig: yes") });
    expect(await createSecretReader({ client })("kubler/kubeconfig")).toBe("kubeconfig: yes");
  });

  it("names a missing secret as a configuration error, never caching the failure", async () => {
    sm.on(GetSecretValueCommand)
      .rejectsOnce(
        new ResourceNotFoundException({
          message: "Secrets Manager can't find the specified secret.",
          $metadata: {},
        }),
      )
      .resolves({ SecretString: "glpat-later" });
    const read = createSecretReader({ client, now: () => now });
    const error = await read(ARN).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(ConfigError);
    expect((error as Error).message).toBe(
      `Secrets Manager cannot give secret ${ARN}: ResourceNotFoundException`,
    );
    expect(await read(ARN)).toBe("glpat-later");
  });

  it("reports an outage as unavailable, and an empty secret as misconfigured", async () => {
    sm.on(GetSecretValueCommand)
      .rejectsOnce(new InternalServiceError({ message: "boom", $metadata: {} }))
      .resolves({ SecretString: "  " });
    const read = createSecretReader({ client });
    await expect(read(ARN)).rejects.toBeInstanceOf(UnavailableError);
    await expect(read(ARN)).rejects.toThrow(new ConfigError(`secret ${ARN} is empty`));
  });

  // A registry secret put with the wrong shape fails the deploy, which the bus retries (Lambda's two
  // async retries, about 1 and 3 minutes later). The wrong value must not be cached like a good one:
  // put right between the attempts, the retry deploys instead of being dead-lettered.
  it("reads a registry secret of the wrong shape again on the next attempt, so a fix lands before the bus gives up", async () => {
    sm.on(GetSecretValueCommand)
      .resolvesOnce({ SecretString: "deploy:token" })
      .resolves({ SecretString: DOCKER_CONFIG });
    const seen: string[] = [];
    const pullSecret = registryPullSecret(
      loadEnvironmentsConfig({ [ENV.REGISTRY_AUTH_SECRET]: REGISTRY_ARN }),
      createSecretReader({ client, now: () => now, onSecret: (value) => seen.push(value) }),
    );
    await expect(pullSecret()).rejects.toThrow(ConfigError);
    now += 60_000; // Lambda's first retry of the failed deploy
    expect(await pullSecret()).toBe(DOCKER_CONFIG);
    // Both values were handed over for redaction, the wrong one too (it may well be a credential).
    expect(seen).toEqual(["deploy:token", DOCKER_CONFIG]);
    // A good value is cached as before.
    now += 60_000;
    expect(await pullSecret()).toBe(DOCKER_CONFIG);
    expect(sm.commandCalls(GetSecretValueCommand)).toHaveLength(2);
  });
});

describe("createRedactingSecretReader", () => {
  it("reads through Secrets Manager and redacts each value from the audit log's later lines", async () => {
    // Every client, not one instance: the reader makes its own, as the entry points do.
    const sm = mockClient(SecretsManagerClient);
    vi.stubEnv("AWS_REGION", "eu-west-1");
    try {
      sm.on(GetSecretValueCommand).resolves({ SecretString: "an-old-style-token-20c" });
      const lines: string[] = [];
      const audit = new StdoutAuditLog((line) => lines.push(line));
      expect(await createRedactingSecretReader(audit)(ARN)).toBe("an-old-style-token-20c");
      expect(sm).toHaveReceivedCommandWith(GetSecretValueCommand, { SecretId: ARN });
      audit.record({
        audit: true,
        action: "status.report",
        outcome: "failure",
        reason: "GitLab refused an-old-style-token-20c",
        actor: {},
        subject: {},
        correlationId: null,
        gitlab: null,
        function: "report-status",
        at: "2026-11-21T00:00:00.000Z",
      });
      expect(JSON.parse(lines[0] as string).reason).toBe(`GitLab refused ${REDACTED}`);
    } finally {
      sm.restore();
      vi.unstubAllEnvs();
    }
  });
});

describe("gitlabApiToken", () => {
  it("uses GITLAB_API_TOKEN as it is, or reads the named secret on every call (the reader caches)", async () => {
    const url = "https://gitlab.example.com";
    expect(await gitlabApiToken({ url, token: "glpat-env", tokenSecret: null }, null)()).toBe("glpat-env");
    const asked: string[] = [];
    const token = gitlabApiToken({ url, token: null, tokenSecret: "kubler/gitlab" }, async (id) => {
      asked.push(id);
      return "glpat-secret";
    });
    expect(await token()).toBe("glpat-secret");
    expect(asked).toEqual(["kubler/gitlab"]);
    // GitLab refused it: the reader is told, so it reads past its cache.
    const refusals: (string | undefined)[] = [];
    await gitlabApiToken({ url, token: null, tokenSecret: "kubler/gitlab" }, async (_, __, refused) => {
      refusals.push(refused);
      return "glpat-secret";
    })("glpat-refused");
    expect(refusals).toEqual(["glpat-refused"]);
    expect(() => gitlabApiToken({ url, token: null, tokenSecret: "kubler/gitlab" }, null)).toThrow(
      ConfigError,
    );
  });
});
