/**
 * What job-credentials writes on stderr when something fails that the job never sees: the archive
 * event of a decision not published, the replay key not released. The stack's internal-errors alarm
 * counts every `{ $.level = "error" }` line as a request answered 500 and lost (infra/observability.ts):
 * those lines are for that, and these are warnings.
 *
 * Driven through the Lambda handler itself (functions/job-credentials/handler.ts), as its
 * environment configures it, its real AWS clients sent to a local fake AWS: which log the handler
 * wires as the warning one is what is under test, and no app built by the test would see it.
 */
import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it, vi } from "vitest";
import { ENV } from "../../shared/config.js";
import { gitlabIdTokenClaims, LocalOidcIssuer } from "../../shared/local/local-oidc-issuer.js";
import { type FakeAws, startFakeAws } from "../fakes/aws-endpoint.js";
import { startJwksServer } from "../fakes/jwks-server.js";

const key = LocalOidcIssuer.generate("kid-1");
let jwks: Awaited<ReturnType<typeof startJwksServer>>;
let aws: FakeAws;

beforeAll(async () => {
  jwks = await startJwksServer([key]);
  aws = await startFakeAws();
  const policyFile = join(mkdtempSync(join(tmpdir(), "kubler-warning-lines-")), "policy.yaml");
  writeFileSync(
    policyFile,
    `
issuer: ${jwks.url}
audience: kubler
rules:
  - name: artifacts
    match: { project_path: group/app, environment: artifacts }
    aws: { roleArn: "arn:aws:iam::123456789012:role/artifacts" }
`,
  );
  // What the stack gives the function, and Lambda adds; no cluster: this rule needs none.
  const env: Record<string, string> = {
    [ENV.POLICY_FILE]: policyFile,
    [ENV.DEDUPE_TABLE]: "kubler-dedupe",
    [ENV.EVENT_BUS_NAME]: "kubler",
    [ENV.KUBECONFIG]: "",
    [ENV.KUBECONFIG_SECRET]: "",
    AWS_ENDPOINT_URL: aws.url,
    AWS_REGION: "eu-west-1",
    AWS_ACCESS_KEY_ID: "ASIAEXECUTIONROLE",
    AWS_SECRET_ACCESS_KEY: "execution-role-secret",
    AWS_SESSION_TOKEN: "execution-role-session-token",
    AWS_PROFILE: "",
  };
  for (const [name, value] of Object.entries(env)) vi.stubEnv(name, value);
});
afterAll(async () => {
  vi.unstubAllEnvs();
  await Promise.all([jwks.close(), aws.close()]);
});

/**
 * The JSON lines written on stderr and stdout (the audit lines) while `work` runs; not Node's own
 * warnings (the AWS SDK's notice about the Node version), which are not JSON.
 */
async function outputLines(work: () => Promise<void>) {
  const written = { stderr: [] as string[], stdout: [] as string[] };
  const spies = (["stderr", "stdout"] as const).map((stream) =>
    vi.spyOn(process[stream], "write").mockImplementation((chunk) => {
      written[stream].push(String(chunk));
      return true;
    }),
  );
  try {
    await work();
  } finally {
    for (const spy of spies) spy.mockRestore();
  }
  const parse = (lines: string[]) =>
    lines
      .flatMap((chunk) => chunk.split("\n").filter((line) => line.startsWith("{")))
      .map((line) => JSON.parse(line));
  return { stderr: parse(written.stderr), stdout: parse(written.stdout) };
}

/** A Function URL request (payload format 2.0), as Lambda hands it to the handler. */
function urlEvent(bearer: string) {
  return {
    version: "2.0",
    routeKey: "$default",
    rawPath: "/v1/credentials",
    rawQueryString: "",
    headers: { "content-type": "application/json", authorization: `Bearer ${bearer}` },
    requestContext: {
      domainName: "abcdefgh.lambda-url.eu-west-1.on.aws",
      http: { method: "POST", path: "/v1/credentials", protocol: "HTTP/1.1", sourceIp: "203.0.113.7" },
      requestId: "req-1",
      timeEpoch: Date.now(),
    },
    body: "",
    isBase64Encoded: false,
  };
}

describe("job-credentials' stderr lines", () => {
  it("a Credentials Issued not archived is a warning: the job got its credentials, nothing was answered 500", async () => {
    const { handler } = await import("../../functions/job-credentials/handler.js");
    aws.answer((call) =>
      call.operation === "PutEvents"
        ? { status: 500, type: "InternalException", message: "EventBridge is having a moment" }
        : undefined,
    );
    const bearer = key.sign(
      gitlabIdTokenClaims(
        { iss: jwks.url, aud: "kubler", now: new Date() },
        { project_path: "group/app", project_id: "15", namespace_path: "group", environment: "artifacts" },
      ),
    );
    let result: { statusCode?: number; body?: string } = {};
    const lines = await outputLines(async () => {
      // biome-ignore lint/suspicious/noExplicitAny: a hand-built Function URL event and context
      result = (await handler(urlEvent(bearer) as any, { awsRequestId: "req-1" } as any)) as typeof result;
    });

    expect(result.statusCode, result.body).toBe(200);
    expect(aws.callsOf("sts.AssumeRole")).toHaveLength(1);
    expect(aws.callsOf("events.PutEvents").length).toBeGreaterThan(0);
    expect(lines.stdout.filter((line) => line.audit)).toEqual([
      expect.objectContaining({ action: "credentials.issue", outcome: "allow" }),
    ]);
    expect(lines.stderr.filter((line) => line.level === "error")).toEqual([]);
    expect(lines.stderr).toEqual([
      expect.objectContaining({ level: "warn", function: "job-credentials", name: "PublishError" }),
    ]);
  });
});
