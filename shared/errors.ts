/**
 * The small family of named errors. Services throw these; each entry point maps them to an answer
 * in one place (HTTP status for the apps, retry-or-dead-letter for the bus consumers).
 */

/** The caller sent something we cannot use: maps to 400. */
export class BadRequestError extends Error {
  override readonly name = "BadRequestError";
}

/** A missing or wrong credential: maps to 401. The message is safe to show the caller. */
export class UnauthorizedError extends Error {
  override readonly name: string = "UnauthorizedError";
}

/**
 * Why an ID token was refused: a code for the job's author, never detail that helps a forger.
 * `missing_claim` and `malformed` messages name what is missing; signatures and keys are not described.
 */
export type TokenRejection =
  | "missing_token"
  | "malformed"
  | "algorithm_not_allowed"
  | "bad_signature"
  | "unknown_key"
  | "expired"
  | "not_yet_valid"
  | "wrong_issuer"
  | "wrong_audience"
  | "missing_claim"
  | "replayed";

/** A CI job's ID token was refused: maps to 401 with `reason` in the answer. */
export class TokenRejectedError extends UnauthorizedError {
  override readonly name = "TokenRejectedError";
  constructor(
    readonly reason: TokenRejection,
    message: string,
  ) {
    super(message);
  }
}

/** The caller is known but may not have this (no policy rule, an unmanaged namespace): maps to 403. */
export class ForbiddenError extends Error {
  override readonly name = "ForbiddenError";
}

/**
 * The request is well-formed and allowed, but cannot be served as configured (a session policy too
 * large for STS, a region where STS is off): maps to 422. Retrying does not help; the operator must act.
 */
export class UnprocessableError extends Error {
  override readonly name = "UnprocessableError";
}

/** The body is larger than the configured limit: maps to 413. */
export class PayloadTooLargeError extends Error {
  override readonly name = "PayloadTooLargeError";
}

/** A catalog detail failed its validator: the producer or the consumer is wrong, not the caller. */
export class InvalidDetailError extends Error {
  override readonly name = "InvalidDetailError";
}

/**
 * A dependency (bus, dedupe store) is unavailable: maps to 503, so GitLab resends later. `message`
 * is for the audit line and stderr; the caller is told `publicMessage`, which is the message unless
 * the thrower knows the message names internals (a bus, an AWS error code).
 */
export class UnavailableError extends Error {
  override readonly name: string = "UnavailableError";
  /** What the caller may read (the 503 body adds "; retry later"). */
  readonly publicMessage: string;
  constructor(message: string, options: { publicMessage?: string } = {}) {
    super(message);
    this.publicMessage = options.publicMessage ?? message;
  }
}

/** What a caller is told when publishing failed: which bus and which AWS error stay in the audit line. */
export const PUBLISH_FAILED_MESSAGE = "could not publish the event";

/**
 * Publishing to the bus failed after bounded retries: maps to 503 (GitLab may resend). The message
 * says why, for the audit line; the caller only hears `PUBLISH_FAILED_MESSAGE`.
 */
export class PublishError extends UnavailableError {
  override readonly name = "PublishError";
  constructor(
    message: string,
    /** The positions, in the entries given, of those not published; the others were. */
    readonly failed: readonly number[],
  ) {
    super(message, { publicMessage: PUBLISH_FAILED_MESSAGE });
  }

  /** How many of the entries were still failing. */
  get failedCount(): number {
    return this.failed.length;
  }
}

/**
 * What a request was about no longer exists at the other end (GitLab deleted the pipeline, or the
 * commit): sending again cannot help, and nothing is misconfigured. Only for answers that say so;
 * a 404 that may be a wrong address or a token that cannot see the project stays an `Error`.
 */
export class GoneError extends Error {
  override readonly name = "GoneError";
}

/** Configuration is missing or malformed; names the variable. Fails start-up. */
export class ConfigError extends Error {
  override readonly name = "ConfigError";
}

/**
 * A Kubernetes API error, by kind. The message is the API server's own (it names the object and
 * the problem); `status` is the HTTP code it answered with.
 */
export class KubernetesError extends Error {
  override readonly name: string = "KubernetesError";
  constructor(
    message: string,
    readonly status: number,
  ) {
    super(message);
  }
}

/** 404: the object (or its namespace) does not exist. */
export class KubernetesNotFoundError extends KubernetesError {
  override readonly name = "KubernetesNotFoundError";
}

/** 409: already exists, or the object changed since it was read. */
export class KubernetesConflictError extends KubernetesError {
  override readonly name = "KubernetesConflictError";
}

/** 401/403: Kubler's identity may not do this (or the namespace is terminating). */
export class KubernetesForbiddenError extends KubernetesError {
  override readonly name: string = "KubernetesForbiddenError";
}

/**
 * 403 from an admission plugin refusing the object itself, not Kubler's rights: a webhook's denial
 * (Gatekeeper's, as controller-runtime answers), a ValidatingAdmissionPolicy whose validation sets
 * reason Forbidden, a ResourceQuota the object exceeds. Like a 422, no retry changes it.
 */
export class KubernetesAdmissionDeniedError extends KubernetesForbiddenError {
  override readonly name = "KubernetesAdmissionDeniedError";
}

/** 400/422: the object was refused by validation or admission; the message lists the causes. */
export class KubernetesInvalidError extends KubernetesError {
  override readonly name = "KubernetesInvalidError";
}

/** 429/5xx/timeouts still failing after the bounded retries, or the API unreachable. */
export class KubernetesUnavailableError extends KubernetesError {
  override readonly name = "KubernetesUnavailableError";
}

/**
 * What a caught value says, for a message or an audit reason: an Error's message, else the value as
 * text (a rejection need not be an Error).
 *
 * @example
 * messageOf(new Error("boom")); // "boom"
 * messageOf("timeout"); // "timeout"
 */
export function messageOf(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}
