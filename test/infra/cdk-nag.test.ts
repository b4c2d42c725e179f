import { existsSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { App, Validations } from "aws-cdk-lib";
import { Queue } from "aws-cdk-lib/aws-sqs";
import { AwsSolutionsChecks } from "cdk-nag";
import type { IConstruct } from "constructs";
import { beforeAll, describe, expect, it } from "vitest";
import { buildStack, REGISTRY_AUTH_SECRET_ARN, testConfig } from "./stack-fixture.js";

/** Synthesizes with the AwsSolutions pack; the findings, if any. */
function nagFindings(extra?: (app: App) => void): { findings: string[]; app: App } {
  const app = new App({ builtinCloudFormationValidation: false, context: { "aws:cdk:bundling-stacks": [] } });
  // With the optional registry secret too: every statement the stack can write is checked.
  buildStack({ app, config: testConfig({ registryAuthSecretArn: REGISTRY_AUTH_SECRET_ARN }) });
  extra?.(app);
  Validations.of(app).addPlugins(new AwsSolutionsChecks(app));
  try {
    app.synth();
    return { findings: [], app };
  } catch (error) {
    const report = join(app.outdir, "validation-report.json");
    if (!existsSync(report)) throw error;
    const { pluginReports } = JSON.parse(readFileSync(report, "utf8")) as {
      pluginReports: {
        violations: { ruleName: string; violatingConstructs: { constructPath: string }[] }[];
      }[];
    };
    const findings = pluginReports.flatMap((r) =>
      r.violations.flatMap((v) => v.violatingConstructs.map((c) => `${v.ruleName} on ${c.constructPath}`)),
    );
    return { findings, app };
  }
}

function acknowledgements(root: IConstruct): { path: string; id: string; reason: string }[] {
  return root.node.findAll().flatMap((c) =>
    c.node.metadata
      .filter((m) => m.type === Validations.ACKNOWLEDGED_RULES_METADATA_KEY)
      .flatMap((m) =>
        Object.entries(m.data as Record<string, string>).map(([id, reason]) => ({
          path: c.node.path,
          id,
          reason,
        })),
      ),
  );
}

describe("cdk-nag (AwsSolutions)", () => {
  // One synth for the checks below. CDK's own CloudFormation validation (seconds of WebAssembly) is
  // left to `npm run synth`.
  let checked: ReturnType<typeof nagFindings>;
  beforeAll(() => {
    checked = nagFindings();
  }, 60_000);

  it("finds nothing unacknowledged in the stack", () => {
    expect(checked.findings).toEqual([]);
    expect(acknowledgements(checked.app).length).toBeGreaterThan(0);
  });

  it("gives every acknowledgement a written reason", () => {
    const { app } = checked;
    for (const ack of acknowledgements(app)) {
      expect(ack.reason.length, `${ack.path} ${ack.id}`).toBeGreaterThan(40);
    }
  });

  it("fails the synth on a resource that breaks a rule (the check is live)", () => {
    const { findings } = nagFindings((app) => {
      const stack = app.node.findChild("Test") as IConstruct;
      new Queue(stack, "UnencryptedQueue", { enforceSSL: false });
    });
    expect(findings.some((f) => f.includes("AwsSolutions-SQS4") && f.includes("UnencryptedQueue"))).toBe(
      true,
    );
  });
});
