/**
 * One list of behaviours every `DedupeStore` must have, run against the local runtime's memory store
 * (what `npm start` uses) and the DynamoDB adapter over a real client and a real DynamoDB API
 * (dynalite, test/fakes/dynamodb-emulator.ts), which evaluates the adapter's condition and update
 * expressions: a difference between the two is a bug in one of them.
 */
import { GetItemCommand } from "@aws-sdk/client-dynamodb";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { DynamoDbDedupeStore } from "../../shared/adapters/dynamodb-dedupe-store.js";
import { MemoryDedupeStore } from "../../shared/local/memory-dedupe-store.js";
import type { DedupeStore } from "../../shared/ports.js";
import { type DynamoDbEmulator, startDynamoDbEmulator } from "../fakes/dynamodb-emulator.js";
import { FixedClock } from "../fakes/index.js";

let dynamodb: DynamoDbEmulator;

beforeAll(async () => {
  dynamodb = await startDynamoDbEmulator();
});

afterAll(async () => {
  await dynamodb?.close();
});

const implementations: { name: string; create: (clock: FixedClock) => Promise<DedupeStore> }[] = [
  { name: "MemoryDedupeStore", create: async (clock) => new MemoryDedupeStore(clock) },
  {
    name: "DynamoDbDedupeStore on dynalite",
    create: async (clock) =>
      new DynamoDbDedupeStore({
        client: dynamodb.client,
        tableName: await dynamodb.createDedupeTable(),
        clock,
      }),
  },
];

describe.each(implementations)("DedupeStore contract: $name", ({ create }) => {
  it("claims a key once, for exactly its TTL", async () => {
    const clock = new FixedClock();
    const store = await create(clock);
    expect(await store.claim("k", 60)).toBe(true);
    expect(await store.claim("k", 60)).toBe(false);
    clock.advance(59_999);
    expect(await store.claim("k", 60)).toBe(false);
    clock.advance(1);
    expect(await store.claim("k", 60)).toBe(true);
  });

  it("ends a TTL begun mid-second at the next whole second, the TTL attribute's unit", async () => {
    const clock = new FixedClock(new Date("2026-11-21T10:00:00.750Z"));
    const store = await create(clock);
    expect(await store.claim("k", 60)).toBe(true);
    clock.advance(60_249); // 10:01:00.999
    expect(await store.claim("k", 60)).toBe(false);
    clock.advance(1); // 10:01:01
    expect(await store.claim("k", 60)).toBe(true);
  });

  it("forgets a released claim or lease", async () => {
    const store = await create(new FixedClock());
    await store.claim("claimed", 60);
    await store.release("claimed");
    expect(await store.claim("claimed", 60)).toBe(true);
    await store.reserve("leased", 60);
    await store.release("leased");
    expect(await store.reserve("leased", 60)).toBe("reserved");
  });

  it("a live lease is in flight for reserve, and taken for claim", async () => {
    const store = await create(new FixedClock());
    expect(await store.reserve("k", 60)).toBe("reserved");
    expect(await store.reserve("k", 60)).toBe("in-flight");
    expect(await store.claim("k", 60)).toBe(false);
  });

  it("a claim is a duplicate for reserve", async () => {
    const store = await create(new FixedClock());
    await store.claim("k", 60);
    expect(await store.reserve("k", 60)).toBe("duplicate");
  });

  it("a confirmed key is a duplicate for its whole TTL, long after the lease would have ended", async () => {
    const clock = new FixedClock();
    const store = await create(clock);
    await store.reserve("k", 60);
    await store.confirm("k", 3_600);
    clock.advance(60_000);
    expect(await store.reserve("k", 60)).toBe("duplicate");
    clock.advance(3_539_999);
    expect(await store.reserve("k", 60)).toBe("duplicate");
    expect(await store.claim("k", 60)).toBe(false);
    clock.advance(1);
    expect(await store.reserve("k", 60)).toBe("reserved");
  });

  it("a lease its holder never confirmed nor released ends after the lease", async () => {
    const clock = new FixedClock();
    const store = await create(clock);
    await store.reserve("k", 60);
    clock.advance(59_999);
    expect(await store.reserve("k", 60)).toBe("in-flight");
    clock.advance(1);
    expect(await store.reserve("k", 60)).toBe("reserved");
  });

  it("confirm makes the key final even when its lease ran out and another attempt took it", async () => {
    const clock = new FixedClock();
    const store = await create(clock);
    await store.reserve("k", 60);
    clock.advance(60_000);
    expect(await store.reserve("k", 60)).toBe("reserved"); // a second attempt, while the first still works
    await store.confirm("k", 3_600); // the first one's work is done
    expect(await store.reserve("k", 60)).toBe("duplicate");
  });

  it("a claim is free again once it expires, though a longer hold made before it still holds", async () => {
    // plan-steps' mix: a fact confirmed for 3 days, then its 1 h step claims and a fact's 60 s lease.
    const clock = new FixedClock();
    const store = await create(clock);
    await store.reserve("fact", 60);
    await store.confirm("fact", 3 * 86_400);
    expect(await store.claim("step", 3_600)).toBe(true);
    expect(await store.reserve("other-fact", 60)).toBe("reserved");
    clock.advance(3_599_999);
    expect(await store.claim("step", 3_600)).toBe(false);
    clock.advance(1);
    expect(await store.claim("step", 3_600)).toBe(true);
    expect(await store.reserve("other-fact", 60)).toBe("reserved");
    expect(await store.reserve("fact", 60)).toBe("duplicate");
  });

  it("of racing reservations of one key, exactly one wins; the others are told it is in flight", async () => {
    const store = await create(new FixedClock());
    const results = await Promise.all(Array.from({ length: 8 }, () => store.reserve("k", 60)));
    expect(results.filter((r) => r === "reserved")).toHaveLength(1);
    expect(results.filter((r) => r === "in-flight")).toHaveLength(7);
  });

  it("of racing claims of one key, exactly one wins, also over an expired claim", async () => {
    const clock = new FixedClock();
    const store = await create(clock);
    const first = await Promise.all(Array.from({ length: 8 }, () => store.claim("k", 60)));
    expect(first.filter(Boolean)).toHaveLength(1);
    clock.advance(60_000);
    const again = await Promise.all(Array.from({ length: 8 }, () => store.claim("k", 60)));
    expect(again.filter(Boolean)).toHaveLength(1);
  });
});

describe("DynamoDbDedupeStore on dynalite: expiry without TTL deletion", () => {
  it("treats an expired item still in the table as free (DynamoDB's TTL deletes it days later)", async () => {
    const clock = new FixedClock();
    const tableName = await dynamodb.createDedupeTable();
    const store = new DynamoDbDedupeStore({ client: dynamodb.client, tableName, clock });
    await store.reserve("k", 60);
    clock.advance(60_000);
    const { Item } = await dynamodb.client.send(
      new GetItemCommand({ TableName: tableName, Key: { pk: { S: "k" } }, ConsistentRead: true }),
    );
    expect(Item?.state).toEqual({ S: "pending" }); // the abandoned lease lingers
    expect(await store.reserve("k", 60)).toBe("reserved");
  });
});
