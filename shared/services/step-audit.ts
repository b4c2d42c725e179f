/**
 * The audit line of a step function (deploy, cleanup, sweep, reconcile): who (the function), what
 * (the environment), why, and the correlation id that ties it to the GitLab delivery it came from.
 */
import type { AuditOutcome, AuditRecord } from "../domain/audit.js";
import type { GitlabRef } from "../domain/catalog.js";

export interface StepAuditInput {
  fn: string;
  action: string;
  outcome: AuditOutcome;
  reason: string;
  correlationId: string | null;
  gitlab: GitlabRef | null;
  /** The detail-type that caused the step, or "schedule" / "sweep" for timed work. */
  trigger: string;
  subject: Record<string, unknown>;
  at: Date;
}

/**
 * @example
 * audit.record(stepAuditRecord({ fn: "deploy-environment", action: "environment.deploy", ... }));
 */
export function stepAuditRecord(input: StepAuditInput): AuditRecord {
  return {
    audit: true,
    action: input.action,
    outcome: input.outcome,
    reason: input.reason,
    actor: { function: input.fn },
    subject: {
      ...(input.gitlab ? { project: input.gitlab.projectPath, projectId: input.gitlab.projectId } : {}),
      ...input.subject,
    },
    correlationId: input.correlationId,
    gitlab: input.gitlab
      ? { instance: input.gitlab.instance, event: input.trigger, idempotencyKey: null, webhookUuid: null }
      : null,
    function: input.fn,
    at: input.at.toISOString(),
  };
}
