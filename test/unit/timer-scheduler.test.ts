import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import type { Detail } from "../../shared/domain/catalog.js";
import { InvalidDetailError, PublishError } from "../../shared/errors.js";
import {
  MAX_TIMER_DELAY_MS,
  TimerScheduler,
  type TimerSchedulerOptions,
} from "../../shared/local/timer-scheduler.js";
import type { Clock } from "../../shared/ports.js";
import { FixedClock, RecordingPublisher } from "../fakes/index.js";

const NOW = new Date("2026-11-21T10:00:00.000Z");
const MINUTE = 60_000;
const DAY = 86_400_000;

function stop(environment = "review/feature-x"): Detail<"Environment Stop Requested"> {
  return {
    correlationId: `c-${environment}`,
    gitlab: { instance: "https://gitlab.example.com", projectId: 15, projectPath: "group/app" },
    environment,
    reason: "expired",
  };
}

const later = (ms: number) => new Date(NOW.getTime() + ms);

/** The environments of the published stops, in order. */
function environments(): string[] {
  return publisher.entries.map((entry) => (entry.detail as Detail<"Environment Stop Requested">).environment);
}

/** Reads the (faked) wall clock, so it moves with vi.advanceTimersByTime. */
const fakeTimeClock: Clock = { now: () => new Date() };

let publisher: RecordingPublisher;
let fired: { name: string; error?: unknown }[];
let scheduler: TimerScheduler;

function create(options: Partial<TimerSchedulerOptions> = {}): TimerScheduler {
  return new TimerScheduler({
    publisher,
    clock: fakeTimeClock,
    onFired: (name, ...error) => fired.push(error.length > 0 ? { name, error: error[0] } : { name }),
    ...options,
  });
}

beforeEach(() => {
  vi.useFakeTimers({ now: NOW });
  publisher = new RecordingPublisher();
  fired = [];
  scheduler = create();
});

afterEach(() => {
  scheduler.close();
  vi.useRealTimers();
});

