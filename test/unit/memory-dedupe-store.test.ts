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

  describe("reserve, confirm, release", () => {
    it("reserves a key once; a live lease is in flight, not a duplicate", async () => {
      const store = new MemoryDedupeStore(new FixedClock());
      expect(await store.reserve("k", 60)).toBe("reserved");
      expect(await store.reserve("k", 60)).toBe("in-flight");
      expect(await store.claim("k", 60)).toBe(false);
    });

    it("a confirmed key is a duplicate for its whole TTL", async () => {
      const clock = new FixedClock();
      const store = new MemoryDedupeStore(clock);
      await store.reserve("k", 60);
      await store.confirm("k", 3600);
      clock.advance(3_599_999);
      expect(await store.reserve("k", 60)).toBe("duplicate");
      clock.advance(1);
      expect(await store.reserve("k", 60)).toBe("reserved");
    });

    it("a released key (the publish failed) can be reserved again", async () => {
      const store = new MemoryDedupeStore(new FixedClock());
      await store.reserve("k", 60);
      await store.release("k");
      expect(await store.reserve("k", 60)).toBe("reserved");
    });

    it("a lease its holder never confirmed nor released expires", async () => {
      const clock = new FixedClock();
      const store = new MemoryDedupeStore(clock);
      await store.reserve("k", 60);
      clock.advance(59_999);
      expect(await store.reserve("k", 60)).toBe("in-flight");
      clock.advance(1);
      expect(await store.reserve("k", 60)).toBe("reserved");
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
});
