/**
 * The audit line of a step function (deploy, cleanup, sweep, reconcile): who (the function), what
 * (the environment), why, and the correlation id that ties it to the GitLab delivery it came from.
 */

import type { AuditOutcome, AuditRecord } from "../domain/audit.js";
import type { GitlabRef } from "../domain/catalog.js";
import { messageOf } from "../errors.js";
import type { AuditLog, Clock } from "../ports.js";

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
  /** The GitLab user behind the step (the pusher, the merge request's author of the change). */
  gitlabUser?: string | null;
  /** The operator behind the step, outside GitLab (`kubler stop`'s `requestedBy`). */
  operator?: string | null;
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
    actor: {
      function: input.fn,
      ...(input.gitlabUser ? { gitlabUser: input.gitlabUser } : {}),
      ...(input.operator ? { operator: input.operator } : {}),
    },
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

/**
 * The audit of one step on one event: function, action, trigger, correlation and the subject every
 * line shares are fixed once; each decision adds its outcome, reason and what else it is about.
 *
 * @example
 * const audit = createStepAudit(deps, { fn: "deploy-environment", action: "environment.deploy",
 *   trigger: "Deploy Requested", detail, subject: { environment: detail.environment } });
 * audit("success", "deployed 3f2a…", { url });
 */
export function createStepAudit(
  deps: { audit: AuditLog; clock: Clock },
  step: {
    fn: string;
    action: string;
    trigger: string;
    detail: { correlationId: string; gitlab: GitlabRef; user?: string | null; requestedBy?: string };
    subject?: Record<string, unknown>;
  },
): (outcome: AuditOutcome, reason: string, subject?: Record<string, unknown>) => void {
  return (outcome, reason, subject = {}) =>
    deps.audit.record(
      stepAuditRecord({
        fn: step.fn,
        action: step.action,
        outcome,
        reason,
        correlationId: step.detail.correlationId,
        gitlab: step.detail.gitlab,
        trigger: step.trigger,
        subject: { ...step.subject, ...subject },
        at: deps.clock.now(),
        gitlabUser: step.detail.user ?? null,
        operator: step.detail.requestedBy ?? null,
      }),
    );
}

/**
 * Audits an attempt that threw (the bus will retry it, then dead-letter it): without this line a
 * failure that a retry later repairs would leave no trace in the audit trail. Reads what it can of
 * an envelope that may be malformed.
 *
 * @example
 * try { return await consume(envelope); } catch (error) { auditFailedAttempt(deps, FN, ACTION, envelope, error); throw error; }
 */
export function auditFailedAttempt(
  deps: { audit: AuditLog; clock: Clock },
  fn: string,
  action: string,
  envelope: unknown,
  error: unknown,
): void {
  const e = (typeof envelope === "object" && envelope !== null ? envelope : {}) as {
    id?: unknown;
    "detail-type"?: unknown;
    detail?: { correlationId?: unknown; gitlab?: GitlabRef; environment?: unknown };
  };
  const detail = e.detail ?? {};
  const gitlab = detail.gitlab;
  deps.audit.record(
    stepAuditRecord({
      fn,
      action,
      outcome: "failure",
      reason: `attempt failed, left to the bus to retry: ${messageOf(error)}`,
      correlationId: typeof detail.correlationId === "string" ? detail.correlationId : null,
      gitlab:
        gitlab && typeof gitlab.instance === "string" && typeof gitlab.projectPath === "string"
          ? gitlab
          : null,
      trigger: typeof e["detail-type"] === "string" ? e["detail-type"] : "unknown",
      subject: {
        ...(typeof detail.environment === "string" ? { environment: detail.environment } : {}),
        ...(typeof e.id === "string" ? { eventId: e.id } : {}),
      },
      at: deps.clock.now(),
    }),
  );
}
