/**
 * The job-credentials HTTP app: `POST /v1/credentials` and `GET /healthz`. No environment, no SDK:
 * everything arrives in `deps`, so tests drive it in-process with `app.request(...)`.
 */
import { Hono } from "hono";

// biome-ignore lint/complexity/noBannedTypes: filled in as the use case lands
export type JobCredentialsAppDeps = {};

/**
 * @example
 * const app = createJobCredentialsApp(deps);
 * const res = await app.request("/v1/credentials", { method: "POST", headers: { authorization } });
 */
export function createJobCredentialsApp(_deps: JobCredentialsAppDeps): Hono {
  const app = new Hono();
  app.get("/healthz", (c) => c.json({ ok: true }));
  return app;
}
