import {
  ConditionalCheckFailedException,
  DeleteItemCommand,
  DynamoDBClient,
  ProvisionedThroughputExceededException,
  PutItemCommand,
  UpdateItemCommand,
} from "@aws-sdk/client-dynamodb";
import { type AwsClientStub, mockClient } from "aws-sdk-client-mock";
import "aws-sdk-client-mock-vitest/extend";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import {
  DEDUPE_PARTITION_KEY,
  DEDUPE_TTL_ATTRIBUTE,
  DynamoDbDedupeStore,
} from "../../shared/adapters/dynamodb-dedupe-store.js";

const TABLE = "kubler-dedupe-test";
/**
 * 2026-05-04T12:00:00.750Z: a fractional second, to check that `:now` is floored and an expiry
 * rounded up to the next whole second (held for at least the TTL, as the memory store holds it).
 */
const NOW = new Date(Date.UTC(2026, 4, 4, 12, 0, 0, 750));
const NOW_SECONDS = Math.floor(NOW.getTime() / 1000);
/** The whole second after NOW: where a TTL begun at NOW is counted from. */
const NEXT_SECOND = NOW_SECONDS + 1;
const THREE_DAYS = 3 * 86_400;

let client: DynamoDBClient;
let mock: AwsClientStub<DynamoDBClient>;
let store: DynamoDbDedupeStore;

beforeEach(() => {
  client = new DynamoDBClient({
    region: "eu-west-1",
    credentials: { accessKeyId: "test", secretAccessKey: "test" },
  });
  mock = mockClient(client);
  store = new DynamoDbDedupeStore({
    client,
    tableName: TABLE,
    clock: { now: () => NOW },
    newId: () => "this-reservation",
  });
});

afterEach(() => {
  mock.restore();
});

function conditionFailed(state?: "pending" | "confirmed", owner = "another-delivery") {
  return new ConditionalCheckFailedException({
    message: "The conditional request failed",
    $metadata: {},
    ...(state && {
      Item: { pk: { S: "delivery-1" }, expiresAt: { N: "1" }, state: { S: state }, owner: { S: owner } },
    }),
  });
}

