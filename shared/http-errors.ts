/**
 * The one place where the named errors become HTTP answers. Unknown errors become a bare 500 with
 * no detail: a stack trace or an internal message never reaches a caller.
 */
import type { ContentfulStatusCode } from "hono/utils/http-status";
import {
  BadRequestError,
  ForbiddenError,
  PayloadTooLargeError,
  TokenRejectedError,
  UnauthorizedError,
  UnavailableError,
  UnprocessableError,
} from "./errors.js";

export interface ErrorAnswer {
  status: ContentfulStatusCode;
  /** `reason`: why a token was refused (`TokenRejectedError`), for the job's author. */
  body: { error: string; message: string; reason?: string };
}

/**
 * @example
 * app.onError((err, c) => { const { status, body } = toErrorAnswer(err); return c.json(body, status); });
 */
export function toErrorAnswer(error: unknown): ErrorAnswer {
  if (error instanceof BadRequestError) return answer(400, "bad_request", error.message);
  if (error instanceof TokenRejectedError) {
    return { status: 401, body: { error: "unauthorized", reason: error.reason, message: error.message } };
  }
  if (error instanceof UnauthorizedError) return answer(401, "unauthorized", error.message);
  if (error instanceof ForbiddenError) return answer(403, "forbidden", error.message);
  if (error instanceof UnprocessableError) return answer(422, "unprocessable", error.message);
  if (error instanceof PayloadTooLargeError) return answer(413, "payload_too_large", error.message);
  if (error instanceof UnavailableError) {
    return answer(503, "unavailable", `${error.publicMessage}; retry later`);
  }
  return answer(500, "internal", "internal error");
}

function answer(status: ContentfulStatusCode, error: string, message: string): ErrorAnswer {
  return { status, body: { error, message } };
}
