/**
 * A deployed environment's expiry schedule (DESIGN §6): deploy-environment moves it once the
 * namespace's final write went through, and says in its audit line when an expiry got none.
 */
import type { EnvironmentState } from "../domain/environment.js";
import type { Clock, Scheduler } from "../ports.js";

/**
 * How far ahead of now an expiry must be to get a schedule. EventBridge Scheduler refuses an `at()`
 * not in the future, and the adapter judges that by its own reading of the clock, a moment after
 * this one (it rounds `at` up to the minute, which only helps).
 */
const SCHEDULE_LEAD_MS = 5_000;

/**
 * The one-time stop at the expiry: created, or moved when a deploy extends the TTL. Resolves with
 * what the deploy's audit line says about an expiry that got no schedule, else null.
 *
 * An expiry already past (a short `ttl` that a slow rollout outlasted, since the expiry counts from
 * the deploy's start; a redelivery to an environment that expired and is not deleted yet) gets no
 * schedule: Scheduler would refuse it, and the deploy would throw after its final write, on every
 * retry again, without ever publishing `Deploy Finished`. Its schedule is cancelled instead (one at an
 * earlier expiry would stop it later for nothing) and the stop is left to reconcile, which requests it
 * for any environment still there `EXPIRY_GRACE_MS` after its expiry (DESIGN §6): the environment
 * lives those few minutes longer, and deploy-environment stays a producer of `Deploy Finished` only
 * (publishing the stop from here would grant it stops of any environment on the bus).
 *
 * @example
 * const expiry = await moveSchedule(deps, state); // "expired at …: no schedule; reconcile requests its stop", or null
 */
export async function moveSchedule(
  deps: { scheduler: Scheduler; clock: Clock },
  state: EnvironmentState,
): Promise<string | null> {
  const now = deps.clock.now();
  if (state.expiresAt !== null && state.expiresAt.getTime() <= now.getTime() + SCHEDULE_LEAD_MS) {
    await deps.scheduler.cancel(state.namespace);
    return `expired at ${state.expiresAt.toISOString()}, before the deploy ended (${now.toISOString()}): no schedule; reconcile requests its stop`;
  }
  if (state.expiresAt === null) {
    await deps.scheduler.cancel(state.namespace);
    return null;
  }
  await deps.scheduler.scheduleStop(state.namespace, state.expiresAt, {
    correlationId: state.correlationId,
    gitlab: state.gitlab,
    environment: state.environment,
    reason: "expired",
  });
  return null;
}

/**
 * The audit line's fields with what `moveSchedule` said, when it said anything.
 *
 * @example
 * finish("succeeded", null, url, withExpiry(audited, expiry));
 */
export function withExpiry(
  audited: Record<string, unknown> | undefined,
  expiry: string | null,
): Record<string, unknown> | undefined {
  return expiry === null ? audited : { ...audited, expiry };
}