describe("DynamoDbDedupeStore", () => {
  it("names the table's key and TTL attributes", () => {
    expect(DEDUPE_PARTITION_KEY).toBe("pk");
    expect(DEDUPE_TTL_ATTRIBUTE).toBe("expiresAt");
  });

  it("claims a new key, then answers false for the same key", async () => {
    mock.on(PutItemCommand).resolvesOnce({}).rejectsOnce(conditionFailed());

    await expect(store.claim("delivery-1", THREE_DAYS)).resolves.toBe(true);
    await expect(store.claim("delivery-1", THREE_DAYS)).resolves.toBe(false);
    expect(mock).toHaveReceivedCommandTimes(PutItemCommand, 2);
  });

  it("puts the key with its expiry, unless an unexpired claim exists", async () => {
    mock.on(PutItemCommand).resolves({});

    await store.claim("delivery-1", THREE_DAYS);

    expect(mock).toHaveReceivedCommandExactlyOnceWith(PutItemCommand, {
      TableName: TABLE,
      Item: {
        pk: { S: "delivery-1" },
        expiresAt: { N: String(NEXT_SECOND + THREE_DAYS) },
        // Which claim wrote it: an SDK retry of an applied PutItem meets its own claim.
        owner: { S: "this-reservation" },
      },
      ConditionExpression: "attribute_not_exists(pk) OR #exp <= :now",
      ExpressionAttributeNames: { "#exp": "expiresAt" },
      ExpressionAttributeValues: { ":now": { N: String(NOW_SECONDS) } },
    });
  });

  it("recognises ConditionalCheckFailedException by name, not only by class", async () => {
    mock.on(PutItemCommand).rejects({ name: "ConditionalCheckFailedException", message: "failed" });

    await expect(store.claim("delivery-1", THREE_DAYS)).resolves.toBe(false);
  });

  it("lets other errors propagate from claim", async () => {
    const throttled = new ProvisionedThroughputExceededException({ message: "slow down", $metadata: {} });
    mock.on(PutItemCommand).rejects(throttled);

    await expect(store.claim("delivery-1", THREE_DAYS)).rejects.toBe(throttled);
  });

  it("releases a key with DeleteItem", async () => {
    mock.on(DeleteItemCommand).resolves({});

    await store.release("delivery-1");

    expect(mock).toHaveReceivedCommandExactlyOnceWith(DeleteItemCommand, {
      TableName: TABLE,
      Key: { pk: { S: "delivery-1" } },
    });
    expect(mock).not.toHaveReceivedCommand(PutItemCommand);
  });

  it("lets errors propagate from release", async () => {
    mock.on(DeleteItemCommand).rejects(new Error("network down"));

    await expect(store.release("delivery-1")).rejects.toThrow("network down");
  });

  describe("reserve and confirm", () => {
    it("reserves with a pending item whose expiry is the lease, asking for the holder on failure", async () => {
      mock.on(PutItemCommand).resolves({});

      await expect(store.reserve("delivery-1", 60)).resolves.toBe("reserved");

      expect(mock).toHaveReceivedCommandExactlyOnceWith(PutItemCommand, {
        TableName: TABLE,
        Item: {
          pk: { S: "delivery-1" },
          expiresAt: { N: String(NEXT_SECOND + 60) },
          state: { S: "pending" },
          owner: { S: "this-reservation" },
        },
        // An expired lease is as free as an expired claim.
        ConditionExpression: "attribute_not_exists(pk) OR #exp <= :now",
        ExpressionAttributeNames: { "#exp": "expiresAt" },
        ExpressionAttributeValues: { ":now": { N: String(NOW_SECONDS) } },
        ReturnValuesOnConditionCheckFailure: "ALL_OLD",
      });
    });

    it("answers in-flight when a live pending item holds the key", async () => {
      mock.on(PutItemCommand).rejects(conditionFailed("pending"));

      await expect(store.reserve("delivery-1", 60)).resolves.toBe("in-flight");
    });

    it("a retried PutItem whose first attempt was applied meets its own lease: reserved, not in-flight", async () => {
      // The SDK retries a PutItem that timed out; the first attempt may have written the item.
      mock.on(PutItemCommand).rejects(conditionFailed("pending", "this-reservation"));

      await expect(store.reserve("delivery-1", 60)).resolves.toBe("reserved");
    });

    it("answers duplicate when a confirmed item, or a claim without a state, holds the key", async () => {
      mock.on(PutItemCommand).rejectsOnce(conditionFailed("confirmed")).rejectsOnce(conditionFailed());

      await expect(store.reserve("delivery-1", 60)).resolves.toBe("duplicate");
      await expect(store.reserve("delivery-1", 60)).resolves.toBe("duplicate");
    });

    it("claim stays a plain claim: a pending item also holds the key against it", async () => {
      mock.on(PutItemCommand).rejects(conditionFailed("pending"));

      await expect(store.claim("delivery-1", THREE_DAYS)).resolves.toBe(false);
    });

    it("confirms with UpdateItem: state confirmed, expiry moved to the TTL", async () => {
      mock.on(UpdateItemCommand).resolves({});

      await store.confirm("delivery-1", THREE_DAYS);

      expect(mock).toHaveReceivedCommandExactlyOnceWith(UpdateItemCommand, {
        TableName: TABLE,
        Key: { pk: { S: "delivery-1" } },
        UpdateExpression: "SET #state = :confirmed, #exp = :exp",
        ExpressionAttributeNames: { "#state": "state", "#exp": "expiresAt" },
        ExpressionAttributeValues: {
          ":confirmed": { S: "confirmed" },
          ":exp": { N: String(NEXT_SECOND + THREE_DAYS) },
        },
      });
    });

    it("lets errors propagate from reserve and confirm", async () => {
      const throttled = new ProvisionedThroughputExceededException({ message: "slow down", $metadata: {} });
      mock.on(PutItemCommand).rejects(throttled);
      mock.on(UpdateItemCommand).rejects(throttled);

      await expect(store.reserve("delivery-1", 60)).rejects.toBe(throttled);
      await expect(store.confirm("delivery-1", THREE_DAYS)).rejects.toBe(throttled);
    });
  });
});
