/**
 * The cleanup-environments function's work on one bus event (`Environment Stop Requested`), shared
 * by the Lambda handler and the local runtime.
 */
import { validateEnvelope } from "../../shared/domain/catalog.js";
import {
  type CleanupDeps,
  type StopOutcome,
  stopEnvironment,
} from "../../shared/services/cleanup-environments.js";

/**
 * @example
 * await createCleanupConsumer(deps)(envelope); // { kind: "deleted", namespace }
 */
export function createCleanupConsumer(deps: CleanupDeps): (envelope: unknown) => Promise<StopOutcome> {
  return async (envelope) => {
    const event = validateEnvelope(envelope, ["Environment Stop Requested"]);
    return stopEnvironment(deps, event.detail);
  };
}
