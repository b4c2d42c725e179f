/**
 * The job-credentials HTTP app: `POST /v1/credentials` and `GET /healthz`. No environment, no SDK:
 * everything arrives in `deps`, so tests drive it in-process with `app.request(...)`.
 */
import { Hono } from "hono";
import { bodyLimit } from "hono/body-limit";
import {
  CREDENTIALS_FORMATS,
  type CredentialsFormat,
  formatCredentials,
} from "../../shared/domain/credentials-output.js";
import { BadRequestError, PayloadTooLargeError } from "../../shared/errors.js";
import { toErrorAnswer } from "../../shared/http-errors.js";
import {
  auditBadRequest,
  type MintJobCredentialsDeps,
  mintJobCredentials,
} from "../../shared/services/mint-job-credentials.js";

export interface JobCredentialsAppDeps extends MintJobCredentialsDeps {
  /**
   * Runs each request's minting: the handler gives all of one request's Kubernetes calls one
   * deadline (`KubernetesCluster.withDeadline`, ./limits.ts). Default: runs it as it is.
   */
  perRequest?: <T>(work: () => Promise<T>) => Promise<T>;
}

/** `{ environment, format }` is all a body holds. */
const MAX_BODY_BYTES = 4096;
const NO_STORE = { "cache-control": "no-store" };

/**
 * @example
 * const app = createJobCredentialsApp(deps);
 * const res = await app.request("/v1/credentials", {
 *   method: "POST", headers: { authorization: `Bearer ${idToken}` }, body: '{"format":"env"}',
 * });
 */
export function createJobCredentialsApp(deps: JobCredentialsAppDeps): Hono {
  const app = new Hono();

  app.get("/healthz", (c) => c.json({ ok: true }));

  // Counts a chunked body (no Content-Length to check first) as it streams in, and stops reading
  // past the limit: anyone who reaches the port could otherwise stream an endless body into memory.
  const limit = bodyLimit({
    maxSize: MAX_BODY_BYTES,
    onError: async (c) => {
      const error = new PayloadTooLargeError(`body is larger than ${MAX_BODY_BYTES} bytes`);
      await auditBadRequest(deps, { authorization: c.req.header("authorization"), error });
      throw error;
    },
  });

  app.post("/v1/credentials", limit, async (c) => {
    const authorization = c.req.header("authorization");
    let input: { environment: string | null; format: CredentialsFormat };
    try {
      input = readBody(await c.req.text(), c.req.query("format"));
    } catch (error) {
      if (error instanceof BadRequestError) await auditBadRequest(deps, { authorization, error });
      throw error;
    }
    const { environment, format } = input;
    const mint = () => mintJobCredentials(deps, { authorization, environment, format });
    const issued = await (deps.perRequest ? deps.perRequest(mint) : mint());
    const { contentType, body } = formatCredentials(issued, format);
    return c.body(body, 200, {
      ...NO_STORE,
      "content-type": contentType,
      "x-kubler-expires-at": issued.expiresAt,
    });
  });

  app.all("/v1/credentials", (c) =>
    c.json(
      { error: "method_not_allowed", message: `${c.req.method} is not allowed: use POST /v1/credentials` },
      405,
      { ...NO_STORE, allow: "POST" },
    ),
  );

  app.notFound((c) =>
    c.json({ error: "not_found", message: `no route for ${c.req.method} ${c.req.path}` }, 404),
  );
  app.onError((error, c) => {
    const { status, body } = toErrorAnswer(error);
    if (status === 500) deps.logError(error);
    return c.json(body, status, NO_STORE);
  });
  return app;
}

/**
 * GitLab's environment names, once its variables are expanded. Stricter than a length check on
 * purpose: a requested name reaches policy globs and session-policy templates, where `*`, `?` or
 * `${aws:...}` would widen what the credentials allow.
 */
const ENVIRONMENT_NAME = /^[A-Za-z0-9 _./-]{1,255}$/;

/** The optional body `{ environment?, format? }`; `?format=` works too (the body wins). */
function readBody(
  text: string,
  queryFormat: string | undefined,
): { environment: string | null; format: CredentialsFormat } {
  let body: unknown = {};
  if (text.trim() !== "") {
    try {
      body = JSON.parse(text);
    } catch {
      throw new BadRequestError(
        'the body is not JSON: send {"environment": "...", "format": "json|env|kubeconfig"} or nothing',
      );
    }
  }
  if (typeof body !== "object" || body === null || Array.isArray(body)) {
    throw new BadRequestError("the body must be a JSON object");
  }
  const fields = body as Record<string, unknown>;
  const unknown = Object.keys(fields).filter((key) => key !== "environment" && key !== "format");
  if (unknown.length > 0) {
    throw new BadRequestError(
      `unknown field(s) ${unknown.join(", ")}: the body takes environment and format`,
    );
  }
  const { environment } = fields;
  if (
    environment !== undefined &&
    environment !== null &&
    (typeof environment !== "string" || !ENVIRONMENT_NAME.test(environment))
  ) {
    throw new BadRequestError(
      "environment must be an environment name: 1-255 letters, digits, spaces, - _ / or .",
    );
  }
  const format = fields.format ?? queryFormat ?? "json";
  if (!(CREDENTIALS_FORMATS as readonly unknown[]).includes(format)) {
    throw new BadRequestError(
      `format must be one of ${CREDENTIALS_FORMATS.join(", ")}, got ${JSON.stringify(format)}`,
    );
  }
  return {
    environment: typeof environment === "string" ? environment : null,
    format: format as CredentialsFormat,
  };
}
