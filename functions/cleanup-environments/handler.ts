/**
 * Lambda entry point: an `Environment Stop Requested` from the bus, or `{ "action": "sweep" }` from
 * the recurring schedule (optionally `"dryRun": true`). Config and clients are built once per container.
 */

import { EventBridgeClient } from "@aws-sdk/client-eventbridge";
import { SchedulerClient } from "@aws-sdk/client-scheduler";
import { AWS_CLIENT_LIMITS, AWS_REQUEST_LIMITS } from "../../shared/adapters/aws-request-limits.js";
import { EventBridgePublisher } from "../../shared/adapters/eventbridge-publisher.js";
import { EventBridgeScheduler } from "../../shared/adapters/eventbridge-scheduler.js";
import { kubernetesClusterFromEnv } from "../../shared/adapters/kubernetes-cluster-from-env.js";
import { createRedactingSecretReader } from "../../shared/adapters/secret-reader.js";
import { createLambdaAuditLog, withLambdaRequestId } from "../../shared/adapters/stdout-audit-log.js";
import { randomId, systemClock } from "../../shared/clock.js";
import { loadAwsStepsConfig } from "../../shared/config.js";
import { createCleanupInvocation } from "./consumer.js";

const config = loadAwsStepsConfig(process.env);
// Redacts the kubeconfig Secrets Manager gives from every line after.
const audit = createLambdaAuditLog();
const deps = {
  // In AWS the kubeconfig is read from Secrets Manager (the stack passes the secret ARN).
  cluster: await kubernetesClusterFromEnv(process.env, createRedactingSecretReader(audit, AWS_CLIENT_LIMITS)),
  // The adapters own their retries; SDK retries on top would multiply them.
  scheduler: new EventBridgeScheduler({
    client: new SchedulerClient({ maxAttempts: 1, requestHandler: AWS_REQUEST_LIMITS }),
    groupName: config.scheduleGroup,
    busArn: config.busArn,
    roleArn: config.schedulerRoleArn,
    deadLetterArn: config.scheduleDeadLetterArn,
  }),
  publisher: new EventBridgePublisher({
    client: new EventBridgeClient({ maxAttempts: 1, requestHandler: AWS_REQUEST_LIMITS }),
    busName: config.busName,
  }),
  audit,
  clock: systemClock,
};

export const handler = withLambdaRequestId(createCleanupInvocation(deps, randomId));
