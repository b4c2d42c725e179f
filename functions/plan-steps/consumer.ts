/**
 * The plan-steps function's work on one bus event, shared by the Lambda handler and the local
 * runtime: validate the GitLab fact that arrived (a wrong shape is a clear error, never a crash
 * deeper in), then plan. A failed attempt is audited before it is thrown back for the bus to retry:
 * by the use case when it knows why, else here.
 */
import { GITLAB_FACTS, validateEnvelope } from "../../shared/domain/catalog.js";
import type { GitlabFact } from "../../shared/domain/plan-steps.js";
import {
  isAuditedPlanFailure,
  type PlanOutcome,
  type PlanStepsDeps,
  planStepsFor,
} from "../../shared/services/plan-steps.js";
import { auditFailedAttempt } from "../../shared/services/step-audit.js";

/**
 * @example
 * const consume = createPlanStepsConsumer(deps);
 * await consume(envelope); // throws to ask the bus for a retry
 */
export function createPlanStepsConsumer(deps: PlanStepsDeps): (envelope: unknown) => Promise<PlanOutcome> {
  return async (envelope) => {
    try {
      const event = validateEnvelope(envelope, GITLAB_FACTS);
      const time = new Date(event.time);
      return await planStepsFor(
        deps,
        { detailType: event["detail-type"], detail: event.detail } as GitlabFact,
        Number.isNaN(time.getTime()) ? null : time,
      );
    } catch (error) {
      if (!isAuditedPlanFailure(error)) auditFailedAttempt(deps, "plan-steps", "plan.steps", envelope, error);
      throw error;
    }
  };
}
