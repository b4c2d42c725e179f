/**
 * The audit record (DESIGN §9): one JSON line per decision, never a secret.
 */

export type AuditOutcome = "allow" | "deny" | "success" | "failure" | "ignored";

export interface AuditRecord {
  audit: true;
  /** What was decided, dotted: `webhook.receive`, `bus.deliver`, ... */
  action: string;
  outcome: AuditOutcome;
  reason: string;
  /** Who caused it: a GitLab user, job or pipeline, or a Kubler function. */
  actor: Record<string, string | number | null>;
  /** What it was about: project, environment, namespace, role ARN, event ids. */
  subject: Record<string, unknown>;
  correlationId: string | null;
  gitlab: {
    instance: string | null;
    event: string | null;
    idempotencyKey: string | null;
    webhookUuid: string | null;
  } | null;
  function: string;
  at: string;
}
