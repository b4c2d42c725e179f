/**
 * Lambda entry point: an `Environment Stop Requested` from the bus, or `{ "action": "sweep" }` from
 * the recurring schedule (optionally `"dryRun": true`). Config and clients are built once per container.
 */
import { EventBridgeClient } from "@aws-sdk/client-eventbridge";
import { SchedulerClient } from "@aws-sdk/client-scheduler";
import { EventBridgePublisher } from "../../shared/adapters/eventbridge-publisher.js";
import { EventBridgeScheduler } from "../../shared/adapters/eventbridge-scheduler.js";
import { kubernetesClusterFromEnv } from "../../shared/adapters/kubernetes-cluster-from-env.js";
import { createRedactingSecretReader } from "../../shared/adapters/secret-reader.js";
import { createLambdaAuditLog, withLambdaRequestId } from "../../shared/adapters/stdout-audit-log.js";
import { randomId, systemClock } from "../../shared/clock.js";
import { loadAwsStepsConfig } from "../../shared/config.js";
import { InvalidDetailError } from "../../shared/errors.js";
import { sweepExpiredEnvironments } from "../../shared/services/cleanup-environments.js";
import { stepAuditRecord } from "../../shared/services/step-audit.js";
import { createCleanupConsumer } from "./consumer.js";

const config = loadAwsStepsConfig(process.env);
// Redacts the kubeconfig Secrets Manager gives from every line after.
const audit = createLambdaAuditLog();
const deps = {
  // In AWS the kubeconfig is read from Secrets Manager (the stack passes the secret ARN).
  cluster: await kubernetesClusterFromEnv(process.env, createRedactingSecretReader(audit)),
  // The adapters own their retries; SDK retries on top would multiply them.
  scheduler: new EventBridgeScheduler({
    client: new SchedulerClient({ maxAttempts: 1 }),
    groupName: config.scheduleGroup,
    busArn: config.busArn,
    roleArn: config.schedulerRoleArn,
    deadLetterArn: config.scheduleDeadLetterArn,
  }),
  publisher: new EventBridgePublisher({
    client: new EventBridgeClient({ maxAttempts: 1 }),
    busName: config.busName,
  }),
  audit,
  clock: systemClock,
};
const consume = createCleanupConsumer(deps);

export const handler = withLambdaRequestId(handle);

async function handle(event: unknown): Promise<unknown> {
  const sweep = event as { action?: unknown; dryRun?: unknown };
  if (sweep?.action === "sweep") {
    const dryRun = sweepDryRun(sweep);
    const report = await sweepExpiredEnvironments(deps, { dryRun, newId: randomId });
    return { ...report, expired: report.expired.length, deleted: report.deleted.length };
  }
  return consume(event);
}

/**
 * A sweep invoked by hand (`aws lambda invoke`) whose dry run is unreadable (`"dryRun": "true"`,
 * `"dry_run": true`) is refused: read as "not a dry run", it deleted what was only to be listed.
 */
function sweepDryRun(request: object): boolean {
  const { action: _, dryRun, ...rest } = request as { action: unknown; dryRun?: unknown };
  const unknown = Object.keys(rest);
  if ((dryRun === undefined || typeof dryRun === "boolean") && unknown.length === 0) return dryRun ?? false;
  const problem =
    unknown.length > 0
      ? `unknown field(s) ${unknown.map((key) => JSON.stringify(key)).join(", ")}`
      : `dryRun is ${JSON.stringify(dryRun)}`;
  const error = new InvalidDetailError(
    `sweep refused, nothing deleted: ${problem}; send {"action":"sweep"} or {"action":"sweep","dryRun":true} (dryRun a JSON boolean)`,
  );
  audit.record(
    stepAuditRecord({
      fn: "cleanup-environments",
      action: "environment.sweep",
      outcome: "deny",
      reason: error.message,
      correlationId: null,
      gitlab: null,
      trigger: "sweep",
      subject: {},
      at: systemClock.now(),
    }),
  );
  throw error;
}
