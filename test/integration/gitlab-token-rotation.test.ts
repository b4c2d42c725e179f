/**
 * A GitLab API token rotated while the functions run: GitLab's rotate API revokes the old token at
 * once (https://docs.gitlab.com/api/personal_access_tokens/#rotate-a-personal-access-token), the
 * operator then puts the new one in the secret GITLAB_API_TOKEN_SECRET names. The GitLab adapters, as
 * the handlers wire them (Secrets Manager through its SDK client, faked at the transport), against a
 * GitLab over node:http that takes only the current token: a 401 reads the secret again past its
 * 5-minute cache and sends again with a changed value, once; an unchanged one fails as before.
 */
import {
  GetSecretValueCommand,
  InternalServiceError,
  SecretsManagerClient,
} from "@aws-sdk/client-secrets-manager";
import { type AwsClientStub, mockClient } from "aws-sdk-client-mock";
import "aws-sdk-client-mock-vitest/extend";
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it, vi } from "vitest";
import { REPORT_STATUS_LIMITS } from "../../functions/report-status/limits.js";
import { GitlabCommitStatuses } from "../../shared/adapters/gitlab-commit-statuses.js";
import { GitlabManifestSource } from "../../shared/adapters/gitlab-manifest-source.js";
import { createRedactingSecretReader, gitlabApiToken } from "../../shared/adapters/secret-reader.js";
import { StdoutAuditLog } from "../../shared/adapters/stdout-audit-log.js";
import type { Detail } from "../../shared/domain/catalog.js";
import { ConfigError } from "../../shared/errors.js";
import { reportStatus } from "../../shared/services/report-status.js";
import { type FakeGitlab, startFakeGitlab } from "../fakes/gitlab-server.js";
import { FixedClock } from "../fakes/index.js";

const SECRET = "arn:aws:secretsmanager:eu-west-1:123456789012:secret:kubler/gitlab-AbCdEf";
const OLD_TOKEN = "glpat-old-0123456789abcdefghij";
const NEW_TOKEN = "glpat-new-9876543210zyxwvutsrq";
const SHA = "0123456789abcdef0123456789abcdef01234567";
const PROJECT = { projectId: 15, projectPath: "group/app" };

/** What GitLab takes: read per request by the fake, so setting it revokes the old token at once. */
const accepted = { token: OLD_TOKEN };
let gitlab: FakeGitlab;
let sm: AwsClientStub<SecretsManagerClient>;
let lines: string[];
let audit: StdoutAuditLog;

beforeAll(async () => {
  gitlab = await startFakeGitlab(accepted);
  gitlab.commit(PROJECT.projectId, SHA, { "kubler.yaml": "version: 1\n" });
});
afterAll(() => gitlab.close());
beforeEach(() => {
  // Every client, as the handlers' reader makes its own.
  sm = mockClient(SecretsManagerClient);
  vi.stubEnv("AWS_REGION", "eu-west-1");
  accepted.token = OLD_TOKEN;
  gitlab.requests.length = 0;
  lines = [];
  audit = new StdoutAuditLog((line) => lines.push(line));
});
afterEach(() => {
  sm.restore();
  vi.unstubAllEnvs();
});

/** As functions/report-status/handler.ts builds it, with no waits between attempts. */
function commitStatuses() {
  const readSecret = createRedactingSecretReader(audit, REPORT_STATUS_LIMITS.aws);
  return new GitlabCommitStatuses({
    baseUrl: gitlab.url,
    token: gitlabApiToken({ url: gitlab.url, token: null, tokenSecret: SECRET }, readSecret),
    ...REPORT_STATUS_LIMITS.set,
    latest: REPORT_STATUS_LIMITS.latest,
    sleep: async () => {},
  });
}

/** As plan-steps and deploy-environment build it. */
function manifestSource() {
  const readSecret = createRedactingSecretReader(audit);
  return new GitlabManifestSource({
    baseUrl: gitlab.url,
    token: gitlabApiToken({ url: gitlab.url, token: null, tokenSecret: SECRET }, readSecret),
    sleep: async () => {},
  });
}

function deployFinished(environment: string): Detail<"Deploy Finished"> {
  return {
    correlationId: `c-${environment}`,
    gitlab: { instance: gitlab.url, ...PROJECT },
    environment,
    sha: SHA,
    ref: "main",
    pipelineId: null,
    mrIid: null,
    status: "succeeded",
    namespace: `group-app-${environment}-1a2b3c4d`,
    url: `https://${environment}.apps.example.com`,
    reason: null,
  };
}

const tokensSent = () => gitlab.requests.map((request) => request.token);
const secretReads = () => sm.commandCalls(GetSecretValueCommand).length;

