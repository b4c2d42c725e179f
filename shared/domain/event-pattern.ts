/**
 * EventBridge event patterns: validation and matching, with EventBridge's content-filter semantics.
 * (Implementation in progress.)
 */

/** A JSON event pattern, as written in an EventBridge rule. */
export type EventPattern = { readonly [key: string]: unknown };

export class InvalidPatternError extends Error {
  override readonly name = "InvalidPatternError";
}

export function validatePattern(pattern: unknown): EventPattern {
  if (typeof pattern !== "object" || pattern === null || Array.isArray(pattern)) {
    throw new InvalidPatternError("a pattern must be a JSON object");
  }
  return pattern as EventPattern;
}

export function matchesPattern(_pattern: EventPattern, _event: unknown): boolean {
  throw new Error("not implemented yet");
}
