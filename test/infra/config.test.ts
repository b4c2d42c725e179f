import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { App } from "aws-cdk-lib";
import { describe, expect, it } from "vitest";
import { CONTEXT, configFromContext, KublerConfigError, validateConfig } from "../../infra/config.js";
import { KublerStack } from "../../infra/kubler-stack.js";
import { roleArnsOfPolicy } from "../../infra/policy-roles.js";
import {
  buildStack,
  GITLAB_TOKEN_SECRET_ARN,
  KUBECONFIG_SECRET_ARN,
  POLICY_FILE,
  REGISTRY_AUTH_SECRET_ARN,
  ROOT,
  testConfig,
} from "./stack-fixture.js";

const valid = {
  gitlabUrl: "https://gitlab.example.com",
  policyFile: POLICY_FILE,
  kubeconfigSecretArn: KUBECONFIG_SECRET_ARN,
  gitlabTokenSecretArn: GITLAB_TOKEN_SECRET_ARN,
};

/** The context keys a synth needs, as `cdk -c` gives them (the policy file relative to the repository). */
const REQUIRED_CONTEXT = {
  [CONTEXT.gitlabUrl]: valid.gitlabUrl,
  [CONTEXT.policyFile]: "docs/aws/credentials-policy.example.yaml",
  [CONTEXT.kubeconfigSecretArn]: KUBECONFIG_SECRET_ARN,
  [CONTEXT.gitlabTokenSecretArn]: GITLAB_TOKEN_SECRET_ARN,
};

/** The message of the KublerConfigError that reading the settings throws. */
function refusalOf(read: () => unknown): string {
  try {
    read();
  } catch (error) {
    expect(error).toBeInstanceOf(KublerConfigError);
    return (error as Error).message;
  }
  throw new Error("expected the settings to be refused");
}

function problemsOf(settings: Record<string, unknown>): string {
  return refusalOf(() => validateConfig(settings, ROOT));
}