describe("a GitLab API token rotated within the secret cache's 5 minutes", () => {
  it("report-status sets a final status right after the rotation, reading the secret once more", async () => {
    sm.on(GetSecretValueCommand)
      .resolvesOnce({ SecretString: OLD_TOKEN })
      .resolves({ SecretString: NEW_TOKEN });
    const deps = { statuses: commitStatuses(), audit, clock: new FixedClock() };
    const time = new Date("2026-11-21T10:00:00Z");
    expect(
      await reportStatus(deps, { detailType: "Deploy Finished", detail: deployFinished("staging"), time }),
    ).toEqual({ kind: "set", state: "success" });

    accepted.token = NEW_TOKEN; // rotated in GitLab, then put in the secret
    gitlab.requests.length = 0;
    expect(
      await reportStatus(deps, { detailType: "Deploy Finished", detail: deployFinished("production"), time }),
    ).toEqual({ kind: "set", state: "success" });
    // The GET of the latest status (one attempt in report-status) was refused, then sent again with
    // the new token; the POST used it from the cache.
    expect(gitlab.requests.map((request) => `${request.method} ${request.token}`)).toEqual([
      `GET ${OLD_TOKEN}`,
      `GET ${NEW_TOKEN}`,
      `POST ${NEW_TOKEN}`,
    ]);
    expect(secretReads()).toBe(2);
    expect(lines.map((line) => JSON.parse(line).outcome)).toEqual(["success", "success"]);
    for (const line of lines) {
      expect(line).not.toContain(OLD_TOKEN);
      expect(line).not.toContain(NEW_TOKEN);
    }
  });

  it("the manifest source reads kubler.yaml right after the rotation", async () => {
    sm.on(GetSecretValueCommand)
      .resolvesOnce({ SecretString: OLD_TOKEN })
      .resolves({ SecretString: NEW_TOKEN });
    const source = manifestSource();
    expect(await source.readManifest(PROJECT, SHA)).toBe("version: 1\n");
    accepted.token = NEW_TOKEN;
    expect(await source.readManifest(PROJECT, SHA)).toBe("version: 1\n");
    expect(tokensSent()).toEqual([OLD_TOKEN, OLD_TOKEN, NEW_TOKEN]);
    expect(secretReads()).toBe(2);
  });

  it("requests refused together share one read of the secret", async () => {
    sm.on(GetSecretValueCommand)
      .resolvesOnce({ SecretString: OLD_TOKEN })
      .resolves({ SecretString: NEW_TOKEN });
    const statuses = commitStatuses();
    await statuses.latest({ ...PROJECT, sha: SHA, name: "kubler/warm", ref: "main" });
    accepted.token = NEW_TOKEN;
    const names = ["a", "b", "c", "d", "e"].map((name) => `kubler/${name}`);
    const latest = await Promise.all(
      names.map((name) => statuses.latest({ ...PROJECT, sha: SHA, name, ref: "main" })),
    );
    expect(latest).toEqual(names.map(() => null));
    expect(secretReads()).toBe(2);
    expect(tokensSent().filter((token) => token === OLD_TOKEN)).toHaveLength(6);
    expect(tokensSent().filter((token) => token === NEW_TOKEN)).toHaveLength(5);
  });

  it("fails as before, naming the token, when the secret still holds the refused token: one read and one send per request", async () => {
    sm.on(GetSecretValueCommand).resolves({ SecretString: OLD_TOKEN });
    const statuses = commitStatuses();
    const source = manifestSource();
    accepted.token = NEW_TOKEN; // rotated in GitLab, the secret not updated yet
    const set = statuses
      .set({
        ...PROJECT,
        sha: SHA,
        name: "kubler/staging",
        ref: "main",
        state: "success",
        pipelineId: null,
        description: "Deployed",
        targetUrl: null,
      })
      .catch((error: unknown) => error);
    expect(await set).toBeInstanceOf(ConfigError);
    expect(((await set) as Error).message).toMatch(/^GitLab refused GITLAB_API_TOKEN \(HTTP 401\) setting /);
    expect(tokensSent()).toEqual([OLD_TOKEN]);
    expect(secretReads()).toBe(2);

    const read = await source.readManifest(PROJECT, SHA).catch((error: unknown) => error);
    expect(read).toBeInstanceOf(ConfigError);
    expect((read as Error).message).toMatch(/^GitLab refused GITLAB_API_TOKEN \(HTTP 401\)/);
    expect((read as Error).message).not.toContain(OLD_TOKEN);
    expect(tokensSent()).toEqual([OLD_TOKEN, OLD_TOKEN]);
    expect(secretReads()).toBe(4);

    // Put in the secret a little later: the next request's 401 finds it, not the cache's expiry.
    sm.on(GetSecretValueCommand).resolves({ SecretString: NEW_TOKEN });
    expect(await source.readManifest(PROJECT, SHA)).toBe("version: 1\n");
    expect(tokensSent().slice(2)).toEqual([OLD_TOKEN, NEW_TOKEN]);
    expect(secretReads()).toBe(5);
  });

  it("keeps GitLab's 401 when the secret cannot be read again, and reads it on the next request", async () => {
    sm.on(GetSecretValueCommand)
      .resolvesOnce({ SecretString: OLD_TOKEN })
      .rejectsOnce(new InternalServiceError({ message: "boom", $metadata: {} }))
      .resolves({ SecretString: NEW_TOKEN });
    const source = manifestSource();
    expect(await source.readManifest(PROJECT, SHA)).toBe("version: 1\n");
    accepted.token = NEW_TOKEN;
    await expect(source.readManifest(PROJECT, SHA)).rejects.toThrow(
      /GitLab refused GITLAB_API_TOKEN \(HTTP 401\)/,
    );
    expect(await source.readManifest(PROJECT, SHA)).toBe("version: 1\n");
    expect(tokensSent()).toEqual([OLD_TOKEN, OLD_TOKEN, NEW_TOKEN]);
  });

  it("sends GITLAB_API_TOKEN once, without reading any secret, when GitLab refuses it", async () => {
    const source = new GitlabManifestSource({
      baseUrl: gitlab.url,
      token: gitlabApiToken({ url: gitlab.url, token: OLD_TOKEN, tokenSecret: null }, null),
      sleep: async () => {},
    });
    accepted.token = NEW_TOKEN;
    await expect(source.readManifest(PROJECT, SHA)).rejects.toThrow(ConfigError);
    expect(tokensSent()).toEqual([OLD_TOKEN]);
    expect(secretReads()).toBe(0);
  });
});
