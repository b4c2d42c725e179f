/**
 * Lambda entry point (Function URL). Config and clients are built once per container, on cold start.
 */
import { DynamoDBClient } from "@aws-sdk/client-dynamodb";
import { EventBridgeClient } from "@aws-sdk/client-eventbridge";
import { SecretsManagerClient } from "@aws-sdk/client-secrets-manager";
import { handle } from "hono/aws-lambda";
import { AWS_CLIENT_LIMITS, AWS_REQUEST_LIMITS } from "../../shared/adapters/aws-request-limits.js";
import { DynamoDbDedupeStore } from "../../shared/adapters/dynamodb-dedupe-store.js";
import { EventBridgePublisher } from "../../shared/adapters/eventbridge-publisher.js";
import { createSecretReader } from "../../shared/adapters/secret-reader.js";
import { withSecretVariables } from "../../shared/adapters/secret-variables.js";
import {
  createLambdaAuditLog,
  logErrorToStderr,
  withLambdaRequestId,
} from "../../shared/adapters/stdout-audit-log.js";
import { randomId, systemClock } from "../../shared/clock.js";
import { ENV, loadAwsIngressConfig, loadWebhookConfig } from "../../shared/config.js";
import { createGitlabWebhookApp } from "./app.js";

// The accepted tokens live in Secrets Manager (the stack passes the secret's ARN), read once per
// container: a rotation reaches new containers, and GitLab keeps both tokens during the overlap.
const env = await withSecretVariables(
  process.env,
  ENV.WEBHOOK_CREDENTIALS_SECRET,
  [ENV.WEBHOOK_SECRET, ENV.WEBHOOK_SIGNING_KEY],
  createSecretReader({
    client: new SecretsManagerClient(AWS_CLIENT_LIMITS),
  }),
);
const webhook = loadWebhookConfig(env, { requireSecret: true });
const { busName, dedupeTable } = loadAwsIngressConfig(env);
const secrets = [...webhook.secrets.tokens, ...webhook.secrets.signingKeys];
// Audit lines redacted of the configured secrets, with metrics derived from them (EMF).
const audit = createLambdaAuditLog({ secrets });

const app = createGitlabWebhookApp({
  credentials: webhook.credentials,
  maxBodyBytes: webhook.maxBodyBytes,
  // The SDK clients read AWS_REGION and AWS_ENDPOINT_URL_* themselves. The publisher owns PutEvents
  // retries (failed entries only, jittered); SDK retries on top would multiply them past GitLab's patience.
  // Every call is time-limited, so a hung one fails (and the dedupe key is released) before Lambda's 10 s.
  publisher: new EventBridgePublisher({
    client: new EventBridgeClient({ maxAttempts: 1, requestHandler: AWS_REQUEST_LIMITS }),
    busName,
    onRetry: (entries) => audit.count("PublishRetries", entries),
  }),
  dedupe: new DynamoDbDedupeStore({
    client: new DynamoDBClient(AWS_CLIENT_LIMITS),
    tableName: dedupeTable,
    clock: systemClock,
  }),
  audit,
  logError: logErrorToStderr("gitlab-webhook", secrets),
  clock: systemClock,
  newId: randomId,
});

export const handler = withLambdaRequestId(handle(app));
