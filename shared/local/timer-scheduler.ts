/**
 * The embedded default's Scheduler (DESIGN §10): timers in this process instead of EventBridge
 * Scheduler. Timers do not survive a restart; the periodic sweep stops whatever expired meanwhile.
 */
import { type Detail, validateDetail } from "../domain/catalog.js";
import type { Clock, EventPublisher, Scheduler } from "../ports.js";

const STOP_DETAIL_TYPE = "Environment Stop Requested";

/** setTimeout's longest delay; a longer one fires at once (Node warns and uses 1 ms). */
export const MAX_TIMER_DELAY_MS = 2 ** 31 - 1;

/** Whatever `setTimer` returns; handed back to `clearTimer`. */
export type TimerHandle = unknown;

export interface TimerSchedulerOptions {
  publisher: EventPublisher;
  clock: Clock;
  /** Default: `setTimeout`, unref'd so a pending stop never keeps the process alive. */
  setTimer?: (callback: () => void, ms: number) => TimerHandle;
  /** Default: `clearTimeout`. */
  clearTimer?: (handle: TimerHandle) => void;
  /**
   * Told after each fired schedule has been published, or failed to be (with the error). A failed
   * stop is not retried here: the sweep is the backstop (DESIGN §6). A throwing listener is ignored.
   */
  onFired?: (name: string, error?: unknown) => void;
}

export interface PendingStop {
  name: string;
  at: Date;
}

interface Entry {
  name: string;
  at: Date;
  detail: Detail<typeof STOP_DETAIL_TYPE>;
  handle: TimerHandle;
}

/**
 * @example
 * const scheduler = new TimerScheduler({ publisher: bus, clock: systemClock, onFired: report });
 * await scheduler.scheduleStop(namespace, expiresAt, stopDetail); // replaces a timer of that name
 * scheduler.pending(); // [{ name, at }], soonest first
 */
export class TimerScheduler implements Scheduler {
  readonly #entries = new Map<string, Entry>();
  readonly #publisher: EventPublisher;
  readonly #clock: Clock;
  readonly #setTimer: (callback: () => void, ms: number) => TimerHandle;
  readonly #clearTimer: (handle: TimerHandle) => void;
  readonly #onFired: ((name: string, error?: unknown) => void) | undefined;

  constructor(options: TimerSchedulerOptions) {
    this.#publisher = options.publisher;
    this.#clock = options.clock;
    this.#setTimer = options.setTimer ?? ((callback, ms) => setTimeout(callback, ms).unref());
    this.#clearTimer =
      options.clearTimer ?? ((handle) => clearTimeout(handle as ReturnType<typeof setTimeout>));
    this.#onFired = options.onFired;
  }

  /** Arms (or moves) the timer `name`; a time already past fires on the next turn of the event loop. */
  async scheduleStop(name: string, at: Date, detail: Detail<typeof STOP_DETAIL_TYPE>): Promise<void> {
    const valid = validateDetail(STOP_DETAIL_TYPE, detail);
    if (Number.isNaN(at.getTime())) throw new RangeError(`cannot schedule "${name}": the time is invalid`);
    this.#clear(name);
    const entry: Entry = { name, at: new Date(at), detail: valid, handle: undefined };
    this.#entries.set(name, entry);
    this.#arm(entry);
  }

  async cancel(name: string): Promise<void> {
    this.#clear(name);
  }

  /** The armed schedules, soonest first. */
  pending(): PendingStop[] {
    return [...this.#entries.values()]
      .map(({ name, at }) => ({ name, at: new Date(at) }))
      .sort((a, b) => a.at.getTime() - b.at.getTime());
  }

  /** Clears every timer; nothing armed fires afterwards. */
  close(): void {
    for (const name of [...this.#entries.keys()]) this.#clear(name);
  }

  #arm(entry: Entry): void {
    const remaining = Math.max(0, entry.at.getTime() - this.#clock.now().getTime());
    // Beyond setTimeout's limit, wake up after the longest allowed delay and measure again; measuring
    // on every wake also means a stop never goes out before its time by the clock.
    entry.handle = this.#setTimer(
      () => {
        if (this.#entries.get(entry.name) !== entry) return; // moved or cancelled meanwhile
        if (entry.at.getTime() > this.#clock.now().getTime()) this.#arm(entry);
        else void this.#fire(entry);
      },
      Math.min(remaining, MAX_TIMER_DELAY_MS),
    );
  }

  async #fire(entry: Entry): Promise<void> {
    this.#entries.delete(entry.name);
    let failure: unknown;
    let failed = false;
    try {
      await this.#publisher.publish([{ detailType: STOP_DETAIL_TYPE, detail: entry.detail }]);
    } catch (error) {
      failed = true;
      failure = error;
    }
    try {
      if (failed) this.#onFired?.(entry.name, failure);
      else this.#onFired?.(entry.name);
    } catch {
      // A listener's mistake must not become an unhandled rejection in the local runtime.
    }
  }

  #clear(name: string): void {
    const entry = this.#entries.get(name);
    if (!entry) return;
    this.#clearTimer(entry.handle);
    this.#entries.delete(name);
  }
}
