/**
 * Lambda entry point (Function URL). Config and clients are built once per container, on cold start.
 */
import { DynamoDBClient } from "@aws-sdk/client-dynamodb";
import { EventBridgeClient } from "@aws-sdk/client-eventbridge";
import { handle } from "hono/aws-lambda";
import { DynamoDbDedupeStore } from "../../shared/adapters/dynamodb-dedupe-store.js";
import { EventBridgePublisher } from "../../shared/adapters/eventbridge-publisher.js";
import {
  createLambdaAuditLog,
  logErrorToStderr,
  withLambdaRequestId,
} from "../../shared/adapters/stdout-audit-log.js";
import { randomId, systemClock } from "../../shared/clock.js";
import { loadAwsIngressConfig, loadWebhookConfig } from "../../shared/config.js";
import { createGitlabWebhookApp } from "./app.js";

const webhook = loadWebhookConfig(process.env, { requireSecret: true });
const { busName, dedupeTable } = loadAwsIngressConfig(process.env);
// Audit lines redacted of the configured secrets, with metrics derived from them (EMF).
const audit = createLambdaAuditLog({
  secrets: [...webhook.secrets.tokens, ...webhook.secrets.signingKeys],
});

const app = createGitlabWebhookApp({
  credentials: webhook.credentials,
  maxBodyBytes: webhook.maxBodyBytes,
  // The SDK clients read AWS_REGION and AWS_ENDPOINT_URL_* themselves. The publisher owns PutEvents
  // retries (failed entries only, jittered); SDK retries on top would multiply them past GitLab's patience.
  publisher: new EventBridgePublisher({
    client: new EventBridgeClient({ maxAttempts: 1 }),
    busName,
    onRetry: (entries) => audit.count("PublishRetries", entries),
  }),
  dedupe: new DynamoDbDedupeStore({
    client: new DynamoDBClient({}),
    tableName: dedupeTable,
    clock: systemClock,
  }),
  audit,
  logError: logErrorToStderr("gitlab-webhook"),
  clock: systemClock,
  newId: randomId,
});

export const handler = withLambdaRequestId(handle(app));
