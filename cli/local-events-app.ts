/**
 * `POST /local/events`: the local runtime's door for operators' commands (`kubler deploy`) to put a
 * catalog event on the bus, standing in for a step that has not landed yet. Local only, never in
 * Lambda; authenticated like a webhook (the same secret token or signing key).
 */
import { Hono } from "hono";
import { isDetailType, validateDetail } from "../shared/domain/catalog.js";
import { verifyWebhook, type WebhookCredentials } from "../shared/domain/webhook-auth.js";
import { BadRequestError, InvalidDetailError } from "../shared/errors.js";
import { toErrorAnswer } from "../shared/http-errors.js";
import type { Clock, EventPublisher } from "../shared/ports.js";

export const LOCAL_EVENTS_PATH = "/local/events";

export function createLocalEventsApp(deps: {
  credentials: WebhookCredentials;
  publisher: EventPublisher;
  clock: Clock;
}): Hono {
  const app = new Hono();
  app.post(LOCAL_EVENTS_PATH, async (c) => {
    const body = new Uint8Array(await c.req.arrayBuffer());
    verifyWebhook(deps.credentials, (name) => c.req.header(name), body, deps.clock.now());
    let entry: { detailType?: unknown; detail?: unknown };
    try {
      entry = JSON.parse(Buffer.from(body).toString("utf8")) as typeof entry;
    } catch {
      throw new BadRequestError("body is not valid JSON");
    }
    if (!isDetailType(entry?.detailType)) {
      throw new BadRequestError(
        `detailType ${JSON.stringify(entry?.detailType)} is not in the event catalog`,
      );
    }
    try {
      const detail = validateDetail(entry.detailType, entry.detail);
      const [eventId] = await deps.publisher.publish([{ detailType: entry.detailType, detail } as never]);
      return c.json({ published: true, eventId }, 202);
    } catch (error) {
      if (error instanceof InvalidDetailError) throw new BadRequestError(error.message);
      throw error;
    }
  });
  app.onError((error, c) => {
    const { status, body } = toErrorAnswer(error);
    return c.json(body, status);
  });
  return app;
}
