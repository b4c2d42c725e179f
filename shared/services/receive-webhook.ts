/**
 * The GitLab ingress use case (DESIGN §4): verify ▸ parse ▸ normalize ▸ dedupe ▸ publish, with one
 * audit line per delivery whatever the outcome. No I/O but the ports: it answers in milliseconds.
 */
import type { AuditRecord } from "../domain/audit.js";
import { type GitlabDelivery, normalizeGitlabEvent } from "../domain/gitlab-event.js";
import { type HeaderReader, verifyWebhook, type WebhookCredentials } from "../domain/webhook-auth.js";
import { BadRequestError, UnauthorizedError, UnavailableError } from "../errors.js";
import type { AuditLog, Clock, DedupeStore, EventPublisher, IdGenerator, Reservation } from "../ports.js";

/** GitLab keeps `Idempotency-Key` stable across retries and manual resends; DESIGN §4 asks ≥ 3 days. */
export const DEDUPE_TTL_SECONDS = 3 * 24 * 60 * 60;

/**
 * How long a delivery holds its key while it publishes, before the key is confirmed for
 * `DEDUPE_TTL_SECONDS`. Longer than a delivery can take (the function times out at 10 s, every AWS
 * call is time-limited well inside that), so a resend never takes the key from a publish still
 * running; short, so a Lambda killed mid-publish delays GitLab's resends by a minute, not 3 days.
 */
export const DEDUPE_LEASE_SECONDS = 60;

/**
 * A resend that arrives while the first delivery is still publishing (it may yet fail). DESIGN §4
 * keeps 503 for a publish that failed; this is the one other 503, on purpose: answering "duplicate"
 * while the first publish can still fail would lose the event, while a 5xx records the delivery as
 * failed, to be resent with the same key (GitLab also pauses a hook briefly after a 5xx: the cost).
 */
export const IN_FLIGHT_MESSAGE = "a delivery with this Idempotency-Key is being processed";

const FUNCTION_NAME = "gitlab-webhook";

export interface ReceiveWebhookDeps {
  credentials: WebhookCredentials;
  dedupe: DedupeStore;
  publisher: EventPublisher;
  audit: AuditLog;
  clock: Clock;
  newId: IdGenerator;
}

export interface WebhookRequest {
  header: HeaderReader;
  body: Uint8Array;
}

export type WebhookOutcome =
  | { kind: "published"; correlationId: string; eventIds: string[] }
  | { kind: "duplicate"; correlationId: string }
  | { kind: "ignored"; correlationId: string; reason: string };

/**
 * Handles one delivery. Resolves with what happened; throws the named errors of `shared/errors.ts`
 * (already audited) for the caller to map to a status.
 *
 * @example
 * const outcome = await receiveWebhook(deps, { header: (h) => headers[h], body });
 * // { kind: "published", eventIds: ["…"], ... }
 */
export async function receiveWebhook(
  deps: ReceiveWebhookDeps,
  request: WebhookRequest,
): Promise<WebhookOutcome> {
  const now = deps.clock.now();
  const meta = readDeliveryMeta(request.header);
  let correlationId = meta.idempotencyKey ?? deps.newId();
  try {
    const method = verifyWebhook(deps.credentials, request.header, request.body, now);
    const signedId = method === "signature" ? signedWebhookId(request.header) : null;
    if (signedId !== null) {
      correlationId = signedId;
      // GitLab 19+ sends Idempotency-Key equal to webhook-id: another value is a captured delivery
      // replayed under a new key, not GitLab.
      if (meta.idempotencyKey !== signedId) {
        throw new UnauthorizedError("Idempotency-Key differs from the signed webhook-id");
      }
    }
    if (!meta.event) throw new BadRequestError("missing X-Gitlab-Event header");
    const payload = parseJson(request.body);
    const delivery: GitlabDelivery = {
      eventHeader: meta.event,
      payload,
      instance: meta.instance,
      correlationId,
    };
    const normalized = normalizeGitlabEvent(delivery);
    if (normalized.kind === "ignored") {
      recordAudit(deps, meta, correlationId, now, "ignored", normalized.reason);
      return { kind: "ignored", correlationId, reason: normalized.reason };
    }
    const { entry } = normalized;
    const subject = { project: entry.detail.gitlab.projectPath, projectId: entry.detail.gitlab.projectId };
    const actor = { gitlabUser: "user" in entry.detail ? (entry.detail.user ?? null) : null };
    // A signature covers webhook-id but no other header: a captured delivery resent with another
    // Idempotency-Key or X-Gitlab-Instance must still be the same key.
    const dedupeKey =
      signedId !== null
        ? `webhook-id ${signedId}`
        : meta.idempotencyKey && `${entry.detail.gitlab.instance} ${meta.idempotencyKey}`;
    if (dedupeKey) {
      const reservation = await reserve(deps.dedupe, dedupeKey);
      if (reservation === "in-flight") throw new UnavailableError(IN_FLIGHT_MESSAGE);
      if (reservation === "duplicate") {
        recordAudit(
          deps,
          meta,
          correlationId,
          now,
          "ignored",
          "duplicate delivery (Idempotency-Key seen before)",
          {
            subject,
            actor,
          },
        );
        return { kind: "duplicate", correlationId };
      }
    }
    let eventIds: string[];
    try {
      eventIds = await deps.publisher.publish([entry]);
    } catch (error) {
      // Forget the key so GitLab's retry or a manual resend, with the same key, is accepted.
      if (dedupeKey) await deps.dedupe.release(dedupeKey).catch(() => undefined);
      throw error;
    }
    let reason = `published ${normalized.summary}`;
    if (dedupeKey) {
      // The event is out: answering 503 now would only get it published again by GitLab's retry.
      reason += await deps.dedupe.confirm(dedupeKey, DEDUPE_TTL_SECONDS).then(
        () => "",
        (error: unknown) =>
          `; the Idempotency-Key could not be confirmed (${errorName(error)}), so a resend after ` +
          `${DEDUPE_LEASE_SECONDS} s would publish it again`,
      );
    }
    recordAudit(deps, meta, correlationId, now, "success", reason, {
      subject: { ...subject, detailType: entry.detailType, eventIds },
      actor,
    });
    return { kind: "published", correlationId, eventIds };
  } catch (error) {
    const expected =
      error instanceof BadRequestError ||
      error instanceof UnauthorizedError ||
      error instanceof UnavailableError;
    const reason = expected ? error.message : "internal error";
    recordAudit(
      deps,
      meta,
      correlationId,
      now,
      error instanceof UnauthorizedError ? "deny" : "failure",
      reason,
    );
    throw error;
  }
}

