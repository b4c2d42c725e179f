import { expiresAtSeconds } from "../domain/hold-expiry.js";
import type { Clock, EnvironmentStops } from "../ports.js";

/**
 * The local runtime's `EnvironmentStops`: key → (fact time, expiry), one instance shared by
 * plan-steps and deploy-environment. Expiries as the DynamoDB adapter's
 * (test/integration/environment-stops-contract.test.ts): counted from the fact, ending at the whole
 * second; a record kept forever never expires.
 *
 * @example
 * const stops = new MemoryEnvironmentStops(systemClock);
 */
export class MemoryEnvironmentStops implements EnvironmentStops {
  readonly #stops = new Map<string, { at: number; expires: number }>();

  constructor(private readonly clock: Clock) {}

  async record(key: string, factAt: Date, ttlSeconds: number | null): Promise<void> {
    const now = this.clock.now().getTime();
    const held = this.#stops.get(key);
    if (held && held.expires > now && held.at > factAt.getTime()) return;
    const at = factAt.getTime();
    const expires = ttlSeconds === null ? Number.POSITIVE_INFINITY : expiresAtSeconds(at, ttlSeconds) * 1000;
    this.#stops.set(key, { at, expires });
  }

  async stoppedAt(key: string): Promise<Date | null> {
    const held = this.#stops.get(key);
    if (!held) return null;
    if (held.expires <= this.clock.now().getTime()) {
      this.#stops.delete(key);
      return null;
    }
    return new Date(held.at);
  }
}
