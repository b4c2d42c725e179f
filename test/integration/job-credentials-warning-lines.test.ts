/**
 * What job-credentials writes on stderr when something fails that the job never sees: the archive
 * event of a decision not published, the replay key not released. The stack's internal-errors alarm
 * counts every `{ $.level = "error" }` line as a request answered 500 and lost (infra/observability.ts):
 * those lines are for that, and these are warnings.
 */
import { afterAll, beforeAll, describe, expect, it, vi } from "vitest";
import { createJobCredentialsApp } from "../../functions/job-credentials/app.js";
import type { KubernetesCluster } from "../../shared/adapters/kubernetes-cluster.js";
import { logErrorToStderr } from "../../shared/adapters/stdout-audit-log.js";
import { gitlabIdTokenClaims, LocalOidcIssuer } from "../../shared/local/local-oidc-issuer.js";
import { jobCredentialsTestDeps } from "../fakes/job-credentials-deps.js";
import { startJwksServer } from "../fakes/jwks-server.js";

const POLICY = `
rules:
  - name: artifacts
    match: { project_path: group/app, environment: artifacts }
    aws: { roleArn: "arn:aws:iam::123456789012:role/artifacts" }
`;

const key = LocalOidcIssuer.generate("kid-1");
let jwks: Awaited<ReturnType<typeof startJwksServer>>;

beforeAll(async () => {
  jwks = await startJwksServer([key]);
});
afterAll(() => jwks.close());

/** The JSON lines written on stderr while `work` runs. */
async function stderrLines(work: () => Promise<void>): Promise<Record<string, unknown>[]> {
  const written: string[] = [];
  const spy = vi.spyOn(process.stderr, "write").mockImplementation((chunk) => {
    written.push(String(chunk));
    return true;
  });
  try {
    await work();
  } finally {
    spy.mockRestore();
  }
  return written.map((line) => JSON.parse(line));
}

describe("job-credentials' stderr lines", () => {
  it("a Credentials Issued not archived is a warning: the job got its credentials, nothing was answered 500", async () => {
    // As functions/job-credentials/handler.ts wires them; the service requires logWarning, so the
    // handler cannot leave it out and send warnings to the internal-errors alarm.
    const deps = jobCredentialsTestDeps(jwks.url, POLICY, null as unknown as KubernetesCluster, {
      logError: logErrorToStderr("job-credentials"),
      logWarning: logErrorToStderr("job-credentials", [], "warn"),
    });
    deps.publisher.failNext = 1;
    const bearer = key.sign(
      gitlabIdTokenClaims(
        { iss: jwks.url, aud: "kubler", now: deps.clock.now() },
        { project_path: "group/app", project_id: "15", namespace_path: "group", environment: "artifacts" },
      ),
    );
    let status = 0;
    const lines = await stderrLines(async () => {
      const response = await createJobCredentialsApp(deps).request("/v1/credentials", {
        method: "POST",
        headers: { authorization: `Bearer ${bearer}` },
      });
      status = response.status;
    });
    expect(status).toBe(200);
    expect(deps.audit.last()).toMatchObject({ outcome: "allow" });
    expect(lines.filter((line) => line.level === "error")).toEqual([]);
    expect(lines).toEqual([
      expect.objectContaining({ level: "warn", function: "job-credentials", name: "PublishError" }),
    ]);
  });
});
