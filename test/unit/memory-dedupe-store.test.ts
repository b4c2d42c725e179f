/**
 * What only the memory store has: sweeping expired keys, so a long-running `npm start` stays bounded.
 * Claims, leases, confirms, releases and their expiry, which every `DedupeStore` shares, are in
 * test/integration/dedupe-store-contract.test.ts, run against this store and the DynamoDB adapter.
 */
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { MemoryDedupeStore } from "../../shared/local/memory-dedupe-store.js";
import { FACT_LEASE_SECONDS, FACT_TTL_SECONDS, STEP_TTL_SECONDS } from "../../shared/services/plan-steps.js";
import { FixedClock } from "../fakes/index.js";

describe("MemoryDedupeStore", () => {
  it("keeps a key re-claimed after expiry through later sweeps", async () => {
    const clock = new FixedClock();
    const store = new MemoryDedupeStore(clock);
    await store.claim("old", 1);
    clock.advance(2_000);
    expect(await store.claim("old", 600)).toBe(true);
    // Enough claims to trigger sweeps: "old" must survive them (it is live again).
    for (let i = 0; i < 3000; i++) await store.claim(`k${i}`, 600);
    expect(await store.claim("old", 600)).toBe(false);
  });

  it("sweeps expired keys so memory stays bounded", async () => {
    const clock = new FixedClock();
    const store = new MemoryDedupeStore(clock);
    for (let i = 0; i < 5000; i++) {
      await store.claim(`k${i}`, 1);
      clock.advance(10);
    }
    // Only the keys of the last 2 s remain (100 claims a second): a 1 s hold ends at a whole second.
    expect(store.size).toBeLessThanOrEqual(200);
  });

  it("sweeps expired leases and claims alike", async () => {
    const clock = new FixedClock();
    const store = new MemoryDedupeStore(clock);
    for (let i = 0; i < 5000; i++) {
      await store.reserve(`k${i}`, 1);
      if (i % 2 === 0) await store.confirm(`k${i}`, 1);
      clock.advance(10);
    }
    expect(store.size).toBeLessThanOrEqual(200);
  });

  it("sweeps plan-steps' expired 1 h step claims made after a 3-day fact confirm that still holds", async () => {
    const clock = new FixedClock();
    const store = new MemoryDedupeStore(clock);
    await store.reserve("plan/fact/Push Hook/1", FACT_LEASE_SECONDS);
    await store.confirm("plan/fact/Push Hook/1", FACT_TTL_SECONDS);
    for (let i = 0; i < 5000; i++) {
      await store.claim(`plan/step/${i}`, STEP_TTL_SECONDS);
      clock.advance(1_000);
    }
    // Held at the last claim (second 4999): the fact and the steps of its last hour, 1400 to 4999.
    expect(store.size).toBe(1 + 3600);
  });

  it("sweeps claims by when they end, not the order they were made in (job tokens' replay TTLs vary)", async () => {
    const clock = new FixedClock();
    const store = new MemoryDedupeStore(clock);
    for (let i = 0; i < 3000; i++) {
      await store.claim(`jti:${i}`, i % 2 === 0 ? 3_600 : 1);
      clock.advance(10);
    }
    clock.advance(1_000);
    await store.claim("jti:last", 1);
    expect(store.size).toBe(1500 + 1);
  });

  it("holds exactly the live keys after every call, whatever the mix of TTLs, releases and re-holds", async () => {
    type Hold = { kind: "lease" | "claim"; end: number };
    const call = fc.record({
      op: fc.constantFrom("claim", "reserve", "confirm", "release"),
      key: fc.constantFrom("a", "b", "c", "d", "e"),
      seconds: fc.constantFrom(1, 2, 60, 3_600),
      advanceMs: fc.constantFrom(0, 0, 250, 1_000, 61_000),
    });
    await fc.assert(
      fc.asyncProperty(fc.array(call, { maxLength: 60 }), async (calls) => {
        const clock = new FixedClock(new Date("2026-11-21T10:00:00.500Z"));
        const store = new MemoryDedupeStore(clock);
        const model = new Map<string, Hold>(); // what DedupeStore promises, without eviction
        for (const { op, key, seconds, advanceMs } of calls) {
          clock.advance(advanceMs);
          const now = clock.now().getTime();
          const end = Math.ceil((now + seconds * 1000) / 1000) * 1000;
          const held = model.get(key);
          const live = held && held.end > now ? held : undefined;
          if (op === "claim") {
            expect(await store.claim(key, seconds)).toBe(!live);
            if (!live) model.set(key, { kind: "claim", end });
          } else if (op === "reserve") {
            const expected = live ? (live.kind === "claim" ? "duplicate" : "in-flight") : "reserved";
            expect(await store.reserve(key, seconds)).toBe(expected);
            if (!live) model.set(key, { kind: "lease", end });
          } else if (op === "confirm") {
            await store.confirm(key, seconds);
            model.set(key, { kind: "claim", end });
          } else {
            await store.release(key);
            model.delete(key);
          }
          // release does not look at the clock, so only the other calls have just dropped ended holds.
          if (op !== "release") {
            expect(store.size).toBe([...model.values()].filter((hold) => hold.end > now).length);
          }
        }
      }),
      { numRuns: 500 },
    );
  });
});
