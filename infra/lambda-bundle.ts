/**
 * How every Lambda is bundled: one definition, used by the CDK stack and by the cold-start benchmark,
 * so the figure measured is the bundle that ships.
 */
import { fileURLToPath } from "node:url";
import { type BundlingOptions, OutputFormat, SourceMapMode } from "aws-cdk-lib/aws-lambda-nodejs";
import type { BuildOptions } from "esbuild";

/** ESM Lambda bundles need `require` for the CommonJS parts of their dependencies (STACK.md). */
export const ESM_REQUIRE_BANNER =
  "import { createRequire } from 'module'; const require = createRequire(import.meta.url);";

/**
 * The SDK's credential chain swapped for the execution role's env credentials, the only source a
 * Lambda has (see shared/adapters/lambda-credential-provider.ts): ≈ 80 KB less in every bundle.
 */
export const LAMBDA_CREDENTIAL_PROVIDER_ALIAS = {
  "@aws-sdk/credential-provider-node": fileURLToPath(
    new URL("../shared/adapters/lambda-credential-provider.ts", import.meta.url),
  ),
} as const;

export const LAMBDA_ESBUILD_OPTIONS = {
  bundle: true,
  platform: "node",
  format: "esm",
  target: "node22",
  minify: true,
  sourcemap: false,
  // The AWS SDK's ES-module builds tree-shake: 392 KB instead of 617 KB for the webhook (CommonJS first).
  mainFields: ["module", "main"],
  banner: { js: ESM_REQUIRE_BANNER },
  // The SDK is bundled (not taken from the runtime): faster import, and the tested version ships.
  external: [],
  legalComments: "none",
  alias: LAMBDA_CREDENTIAL_PROVIDER_ALIAS,
} as const satisfies BuildOptions;

/**
 * The same options for `NodejsFunction`, built with the local esbuild (never Docker, so `cdk synth`
 * works offline). The shipped bundle also gets a source map next to it (`index.mjs.map`): a separate
 * file, so the code Lambda loads is the one measured; `--enable-source-maps` makes stack traces use it.
 *
 * @example
 * new NodejsFunction(scope, "Fn", { entry, bundling: nodejsBundling() });
 */
export function nodejsBundling(extra: Pick<BundlingOptions, "commandHooks"> = {}): BundlingOptions {
  const o = LAMBDA_ESBUILD_OPTIONS;
  return {
    format: OutputFormat.ESM,
    target: o.target,
    minify: o.minify,
    sourceMap: true,
    sourceMapMode: SourceMapMode.DEFAULT,
    mainFields: [...o.mainFields],
    banner: o.banner.js,
    externalModules: [...o.external],
    bundleAwsSDK: true,
    esbuildArgs: {
      "--legal-comments": o.legalComments,
      ...Object.fromEntries(Object.entries(o.alias).map(([from, to]) => [`--alias:${from}`, to])),
    },
    forceDockerBundling: false,
    ...extra,
  };
}
