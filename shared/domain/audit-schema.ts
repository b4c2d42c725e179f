/**
 * The audit record's schema (valibot): what the tests check every written line against, and what a
 * reader of the trail can rely on. Kept apart from `audit.ts` so that the Lambda bundles, which only
 * write records, do not carry the validator.
 */
import * as v from "valibot";
import { AUDIT_OUTCOMES, type AuditRecord } from "./audit.js";

const Nullable = v.nullable(v.string());

/**
 * The record's schema. Loose: a producer may add fields this version does not name, and they are
 * kept; the named ones must have their types.
 */
export const AuditRecordSchema = v.looseObject({
  audit: v.literal(true),
  auditVersion: v.optional(v.pipe(v.number(), v.integer(), v.minValue(1))),
  action: v.pipe(v.string(), v.regex(/^[a-z][a-z0-9-]*(\.[a-z][a-z0-9-]*)*$/, "a dotted lower-case action")),
  outcome: v.picklist(AUDIT_OUTCOMES),
  reason: v.string(),
  actor: v.record(v.string(), v.nullable(v.union([v.string(), v.number()]))),
  subject: v.record(v.string(), v.unknown()),
  correlationId: Nullable,
  gitlab: v.nullable(
    v.object({ instance: Nullable, event: Nullable, idempotencyKey: Nullable, webhookUuid: Nullable }),
  ),
  function: v.pipe(v.string(), v.minLength(1)),
  at: v.pipe(v.string(), v.isoTimestamp("an ISO 8601 timestamp")),
  requestId: v.optional(Nullable),
  durationMs: v.optional(v.pipe(v.number(), v.minValue(0))),
});

/**
 * Checks one parsed line against the schema; returns the record or throws naming the field.
 *
 * @example
 * const record = parseAuditRecord(JSON.parse(line)); // throws "outcome: Invalid type: ..."
 */
export function parseAuditRecord(value: unknown): AuditRecord {
  const result = v.safeParse(AuditRecordSchema, value);
  if (result.success) return result.output as AuditRecord;
  const issue = result.issues[0];
  const path = issue.path?.map((item) => String(item.key)).join(".") ?? "(record)";
  throw new TypeError(`invalid audit record at ${path}: ${issue.message}`);
}
