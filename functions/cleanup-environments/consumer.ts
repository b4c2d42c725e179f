/**
 * The cleanup-environments function's work: one bus event (`Environment Stop Requested`), shared by
 * the Lambda handler and the local runtime, or a sweep request (the recurring schedule's input, or
 * `aws lambda invoke` by hand). A failed attempt is audited before it is thrown back for the bus to
 * retry; a sweep request it cannot read is refused with a deny line.
 */
import { validateEnvelope } from "../../shared/domain/catalog.js";
import { InvalidDetailError } from "../../shared/errors.js";
import type { IdGenerator } from "../../shared/ports.js";
import {
  type CleanupDeps,
  type StopDeps,
  type StopOutcome,
  type SweepReport,
  stopEnvironment,
  sweepExpiredEnvironments,
} from "../../shared/services/cleanup-environments.js";
import { auditFailedAttempt, stepAuditRecord } from "../../shared/services/step-audit.js";

/**
 * @example
 * await createCleanupConsumer(deps)(envelope); // { kind: "deleted", namespace }
 */
export function createCleanupConsumer(deps: StopDeps): (envelope: unknown) => Promise<StopOutcome> {
  return async (envelope) => {
    try {
      const event = validateEnvelope(envelope, ["Environment Stop Requested"]);
      const publishedAt = new Date(event.time);
      return await stopEnvironment(
        deps,
        event.detail,
        Number.isNaN(publishedAt.getTime()) ? null : publishedAt,
      );
    } catch (error) {
      auditFailedAttempt(deps, "cleanup-environments", "environment.stop", envelope, error);
      throw error;
    }
  };
}

/** A sweep's report as the invocation returns it: counts for what may run to thousands of names. */
export type SweepSummary = Omit<SweepReport, "expired" | "deleted"> & { expired: number; deleted: number };

/**
 * What the Lambda is invoked with: `{ "action": "sweep" }` (optionally `"dryRun": true`) sweeps,
 * anything else is taken for a bus event.
 *
 * @example
 * const invoke = createCleanupInvocation(deps, randomId);
 * await invoke({ action: "sweep", dryRun: true }); // { dryRun: true, examined: 3, expired: 1, deleted: 0, … }
 * await invoke(envelope); // { kind: "deleted", namespace }
 */
export function createCleanupInvocation(
  deps: StopDeps,
  newId: IdGenerator,
): (event: unknown) => Promise<StopOutcome | SweepSummary> {
  const consume = createCleanupConsumer(deps);
  return async (event) => {
    if ((event as { action?: unknown } | null)?.action !== "sweep") return consume(event);
    const dryRun = sweepDryRun(deps, event as object);
    const report = await sweepExpiredEnvironments(deps, { dryRun, newId });
    return { ...report, expired: report.expired.length, deleted: report.deleted.length };
  };
}

/**
 * A sweep invoked by hand whose dry run is unreadable (`"dryRun": "true"`, `"dry_run": true`) is
 * refused: read as "not a dry run", it deleted what was only to be listed.
 */
function sweepDryRun(deps: Pick<CleanupDeps, "audit" | "clock">, request: object): boolean {
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
  deps.audit.record(
    stepAuditRecord({
      fn: "cleanup-environments",
      action: "environment.sweep",
      outcome: "deny",
      reason: error.message,
      correlationId: null,
      gitlab: null,
      trigger: "sweep",
      subject: {},
      at: deps.clock.now(),
    }),
  );
  throw error;
}