// A function rather than a closure per delivery: allocating one showed in the ingress profile.
function recordAudit(
  deps: ReceiveWebhookDeps,
  meta: DeliveryMeta,
  correlationId: string,
  now: Date,
  outcome: AuditRecord["outcome"],
  reason: string,
  extra?: AuditExtra,
): void {
  deps.audit.record(webhookAuditRecord(meta, correlationId, outcome, reason, now, extra));
}

/**
 * The audit line for a delivery; exported for the one rejection that happens before the use case
 * runs (a body over the size limit, refused while it streams in).
 */
export function webhookAuditRecord(
  meta: DeliveryMeta,
  correlationId: string | null,
  outcome: AuditRecord["outcome"],
  reason: string,
  now: Date,
  extra?: AuditExtra,
): AuditRecord {
  return {
    audit: true,
    action: "webhook.receive",
    outcome,
    reason,
    actor: extra?.actor ? { userAgent: meta.userAgent, ...extra.actor } : { userAgent: meta.userAgent },
    subject: extra?.subject ?? {},
    correlationId,
    gitlab: {
      instance: meta.instance,
      event: meta.event,
      idempotencyKey: meta.idempotencyKey,
      webhookUuid: meta.webhookUuid,
    },
    function: FUNCTION_NAME,
    at: now.toISOString(),
  };
}

/** What a delivery's audit line adds once the event is known: who sent it and what it is about. */
export type AuditExtra = Partial<Pick<AuditRecord, "actor" | "subject">>;

export interface DeliveryMeta {
  event: string | null;
  instance: string | null;
  idempotencyKey: string | null;
  webhookUuid: string | null;
  userAgent: string | null;
}

/** The GitLab delivery headers that matter, clipped so a hostile header cannot bloat an audit line. */
export function readDeliveryMeta(header: HeaderReader): DeliveryMeta {
  return {
    event: readClipped(header, "x-gitlab-event"),
    instance: readClipped(header, "x-gitlab-instance"),
    // Signed deliveries carry the same value as webhook-id (GitLab 19+).
    idempotencyKey: readClipped(header, "idempotency-key") ?? readClipped(header, "webhook-id"),
    webhookUuid: readClipped(header, "x-gitlab-webhook-uuid"),
    userAgent: readClipped(header, "user-agent"),
  };
}

function readClipped(header: HeaderReader, name: string): string | null {
  const value = header(name)?.trim();
  return value ? value.slice(0, 256) : null;
}

function parseJson(body: Uint8Array): unknown {
  try {
    const bytes = Buffer.isBuffer(body) ? body : Buffer.from(body.buffer, body.byteOffset, body.byteLength);
    return JSON.parse(bytes.toString("utf8"));
  } catch {
    throw new BadRequestError("body is not valid JSON");
  }
}

/** The `webhook-id` the signature covers, clipped like the other headers (a DynamoDB key is ≤ 2 KB). */
function signedWebhookId(header: HeaderReader): string {
  const id = readClipped(header, "webhook-id");
  if (id === null) throw new UnauthorizedError("missing webhook-id header");
  return id;
}

async function reserve(dedupe: DedupeStore, key: string): Promise<Reservation> {
  try {
    return await dedupe.reserve(key, DEDUPE_LEASE_SECONDS);
  } catch (error) {
    throw new UnavailableError(`dedupe store unavailable (${errorName(error)})`, {
      publicMessage: "dedupe store unavailable",
    });
  }
}

function errorName(error: unknown): string {
  return error instanceof Error ? error.name : "unknown error";
}
