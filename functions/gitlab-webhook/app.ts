/**
 * The GitLab webhook HTTP app: `POST /webhooks/gitlab` and `GET /healthz`. No environment, no SDK:
 * everything arrives in `deps`, so tests drive it in-process with `app.request(...)`.
 */
import { type Context, Hono, type MiddlewareHandler } from "hono";
import { bodyLimit } from "hono/body-limit";
import { toErrorAnswer } from "../../shared/http-errors.js";
import {
  type ReceiveWebhookDeps,
  readDeliveryMeta,
  receiveWebhook,
  webhookAuditRecord,
} from "../../shared/services/receive-webhook.js";

export interface GitlabWebhookAppDeps extends ReceiveWebhookDeps {
  /** Bodies larger than this are refused with 413 while they stream in. */
  maxBodyBytes: number;
  /** Where unexpected errors go (stderr → CloudWatch): never to the caller. */
  logError: (error: unknown) => void;
}

/**
 * @example
 * const app = createGitlabWebhookApp(deps);
 * const res = await app.request("/webhooks/gitlab", { method: "POST", headers, body });
 */
export function createGitlabWebhookApp(deps: GitlabWebhookAppDeps): Hono {
  const app = new Hono();

  app.get("/healthz", (c) => c.json({ ok: true }));

  const tooLarge = (c: Context) => {
    const reason = `body is larger than the ${deps.maxBodyBytes} byte limit`;
    const meta = readDeliveryMeta((name) => c.req.header(name));
    deps.audit.record(webhookAuditRecord(meta, meta.idempotencyKey, "failure", reason, deps.clock.now()));
    return c.json({ error: "payload_too_large", message: reason }, 413);
  };
  const streamingLimit = bodyLimit({ maxSize: deps.maxBodyBytes, onError: tooLarge });
  // GitLab always sends Content-Length: check it without touching the body. Hono's bodyLimit reads
  // `c.req.raw.body`, which makes @hono/node-server build a web stream per request (5× slower here),
  // so it only guards chunked bodies, which it counts as they stream in.
  const limit: MiddlewareHandler = (c, next) => {
    const length = c.req.header("content-length");
    if (length === undefined || c.req.header("transfer-encoding") !== undefined)
      return streamingLimit(c, next);
    return Number(length) > deps.maxBodyBytes ? Promise.resolve(tooLarge(c)) : next();
  };

  app.post("/webhooks/gitlab", limit, async (c) => {
    const body = new Uint8Array(await c.req.arrayBuffer());
    // Bound, not a new arrow: tsx (the local runtime) wraps every named closure in __name per request.
    const outcome = await receiveWebhook(deps, { header: c.req.header.bind(c.req), body });
    switch (outcome.kind) {
      case "published":
        return c.json(
          { published: true, correlationId: outcome.correlationId, eventIds: outcome.eventIds },
          202,
        );
      case "duplicate":
        return c.json({ duplicate: true, correlationId: outcome.correlationId }, 200);
      case "ignored":
        return c.json({ ignored: true, reason: outcome.reason, correlationId: outcome.correlationId }, 200);
    }
  });

  app.notFound((c) =>
    c.json({ error: "not_found", message: `no route for ${c.req.method} ${c.req.path}` }, 404),
  );
  app.onError((error, c) => {
    if (clientWentAway(c, error)) {
      // A sender that hung up mid-body (or was cut off by the server's time limits): not a bug.
      const reason = "the request body was cut off before it was complete";
      const meta = readDeliveryMeta((name) => c.req.header(name));
      deps.audit.record(webhookAuditRecord(meta, meta.idempotencyKey, "failure", reason, deps.clock.now()));
      return c.json({ error: "bad_request", message: reason }, 400);
    }
    const { status, body } = toErrorAnswer(error);
    // A bug, not a bad request: the caller sees a bare 500, on-call sees what happened.
    if (status === 500) deps.logError(error);
    return c.json(body, status);
  });
  return app;
}

/** The request's connection closed before its body arrived (Node's "aborted", a reset, an abort). */
function clientWentAway(c: Context, error: unknown): boolean {
  if (c.req.raw.signal.aborted) return true;
  const e = error as { message?: unknown; code?: unknown; name?: unknown } | null;
  return e?.message === "aborted" || e?.code === "ECONNRESET" || e?.name === "AbortError";
}
