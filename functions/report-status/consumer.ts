/**
 * The report-status function's work on one bus event, shared by the Lambda handler and the local
 * runtime: validate what arrived (a wrong shape is a clear error), then set the commit status. GitLab
 * failures never throw from here: the bus would retry a deploy's report forever for nothing. An
 * envelope that fails validation is audited before it is thrown back.
 */
import { type BusEnvelope, validateEnvelope } from "../../shared/domain/catalog.js";
import {
  REPORTED_TYPES,
  type ReportEvent,
  type ReportedType,
  type ReportOutcome,
  type ReportStatusDeps,
  reportStatus,
} from "../../shared/services/report-status.js";
import { auditFailedAttempt } from "../../shared/services/step-audit.js";

/**
 * @example
 * const consume = createReportStatusConsumer(deps);
 * await consume(envelope); // { kind: "set", state: "running" }
 */
export function createReportStatusConsumer(
  deps: ReportStatusDeps,
): (envelope: unknown) => Promise<ReportOutcome> {
  return async (envelope) => {
    let event: BusEnvelope<ReportedType>;
    try {
      event = validateEnvelope(envelope, REPORTED_TYPES);
    } catch (error) {
      auditFailedAttempt(deps, "report-status", "status.report", envelope, error);
      throw error;
    }
    // The envelope's time, when the event was published: a pending or running older than the
    // commit's finished status is late, a newer one a new run.
    const time = new Date(event.time);
    return reportStatus(deps, {
      detailType: event["detail-type"],
      detail: event.detail,
      time,
    } as ReportEvent);
  };
}
