/**
 * The dedupe store over a real DynamoDB client whose transport writes an item and then times out,
 * as a PutItem does when DynamoDB applied it but the answer came after `requestTimeout`
 * (shared/adapters/aws-request-limits.ts): the SDK sends it again, and the retry meets the item its
 * own first attempt wrote.
 */
import { DynamoDBClient } from "@aws-sdk/client-dynamodb";
import { describe, expect, it } from "vitest";
import { DynamoDbDedupeStore } from "../../shared/adapters/dynamodb-dedupe-store.js";

type Item = Record<string, { S?: string; N?: string }>;

const NOW = new Date(Date.UTC(2026, 4, 4, 12, 0, 0));

/**
 * A DynamoDB table at the transport: PutItem with the store's condition (no live item under the key),
 * answering ConditionalCheckFailedException with the holder when asked. The first `appliedThenLost`
 * PutItems are written, then fail as the node HTTP handler fails a request past its requestTimeout;
 * the `unreachable` PutItems after them fail before reaching the table (a connection reset).
 * DeleteItem honours a condition on the owner.
 */
function tableWithLostAnswers(appliedThenLost: number, unreachable = 0) {
  const items = new Map<string, Item>();
  let puts = 0;
  const json = (statusCode: number, body: unknown) => ({
    response: {
      statusCode,
      headers: { "content-type": "application/x-amz-json-1.0" },
      body: new TextEncoder().encode(JSON.stringify(body)),
    },
  });
  const requestHandler = {
    handle: async (request: { headers: Record<string, string>; body?: unknown }) => {
      const target = request.headers["x-amz-target"] ?? "";
      if (target.endsWith(".DeleteItem")) {
        const input = JSON.parse(String(request.body)) as {
          Key: Item;
          ExpressionAttributeValues?: Record<string, { S: string }>;
        };
        const key = input.Key.pk?.S as string;
        const owner = input.ExpressionAttributeValues?.[":owner"]?.S;
        if (owner !== undefined && items.get(key)?.owner?.S !== owner) {
          return json(400, {
            __type: "com.amazonaws.dynamodb.v20120810#ConditionalCheckFailedException",
            message: "The conditional request failed",
          });
        }
        items.delete(key);
        return json(200, {});
      }
      if (!target.endsWith(".PutItem")) throw new Error(`unexpected ${target}`);
      puts++;
      if (puts > appliedThenLost && puts <= appliedThenLost + unreachable) {
        throw Object.assign(new Error("socket hang up"), { name: "Error", code: "ECONNRESET" });
      }
      const input = JSON.parse(String(request.body)) as {
        Item: Item;
        ExpressionAttributeValues: Record<string, { N: string }>;
        ReturnValuesOnConditionCheckFailure?: string;
      };
      const key = input.Item.pk?.S as string;
      const held = items.get(key);
      const now = Number(input.ExpressionAttributeValues[":now"]?.N);
      if (held && Number(held.expiresAt?.N) > now) {
        return json(400, {
          __type: "com.amazonaws.dynamodb.v20120810#ConditionalCheckFailedException",
          message: "The conditional request failed",
          ...(input.ReturnValuesOnConditionCheckFailure === "ALL_OLD" && { Item: held }),
        });
      }
      items.set(key, input.Item);
      if (puts <= appliedThenLost) {
        throw Object.assign(new Error("a request has exceeded the configured 800 ms requestTimeout."), {
          name: "TimeoutError",
          code: "ETIMEDOUT",
        });
      }
      return json(200, {});
    },
  };
  const client = new DynamoDBClient({
    region: "eu-west-1",
    credentials: { accessKeyId: "test", secretAccessKey: "test" },
    maxAttempts: 2,
    requestHandler,
  });
  return { client, puts: () => puts, items };
}

describe("DynamoDbDedupeStore when a written PutItem's answer is lost and the SDK sends it again", () => {
  it("a claim whose retry meets its own item is claimed, not a duplicate", async () => {
    const table = tableWithLostAnswers(1);
    const store = new DynamoDbDedupeStore({
      client: table.client,
      tableName: "t",
      clock: { now: () => NOW },
    });

    // A plan step's claim or a job's jti: false would drop the step, or refuse the job as a replay.
    await expect(store.claim("plan/step-1", 3_600)).resolves.toBe(true);
    expect(table.puts()).toBe(2);

    // Another claim of the key is still refused.
    await expect(store.claim("plan/step-1", 3_600)).resolves.toBe(false);
  });

  it("a reservation whose retry meets its own lease is reserved (as before)", async () => {
    const table = tableWithLostAnswers(1);
    const store = new DynamoDbDedupeStore({
      client: table.client,
      tableName: "t",
      clock: { now: () => NOW },
    });

    await expect(store.reserve("delivery-1", 60)).resolves.toBe("reserved");
    expect(table.puts()).toBe(2);
    await expect(store.reserve("delivery-1", 60)).resolves.toBe("in-flight");
  });

  it("a claim that failed after DynamoDB wrote it leaves the key free for the retry the job is told to make", async () => {
    // Written, answer lost; the SDK's retry never reaches the table: the claim fails (503 to the job).
    const table = tableWithLostAnswers(1, 1);
    const store = new DynamoDbDedupeStore({
      client: table.client,
      tableName: "t",
      clock: { now: () => NOW },
    });

    await expect(store.claim("jti:https://gitlab.example.com:abc", 3_600)).rejects.toThrow();
    // Left in the table, the failed claim's item would refuse the job's retry as a replay until exp.
    await expect(store.claim("jti:https://gitlab.example.com:abc", 3_600)).resolves.toBe(true);
    await expect(store.claim("jti:https://gitlab.example.com:abc", 3_600)).resolves.toBe(false);
  });

  it("a reservation that failed after DynamoDB wrote it does not hold GitLab's resend off as in flight", async () => {
    const table = tableWithLostAnswers(1, 1);
    const store = new DynamoDbDedupeStore({
      client: table.client,
      tableName: "t",
      clock: { now: () => NOW },
    });

    await expect(store.reserve("delivery-1", 60)).rejects.toThrow();
    await expect(store.reserve("delivery-1", 60)).resolves.toBe("reserved");
  });

  it("a reservation that never reached the table leaves the other delivery's lease in place", async () => {
    // Both attempts reset before the table while another delivery holds the key: the item is theirs.
    const table = tableWithLostAnswers(0, 2);
    table.items.set("delivery-1", {
      pk: { S: "delivery-1" },
      expiresAt: { N: String(NOW.getTime() / 1000 + 60) },
      state: { S: "pending" },
      owner: { S: "the-other-delivery" },
    });
    const store = new DynamoDbDedupeStore({
      client: table.client,
      tableName: "t",
      clock: { now: () => NOW },
    });

    await expect(store.reserve("delivery-1", 60)).rejects.toThrow();
    // Deleted, the next resend would publish a second time while the first is still in flight.
    await expect(store.reserve("delivery-1", 60)).resolves.toBe("in-flight");
  });
});
