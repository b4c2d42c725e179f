import { expiresAtSeconds } from "../domain/hold-expiry.js";
import type { Clock, DedupeStore, Reservation } from "../ports.js";

/** Expired keys are swept after this many claims, so memory stays bounded on a long-running server. */
const SWEEP_EVERY = 1024;

/**
 * The local runtime's `DedupeStore`: maps of key → expiry, honouring leases and TTLs like the DynamoDB
 * adapter does (test/integration/dedupe-store-contract.test.ts): a key is held until its TTL has
 * passed, rounded up to the whole second as the table's TTL attribute is.
 *
 * @example
 * const dedupe = new MemoryDedupeStore(systemClock);
 * await dedupe.claim("key", 60); // true, then false until 60 s have passed
 * await dedupe.reserve("other", 60); // "reserved", then "in-flight" until confirmed or released
 */
export class MemoryDedupeStore implements DedupeStore {
  // Two maps, so each stays in expiry order (leases share one length, claims one TTL in practice)
  // and the sweep can stop at the first live key.
  readonly #leases = new Map<string, number>();
  readonly #claims = new Map<string, number>();
  #operations = 0;

  constructor(private readonly clock: Clock) {}

  async claim(key: string, ttlSeconds: number): Promise<boolean> {
    const now = this.#tick();
    if (isLive(this.#claims, key, now) || isLive(this.#leases, key, now)) return false;
    this.#leases.delete(key);
    setLast(this.#claims, key, expiry(now, ttlSeconds));
    return true;
  }

  async reserve(key: string, leaseSeconds: number): Promise<Reservation> {
    const now = this.#tick();
    if (isLive(this.#claims, key, now)) return "duplicate";
    if (isLive(this.#leases, key, now)) return "in-flight";
    this.#claims.delete(key);
    setLast(this.#leases, key, expiry(now, leaseSeconds));
    return "reserved";
  }

  async confirm(key: string, ttlSeconds: number): Promise<void> {
    this.#leases.delete(key);
    setLast(this.#claims, key, expiry(this.clock.now().getTime(), ttlSeconds));
  }

  /** How many keys are held (expired ones linger until the next sweep). */
  get size(): number {
    return this.#leases.size + this.#claims.size;
  }

  async release(key: string): Promise<void> {
    this.#leases.delete(key);
    this.#claims.delete(key);
  }

  #tick(): number {
    const now = this.clock.now().getTime();
    if (++this.#operations % SWEEP_EVERY === 0) {
      sweep(this.#leases, now);
      sweep(this.#claims, now);
    }
    return now;
  }
}

/** The end of a hold of `seconds` from `now`, in epoch ms, at the whole second DynamoDB's would end. */
function expiry(now: number, seconds: number): number {
  return expiresAtSeconds(now, seconds) * 1000;
}

function isLive(expiries: ReadonlyMap<string, number>, key: string, now: number): boolean {
  const expiry = expiries.get(key);
  return expiry !== undefined && expiry > now;
}

/** Re-inserted at the end, so the map stays in the order the keys were (re)claimed: oldest first. */
function setLast(expiries: Map<string, number>, key: string, expiry: number): void {
  expiries.delete(key);
  expiries.set(key, expiry);
}

// Claim order is expiry order: stop at the first live key instead of walking the whole map (which
// made every 1024th claim O(n)).
function sweep(expiries: Map<string, number>, now: number): void {
  for (const [key, expiry] of expiries) {
    if (expiry > now) return;
    expiries.delete(key);
  }
}
