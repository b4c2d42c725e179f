import { expiresAtSeconds } from "../domain/hold-expiry.js";
import type { Clock, DedupeStore, Reservation } from "../ports.js";

/**
 * The local runtime's `DedupeStore`: maps of key → expiry, honouring leases and TTLs like the DynamoDB
 * adapter does (test/integration/dedupe-store-contract.test.ts): a key is held until its TTL has
 * passed, rounded up to the whole second as the table's TTL attribute is. Every call first drops the
 * holds that have ended, earliest end first, so a long-running server keeps only live keys.
 *
 * @example
 * const dedupe = new MemoryDedupeStore(systemClock);
 * await dedupe.claim("key", 60); // true, then false until 60 s have passed
 * await dedupe.reserve("other", 60); // "reserved", then "in-flight" until confirmed or released
 */
export class MemoryDedupeStore implements DedupeStore {
  readonly #leases = new Map<string, number>();
  readonly #claims = new Map<string, number>();
  // Ends in a heap, not in the maps' insertion order: one store holds several TTLs (plan-steps' 1 h
  // step claims after its 3-day fact confirms, job tokens' varying replay TTLs), and a sweep that
  // stopped at the first live key kept every expired claim made after a longer one.
  readonly #ends = new HoldEnds();

  constructor(private readonly clock: Clock) {}

  async claim(key: string, ttlSeconds: number): Promise<boolean> {
    const now = this.#dropEnded();
    if (isLive(this.#claims, key, now) || isLive(this.#leases, key, now)) return false;
    this.#leases.delete(key);
    this.#hold(this.#claims, key, expiry(now, ttlSeconds));
    return true;
  }

  async reserve(key: string, leaseSeconds: number): Promise<Reservation> {
    const now = this.#dropEnded();
    if (isLive(this.#claims, key, now)) return "duplicate";
    if (isLive(this.#leases, key, now)) return "in-flight";
    this.#claims.delete(key);
    this.#hold(this.#leases, key, expiry(now, leaseSeconds));
    return "reserved";
  }

  async confirm(key: string, ttlSeconds: number): Promise<void> {
    const now = this.#dropEnded();
    this.#leases.delete(key);
    this.#hold(this.#claims, key, expiry(now, ttlSeconds));
  }

  /** How many keys are held (an expired one is dropped at the next call). */
  get size(): number {
    return this.#leases.size + this.#claims.size;
  }

  async release(key: string): Promise<void> {
    this.#leases.delete(key);
    this.#claims.delete(key);
  }

  #hold(expiries: Map<string, number>, key: string, end: number): void {
    expiries.set(key, end);
    this.#ends.push(end, key);
  }

  /** Amortized O(log n): each hold's end is pushed once and popped once. */
  #dropEnded(): number {
    const now = this.clock.now().getTime();
    for (let key = this.#ends.popEndedBy(now); key !== undefined; key = this.#ends.popEndedBy(now)) {
      // The key may have been held again since (a later end) or released: only an ended hold goes.
      deleteIfEnded(this.#leases, key, now);
      deleteIfEnded(this.#claims, key, now);
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

function deleteIfEnded(expiries: Map<string, number>, key: string, now: number): void {
  const expiry = expiries.get(key);
  if (expiry !== undefined && expiry <= now) expiries.delete(key);
}

/**
 * A binary min-heap of (end, key), in two parallel arrays so a push allocates no object. A key held
 * again or released keeps its old entry until that end passes, so the heap holds at most the holds
 * made within the longest TTL.
 */
class HoldEnds {
  readonly #ends: number[] = [];
  readonly #keys: string[] = [];

  push(end: number, key: string): void {
    const ends = this.#ends;
    const keys = this.#keys;
    let i = ends.length;
    while (i > 0) {
      const parent = (i - 1) >> 1;
      const parentEnd = ends[parent] as number;
      if (parentEnd <= end) break;
      ends[i] = parentEnd;
      keys[i] = keys[parent] as string;
      i = parent;
    }
    ends[i] = end;
    keys[i] = key;
  }

  /** Removes and returns the key of the earliest end, if that end is at or before `now`. */
  popEndedBy(now: number): string | undefined {
    const ends = this.#ends;
    const keys = this.#keys;
    const first = ends[0];
    if (first === undefined || first > now) return undefined;
    const key = keys[0] as string;
    const lastEnd = ends.pop() as number;
    const lastKey = keys.pop() as string;
    const n = ends.length;
    if (n === 0) return key;
    let i = 0;
    for (let child = 1; child < n; child = 2 * i + 1) {
      if (child + 1 < n && (ends[child + 1] as number) < (ends[child] as number)) child++;
      const childEnd = ends[child] as number;
      if (childEnd >= lastEnd) break;
      ends[i] = childEnd;
      keys[i] = keys[child] as string;
      i = child;
    }
    ends[i] = lastEnd;
    keys[i] = lastKey;
    return key;
  }
}
