/**
 * Fakes for the ports: in-memory, with error injection, used by unit and integration tests.
 */
import { randomId } from "../../shared/clock.js";
import type { AuditRecord } from "../../shared/domain/audit.js";
import {
  type BusEntry,
  type Detail,
  validateBusDetail,
  validateDetail,
} from "../../shared/domain/catalog.js";
import { PublishError } from "../../shared/errors.js";
import type { AuditLog, Clock, EventPublisher, IdGenerator, Scheduler } from "../../shared/ports.js";

type PushEntry = Extract<BusEntry, { detailType: "Push" }>;

/** A valid Push fact (GitLab's documented push, normalized); `n` varies its correlation id. */
export function samplePush(n = 1): PushEntry {
  return {
    detailType: "Push",
    detail: {
      correlationId: `c-${n}`,
      gitlab: { instance: "https://gitlab.example.com", projectId: 15, projectPath: "group/app" },
      ref: "refs/heads/main",
      branch: "main",
      before: "95790bf891e76fee5e1747ab589903a6a1f80f22",
      after: "da1560886d4f094c3e6c9ef40349f7d38b5d27d7",
      change: "updated",
      totalCommits: 4,
      user: "jsmith",
    },
  };
}

/** A clock that stays where it is put. */
export class FixedClock implements Clock {
  constructor(private current: Date = new Date("2026-11-21T10:00:00Z")) {}
  now(): Date {
    return new Date(this.current);
  }
  advance(ms: number): void {
    this.current = new Date(this.current.getTime() + ms);
  }
}

/** Ids `id-1`, `id-2`, …, so assertions can name them. */
export function sequentialIds(prefix = "id"): IdGenerator {
  let n = 0;
  return () => `${prefix}-${++n}`;
}

/** Keeps every audit record. */
export class RecordingAuditLog implements AuditLog {
  readonly records: AuditRecord[] = [];
  record(record: AuditRecord): void {
    this.records.push(structuredClone(record));
  }
  last(): AuditRecord | undefined {
    return this.records.at(-1);
  }
}

/** Keeps every published entry (validated and size-checked, like the real publishers); can be told to fail. */
export class RecordingPublisher implements EventPublisher {
  readonly entries: BusEntry[] = [];
  /** Number of upcoming publish calls that fail with PublishError. */
  failNext = 0;
  /** Entries that fail, as PutEvents fails some entries of a call and publishes the others. */
  failEntry: ((entry: BusEntry) => boolean) | null = null;
  constructor(private readonly newId: IdGenerator = randomId) {}

  async publish(entries: readonly BusEntry[]): Promise<string[]> {
    for (const entry of entries) validateBusDetail(entry.detailType, entry.detail);
    if (this.failNext > 0) {
      this.failNext--;
      throw new PublishError(
        `${entries.length} of ${entries.length} events failed to publish`,
        entries.map((_, index) => index),
      );
    }
    const failed = entries.flatMap((entry, index) => (this.failEntry?.(entry) ? [index] : []));
    this.entries.push(
      ...entries.filter((_, index) => !failed.includes(index)).map((entry) => structuredClone(entry)),
    );
    if (failed.length > 0) {
      throw new PublishError(`${failed.length} of ${entries.length} events failed to publish`, failed);
    }
    return entries.map(() => this.newId());
  }
}

/** Keeps the schedules a use case asked for; `calls` lists every request in order. */
export class RecordingScheduler implements Scheduler {
  readonly schedules = new Map<string, { at: Date; detail: Detail<"Environment Stop Requested"> }>();
  readonly calls: string[] = [];
  async scheduleStop(name: string, at: Date, detail: Detail<"Environment Stop Requested">): Promise<void> {
    validateDetail("Environment Stop Requested", detail);
    this.calls.push(`schedule ${name} ${at.toISOString()}`);
    this.schedules.set(name, { at, detail: structuredClone(detail) });
  }
  async cancel(name: string): Promise<void> {
    this.calls.push(`cancel ${name}`);
    this.schedules.delete(name);
  }
}
