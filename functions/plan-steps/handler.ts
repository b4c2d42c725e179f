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
import { PLAN_STEPS_LIMITS as LIMITS } from "./limits.js";

// The same bus and dedupe table as the ingress; plan-steps' keys start with "plan/", so they never
// meet the ingress's Idempotency-Keys.
const { busName, dedupeTable } = loadAwsIngressConfig(process.env);
const gitlab = loadGitlabApiConfig(process.env);
// Redacts the GitLab token Secrets Manager gives from every line after.
const audit = createLambdaAuditLog({ secrets: gitlab.token ? [gitlab.token] : [] });
// Every call is time-limited (./limits.ts), so a hung one fails the invocation (and EventBridge
// retries it) before Lambda's 30 s. The token is re-read mid-invocation when its cache expires.
const readSecret = gitlab.tokenSecret ? createRedactingSecretReader(audit, LIMITS.aws) : null;

const dynamodb = new DynamoDBClient(LIMITS.aws);
const consume = createPlanStepsConsumer({
  manifests: new GitlabManifestSource({
    baseUrl: gitlab.url,
    token: gitlabApiToken(gitlab, readSecret),
    ...LIMITS.gitlab,
  }),
  // The publisher owns PutEvents retries; SDK retries on top would multiply them.
  publisher: new EventBridgePublisher({
    client: new EventBridgeClient({ maxAttempts: 1, requestHandler: LIMITS.aws.requestHandler }),
    busName,
    maxAttempts: LIMITS.publisher.maxAttempts,
  }),
  dedupe: new DynamoDbDedupeStore({ client: dynamodb, tableName: dedupeTable, clock: systemClock }),
  stops: new DynamoDbEnvironmentStops({ client: dynamodb, tableName: dedupeTable, clock: systemClock }),
  audit,
  clock: systemClock,
});

export const handler = withLambdaRequestId((event: unknown) => consume(event));
