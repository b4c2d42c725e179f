/** Builds the stack as the tests see it: fixed settings, and bundling skipped unless asked for. */
import { join } from "node:path";
import { App, type Stack } from "aws-cdk-lib";
import { Template } from "aws-cdk-lib/assertions";
import { type KublerConfig, validateConfig } from "../../infra/config.js";
import { KublerStack } from "../../infra/kubler-stack.js";

export const ROOT = join(import.meta.dirname, "../..");
export const POLICY_FILE = join(ROOT, "docs/aws/credentials-policy.example.yaml");
export const KUBECONFIG_SECRET_ARN =
  "arn:aws:secretsmanager:eu-west-1:123456789012:secret:kubler/kubeconfig-AbCdEf";
export const GITLAB_TOKEN_SECRET_ARN =
  "arn:aws:secretsmanager:eu-west-1:123456789012:secret:kubler/gitlab-token-AbCdEf";

export function testConfig(overrides: Partial<Record<string, unknown>> = {}): KublerConfig {
  return validateConfig(
    {
      gitlabUrl: "https://gitlab.example.com",
      policyFile: POLICY_FILE,
      kubeconfigSecretArn: KUBECONFIG_SECRET_ARN,
      gitlabTokenSecretArn: GITLAB_TOKEN_SECRET_ARN,
      ...overrides,
    },
    ROOT,
  );
}

export function buildStack(
  options: { bundle?: boolean; app?: App; config?: KublerConfig } = {},
): KublerStack {
  // CDK's built-in CloudFormation validation takes seconds of WebAssembly per synth: the cdk-nag
  // test runs it once; the Template tests, which synthesize many times, leave it out.
  const app =
    options.app ??
    new App({
      builtinCloudFormationValidation: false,
      context: options.bundle ? {} : { "aws:cdk:bundling-stacks": [] },
    });
  return new KublerStack(app, "Test", {
    config: options.config ?? testConfig(),
    env: { account: "123456789012", region: "eu-west-1" },
  });
}

export function templateOf(stack: Stack): Template {
  return Template.fromStack(stack);
}
