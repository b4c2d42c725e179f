/**
 * Lambda entry point, invoked every minute by a recurring schedule: the backstop for rollouts past
 * their deadline and expired environments whose schedule was lost (DESIGN §6).
 */
import { EventBridgeClient } from "@aws-sdk/client-eventbridge";
import { EventBridgePublisher } from "../../shared/adapters/eventbridge-publisher.js";
import { createKubernetesCluster } from "../../shared/adapters/kubernetes-cluster.js";
import { StdoutAuditLog } from "../../shared/adapters/stdout-audit-log.js";
import { randomId, systemClock } from "../../shared/clock.js";
import { loadAwsStepsConfig } from "../../shared/config.js";
import { type ReconcileReport, reconcileEnvironments } from "../../shared/services/reconcile-environments.js";

const config = loadAwsStepsConfig(process.env);
const deps = {
  cluster: createKubernetesCluster({ env: process.env }),
  publisher: new EventBridgePublisher({
    client: new EventBridgeClient({ maxAttempts: 1 }),
    busName: config.busName,
  }),
  audit: new StdoutAuditLog(),
  clock: systemClock,
  newId: randomId,
};

export async function handler(): Promise<ReconcileReport> {
  return reconcileEnvironments(deps);
}