describe("stack settings", () => {
  it("reads context with defaults, and the policy's role ARNs", () => {
    const app = new App({
      context: {
        ...REQUIRED_CONTEXT,
        [CONTEXT.reservedConcurrency]: '{"gitlab-webhook": 50}',
        [CONTEXT.logRetentionDays]: "30",
      },
    });
    expect(configFromContext(app.node, ROOT)).toEqual({
      ...valid,
      jobRoleArns: [
        "arn:aws:iam::123456789012:role/app-prod",
        "arn:aws:iam::123456789012:role/kubler-review",
      ],
      defaultTtl: "72h",
      reservedConcurrency: { "gitlab-webhook": 50 },
      logRetentionDays: 30,
      alarmTopicArn: null,
      buildImages: null,
      registryAuthSecretArn: null,
      podSecurity: "baseline",
    });
  });

  it("names every missing setting by its context key, at once", () => {
    const message = problemsOf({});
    for (const key of [
      CONTEXT.gitlabUrl,
      CONTEXT.policyFile,
      CONTEXT.kubeconfigSecretArn,
      CONTEXT.gitlabTokenSecretArn,
    ]) {
      expect(message).toContain(`${key}: is required`);
    }
  });

  it.each([
    [{ gitlabUrl: "http://gitlab.example.com" }, "kubler:gitlabUrl: must be an https URL"],
    [{ gitlabUrl: "gitlab.example.com" }, "kubler:gitlabUrl: must be an https URL"],
    [{ policyFile: "nope.yaml" }, "nope.yaml does not exist"],
    [
      { kubeconfigSecretArn: "kubler/kubeconfig" },
      "kubler:kubeconfigSecretArn: must be a Secrets Manager secret ARN",
    ],
    [
      { gitlabTokenSecretArn: "arn:aws:s3:::bucket" },
      "kubler:gitlabTokenSecretArn: must be a Secrets Manager",
    ],
    [{ defaultTtl: "3 days" }, 'kubler:defaultTtl: ttl "3 days" is not a duration'],
    [{ reservedConcurrency: { "gitlab-hook": 5 } }, 'unknown function "gitlab-hook"'],
    [{ reservedConcurrency: { reconcile: 0 } }, "reconcile must be a whole number from 1 to 1000"],
    [{ reservedConcurrency: "{oops" }, "kubler:reservedConcurrency: must be a JSON object"],
    [{ logRetentionDays: 42 }, "kubler:logRetentionDays: must be one of 1, 3,"],
    [{ alarmTopicArn: "oncall" }, "kubler:alarmTopicArn: must be an SNS topic ARN"],
    [
      { registryAuthSecretArn: "kubler/registry-auth" },
      "kubler:registryAuthSecretArn: must be a Secrets Manager secret ARN",
    ],
    [
      { buildImages: "registry.example.com/apps" },
      "kubler:buildImages: must be an image repository with {project_path} in it once",
    ],
    [{ podSecurity: "none" }, "kubler:podSecurity: must be one of baseline, restricted, privileged"],
    [{ podSecurity: true }, "kubler:podSecurity: must be a string"],
  ])("refuses %j", (override, expected) => {
    expect(problemsOf({ ...valid, ...override })).toContain(expected);
  });

  it("refuses a partial secret ARN (no -AbCdEf suffix), naming the key, for both secrets", () => {
    // Accepted, this deploys and then IAM refuses GetSecretValue at the functions' cold start: the
    // stack grants the complete ARN it is given (fromSecretCompleteArn).
    const partial = "arn:aws:secretsmanager:eu-west-1:123456789012:secret:kubler/kubeconfig";
    for (const key of ["kubeconfigSecretArn", "gitlabTokenSecretArn"] as const) {
      const message = problemsOf({ ...valid, [key]: partial });
      expect(message).toContain(
        `${CONTEXT[key]}: looks like a partial ARN: the complete one ends in the -AbCdEf suffix`,
      );
      expect(message).toContain(JSON.stringify(partial));
    }
    for (const suffix of ["-AbCdE", "-AbCdEf!", "AbCdEf", "-AbCd_f"]) {
      expect(problemsOf({ ...valid, kubeconfigSecretArn: `${partial}${suffix}` }), suffix).toContain(
        CONTEXT.kubeconfigSecretArn,
      );
    }
    const complete = validateConfig({ ...valid, kubeconfigSecretArn: `${partial}-a1B2c3` }, ROOT);
    expect(complete.kubeconfigSecretArn).toBe(`${partial}-a1B2c3`);
  });

  it("takes an optional registry auth secret, by its full ARN only", () => {
    expect(validateConfig(valid, ROOT).registryAuthSecretArn).toBeNull();
    expect(validateConfig({ ...valid, registryAuthSecretArn: "" }, ROOT).registryAuthSecretArn).toBeNull();
    expect(
      validateConfig({ ...valid, registryAuthSecretArn: ` ${REGISTRY_AUTH_SECRET_ARN} ` }, ROOT)
        .registryAuthSecretArn,
    ).toBe(REGISTRY_AUTH_SECRET_ARN);
    // The name alone deploys, then IAM refuses GetSecretValue on the first deploy of an environment.
    const partial = REGISTRY_AUTH_SECRET_ARN.replace(/-AbCdEf$/, "");
    const message = problemsOf({ ...valid, registryAuthSecretArn: partial });
    expect(message).toContain(
      `${CONTEXT.registryAuthSecretArn}: looks like a partial ARN: the complete one ends in the -AbCdEf suffix`,
    );
    expect(message).toContain(JSON.stringify(partial));
    const app = new App({
      context: {
        ...REQUIRED_CONTEXT,
        [CONTEXT.registryAuthSecretArn]: REGISTRY_AUTH_SECRET_ARN,
      },
    });
    expect(configFromContext(app.node, ROOT).registryAuthSecretArn).toBe(REGISTRY_AUTH_SECRET_ARN);
  });

  it("refuses a policy whose role is not an IAM role ARN, naming the rule", () => {
    const dir = mkdtempSync(join(tmpdir(), "kubler-policy-"));
    const file = join(dir, "policy.yaml");
    writeFileSync(
      file,
      'rules:\n  - name: all\n    match: { project_path: "*" }\n    aws: { roleArn: "arn:aws:iam::123456789012:role/*" }\n',
    );
    expect(problemsOf({ ...valid, policyFile: file })).toContain("rules[0] (all).aws.roleArn");
  });

  it("collects each role once", () => {
    const arn = "arn:aws:iam::123456789012:role/a";
    const rule = (name: string) =>
      `  - name: ${name}\n    match: { project_path: "g/${name}" }\n    aws: { roleArn: "${arn}" }\n`;
    const policy = `rules:\n${rule("a")}${rule("b")}`;
    expect(roleArnsOfPolicy(policy)).toEqual([arn]);
    expect(testConfig().jobRoleArns).toHaveLength(2);
  });
});

