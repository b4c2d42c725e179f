import type { Clock, DedupeStore } from "../ports.js";

/** Expired keys are swept after this many claims, so memory stays bounded on a long-running server. */
const SWEEP_EVERY = 1024;

/**
 * The local runtime's `DedupeStore`: a map of key → expiry, honouring the TTL like DynamoDB would.
 *
 * @example
 * const dedupe = new MemoryDedupeStore(systemClock);
 * await dedupe.claim("key", 60); // true, then false until 60 s have passed
 */
export class MemoryDedupeStore implements DedupeStore {
  readonly #expiries = new Map<string, number>();
  #claims = 0;

  constructor(private readonly clock: Clock) {}

  async claim(key: string, ttlSeconds: number): Promise<boolean> {
    const now = this.clock.now().getTime();
    if (++this.#claims % SWEEP_EVERY === 0) this.#sweep(now);
    const expiry = this.#expiries.get(key);
    if (expiry !== undefined && expiry > now) return false;
    this.#expiries.set(key, now + ttlSeconds * 1000);
    return true;
  }

  async release(key: string): Promise<void> {
    this.#expiries.delete(key);
  }

  #sweep(now: number): void {
    for (const [key, expiry] of this.#expiries) if (expiry <= now) this.#expiries.delete(key);
  }
}
