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
  utimesSync,
  writeFileSync,
} from "node:fs";
import { basename, join, relative } from "node:path";
import { fileURLToPath } from "node:url";
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

/**
 * What the synthesized assembly is built from, relative to the checkout: a change to any of them is
 * a new synth. package.json is read by esbuild (`type`, `sideEffects`, `imports`); this file holds
 * the synth's own settings (`synthBundled`'s config). node_modules/.package-lock.json changes with
 * every install.
 */
export const SYNTH_INPUTS = [
  "functions",
  "shared",
  "infra",
  "package.json",
  "package-lock.json",
  "node_modules/.package-lock.json",
  "tsconfig.json",
  relative(ROOT, POLICY_FILE),
  relative(ROOT, fileURLToPath(import.meta.url)),
];
/**
 * This checkout's own (not the shared temp directory, where another user could leave bundles for
 * these tests to run, or a lock that stops them); under node_modules, so a fresh clone starts empty.
 */
const SYNTH_CACHE = join(ROOT, "node_modules/.cache/kubler-synth");
/** A lock whose owner is alive is waited for, up to this age (a reused pid, a hung synth). */
const STALE_LOCK_MS = 5 * 60_000;
/** A lock with no owner written yet is that young, or its maker died between the two steps. */
const OWNERLESS_LOCK_MS = 10_000;
/** Syntheses of other source states nobody has used for this long are removed (38 MB each). */
const UNUSED_SYNTH_MS = 3_600_000;

/**
 * `synthBundled` once for every test file that needs the real bundles (vitest runs files in
 * separate workers, which share no memory): the cloud assembly is kept in this checkout's
 * node_modules/.cache, named by a hash of `SYNTH_INPUTS`, and the first worker to need it builds it
 * while the others wait. Read-only for its users.
 *
 * @example
 * const { assets, template } = await synthBundledOnce();
 */
export async function synthBundledOnce(): Promise<SynthesizedStack> {
  const dir = await synthOnce(SYNTH_CACHE, synthInputsHash(ROOT), (staging) => {
    const { assets } = synthBundled(staging);
    const relative = Object.fromEntries(Object.entries(assets).map(([name, path]) => [name, basename(path)]));
    writeFileSync(join(staging, SYNTH_INDEX), JSON.stringify(relative));
  });
  return readSynthesized(dir);
}

const SYNTH_INDEX = "kubler-assets.json";

/**
 * `<cache>/<key>`, built by `build` (which writes `kubler-assets.json` last) unless it is there:
 * one process builds while the others wait on `<key>.lock`, which holds its pid. A lock whose
 * process has died (a run killed mid-synth) is taken over at once.
 *
 * @example
 * const dir = await synthOnce(cacheDir, synthInputsHash(ROOT), (staging) => synthBundled(staging));
 */
export async function synthOnce(
  cache: string,
  key: string,
  build: (staging: string) => void,
): Promise<string> {
  const dir = join(cache, key);
  const index = join(dir, SYNTH_INDEX);
  mkdirSync(cache, { recursive: true });
  for (;;) {
    if (existsSync(index)) {
      // Marks it used, so removeUnusedSyntheses leaves it to the runs still reading it.
      const now = new Date();
      utimesSync(dir, now, now);
      return dir;
    }
    const lock = `${dir}.lock`;
    try {
      mkdirSync(lock);
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== "EEXIST") throw error;
      if (isAbandoned(lock)) rmSync(lock, { recursive: true, force: true });
      else await new Promise((resolve) => setTimeout(resolve, 200));
      continue;
    }
    try {
      writeFileSync(join(lock, "pid"), String(process.pid));
      if (existsSync(index)) continue;
      removeUnusedSyntheses(cache, key);
      const staging = `${dir}.${process.pid}`;
      rmSync(staging, { recursive: true, force: true });
      build(staging);
      rmSync(dir, { recursive: true, force: true });
      renameSync(staging, dir);
    } finally {
      rmSync(lock, { recursive: true, force: true });
    }
  }
}

/** Its process is gone (or never wrote itself down), or it has held the lock too long. */
function isAbandoned(lock: string): boolean {
  const stat = statSync(lock, { throwIfNoEntry: false });
  if (!stat) return false;
  const age = Date.now() - stat.mtimeMs;
  let pid = Number.NaN;
  try {
    pid = Number(readFileSync(join(lock, "pid"), "utf8"));
  } catch {
    // Not written yet, or never will be.
  }
  if (!Number.isInteger(pid) || pid <= 0) return age > OWNERLESS_LOCK_MS;
  return !isAlive(pid) || age > STALE_LOCK_MS;
}

function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    // EPERM: it exists, as someone else's.
    return (error as NodeJS.ErrnoException).code === "EPERM";
  }
}

function readSynthesized(dir: string): SynthesizedStack {
  const relative = JSON.parse(readFileSync(join(dir, SYNTH_INDEX), "utf8")) as Record<FunctionName, string>;
  const assets = Object.fromEntries(
    Object.entries(relative).map(([name, asset]) => [name, join(dir, asset)]),
  ) as Record<FunctionName, string>;
  const template = JSON.parse(readFileSync(join(dir, "Test.template.json"), "utf8")) as CfnTemplate;
  return { outdir: dir, assets, template };
}

/**
 * The hash of `SYNTH_INPUTS` under `root` (paths and contents): the name of a synthesis.
 *
 * @example
 * synthInputsHash(ROOT); // "27c7be642f89d1ef"
 */
export function synthInputsHash(root: string): string {
  const hash = createHash("sha256");
  const add = (path: string) => {
    const stat = statSync(path, { throwIfNoEntry: false });
    if (!stat) return;
    if (stat.isDirectory()) {
      for (const entry of readdirSync(path).sort()) add(join(path, entry));
      return;
    }
    hash.update(`${relative(root, path)}\0`);
    hash.update(readFileSync(path));
  };
  for (const input of SYNTH_INPUTS) add(join(root, input));
  return hash.digest("hex").slice(0, 16);
}

/** Other keys' syntheses, locks and staging directories nobody has touched for an hour. */
function removeUnusedSyntheses(cache: string, key: string): void {
  for (const entry of readdirSync(cache)) {
    if (entry.startsWith(key)) continue;
    const path = join(cache, entry);
    const stat = statSync(path, { throwIfNoEntry: false });
    if (stat && Date.now() - stat.mtimeMs > UNUSED_SYNTH_MS) rmSync(path, { recursive: true, force: true });
  }
}
