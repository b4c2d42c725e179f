import { describe, expect, it } from "vitest";
import { MemoryDedupeStore } from "../../shared/local/memory-dedupe-store.js";
import { FixedClock } from "../fakes/index.js";

describe("MemoryDedupeStore", () => {
  it("claims a key once until its TTL passes", async () => {
    const clock = new FixedClock();
    const store = new MemoryDedupeStore(clock);
    expect(await store.claim("k", 60)).toBe(true);
    expect(await store.claim("k", 60)).toBe(false);
    clock.advance(59_999);
    expect(await store.claim("k", 60)).toBe(false);
    clock.advance(1);
    expect(await store.claim("k", 60)).toBe(true);
  });

  it("forgets a released key", async () => {
    const store = new MemoryDedupeStore(new FixedClock());
    await store.claim("k", 60);
    await store.release("k");
    expect(await store.claim("k", 60)).toBe(true);
  });

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
});