describe("TimerScheduler", () => {
  it("publishes the stop once, at its time, with the exact entry", async () => {
    await scheduler.scheduleStop("ns-a", later(MINUTE), stop());

    await vi.advanceTimersByTimeAsync(MINUTE - 1);
    expect(publisher.entries).toEqual([]);

    await vi.advanceTimersByTimeAsync(1);
    expect(publisher.entries).toEqual([{ detailType: "Environment Stop Requested", detail: stop() }]);
    expect(fired).toEqual([{ name: "ns-a" }]);
    expect(scheduler.pending()).toEqual([]);

    await vi.advanceTimersByTimeAsync(DAY);
    expect(publisher.entries).toHaveLength(1);
  });

  it("publishes what was scheduled, not what the caller changed afterwards", async () => {
    const detail = stop();
    await scheduler.scheduleStop("ns-a", later(MINUTE), detail);
    detail.reason = "closed";

    await vi.advanceTimersByTimeAsync(MINUTE);

    expect(publisher.entries[0]?.detail).toEqual(stop());
  });

  it("moves a schedule instead of adding one: later, then earlier", async () => {
    await scheduler.scheduleStop("ns-a", later(MINUTE), stop());
    await scheduler.scheduleStop("ns-a", later(3 * MINUTE), stop());
    expect(scheduler.pending()).toEqual([{ name: "ns-a", at: later(3 * MINUTE) }]);
    expect(vi.getTimerCount()).toBe(1);

    await vi.advanceTimersByTimeAsync(2 * MINUTE);
    expect(publisher.entries).toEqual([]);

    await scheduler.scheduleStop("ns-a", later(2 * MINUTE + 10), stop("review/moved"));
    await vi.advanceTimersByTimeAsync(10);
    expect(publisher.entries.map((entry) => entry.detail)).toEqual([stop("review/moved")]);

    await vi.advanceTimersByTimeAsync(DAY);
    expect(publisher.entries).toHaveLength(1);
  });

  it("keeps schedules of different names apart and lists them soonest first", async () => {
    await scheduler.scheduleStop("ns-late", later(2 * DAY), stop("late"));
    await scheduler.scheduleStop("ns-soon", later(MINUTE), stop("soon"));

    expect(scheduler.pending()).toEqual([
      { name: "ns-soon", at: later(MINUTE) },
      { name: "ns-late", at: later(2 * DAY) },
    ]);

    await vi.advanceTimersByTimeAsync(MINUTE);
    expect(environments()).toEqual(["soon"]);
    expect(scheduler.pending()).toEqual([{ name: "ns-late", at: later(2 * DAY) }]);
  });

  it("cancel prevents the stop; cancelling an unknown name is fine", async () => {
    await scheduler.scheduleStop("ns-a", later(MINUTE), stop());

    await scheduler.cancel("ns-a");
    await scheduler.cancel("ns-a");
    await scheduler.cancel("never-scheduled");
    expect(vi.getTimerCount()).toBe(0);

    await vi.advanceTimersByTimeAsync(DAY);
    expect(publisher.entries).toEqual([]);
    expect(fired).toEqual([]);
    expect(scheduler.pending()).toEqual([]);
  });

  it("fires a time already past on the next tick, not synchronously", async () => {
    await scheduler.scheduleStop("ns-a", new Date(NOW.getTime() - DAY), stop());
    expect(publisher.entries).toEqual([]);

    await vi.advanceTimersByTimeAsync(1);
    expect(publisher.entries).toHaveLength(1);
    expect(fired).toEqual([{ name: "ns-a" }]);
  });

  it("re-arms delays beyond setTimeout's 2^31-1 ms limit and fires at the time", async () => {
    const delays: number[] = [];
    scheduler = create({
      setTimer: (callback, ms) => {
        delays.push(ms);
        return setTimeout(callback, ms);
      },
    });
    const at = later(30 * DAY); // 2 592 000 000 ms

    await scheduler.scheduleStop("ns-a", at, stop());
    await vi.advanceTimersByTimeAsync(30 * DAY - 1);
    expect(publisher.entries).toEqual([]);

    await vi.advanceTimersByTimeAsync(1);
    expect(publisher.entries).toHaveLength(1);
    expect(delays).toEqual([MAX_TIMER_DELAY_MS, 30 * DAY - MAX_TIMER_DELAY_MS]);
  });

  it("never publishes before the clock says it is time, even if woken early", async () => {
    vi.useRealTimers();
    const clock = new FixedClock(NOW);
    const timers: { callback: () => void; ms: number }[] = [];
    scheduler = create({
      clock,
      setTimer: (callback, ms) => timers.push({ callback, ms }),
      clearTimer: () => {},
    });

    await scheduler.scheduleStop("ns-a", later(MINUTE), stop());
    clock.advance(MINUTE - 5);
    timers[0]?.callback();
    await Promise.resolve();
    expect(publisher.entries).toEqual([]);
    expect(timers.map((timer) => timer.ms)).toEqual([MINUTE, 5]);

    clock.advance(5);
    timers[1]?.callback();
    await vi.waitFor(() => expect(publisher.entries).toHaveLength(1));
  });

  it("ignores a timer that fires after its schedule was moved or cancelled", async () => {
    vi.useRealTimers();
    const clock = new FixedClock(NOW);
    const callbacks: (() => void)[] = [];
    // A timer source that cannot take a timer back: the callback still runs.
    scheduler = create({ clock, setTimer: (callback) => callbacks.push(callback), clearTimer: () => {} });

    await scheduler.scheduleStop("ns-a", later(MINUTE), stop("first"));
    await scheduler.scheduleStop("ns-a", later(2 * MINUTE), stop("moved"));
    await scheduler.scheduleStop("ns-b", later(MINUTE), stop("cancelled"));
    await scheduler.cancel("ns-b");
    clock.advance(2 * MINUTE);
    for (const callback of callbacks) callback();

    await vi.waitFor(() => expect(fired).toEqual([{ name: "ns-a" }]));
    expect(environments()).toEqual(["moved"]);
  });

  it("reports a failed publish through onFired, with no unhandled rejection", async () => {
    const unhandled: unknown[] = [];
    const onUnhandled = (reason: unknown) => unhandled.push(reason);
    process.on("unhandledRejection", onUnhandled);
    try {
      publisher.failNext = 1;
      await scheduler.scheduleStop("ns-a", later(MINUTE), stop());

      await vi.advanceTimersByTimeAsync(MINUTE);
      vi.useRealTimers();
      await new Promise((resolve) => setTimeout(resolve, 10));

      expect(publisher.entries).toEqual([]);
      expect(fired).toHaveLength(1);
      expect(fired[0]?.name).toBe("ns-a");
      expect(fired[0]?.error).toBeInstanceOf(PublishError);
      expect(unhandled).toEqual([]);
      // The failed stop is left to the sweep: not retried, no longer pending.
      expect(scheduler.pending()).toEqual([]);
    } finally {
      process.off("unhandledRejection", onUnhandled);
    }
  });

  it("survives a throwing onFired listener without an unhandled rejection", async () => {
    const unhandled: unknown[] = [];
    const onUnhandled = (reason: unknown) => unhandled.push(reason);
    process.on("unhandledRejection", onUnhandled);
    try {
      scheduler = create({
        onFired: () => {
          throw new Error("listener broke");
        },
      });
      publisher.failNext = 1;
      await scheduler.scheduleStop("ns-a", later(MINUTE), stop("a"));
      await scheduler.scheduleStop("ns-b", later(2 * MINUTE), stop("b"));

      await vi.advanceTimersByTimeAsync(2 * MINUTE);
      vi.useRealTimers();
      await new Promise((resolve) => setTimeout(resolve, 10));

      expect(environments()).toEqual(["b"]);
      expect(unhandled).toEqual([]);
    } finally {
      process.off("unhandledRejection", onUnhandled);
    }
  });

  it("close clears every timer", async () => {
    await scheduler.scheduleStop("ns-a", later(MINUTE), stop("a"));
    await scheduler.scheduleStop("ns-b", later(40 * DAY), stop("b"));

    scheduler.close();

    await vi.advanceTimersByTimeAsync(41 * DAY);
    expect(publisher.entries).toEqual([]);
    expect(scheduler.pending()).toEqual([]);
    expect(vi.getTimerCount()).toBe(0);
  });

  it("refuses a detail the catalog refuses, arming nothing", async () => {
    const bad = { ...stop(), reason: "bored" } as unknown as Detail<"Environment Stop Requested">;

    await expect(scheduler.scheduleStop("ns-a", later(MINUTE), bad)).rejects.toThrow(InvalidDetailError);
    await expect(scheduler.scheduleStop("ns-a", new Date(Number.NaN), stop())).rejects.toThrow(/invalid/);
    expect(scheduler.pending()).toEqual([]);
    expect(vi.getTimerCount()).toBe(0);
  });
});

describe("TimerScheduler with real timers", () => {
  beforeEach(() => {
    vi.useRealTimers();
  });

  it("does not keep the process alive: its timers are unref'd", async () => {
    const timeouts = () => process.getActiveResourcesInfo().filter((kind) => kind === "Timeout").length;
    scheduler = create({ clock: { now: () => new Date() } });
    const before = timeouts();

    await scheduler.scheduleStop("ns-a", new Date(Date.now() + DAY), stop());
    await scheduler.scheduleStop("ns-b", new Date(Date.now() + 40 * DAY), stop());

    expect(scheduler.pending()).toHaveLength(2);
    expect(timeouts()).toBe(before);
  });

  it("publishes a past stop promptly", async () => {
    scheduler = create({ clock: { now: () => new Date() } });

    await scheduler.scheduleStop("ns-a", new Date(Date.now() - MINUTE), stop());

    await vi.waitFor(() => expect(fired).toEqual([{ name: "ns-a" }]), { timeout: 1_000 });
    expect(publisher.entries).toHaveLength(1);
  });
});