describe("a GitLab URL with credentials in it (kubler:gitlabUrl)", () => {
  // Accepted, the token would sit in plain text in the template and every function's environment
  // (cdk.out, CloudFormation, lambda:GetFunctionConfiguration), and the functions refuse such a
  // GITLAB_URL at their cold start anyway (shared/credentials-config.ts, gitlab-api.ts).
  it.each([
    "https://kubler:glpat-s3cretToken@gitlab.example.com",
    "https://glpat-s3cretToken@gitlab.example.com",
    "http://kubler:glpat-s3cretToken@gitlab.example.com",
  ])("refuses %s at synth, naming the key, without quoting the credential", (gitlabUrl) => {
    const message = problemsOf({ ...valid, gitlabUrl });
    expect(message).toContain(`${CONTEXT.gitlabUrl}: must be the instance's address only`);
    expect(message).not.toContain("s3cretToken");
  });
});

it("refuses a policy whose issuer carries credentials, as job-credentials would at every cold start", () => {
  const dir = mkdtempSync(join(tmpdir(), "kubler-policy-"));
  const file = join(dir, "policy.yaml");
  writeFileSync(
    file,
    'issuer: "https://kubler:glpat-s3cretToken@gitlab.example.com"\nrules:\n  - name: app\n    match: { project_path: "g/app" }\n    aws: { roleArn: "arn:aws:iam::123456789012:role/app" }\n',
  );
  const message = problemsOf({ ...valid, policyFile: file });
  expect(message).toContain(`${CONTEXT.policyFile}: ${file}: issuer must be the instance's address only`);
  expect(message).not.toContain("s3cretToken");
});

describe("GitLab over plain HTTP (kubler:gitlabUrl, the policy's issuer)", () => {
  // job-credentials reads GitLab's ID-token signing keys (<issuer>/oauth/discovery/keys) from it:
  // over http anyone on the path could serve their own keys and mint any job's credentials.
  it("refuses an http kubler:gitlabUrl at synth, saying why", () => {
    const message = problemsOf({ ...valid, gitlabUrl: "http://gitlab.example.com" });
    expect(message).toContain(`${CONTEXT.gitlabUrl}: must be an https URL`);
    expect(message).toContain("signing keys");
  });

  it("refuses a policy whose issuer is http, naming the file and why, never quoting credentials", () => {
    const dir = mkdtempSync(join(tmpdir(), "kubler-policy-"));
    const rules =
      'rules:\n  - name: app\n    match: { project_path: "g/app" }\n    aws: { roleArn: "arn:aws:iam::123456789012:role/app" }\n';
    const file = join(dir, "policy.yaml");
    writeFileSync(file, `issuer: http://gitlab.example.com\n${rules}`);
    const message = problemsOf({ ...valid, policyFile: file });
    expect(message).toContain(`${CONTEXT.policyFile}: ${file}: issuer must be an https URL`);
    expect(message).toContain("signing keys");
    const withToken = join(dir, "token.yaml");
    writeFileSync(withToken, `issuer: http://kubler:glpat-s3cretToken@gitlab.example.com\n${rules}`);
    expect(problemsOf({ ...valid, policyFile: withToken })).not.toContain("s3cretToken");
  });
});

