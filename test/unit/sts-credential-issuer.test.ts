import {
  AssumeRoleCommand,
  MalformedPolicyDocumentException,
  PackedPolicyTooLargeException,
  RegionDisabledException,
  STSClient,
  STSServiceException,
} from "@aws-sdk/client-sts";
import { mockClient } from "aws-sdk-client-mock";
import "aws-sdk-client-mock-vitest/extend";
import { afterEach, describe, expect, it } from "vitest";
import { StsCredentialIssuer } from "../../shared/adapters/sts-credential-issuer.js";
import { parseCredentialsPolicy } from "../../shared/domain/credentials-policy.js";
import { readJobClaims } from "../../shared/domain/job-claims.js";
import { buildAssumeRoleRequest } from "../../shared/domain/sts-session.js";
import { ForbiddenError, UnavailableError, UnprocessableError } from "../../shared/errors.js";
import fixture from "../fixtures/gitlab/id-token/example_payload.json" with { type: "json" };

const sts = mockClient(STSClient);
afterEach(() => sts.reset());

const NOW = new Date("2026-11-21T10:00:00Z");
const policy = parseCredentialsPolicy(`
rules:
  - name: test
    match: { project_path: "my-group/*" }
    aws:
      roleArn: arn:aws:iam::123456789012:role/kubler-test
      maxDurationSeconds: 3600
      sessionPolicy:
        Version: "2012-10-17"
        Statement:
          - { Effect: Allow, Action: "s3:GetObject", Resource: "arn:aws:s3:::artifacts/{project_path}/{environment}/*" }
`);
const aws = policy.rules[0]?.aws as NonNullable<(typeof policy.rules)[0]["aws"]>;
// The documented fixture token, its lifetime moved so that 20 minutes of it are left.
const claims = readJobClaims({ ...fixture.payload, aud: "kubler", exp: NOW.getTime() / 1000 + 1200 });
const request = buildAssumeRoleRequest({
  aws,
  claims,
  environment: claims.environment,
  namespace: null,
  now: NOW,
});

function issuer() {
  return new StsCredentialIssuer(new STSClient({ region: "eu-west-1", maxAttempts: 1 }));
}

