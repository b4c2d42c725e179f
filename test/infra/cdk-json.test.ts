import { readFileSync } from "node:fs";
import { join } from "node:path";
import { App } from "aws-cdk-lib";
import { describe, expect, it } from "vitest";
import { assertStackEnvironment, configFromContext } from "../../infra/config.js";
import { ROOT } from "./stack-fixture.js";

// README: "cdk.json holds example values so a fresh clone synthesizes", offline. With no region
// configured (no AWS_REGION, no profile) the cdk CLI still hands the app CDK_DEFAULT_REGION=us-east-1,
// its own fallback, so the example ARNs must be in us-east-1 or `npm run synth` fails on a fresh
// clone naming them.
describe("cdk.json's example settings", () => {
  it("synthesize in the region the cdk CLI assumes when none is configured (us-east-1)", () => {
    const { context } = JSON.parse(readFileSync(join(ROOT, "cdk.json"), "utf8")) as {
      context: Record<string, unknown>;
    };
    const config = configFromContext(new App({ context }).node, ROOT);
    expect(() => assertStackEnvironment(config, { region: "us-east-1", account: null })).not.toThrow();
  });
});
