/**
 * Every Lambda as `npm run synth` bundles it (CDK + local esbuild): per function, the size of
 * `index.mjs` and the median time a fresh Node process takes to import it with the shipped
 * `--enable-source-maps` (config read, clients built): the cold-start proxy users compare. Baseline:
 * importing an empty module the same way. Also the synth time, with bundling and without.
 */
import { mkdtempSync, rmSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { App } from "aws-cdk-lib";
import { FUNCTION_SPECS } from "../../infra/function-specs.js";
import { ENV } from "../../shared/config.js";
import { FUNCTIONS } from "../../shared/domain/catalog.js";
import { buildStack, synthBundled } from "../infra/stack-fixture.js";
import { timeImport } from "./cold-start.js";
import { type Figure, fmt, median } from "./support.js";

const SOURCE_MAPS = ["--enable-source-maps"];

export async function benchBundles(runs = 7): Promise<Figure[]> {
  const dir = mkdtempSync(join(tmpdir(), "kubler-bundles-"));
  try {
    let started = performance.now();
    const unbundledApp = new App({
      builtinCloudFormationValidation: false,
      outdir: join(dir, "unbundled"),
      context: { "aws:cdk:bundling-stacks": [] },
    });
    buildStack({ app: unbundledApp });
    unbundledApp.synth();
    const unbundledMs = performance.now() - started;
    started = performance.now();
    const { assets } = synthBundled(join(dir, "bundled"));
    const bundledMs = performance.now() - started;

    const env = importEnv(dir, join(assets["job-credentials"], "credentials-policy.yaml"));
    const empty = join(dir, "empty.mjs");
    writeFileSync(empty, "export {};\n");
    const emptyMs = median(Array.from({ length: runs }, () => timeImport(empty, env, SOURCE_MAPS)));

    const figures: Figure[] = [
      {
        name: `cdk synth with bundling (${FUNCTIONS.length} functions, local esbuild, in-process)`,
        value: `${fmt(bundledMs / 1000, 1)} s`,
        baseline: `without bundling: ${fmt(unbundledMs / 1000, 1)} s`,
        ratio: `${fmt(bundledMs / unbundledMs, 1)}×`,
        target: "works offline",
        met: true,
      },
    ];
    for (const name of FUNCTIONS) {
      const file = join(assets[name], "index.mjs");
      const kb = statSync(file).size / 1024;
      const budget = FUNCTION_SPECS[name].bundleBudgetKb;
      let importMs: number | null = null;
      let failure = "";
      try {
        importMs = median(Array.from({ length: runs }, () => timeImport(file, env, SOURCE_MAPS)));
      } catch (error) {
        failure = firstLine(error);
      }
      figures.push({
        name: `${name}: bundle size · fresh-process import (median of ${runs})`,
        value: `${fmt(kb, 1)} KB · ${importMs === null ? `import failed (${failure})` : `${fmt(importMs, 1)} ms`}`,
        baseline: `empty module: ${fmt(emptyMs, 1)} ms`,
        ratio: importMs === null ? "—" : `${fmt(importMs / emptyMs, 1)}×`,
        target: `≤ ${fmt(budget)} KB`,
        met: kb <= budget && importMs !== null,
      });
    }

    // What --enable-source-maps costs at import, on the largest bundle.
    const largest = FUNCTIONS.map((name) => join(assets[name], "index.mjs")).sort(
      (a, b) => statSync(b).size - statSync(a).size,
    )[0] as string;
    try {
      const withMaps = median(Array.from({ length: runs }, () => timeImport(largest, env, SOURCE_MAPS)));
      const without = median(Array.from({ length: runs }, () => timeImport(largest, env)));
      figures.push({
        name: `source maps on the largest bundle's import (${fmt(statSync(largest).size / 1024)} KB)`,
        value: `${fmt(withMaps, 1)} ms with --enable-source-maps`,
        baseline: `without: ${fmt(without, 1)} ms`,
        ratio: `${fmt(withMaps / without, 2)}×`,
        target: "—",
        met: true,
      });
    } catch {
      // Reported above as an import failure.
    }
    return figures;
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

/**
 * The settings the stack gives the functions, with local stand-ins that need no AWS at import: a
 * kubeconfig file instead of the kubeconfig secret (read at cold start, a network call), and the
 * bundled policy file.
 */
function importEnv(dir: string, policyFile: string): Record<string, string> {
  const kubeconfig = join(dir, "kubeconfig.yaml");
  writeFileSync(
    kubeconfig,
    [
      "apiVersion: v1",
      "kind: Config",
      "clusters: [{ name: bench, cluster: { server: 'https://127.0.0.1:6443', insecure-skip-tls-verify: true } }]",
      "users: [{ name: bench, user: { token: bench } }]",
      "contexts: [{ name: bench, context: { cluster: bench, user: bench } }]",
      "current-context: bench",
    ].join("\n"),
  );
  const arn = "arn:aws:secretsmanager:eu-west-1:123456789012:secret:bench-AbCdEf";
  return {
    AWS_REGION: "eu-west-1",
    [ENV.EVENT_BUS_NAME]: "kubler",
    [ENV.EVENT_BUS_ARN]: "arn:aws:events:eu-west-1:123456789012:event-bus/kubler",
    [ENV.DEDUPE_TABLE]: "kubler-dedupe",
    [ENV.SCHEDULE_GROUP]: "kubler-environments",
    [ENV.SCHEDULER_ROLE_ARN]: "arn:aws:iam::123456789012:role/kubler-stop",
    [ENV.SCHEDULE_DEAD_LETTER_QUEUE_ARN]: "arn:aws:sqs:eu-west-1:123456789012:kubler-expiry-dead-letters",
    [ENV.GITLAB_URL]: "https://gitlab.example.com",
    [ENV.GITLAB_API_TOKEN_SECRET]: arn,
    // The token itself rather than KUBLER_WEBHOOK_CREDENTIALS_SECRET: this measures loading the code;
    // in Lambda the cold start adds one GetSecretValue call (tested in test/infra/bundles.test.ts).
    [ENV.WEBHOOK_SECRET]: "bench-secret",
    [ENV.POLICY_FILE]: policyFile,
    [ENV.DEFAULT_TTL]: "72h",
    KUBECONFIG: kubeconfig,
  };
}

function firstLine(error: unknown): string {
  const text = String((error as { stderr?: unknown }).stderr || (error as Error).message || error);
  return (
    text
      .split("\n")
      .find((line) => /Error/.test(line))
      ?.trim()
      .slice(0, 120) ?? "see stderr"
  );
}
