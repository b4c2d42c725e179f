import { type DynamoDBClient, GetItemCommand, PutItemCommand } from "@aws-sdk/client-dynamodb";
import { expiresAtSeconds } from "../domain/hold-expiry.js";
import type { Clock, EnvironmentStops } from "../ports.js";
import { DEDUPE_PARTITION_KEY, DEDUPE_TTL_ATTRIBUTE } from "./dynamodb-dedupe-store.js";

/** The stop's GitLab fact time, epoch milliseconds. */
export const STOP_FACT_AT_ATTRIBUTE = "factAt";

export interface DynamoDbEnvironmentStopsOptions {
  client: DynamoDBClient;
  tableName: string;
  clock: Clock;
}

/**
 * Stop records in the dedupe table, beside the delivery keys: same key and TTL attributes, so the
 * table's TTL removes them too. The expiry is counted from the fact recorded, not from the write, so
 * that of two facts kept as long, the later one's record is the one that lasts (a close redriven
 * days late must not outlive a later reopen); a record kept forever has no TTL attribute.
 *
 * @example
 * const stops = new DynamoDbEnvironmentStops({ client: new DynamoDBClient({}), tableName, clock });
 */
export class DynamoDbEnvironmentStops implements EnvironmentStops {
  readonly #client: DynamoDBClient;
  readonly #tableName: string;
  readonly #clock: Clock;

  constructor(options: DynamoDbEnvironmentStopsOptions) {
    this.#client = options.client;
    this.#tableName = options.tableName;
    this.#clock = options.clock;
  }

  async record(key: string, factAt: Date, ttlSeconds: number | null): Promise<void> {
    const at = factAt.getTime();
    try {
      await this.#client.send(
        new PutItemCommand({
          TableName: this.#tableName,
          Item: {
            [DEDUPE_PARTITION_KEY]: { S: key },
            ...(ttlSeconds !== null && {
              [DEDUPE_TTL_ATTRIBUTE]: { N: String(expiresAtSeconds(at, ttlSeconds)) },
            }),
            [STOP_FACT_AT_ATTRIBUTE]: { N: String(at) },
          },
          // Stops arrive out of order too: the later fact wins. An expired record lingers until
          // TTL deletion gets to it, and counts as absent (its whole-second expiry reached:
          // floor(now) >= it). A record without the attribute never expires.
          ConditionExpression: `attribute_not_exists(${DEDUPE_PARTITION_KEY}) OR #at <= :at OR #exp <= :now`,
          ExpressionAttributeNames: { "#at": STOP_FACT_AT_ATTRIBUTE, "#exp": DEDUPE_TTL_ATTRIBUTE },
          ExpressionAttributeValues: {
            ":at": { N: String(at) },
            ":now": { N: String(Math.floor(this.#clock.now().getTime() / 1000)) },
          },
        }),
      );
    } catch (error) {
      if (error instanceof Error && error.name === "ConditionalCheckFailedException") return;
      throw error;
    }
  }

  async stoppedAt(key: string): Promise<Date | null> {
    const { Item } = await this.#client.send(
      new GetItemCommand({
        TableName: this.#tableName,
        Key: { [DEDUPE_PARTITION_KEY]: { S: key } },
        // The stop was recorded moments before the deploy it must refuse may read it.
        ConsistentRead: true,
      }),
    );
    const at = Number(Item?.[STOP_FACT_AT_ATTRIBUTE]?.N);
    const expires = Item?.[DEDUPE_TTL_ATTRIBUTE]?.N;
    // Expired once the clock reaches its whole second, as the condition in `record` counts it.
    if (
      !Number.isFinite(at) ||
      (expires !== undefined && Number(expires) * 1000 <= this.#clock.now().getTime())
    ) {
      return null;
    }
    return new Date(at);
  }
}
