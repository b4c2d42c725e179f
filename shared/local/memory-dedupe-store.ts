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
    if (expiry !== undefined) {
      if (expiry > now) return false;
      // Re-inserted at the end, so the map stays in claim order: the oldest claims come first.
      this.#expiries.delete(key);
    }
    this.#expiries.set(key, now + ttlSeconds * 1000);
    return true;
  }

  /** How many keys are held (expired ones linger until the next sweep). */
  get size(): number {
    return this.#expiries.size;
  }

  async release(key: string): Promise<void> {
    this.#expiries.delete(key);
  }

  // Claims share one TTL in practice, so claim order is expiry order: stop at the first live key
  // instead of walking the whole map (which made every 1024th claim O(n)).
  #sweep(now: number): void {
    for (const [key, expiry] of this.#expiries) {
      if (expiry > now) return;
      this.#expiries.delete(key);
    }
  }
}
