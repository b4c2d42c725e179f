/**
 * What only the memory store has: sweeping expired keys, so a long-running `npm start` stays bounded.
 * Claims, leases, confirms, releases and their expiry, which every `DedupeStore` shares, are in
 * test/integration/dedupe-store-contract.test.ts, run against this store and the DynamoDB adapter.
 */
import { describe, expect, it } from "vitest";
import { MemoryDedupeStore } from "../../shared/local/memory-dedupe-store.js";
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
    // Only the keys of the last second (100 claims at 10 ms) plus one sweep interval can remain.
    expect(store.size).toBeLessThan(100 + 1024);
  });

  it("sweeps expired leases and claims alike", async () => {
    const clock = new FixedClock();
    const store = new MemoryDedupeStore(clock);
    for (let i = 0; i < 5000; i++) {
      await store.reserve(`k${i}`, 1);
      if (i % 2 === 0) await store.confirm(`k${i}`, 1);
      clock.advance(10);
    }
    expect(store.size).toBeLessThan(100 + 1024);
  });
});
