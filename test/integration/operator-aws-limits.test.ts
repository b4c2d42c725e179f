/**
 * The commands an operator runs against AWS from a shell (`kubler audit`, `kubler stop --aws`) end,
 * saying what to check, when an endpoint takes the connection and never answers (a proxy, a VPC
 * endpoint's security group): the SDK sets no time limit of its own.
 */
import { once } from "node:events";
import { mkdtempSync } from "node:fs";
import { createServer, type Socket } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { awsSetupProblem } from "../../cli/aws-setup-problem.js";
import { isolatedKublerEnv, runKubler } from "./kubler-process.js";

const NO_STACK = /\n\s+at |"stack"/;

describe("kubler audit against an AWS endpoint that never answers", () => {
  const sockets: Socket[] = [];
  const silent = createServer((socket) => sockets.push(socket));
  let endpoint = "";

  beforeAll(async () => {
    silent.listen(0, "127.0.0.1");
    await once(silent, "listening");
    endpoint = `http://127.0.0.1:${(silent.address() as { port: number }).port}`;
  });
  afterAll(() => {
    for (const socket of sockets) socket.destroy();
    silent.close();
  });

  it("ends, saying AWS did not answer, instead of waiting for ever", async () => {
    const env = {
      ...isolatedKublerEnv(mkdtempSync(join(tmpdir(), "kubler-audit-silent-"))),
      KUBLER_AUDIT_LOG_GROUPS: "/aws/lambda/kubler-gitlab-webhook",
      AWS_REGION: "eu-west-1",
      AWS_ACCESS_KEY_ID: "AKIDEXAMPLE",
      AWS_SECRET_ACCESS_KEY: "secret",
      AWS_PROFILE: "",
      AWS_ENDPOINT_URL: endpoint,
    };
    const result = await runKubler(env, "audit", "--since", "1h");
    expect(result.code).toBe(1);
    expect(result.stderr).toContain("kubler audit: AWS did not answer for CloudWatch Logs");
    expect(result.stderr).toContain("check this machine reaches the region's endpoints");
    expect(result.stderr).not.toMatch(NO_STACK);
  }, 60_000);
});

describe("awsSetupProblem", () => {
  it("quotes the profile it names in the command to paste", () => {
    const error = Object.assign(new Error("Could not load credentials"), {
      name: "CredentialsProviderError",
    });
    expect(awsSetupProblem(error, "", { AWS_PROFILE: "dev; rm -rf ~" })).toContain(
      "(aws sso login --profile 'dev; rm -rf ~')",
    );
    expect(awsSetupProblem(error, "", { AWS_PROFILE: "dev" })).toContain("(aws sso login --profile dev)");
  });
});
