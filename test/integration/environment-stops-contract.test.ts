/**
 * One list of behaviours every `EnvironmentStops` must have (the environment stop records and the
 * merge request records plan-steps keeps in it), run against the local runtime's memory store and the
 * DynamoDB adapter over a real client and a real DynamoDB API (dynalite), which evaluates the
 * adapter's conditions: a difference between the two is a bug in one of them.
 */
import { GetItemCommand } from "@aws-sdk/client-dynamodb";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { DynamoDbEnvironmentStops } from "../../shared/adapters/dynamodb-environment-stops.js";
import { type MergeRequestState, mergeRequestEnded } from "../../shared/domain/plan-steps.js";
import { MemoryEnvironmentStops } from "../../shared/local/memory-environment-stops.js";
import type { EnvironmentStops } from "../../shared/ports.js";
import { type DynamoDbEmulator, startDynamoDbEmulator } from "../fakes/dynamodb-emulator.js";
import { FixedClock } from "../fakes/index.js";

const MINUTE = 60_000;
const DAY = 86_400_000;
const WEEK_SECONDS = 7 * 86_400;
const T0 = new Date("2026-11-21T10:00:00Z");
const later = (ms: number) => new Date(T0.getTime() + ms);

let dynamodb: DynamoDbEmulator;

beforeAll(async () => {
  dynamodb = await startDynamoDbEmulator();
});

afterAll(async () => {
  await dynamodb?.close();
});

const implementations: { name: string; create: (clock: FixedClock) => Promise<EnvironmentStops> }[] = [
  { name: "MemoryEnvironmentStops", create: async (clock) => new MemoryEnvironmentStops(clock) },
  {
    name: "DynamoDbEnvironmentStops on dynalite",
    create: async (clock) =>
      new DynamoDbEnvironmentStops({
        client: dynamodb.client,
        tableName: await dynamodb.createDedupeTable(),
        clock,
      }),
  },
];

