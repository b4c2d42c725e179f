/** Builds the stack as the tests see it: fixed settings, and bundling skipped unless asked for. */
import { createHash } from "node:crypto";
import {
  existsSync,
  mkdirSync,
  readdirSync,
  readFileSync,
  renameSync,
  rmSync,
  statSync,
  writeFileSync,
} from "node:fs";
import { tmpdir } from "node:os";
import { basename, join, relative } from "node:path";
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
/** `kubler:registryAuthSecretArn`: optional, set in the bundled synth (see `synthBundled`). */
export const REGISTRY_AUTH_SECRET_ARN =
  "arn:aws:secretsmanager:eu-west-1:123456789012:secret:kubler/registry-auth-AbCdEf";

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
 * With the optional registry pull secret configured, so the bundles run with every setting the
 * template can give them (the bundles themselves do not depend on it).
 *
 * @example
 * const { assets } = synthBundled(mkdtempSync(join(tmpdir(), "kubler-")));
 * statSync(join(assets["gitlab-webhook"], "index.mjs")).size;
 */
export function synthBundled(outdir: string): BundledAssets {
  const app = new App({ builtinCloudFormationValidation: false, outdir });
  buildStack({ app, config: testConfig({ registryAuthSecretArn: REGISTRY_AUTH_SECRET_ARN }) });
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

/** The synthesized template, as much of it as the tests read. */
export interface CfnTemplate {
  Resources: Record<string, { Type: string; Properties: Record<string, unknown> }>;
}

export interface SynthesizedStack extends BundledAssets {
  template: CfnTemplate;
}

/** What the bundles are built from: a change to any of them is a new synth. */
const BUNDLE_INPUTS = [
  "functions",
  "shared",
  "infra",
  "package-lock.json",
  "node_modules/.package-lock.json",
  "tsconfig.json",
];
/** A lock older than this was left by a worker that died mid-synth. */
const STALE_LOCK_MS = 5 * 60_000;

/**
 * `synthBundled` once for every test file that needs the real bundles (vitest runs files in
 * separate workers, which share no memory): the cloud assembly is kept under the system's temp
 * directory, named by a hash of the bundles' sources, and the first worker to need it builds it
 * while the others wait. Read-only for its users; older ones are removed after a day.
 *
 * @example
 * const { assets, template } = await synthBundledOnce();
 */
export async function synthBundledOnce(): Promise<SynthesizedStack> {
  const dir = join(tmpdir(), `kubler-synth-${inputsHash()}`);
  const index = join(dir, "kubler-assets.json");
  for (;;) {
    if (existsSync(index)) return readSynthesized(dir, index);
    const lock = `${dir}.lock`;
    try {
      mkdirSync(lock);
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== "EEXIST") throw error;
      const age = Date.now() - (statSync(lock, { throwIfNoEntry: false })?.mtimeMs ?? Date.now());
      if (age > STALE_LOCK_MS) rmSync(lock, { recursive: true, force: true });
      else await new Promise((resolve) => setTimeout(resolve, 200));
      continue;
    }
    try {
      if (existsSync(index)) continue;
      removeOldSyntheses();
      const staging = `${dir}.${process.pid}`;
      rmSync(staging, { recursive: true, force: true });
      const { assets } = synthBundled(staging);
      const relative = Object.fromEntries(
        Object.entries(assets).map(([name, path]) => [name, basename(path)]),
      );
      writeFileSync(join(staging, "kubler-assets.json"), JSON.stringify(relative));
      rmSync(dir, { recursive: true, force: true });
      renameSync(staging, dir);
    } finally {
      rmSync(lock, { recursive: true, force: true });
    }
  }
}

function readSynthesized(dir: string, index: string): SynthesizedStack {
  const relative = JSON.parse(readFileSync(index, "utf8")) as Record<FunctionName, string>;
  const assets = Object.fromEntries(
    Object.entries(relative).map(([name, asset]) => [name, join(dir, asset)]),
  ) as Record<FunctionName, string>;
  const template = JSON.parse(readFileSync(join(dir, "Test.template.json"), "utf8")) as CfnTemplate;
  return { outdir: dir, assets, template };
}

function inputsHash(): string {
  const hash = createHash("sha256");
  const add = (path: string) => {
    const stat = statSync(path, { throwIfNoEntry: false });
    if (!stat) return;
    if (stat.isDirectory()) {
      for (const entry of readdirSync(path).sort()) add(join(path, entry));
      return;
    }
    hash.update(`${relative(ROOT, path)}\0`);
    hash.update(readFileSync(path));
  };
  for (const input of BUNDLE_INPUTS) add(join(ROOT, input));
  add(POLICY_FILE);
  return hash.digest("hex").slice(0, 16);
}

function removeOldSyntheses(): void {
  for (const entry of readdirSync(tmpdir())) {
    if (!entry.startsWith("kubler-synth-")) continue;
    const path = join(tmpdir(), entry);
    const stat = statSync(path, { throwIfNoEntry: false });
    if (stat && Date.now() - stat.mtimeMs > 24 * 3_600_000) rmSync(path, { recursive: true, force: true });
  }
}
