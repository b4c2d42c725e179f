/**
 * Lambda entry point: the GitLab facts from the bus. Config and clients are built once per
 * container; a thrown error (GitLab or EventBridge unavailable) makes EventBridge retry, then dead-letter.
 */
import { DynamoDBClient } from "@aws-sdk/client-dynamodb";
import { EventBridgeClient } from "@aws-sdk/client-eventbridge";
import { DynamoDbDedupeStore } from "../../shared/adapters/dynamodb-dedupe-store.js";
import { DynamoDbEnvironmentStops } from "../../shared/adapters/dynamodb-environment-stops.js";
import { EventBridgePublisher } from "../../shared/adapters/eventbridge-publisher.js";
import { GitlabManifestSource } from "../../shared/adapters/gitlab-manifest-source.js";
import { createRedactingSecretReader, gitlabApiToken } from "../../shared/adapters/secret-reader.js";
import { createLambdaAuditLog, withLambdaRequestId } from "../../shared/adapters/stdout-audit-log.js";
import { systemClock } from "../../shared/clock.js";
import { loadAwsIngressConfig, loadGitlabApiConfig } from "../../shared/config.js";
import { createPlanStepsConsumer } from "./consumer.js";

// The same bus and dedupe table as the ingress; plan-steps' keys start with "plan/", so they never
// meet the ingress's Idempotency-Keys.
const { busName, dedupeTable } = loadAwsIngressConfig(process.env);
const gitlab = loadGitlabApiConfig(process.env);
// Redacts the GitLab token Secrets Manager gives from every line after.
const audit = createLambdaAuditLog({ secrets: gitlab.token ? [gitlab.token] : [] });
const readSecret = gitlab.tokenSecret ? createRedactingSecretReader(audit) : null;

const dynamodb = new DynamoDBClient({});
const consume = createPlanStepsConsumer({
  manifests: new GitlabManifestSource({ baseUrl: gitlab.url, token: gitlabApiToken(gitlab, readSecret) }),
  // The publisher owns PutEvents retries; SDK retries on top would multiply them.
  publisher: new EventBridgePublisher({ client: new EventBridgeClient({ maxAttempts: 1 }), busName }),
  dedupe: new DynamoDbDedupeStore({ client: dynamodb, tableName: dedupeTable, clock: systemClock }),
  stops: new DynamoDbEnvironmentStops({ client: dynamodb, tableName: dedupeTable, clock: systemClock }),
  audit,
  clock: systemClock,
});

export const handler = withLambdaRequestId((event: unknown) => consume(event));