describe.each(implementations)("EnvironmentStops contract: $name", ({ create }) => {
  it("has no stop for a key never recorded", async () => {
    const stops = await create(new FixedClock(T0));
    expect(await stops.stoppedAt("plan/stop/x")).toBeNull();
  });

  it("the latest fact wins, whichever record arrives first", async () => {
    const stops = await create(new FixedClock(later(MINUTE)));
    await stops.record("in-order", T0, WEEK_SECONDS);
    await stops.record("in-order", later(30_000), WEEK_SECONDS);
    await stops.record("late-first", later(30_000), WEEK_SECONDS);
    await stops.record("late-first", T0, WEEK_SECONDS); // an earlier stop, delivered late
    expect(await stops.stoppedAt("in-order")).toEqual(later(30_000));
    expect(await stops.stoppedAt("late-first")).toEqual(later(30_000));
  });

  it("of racing records of one key, the latest fact wins", async () => {
    const stops = await create(new FixedClock(later(MINUTE)));
    const seconds = [7, 3, 12, 0, 9, 12, 1, 5];
    await Promise.all(seconds.map((s) => stops.record("k", later(s * 1000), WEEK_SECONDS)));
    expect(await stops.stoppedAt("k")).toEqual(later(12_000));
  });

  it("keeps a record for its TTL from the fact it records, not from when it was written", async () => {
    // A stop dead-lettered for 5 days, then redriven: it refuses what came before it as long as a
    // stop written on time would have, and no longer.
    const clock = new FixedClock(later(5 * DAY));
    const stops = await create(clock);
    await stops.record("k", T0, WEEK_SECONDS);
    clock.advance(2 * DAY - 1);
    expect(await stops.stoppedAt("k")).toEqual(T0);
    clock.advance(1);
    expect(await stops.stoppedAt("k")).toBeNull();
  });

  it("a record whose fact is older than its TTL is gone at once, and replaces no live one", async () => {
    const stops = await create(new FixedClock(later(10 * DAY)));
    await stops.record("k", T0, WEEK_SECONDS);
    expect(await stops.stoppedAt("k")).toBeNull();
    await stops.record("live", later(9 * DAY), WEEK_SECONDS);
    await stops.record("live", T0, WEEK_SECONDS);
    expect(await stops.stoppedAt("live")).toEqual(later(9 * DAY));
  });

  it("an expired record counts as absent: an earlier fact kept longer takes its place", async () => {
    const clock = new FixedClock(T0);
    const stops = await create(clock);
    await stops.record("k", later(MINUTE), 60);
    clock.advance(2 * MINUTE);
    expect(await stops.stoppedAt("k")).toBeNull();
    await stops.record("k", T0, WEEK_SECONDS);
    expect(await stops.stoppedAt("k")).toEqual(T0);
  });

  it("ends a TTL at the whole second, the TTL attribute's unit", async () => {
    const clock = new FixedClock(T0);
    const stops = await create(clock);
    const factAt = new Date("2026-11-21T10:00:00.250Z");
    await stops.record("k", factAt, 60);
    clock.advance(60_999); // 10:01:00.999
    expect(await stops.stoppedAt("k")).toEqual(factAt);
    clock.advance(1); // 10:01:01
    expect(await stops.stoppedAt("k")).toBeNull();
  });

  it("a record kept without a TTL never expires, and the latest fact still wins", async () => {
    const clock = new FixedClock(T0);
    const stops = await create(clock);
    await stops.record("k", T0, null);
    clock.advance(3_650 * DAY);
    expect(await stops.stoppedAt("k")).toEqual(T0);
    await stops.record("k", later(-MINUTE), WEEK_SECONDS);
    expect(await stops.stoppedAt("k")).toEqual(T0);
    await stops.record("k", later(3_650 * DAY), null);
    expect(await stops.stoppedAt("k")).toEqual(later(3_650 * DAY));
  });

  describe("merge request records (merged, closed, reopened) read together", () => {
    const ended = async (stops: EnvironmentStops) => {
      const at = async (state: MergeRequestState) => stops.stoppedAt(`plan/mr/g/1/16/${state}`);
      return mergeRequestEnded(16, {
        merged: await at("merged"),
        closed: await at("closed"),
        reopened: await at("reopened"),
      });
    };

    it("a close redriven days after a later reopen never outlives that reopen", async () => {
      const clock = new FixedClock(T0);
      const stops = await create(clock);
      clock.advance(DAY);
      await stops.record("plan/mr/g/1/16/reopened", later(DAY), WEEK_SECONDS);
      clock.advance(4 * DAY); // the close of day 0 comes back from the dead-letter queue on day 5
      await stops.record("plan/mr/g/1/16/closed", T0, WEEK_SECONDS);
      for (let day = 5; day <= 13; day++) {
        expect({ day, ended: await ended(stops) }).toEqual({ day, ended: null });
        clock.advance(DAY);
      }
    });

    it("a close after a reopen ends the merge request again; a merge ends it for good", async () => {
      const stops = await create(new FixedClock(later(3 * MINUTE)));
      await stops.record("plan/mr/g/1/16/closed", T0, null);
      await stops.record("plan/mr/g/1/16/reopened", later(MINUTE), null);
      expect(await ended(stops)).toBeNull();
      await stops.record("plan/mr/g/1/16/closed", later(2 * MINUTE), null);
      expect(await ended(stops)).toContain("was closed (2026-11-21T10:02:00.000Z) and not reopened since");
      await stops.record("plan/mr/g/1/16/merged", later(3 * MINUTE), null);
      expect(await ended(stops)).toContain("was merged");
    });
  });
});

describe("DynamoDbEnvironmentStops on dynalite: expiry without TTL deletion", () => {
  it("reads an expired record still in the table as absent (DynamoDB's TTL deletes it days later)", async () => {
    const clock = new FixedClock(T0);
    const tableName = await dynamodb.createDedupeTable();
    const stops = new DynamoDbEnvironmentStops({ client: dynamodb.client, tableName, clock });
    await stops.record("k", T0, 60);
    clock.advance(MINUTE);
    const { Item } = await dynamodb.client.send(
      new GetItemCommand({ TableName: tableName, Key: { pk: { S: "k" } }, ConsistentRead: true }),
    );
    expect(Item?.factAt).toEqual({ N: String(T0.getTime()) }); // it lingers
    expect(await stops.stoppedAt("k")).toBeNull();
  });

  it("writes a record kept without a TTL with no TTL attribute, which DynamoDB never deletes", async () => {
    const tableName = await dynamodb.createDedupeTable();
    const stops = new DynamoDbEnvironmentStops({
      client: dynamodb.client,
      tableName,
      clock: new FixedClock(T0),
    });
    await stops.record("k", T0, null);
    const { Item } = await dynamodb.client.send(
      new GetItemCommand({ TableName: tableName, Key: { pk: { S: "k" } }, ConsistentRead: true }),
    );
    expect(Item).toEqual({ pk: { S: "k" }, factAt: { N: String(T0.getTime()) } });
  });
});