describe("settings in another region than the stack's", () => {
  // The functions read secrets with a client of their own region (AWS_REGION), and Secrets Manager
  // does not follow the ARN's region: such a stack deploys, then every read fails at cold start.
  it.each(["kubeconfigSecretArn", "gitlabTokenSecretArn", "registryAuthSecretArn"] as const)(
    "refuses %s in us-east-1 for a stack in eu-west-1, naming the key",
    (key) => {
      const arn = `arn:aws:secretsmanager:us-east-1:123456789012:secret:kubler/${key}-AbCdEf`;
      const build = () => buildStack({ config: testConfig({ [key]: arn }) });
      expect(build).toThrow(KublerConfigError);
      expect(build).toThrow(`${CONTEXT[key]}: is in us-east-1, but the stack deploys to eu-west-1`);
    },
  );

  it("refuses an alarm topic in another region (CloudWatch notifies only its own region's topics)", () => {
    const config = testConfig({ alarmTopicArn: "arn:aws:sns:us-east-1:123456789012:oncall" });
    expect(() => buildStack({ config })).toThrow(
      `${CONTEXT.alarmTopicArn}: is in us-east-1, but the stack deploys to eu-west-1`,
    );
  });

  it("refuses a secret of another account: only a customer-managed key can share one, and the stack grants no kms:Decrypt", () => {
    const arn = "arn:aws:secretsmanager:eu-west-1:210987654321:secret:kubler/kubeconfig-AbCdEf";
    expect(() => buildStack({ config: testConfig({ kubeconfigSecretArn: arn }) })).toThrow(
      `${CONTEXT.kubeconfigSecretArn}: is in account 210987654321, but the stack deploys to 123456789012`,
    );
  });

  it("takes another account's topic in the stack's region, and any region when the stack's is unknown", () => {
    const topic = "arn:aws:sns:eu-west-1:210987654321:oncall";
    expect(() => buildStack({ config: testConfig({ alarmTopicArn: topic }) })).not.toThrow();
    const app = new App({ context: { "aws:cdk:bundling-stacks": [] } });
    const elsewhere = "arn:aws:secretsmanager:us-east-1:123456789012:secret:kubler/kubeconfig-AbCdEf";
    expect(
      () => new KublerStack(app, "Agnostic", { config: testConfig({ kubeconfigSecretArn: elsewhere }) }),
    ).not.toThrow();
  });
});

describe("context keys Kubler does not know", () => {
  // A misspelt key was ignored: `-c kubler:alarmTopicARN=…` synthesized a stack whose alarms notify
  // nobody, `kubler:logRetention=3653` kept the audit trail the default 365 days.
  it("refuses a kubler: key that is not a setting, naming the one meant", () => {
    const app = new App({
      context: {
        ...REQUIRED_CONTEXT,
        "kubler:alarmTopicARN": "arn:aws:sns:eu-west-1:123456789012:oncall",
        "kubler:logRetention": "3653",
        // Not Kubler's: CDK's own and other tools' keys are left alone.
        "aws:cdk:bundling-stacks": [],
        "@aws-cdk/core:newStyleStackSynthesis": true,
      },
    });
    const message = refusalOf(() => configFromContext(app.node, ROOT));
    expect(message).toContain(
      'kubler:alarmTopicARN: is not a Kubler setting (did you mean "kubler:alarmTopicArn"?)',
    );
    expect(message).toContain(
      'kubler:logRetention: is not a Kubler setting (did you mean "kubler:logRetentionDays"?)',
    );
    expect(message).not.toContain("aws:cdk");
  });
});
