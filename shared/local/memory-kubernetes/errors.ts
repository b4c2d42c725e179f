/**
 * Failures as the Kubernetes API reports them: a `Status` body (kind Status, status Failure) whose
 * message, reason and details read like the real API server's, so callers that branch on them behave
 * the same against a real cluster.
 */

/** One field-level problem of a 422 Invalid answer. */
export interface StatusCause {
  reason: string;
  message: string;
  field: string;
}

export interface StatusDetails {
  name?: string;
  group?: string;
  /** The resource plural for most errors, the Kind for Invalid, as the real API server does. */
  kind?: string;
  uid?: string;
  causes?: StatusCause[];
  retryAfterSeconds?: number;
}

/** What an error names: a resource plural in its API group ("" for the core group). */
export interface GroupResource {
  group: string;
  plural: string;
}

/** A failure answered as a Kubernetes `Status`; thrown anywhere below the router. */
export class KubeApiError extends Error {
  constructor(
    readonly code: number,
    readonly reason: string,
    message: string,
    readonly details?: StatusDetails,
  ) {
    super(message);
    this.name = "KubeApiError";
  }

  /** The response body. */
  toStatus(): Record<string, unknown> {
    return {
      kind: "Status",
      apiVersion: "v1",
      metadata: {},
      status: "Failure",
      message: this.message,
      reason: this.reason,
      ...(this.details ? { details: this.details } : {}),
      code: this.code,
    };
  }
}

/** `deployments.apps`, `configmaps`: how the API server names a resource in messages. */
function qualified({ group, plural }: GroupResource): string {
  return group ? `${plural}.${group}` : plural;
}

function named(resource: GroupResource, name: string): StatusDetails {
  return { name, ...(resource.group ? { group: resource.group } : {}), kind: resource.plural };
}

export function notFoundError(resource: GroupResource, name: string): KubeApiError {
  return new KubeApiError(
    404,
    "NotFound",
    `${qualified(resource)} "${name}" not found`,
    named(resource, name),
  );
}

export function alreadyExistsError(resource: GroupResource, name: string): KubeApiError {
  return new KubeApiError(
    409,
    "AlreadyExists",
    `${qualified(resource)} "${name}" already exists`,
    named(resource, name),
  );
}

export function conflictError(
  resource: GroupResource,
  name: string,
  why: string,
  causes?: StatusCause[],
): KubeApiError {
  return new KubeApiError(
    409,
    "Conflict",
    `Operation cannot be fulfilled on ${qualified(resource)} "${name}": ${why}`,
    { ...named(resource, name), ...(causes ? { causes } : {}) },
  );
}

/** The message of a stale `metadata.resourceVersion` on update, word for word. */
export const OBJECT_MODIFIED =
  "the object has been modified; please apply your changes to the latest version and try again";

export function forbiddenError(resource: GroupResource, name: string, why: string): KubeApiError {
  return new KubeApiError(
    403,
    "Forbidden",
    `${qualified(resource)} "${name}" is forbidden: ${why}`,
    named(resource, name),
  );
}

/** 422 with one cause per field, the message built as the API server builds it. */
export function invalidError(
  kind: { group: string; kind: string },
  name: string,
  causes: StatusCause[],
): KubeApiError {
  const listed = causes.map((cause) => `${cause.field}: ${cause.message}`);
  const summary = listed.length === 1 ? listed[0] : `[${listed.join(", ")}]`;
  const kindName = kind.group ? `${kind.kind}.${kind.group}` : kind.kind;
  return new KubeApiError(422, "Invalid", `${kindName} "${name}" is invalid: ${summary}`, {
    name,
    ...(kind.group ? { group: kind.group } : {}),
    kind: kind.kind,
    causes,
  });
}

export function badRequestError(message: string): KubeApiError {
  return new KubeApiError(400, "BadRequest", message);
}

export function methodNotAllowedError(message: string): KubeApiError {
  return new KubeApiError(405, "MethodNotAllowed", message);
}

/** The reason the API server gives each status code, for injected faults and generic answers. */
export function reasonForCode(code: number): string {
  const reasons: Record<number, string> = {
    400: "BadRequest",
    401: "Unauthorized",
    403: "Forbidden",
    404: "NotFound",
    405: "MethodNotAllowed",
    409: "Conflict",
    410: "Expired",
    413: "RequestEntityTooLarge",
    415: "UnsupportedMediaType",
    422: "Invalid",
    429: "TooManyRequests",
    500: "InternalError",
    503: "ServiceUnavailable",
    504: "Timeout",
  };
  return reasons[code] ?? "Unknown";
}
