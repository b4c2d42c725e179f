/**
 * Ports: the interfaces the use cases depend on, named by role. Adapters (AWS, Kubernetes) and the
 * embedded default (`shared/local/`) implement them; tests use the fakes in `test/fakes/`.
 */
import type { AuditRecord } from "./domain/audit.js";
import type { BusEntry } from "./domain/catalog.js";

/**
 * Publishes catalog events on the bus. Resolves with one event id per entry, in order, once every
 * entry is accepted; rejects with `PublishError` when some entries still failed after bounded retries.
 *
 * @example
 * const [id] = await publisher.publish([{ detailType: "Push", detail }]);
 */
export interface EventPublisher {
  publish(entries: readonly BusEntry[]): Promise<string[]>;
}

/**
 * Remembers delivery keys (GitLab's `Idempotency-Key`) so a retried or resent webhook is published once.
 *
 * @example
 * if (!(await dedupe.claim(key, 3 * 86_400))) return duplicate();
 * try { await publish(); } catch (e) { await dedupe.release(key); throw e; }
 */
export interface DedupeStore {
  /** Claims `key` for `ttlSeconds`. True when this caller is the first; false when already claimed. */
  claim(key: string, ttlSeconds: number): Promise<boolean>;
  /** Forgets a claim, so that a resend of a delivery we failed to publish is accepted. */
  release(key: string): Promise<void>;
}

/**
 * Writes one structured audit line per decision (DESIGN §9).
 *
 * @example
 * audit.record({ action: "webhook.receive", outcome: "ignored", reason: "...", ... });
 */
export interface AuditLog {
  record(record: AuditRecord): void;
}

/** The time source; injected so decisions are testable. */
export interface Clock {
  now(): Date;
}

/** Makes unique ids (event ids, correlation ids). */
export type IdGenerator = () => string;
