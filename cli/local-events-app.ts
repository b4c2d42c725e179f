/**
 * `POST /local/events`: the local runtime's door for operators' commands (`kubler deploy`) to put a
 * catalog event on the bus, standing in for a step that has not landed yet. Local only, never in
 * Lambda; authenticated like a webhook (the same secret token or signing key). Every request is one
 * `local.event` audit line: `deny` (401), `failure` (400, 503, 500) or `success` (published).
 */
import { Hono } from "hono";
import { bodyLimit } from "hono/body-limit";
import type { AuditOutcome } from "../shared/domain/audit.js";
import { type Detail, type GitlabRef, isDetailType, validateDetail } from "../shared/domain/catalog.js";
import { environmentStopKey } from "../shared/domain/plan-steps.js";
import { verifyWebhook, type WebhookCredentials } from "../shared/domain/webhook-auth.js";
import { BadRequestError, InvalidDetailError, messageOf } from "../shared/errors.js";
import { toErrorAnswer } from "../shared/http-errors.js";
import type { AuditLog, Clock, EnvironmentStops, EventPublisher } from "../shared/ports.js";
import { STOP_RECORD_TTL_SECONDS } from "../shared/services/plan-steps.js";
import { stepAuditRecord } from "../shared/services/step-audit.js";

export const LOCAL_EVENTS_PATH = "/local/events";

/**
 * A catalog event is a few KB at most. The body is read whole before its secret can be checked, so
 * without a limit anyone who reaches the port (KUBLER_HOST=0.0.0.0) could fill the runtime's memory.
 */
export const LOCAL_EVENTS_MAX_BODY_BYTES = 1024 * 1024;

const FN = "local-events";
const ACTION = "local.event";

/** The body as sent: anything, until it is validated. */
type LocalEventEntry = { detailType?: unknown; detail?: unknown } | null;

export interface LocalEventsAppDeps {
  credentials: WebhookCredentials;
  publisher: EventPublisher;
  audit: AuditLog;
  /** Where unexpected errors go (stderr, redacted): never to the caller. */
  logError: (error: unknown) => void;
  clock: Clock;
  /**
   * Where a stop put here is recorded before it is published, as `kubler stop --aws` records it in
   * AWS and plan-steps records GitLab's: builds and deploys asked for before it are then refused.
   */
  stops?: EnvironmentStops;
}

/**
 * @example
 * app.route("/", createLocalEventsApp({ credentials, publisher: bus, audit, logError, clock }));
 */
export function createLocalEventsApp(deps: LocalEventsAppDeps): Hono {
  const app = new Hono();
  const limit = bodyLimit({
    maxSize: LOCAL_EVENTS_MAX_BODY_BYTES,
    onError: (c) => {
      const reason = `body is larger than the ${LOCAL_EVENTS_MAX_BODY_BYTES} byte limit`;
      deps.audit.record(auditRecordOf(null, "failure", reason, { status: 413 }, deps.clock.now()));
      return c.json({ error: "payload_too_large", message: reason }, 413);
    },
  });
  app.post(LOCAL_EVENTS_PATH, limit, async (c) => {
    // What is known of the request so far, for its audit line: never the body before it is verified.
    let entry = null as LocalEventEntry;
    const record = (outcome: AuditOutcome, reason: string, subject: Record<string, unknown> = {}) =>
      deps.audit.record(auditRecordOf(entry, outcome, reason, subject, deps.clock.now()));
    try {
      const body = new Uint8Array(await c.req.arrayBuffer());
      verifyWebhook(deps.credentials, (name) => c.req.header(name), body, deps.clock.now());
      try {
        entry = JSON.parse(Buffer.from(body).toString("utf8")) as LocalEventEntry;
      } catch {
        throw new BadRequestError("body is not valid JSON");
      }
      const detailType = entry?.detailType;
      if (!isDetailType(detailType)) {
        throw new BadRequestError(`detailType ${JSON.stringify(detailType)} is not in the event catalog`);
      }
      let detail: unknown;
      try {
        detail = validateDetail(detailType, entry?.detail);
      } catch (error) {
        if (error instanceof InvalidDetailError) throw new BadRequestError(error.message);
        throw error;
      }
      if (detailType === "Environment Stop Requested" && deps.stops) {
        const stop = detail as Detail<"Environment Stop Requested">;
        await deps.stops.record(
          environmentStopKey(stop.gitlab, stop.environment),
          deps.clock.now(),
          STOP_RECORD_TTL_SECONDS,
        );
      }
      const [eventId] = await deps.publisher.publish([{ detailType, detail } as never]);
      record("success", `published ${detailType}`, { eventId });
      return c.json({ published: true, eventId }, 202);
    } catch (error) {
      const { status } = toErrorAnswer(error);
      const reason = status === 500 ? `internal error (${messageOf(error)})` : messageOf(error);
      record(status === 401 ? "deny" : "failure", reason, { status });
      throw error;
    }
  });
  app.onError((error, c) => {
    const { status, body } = toErrorAnswer(error);
    // A bug, not a bad request: the caller sees a bare 500, the operator's stderr what happened.
    if (status === 500) deps.logError(error);
    return c.json(body, status);
  });
  return app;
}

/** Reads what it can of an entry that may be malformed: its detail-type, correlation id, project. */
function auditRecordOf(
  entry: LocalEventEntry,
  outcome: AuditOutcome,
  reason: string,
  subject: Record<string, unknown>,
  at: Date,
) {
  const detailType = typeof entry?.detailType === "string" ? entry.detailType : null;
  const detail = (typeof entry?.detail === "object" && entry.detail !== null ? entry.detail : {}) as {
    correlationId?: unknown;
    gitlab?: Partial<GitlabRef>;
    environment?: unknown;
  };
  const gitlab = detail.gitlab;
  return stepAuditRecord({
    fn: FN,
    action: ACTION,
    outcome,
    reason,
    correlationId: typeof detail.correlationId === "string" ? detail.correlationId : null,
    gitlab:
      gitlab &&
      typeof gitlab.instance === "string" &&
      typeof gitlab.projectPath === "string" &&
      typeof gitlab.projectId === "number"
        ? (gitlab as GitlabRef)
        : null,
    trigger: detailType ?? "unknown",
    subject: {
      ...(detailType === null ? {} : { detailType }),
      ...(typeof detail.environment === "string" ? { environment: detail.environment } : {}),
      ...subject,
    },
    at,
  });
}
