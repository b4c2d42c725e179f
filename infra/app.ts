/**
 * The CDK app (`cdk.json` runs it with tsx). Synthesizes only when run as the app, never on import.
 */
import { App } from "aws-cdk-lib";
import { KublerStack } from "./kubler-stack.js";

const app = new App();
new KublerStack(app, "Kubler");
app.synth();
