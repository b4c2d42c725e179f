/**
 * Cold-start proxy: the webhook Lambda's bundle, built exactly as it ships, its size, and the median
 * time a fresh Node process takes to import it (config read, clients built), against importing an
 * empty module the same way.
 */
import { execFileSync } from "node:child_process";
import { mkdtempSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { build } from "esbuild";
import { LAMBDA_ESBUILD_OPTIONS } from "../../infra/lambda-bundle.js";
import { type Figure, fmt, median } from "./support.js";

const ROOT = join(import.meta.dirname, "../..");

export async function benchColdStart(runs = 15): Promise<Figure[]> {
  const dir = mkdtempSync(join(tmpdir(), "kubler-bundle-"));
  const bundle = join(dir, "gitlab-webhook.mjs");
  const metafile = await build({
    ...LAMBDA_ESBUILD_OPTIONS,
    entryPoints: [join(ROOT, "functions/gitlab-webhook/handler.ts")],
    outfile: bundle,
    metafile: true,
    logLevel: "silent",
  });
  const inputs = Object.keys(metafile.metafile.inputs);
  const hasK8s = inputs.some((path) => path.includes("@kubernetes/client-node"));
  const empty = join(dir, "empty.mjs");
  writeFileSync(empty, "export {};\n");
  const size = statSync(bundle).size;
  const importMs = median(Array.from({ length: runs }, () => timeImport(bundle)));
  const emptyMs = median(Array.from({ length: runs }, () => timeImport(empty)));
  return [
    {
      name: "webhook Lambda bundle size (ESM, minified, AWS SDK bundled)",
      value: `${fmt(size / 1024, 1)} KB${hasK8s ? " (includes @kubernetes/client-node!)" : ""}`,
      baseline: "—",
      ratio: "—",
      target: "≤ 400 KB, no @kubernetes/client-node",
      met: size <= 400 * 1024 && !hasK8s,
    },
    {
      name: `webhook Lambda import in a fresh process (median of ${runs})`,
      value: `${fmt(importMs, 1)} ms`,
      baseline: `empty module: ${fmt(emptyMs, 1)} ms`,
      ratio: `${fmt(importMs / emptyMs, 1)}×`,
      target: "≤ 80 ms",
      met: importMs <= 80,
    },
  ];
}

/**
 * Milliseconds a fresh Node process takes to import `file`, with the webhook's settings plus `env`;
 * `nodeArgs` as Lambda's NODE_OPTIONS would add them (e.g. `--enable-source-maps`).
 */
export function timeImport(file: string, env: Record<string, string> = {}, nodeArgs: string[] = []): number {
  const script = `const t = performance.now(); await import(${JSON.stringify(file)}); console.log(performance.now() - t);`;
  const out = execFileSync(
    process.execPath,
    ["--no-warnings", ...nodeArgs, "--input-type=module", "-e", script],
    {
      env: {
        PATH: process.env.PATH,
        AWS_REGION: "eu-west-1",
        KUBLER_DEDUPE_TABLE: "kubler-dedupe",
        KUBLER_WEBHOOK_SECRET: "bench-secret",
        ...env,
      },
      encoding: "utf8",
    },
  );
  return Number(out.trim().split("\n").at(-1));
}
