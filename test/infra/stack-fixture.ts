/** Builds the stack as the tests see it: fixed settings, and bundling skipped unless asked for. */
import { join } from "node:path";
import { App, type Stack } from "aws-cdk-lib";
import { Template } from "aws-cdk-lib/assertions";
import { type KublerConfig, validateConfig } from "../../infra/config.js";
import { KublerStack } from "../../infra/kubler-stack.js";
import type { FunctionName } from "../../shared/domain/catalog.js";

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

export interface BundledAssets {
  /** Where the cloud assembly went. */
  outdir: string;
  /** Each function's asset directory (index.mjs, its source map, copied files). */
  assets: Record<FunctionName, string>;
}

/**
 * Synthesizes the stack with real bundling (local esbuild, as `npm run synth` does) into `outdir`.
 *
 * @example
 * const { assets } = synthBundled(mkdtempSync(join(tmpdir(), "kubler-")));
 * statSync(join(assets["gitlab-webhook"], "index.mjs")).size;
 */
export function synthBundled(outdir: string): BundledAssets {
  const app = new App({ builtinCloudFormationValidation: false, outdir });
  buildStack({ app });
  const template = app.synth().getStackByName("Test").template as {
    Resources: Record<
      string,
      { Type: string; Properties: { FunctionName?: string; Code?: { S3Key?: string } } }
    >;
  };
  const assets = {} as Record<FunctionName, string>;
  for (const resource of Object.values(template.Resources)) {
    if (resource.Type !== "AWS::Lambda::Function") continue;
    const name = resource.Properties.FunctionName?.replace(/^kubler-/, "") as FunctionName;
    const hash = resource.Properties.Code?.S3Key?.replace(/\.zip$/, "");
    assets[name] = join(outdir, `asset.${hash}`);
  }
  return { outdir, assets };
}
