/**
 * The build-image function's work on one bus event, shared by the Lambda handler and the local
 * runtime: validate what arrived, then create (or join) the build Job.
 */
import { validateEnvelope } from "../../shared/domain/catalog.js";
import {
  type BuildImageDeps,
  type BuildImageOutcome,
  buildImage,
} from "../../shared/services/build-image.js";

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
    const event = validateEnvelope(envelope, ACCEPTED);
    return buildImage(deps, event.detail);
  };
}
