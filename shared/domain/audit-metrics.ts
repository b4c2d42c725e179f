/**
 * Metrics derived from audit records, in one place: a decision is counted where it is audited, so a
 * metric can never disagree with the audit trail. Rendered as CloudWatch Embedded Metric Format
 * (EMF), a JSON line that CloudWatch Logs turns into metrics with no API call:
 * https://docs.aws.amazon.com/AmazonCloudWatch/latest/monitoring/CloudWatch_Embedded_Metric_Format_Specification.html
 */
import type { AuditRecord } from "./audit.js";

export const AUDIT_METRICS_NAMESPACE = "Kubler";

/** Metric names: the CDK alarms and dashboards read these. */
export const AUDIT_METRIC = {
  webhooks: "Webhooks",
  publishRetries: "PublishRetries",
  deploys: "Deploys",
  rollbacks: "Rollbacks",
  credentialsIssued: "CredentialsIssued",
  credentialsDenied: "CredentialsDenied",
  sweepDeletions: "SweepDeletions",
  stepLatency: "StepLatency",
} as const;

export type AuditMetricName = (typeof AUDIT_METRIC)[keyof typeof AUDIT_METRIC];

export interface AuditMetric {
  name: AuditMetricName;
  unit: "Count" | "Milliseconds";
  value: number;
  /** Few, low-cardinality dimensions: each distinct combination is a billed metric. */
  dimensions: Record<string, string>;
}

/**
 * The metrics one audit record stands for (none for most).
 *
 * @example
 * metricsOfAuditRecord({ action: "webhook.receive", outcome: "deny", ... });
 * // [{ name: "Webhooks", unit: "Count", value: 1, dimensions: { Outcome: "deny" } }]
 */
export function metricsOfAuditRecord(record: AuditRecord): AuditMetric[] {
  const metrics: AuditMetric[] = [];
  const count = (name: AuditMetricName, dimensions: Record<string, string> = {}) =>
    metrics.push({ name, unit: "Count", value: 1, dimensions });
  const { action, outcome } = record;
  if (action === "webhook.receive") count(AUDIT_METRIC.webhooks, { Outcome: outcome });
  else if (action === "environment.deploy") {
    count(AUDIT_METRIC.deploys, { Outcome: outcome });
    if (record.subject.status === "rolled_back") count(AUDIT_METRIC.rollbacks);
  } else if (action === "environment.sweep.delete" && outcome === "success")
    count(AUDIT_METRIC.sweepDeletions);
  else if (action.startsWith("credentials.")) {
    if (outcome === "allow") count(AUDIT_METRIC.credentialsIssued);
    else if (outcome === "deny") count(AUDIT_METRIC.credentialsDenied);
  }
  if (typeof record.durationMs === "number" && Number.isFinite(record.durationMs)) {
    metrics.push({
      name: AUDIT_METRIC.stepLatency,
      unit: "Milliseconds",
      value: record.durationMs,
      dimensions: { Function: record.function },
    });
  }
  return metrics;
}

/**
 * One EMF document for metrics that share no dimension name with different values (true of what
 * `metricsOfAuditRecord` returns); null when there is nothing to emit.
 *
 * @example
 * JSON.stringify(emfDocument([{ name: "Deploys", unit: "Count", value: 1, dimensions: { Outcome: "success" } }], Date.now()));
 * // {"_aws":{"Timestamp":…,"CloudWatchMetrics":[{"Namespace":"Kubler","Dimensions":[["Outcome"]],"Metrics":[…]}]},"Outcome":"success","Deploys":1}
 */
export function emfDocument(
  metrics: readonly AuditMetric[],
  timestampMs: number,
  namespace: string = AUDIT_METRICS_NAMESPACE,
): Record<string, unknown> | null {
  if (metrics.length === 0) return null;
  const fields: Record<string, unknown> = {};
  const directives = metrics.map((metric) => {
    Object.assign(fields, metric.dimensions);
    fields[metric.name] = metric.value;
    return {
      Namespace: namespace,
      Dimensions: [Object.keys(metric.dimensions)],
      Metrics: [{ Name: metric.name, Unit: metric.unit }],
    };
  });
  return { _aws: { Timestamp: timestampMs, CloudWatchMetrics: directives }, ...fields };
}
