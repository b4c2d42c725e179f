/**
 * The cleanup-environments function's work on one bus event (`Environment Stop Requested`), shared
 * by the Lambda handler and the local runtime. A failed attempt is audited before it is thrown back
 * for the bus to retry.
 */
import { validateEnvelope } from "../../shared/domain/catalog.js";
import {
  type CleanupDeps,
  type StopOutcome,
  stopEnvironment,
} from "../../shared/services/cleanup-environments.js";
import { auditFailedAttempt } from "../../shared/services/step-audit.js";

/**
 * @example
 * await createCleanupConsumer(deps)(envelope); // { kind: "deleted", namespace }
 */
export function createCleanupConsumer(deps: CleanupDeps): (envelope: unknown) => Promise<StopOutcome> {
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
