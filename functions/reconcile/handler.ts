/**
 * Lambda entry point, invoked every minute by a recurring schedule (DESIGN §6): finished build Jobs
 * become `Build Finished`; rollouts past their deadline and expired environments whose schedule was
 * lost are the environments' backstop.
 */
import { EventBridgeClient } from "@aws-sdk/client-eventbridge";
import { EventBridgePublisher } from "../../shared/adapters/eventbridge-publisher.js";
import { kubernetesClusterFromEnv } from "../../shared/adapters/kubernetes-cluster-from-env.js";
import { createRedactingSecretReader } from "../../shared/adapters/secret-reader.js";
import { createLambdaAuditLog, withLambdaRequestId } from "../../shared/adapters/stdout-audit-log.js";
import { randomId, systemClock } from "../../shared/clock.js";
import { loadAwsStepsConfig, loadBuildConfig } from "../../shared/config.js";
import { type ReconcileBuildsReport, reconcileBuilds } from "../../shared/services/reconcile-builds.js";
import { type ReconcileReport, reconcileEnvironments } from "../../shared/services/reconcile-environments.js";
import { RECONCILE_LIMITS as LIMITS } from "./limits.js";

const config = loadAwsStepsConfig(process.env);
const builds = loadBuildConfig(process.env);
// Redacts the kubeconfig Secrets Manager gives from every line after.
const audit = createLambdaAuditLog();
const deps = {
  // In AWS the kubeconfig is read from Secrets Manager (the stack passes the secret ARN).
  // Every call is time-limited (./limits.ts), so one hung call cannot take Lambda's 55 s.
  cluster: await kubernetesClusterFromEnv(
    process.env,
    createRedactingSecretReader(audit, LIMITS.aws),
    LIMITS.cluster,
  ),
  publisher: new EventBridgePublisher({
    client: new EventBridgeClient({ maxAttempts: 1, requestHandler: LIMITS.aws.requestHandler }),
    busName: config.busName,
    maxAttempts: LIMITS.publisher.maxAttempts,
  }),
  audit,
  clock: systemClock,
  newId: randomId,
};

export const handler = withLambdaRequestId(reconcile);

async function reconcile(): Promise<{ environments: ReconcileReport; builds: ReconcileBuildsReport }> {
  // Both run even when one fails (the other's work is not its hostage); a failure still fails the invocation.
  const [environments, finished] = await Promise.allSettled([
    reconcileEnvironments(deps),
    reconcileBuilds({
      ...deps,
      namespace: builds.namespace,
      deadline: new Date(systemClock.now().getTime() + LIMITS.buildsBudgetMs),
      logReadMs: LIMITS.logReadMs,
    }),
  ]);
  if (environments.status === "rejected") throw environments.reason;
  if (finished.status === "rejected") throw finished.reason;
  return { environments: environments.value, builds: finished.value };
}
