/**
 * The CDK app (`cdk.json` runs it with tsx). Settings come from context (`cdk.json`, or
 * `-c kubler:<name>=<value>`) and are validated before anything is built; cdk-nag's AwsSolutions
 * checks run on every synth. Synthesizes only when run as the app, never on import.
 */
import { App, Validations } from "aws-cdk-lib";
import { AwsSolutionsChecks } from "cdk-nag";
import { configFromContext, KublerConfigError } from "./config.js";
import { KublerStack } from "./kubler-stack.js";

const app = new App();
try {
  new KublerStack(app, "Kubler", {
    config: configFromContext(app.node),
    env: { account: process.env.CDK_DEFAULT_ACCOUNT, region: process.env.CDK_DEFAULT_REGION },
  });
} catch (error) {
  if (!(error instanceof KublerConfigError)) throw error;
  // The settings' names and what is wrong, without a stack trace through CDK's internals.
  console.error(error.message);
  process.exit(1);
}
Validations.of(app).addPlugins(new AwsSolutionsChecks(app));
app.synth();
