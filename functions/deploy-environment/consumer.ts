/**
 * The deploy-environment function's work on one bus event, shared by the Lambda handler and the
 * local runtime: validate what arrived (a wrong shape is a clear error, never a crash deeper in),
 * then deploy. A failed attempt is audited before it is thrown back for the bus to retry.
 */
import { validateEnvelope } from "../../shared/domain/catalog.js";
import {
  type DeployEnvironmentDeps,
  type DeployOutcome,
  deployEnvironment,
} from "../../shared/services/deploy-environment.js";
import { auditFailedAttempt, createStepAudit } from "../../shared/services/step-audit.js";

const ACCEPTED = ["Deploy Requested", "Build Finished"] as const;

/**
 * @example
 * const consume = createDeployEnvironmentConsumer(deps);
 * await consume(envelope); // throws to ask the bus for a retry
 */
export function createDeployEnvironmentConsumer(
  deps: DeployEnvironmentDeps,
): (envelope: unknown) => Promise<DeployOutcome> {
  const consume = async (envelope: unknown): Promise<DeployOutcome> => {
    const event = validateEnvelope(envelope, ACCEPTED);
    const time = new Date(event.time);
    if (event["detail-type"] === "Build Finished") {
      const detail = event.detail as Extract<typeof event.detail, { imageDigest: unknown }>;
      // The route only sends succeeded builds; a failed one reaching here is misrouted, not deployable.
      if (detail.status !== "succeeded") {
        const reason = `build ${detail.status}`;
        createStepAudit(deps, {
          fn: "deploy-environment",
          action: "environment.deploy",
          trigger: "Build Finished",
          detail,
          subject: { environment: detail.environment, sha: detail.sha },
        })("ignored", `${reason}: nothing to deploy`);
        return { kind: "ignored", reason };
      }
      return deployEnvironment(deps, { detailType: "Build Finished", detail, time });
    }
    const detail = event.detail as Extract<typeof event.detail, { pipelineId: unknown }>;
    return deployEnvironment(deps, { detailType: "Deploy Requested", detail, time });
  };
  return async (envelope) => {
    try {
      return await consume(envelope);
    } catch (error) {
      auditFailedAttempt(deps, "deploy-environment", "environment.deploy", envelope, error);
      throw error;
    }
  };
}