describe("StsCredentialIssuer", () => {
  it("sends exactly this AssumeRole for the fixture token and returns the credentials", async () => {
    sts.on(AssumeRoleCommand).resolves({
      Credentials: {
        AccessKeyId: "ASIAEXAMPLE",
        SecretAccessKey: "secret",
        SessionToken: "session",
        Expiration: new Date("2026-11-21T10:20:00Z"),
      },
      AssumedRoleUser: {
        Arn: "arn:aws:sts::123456789012:assumed-role/kubler-test/gl-302",
        AssumedRoleId: "AROA:gl-302",
      },
    });
    const credentials = await issuer().assumeRole(request);
    expect(sts).toHaveReceivedCommandTimes(AssumeRoleCommand, 1);
    expect(sts.commandCalls(AssumeRoleCommand)[0]?.args[0].input).toEqual({
      RoleArn: "arn:aws:iam::123456789012:role/kubler-test",
      RoleSessionName: "gl-302",
      SourceIdentity: "gl-sample-user",
      DurationSeconds: 1200,
      Tags: [
        { Key: "project_id", Value: "20" },
        { Key: "project_path", Value: "my-group/my-project" },
        { Key: "namespace_path", Value: "my-group" },
        { Key: "pipeline_id", Value: "574" },
        { Key: "job_id", Value: "302" },
        { Key: "ref", Value: "feature-branch-1" },
        { Key: "ref_type", Value: "branch" },
        { Key: "ref_protected", Value: "false" },
        { Key: "environment", Value: "test-environment2" },
        { Key: "user_login", Value: "sample-user" },
      ],
      TransitiveTagKeys: [
        "project_id",
        "project_path",
        "namespace_path",
        "pipeline_id",
        "job_id",
        "ref",
        "ref_type",
        "ref_protected",
        "environment",
        "user_login",
      ],
      Policy:
        '{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"s3:GetObject","Resource":"arn:aws:s3:::artifacts/my-group/my-project/test-environment2/*"}]}',
    });
    expect(credentials).toEqual({
      accessKeyId: "ASIAEXAMPLE",
      secretAccessKey: "secret",
      sessionToken: "session",
      expiresAt: new Date("2026-11-21T10:20:00Z"),
      assumedRoleArn: "arn:aws:sts::123456789012:assumed-role/kubler-test/gl-302",
    });
  });

  it("sends no Policy when the rule has none", async () => {
    sts.on(AssumeRoleCommand).resolves({
      Credentials: { AccessKeyId: "A", SecretAccessKey: "S", SessionToken: "T", Expiration: NOW },
    });
    await issuer().assumeRole({ ...request, policy: null });
    expect(sts.commandCalls(AssumeRoleCommand)[0]?.args[0].input).not.toHaveProperty("Policy");
  });

  it("PackedPolicyTooLarge for a rule without a session policy names the job's tags, not a policy it lacks", async () => {
    sts.on(AssumeRoleCommand).rejects(
      new PackedPolicyTooLargeException({
        message: "Packed policy consumes 104% of allotted space",
        $metadata: { httpStatusCode: 400 },
      }),
    );
    const thrown = await issuer()
      .assumeRole({ ...request, policy: null })
      .catch((e: unknown) => e);
    expect(thrown).toBeInstanceOf(UnprocessableError);
    expect((thrown as Error).message).toBe(
      "STS refused the session for arn:aws:iam::123456789012:role/kubler-test: the session tags from the job's claims are too large once packed (PackedPolicyTooLarge; the rule has no session policy); a shorter ref, environment or project path fits",
    );
  });

  const meta = { $metadata: { httpStatusCode: 400 } };
  const cases: [string, Error, new (message: string) => Error, RegExp][] = [
    [
      "AccessDenied",
      new STSServiceException({
        name: "AccessDenied",
        $fault: "client",
        message: "not authorized",
        ...{ $metadata: { httpStatusCode: 403 } },
      }),
      ForbiddenError,
      /^AWS refused to let Kubler assume arn:aws:iam::123456789012:role\/kubler-test \(AccessDenied\): the role's trust policy must allow Kubler's role sts:AssumeRole, sts:TagSession and sts:SetSourceIdentity$/,
    ],
    [
      "PackedPolicyTooLarge",
      new PackedPolicyTooLargeException({
        message: "Packed policy consumes 112% of allotted space",
        ...meta,
      }),
      UnprocessableError,
      /too large once packed \(PackedPolicyTooLarge\); shorten the rule's sessionPolicy$/,
    ],
    [
      "MalformedPolicyDocument",
      new MalformedPolicyDocumentException({ message: "Syntax errors in policy", ...meta }),
      UnprocessableError,
      /\(MalformedPolicyDocument\): Syntax errors in policy$/,
    ],
    [
      "RegionDisabled",
      new RegionDisabledException({ message: "STS is not activated", ...meta }),
      UnprocessableError,
      /^STS is not activated in this account's region \(RegionDisabled\)/,
    ],
    [
      "Throttling",
      new STSServiceException({
        name: "Throttling",
        $fault: "client",
        message: "Rate exceeded",
        $metadata: { httpStatusCode: 400 },
      }),
      UnavailableError,
      /^STS is throttling AssumeRole for arn:aws:iam::123456789012:role\/kubler-test$/,
    ],
    [
      "ValidationError (duration above the role's maximum)",
      new STSServiceException({
        name: "ValidationError",
        $fault: "client",
        message: "The requested DurationSeconds exceeds the MaxSessionDuration set for this role.",
        ...meta,
      }),
      UnprocessableError,
      /\(ValidationError\): The requested DurationSeconds exceeds the MaxSessionDuration set for this role\.$/,
    ],
    [
      "a network failure",
      Object.assign(new Error("connect ECONNREFUSED"), { name: "Error" }),
      UnavailableError,
      /^STS could not be reached or failed/,
    ],
  ];

  it.each(cases)("maps %s to a clear answer", async (_name, error, type, message) => {
    sts.on(AssumeRoleCommand).rejects(error);
    const thrown = await issuer()
      .assumeRole(request)
      .catch((e: unknown) => e);
    expect(thrown).toBeInstanceOf(type);
    expect((thrown as Error).message).toMatch(message);
  });
});
