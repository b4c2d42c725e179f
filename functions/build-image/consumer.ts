/**
 * The build-image function's work on one bus event, shared by the Lambda handler and the local
 * runtime: validate what arrived, then create (or join) the build Job. A failed attempt is audited
 * before it is thrown back for the bus to retry.
 */
import { validateEnvelope } from "../../shared/domain/catalog.js";
import {
  type BuildImageDeps,
  type BuildImageOutcome,
  buildImage,
} from "../../shared/services/build-image.js";
import { auditFailedAttempt } from "../../shared/services/step-audit.js";

const ACCEPTED = ["Build Requested"] as const;

/**
 * @example
 * const consume = createBuildImageConsumer(deps);
 * await consume(envelope); // throws to ask the bus for a retry
 */
export function createBuildImageConsumer(
  deps: BuildImageDeps,
): (envelope: unknown) => Promise<BuildImageOutcome> {
  return async (envelope) => {
    try {
      const event = validateEnvelope(envelope, ACCEPTED);
      return await buildImage(deps, event.detail);
    } catch (error) {
      auditFailedAttempt(deps, "build-image", "image.build", envelope, error);
      throw error;
    }
  };
}
