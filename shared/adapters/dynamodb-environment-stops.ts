import { type DynamoDBClient, GetItemCommand, PutItemCommand } from "@aws-sdk/client-dynamodb";
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
 * table's TTL removes them too.
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

  async record(key: string, factAt: Date, ttlSeconds: number): Promise<void> {
    const now = Math.floor(this.#clock.now().getTime() / 1000);
    try {
      await this.#client.send(
        new PutItemCommand({
          TableName: this.#tableName,
          Item: {
            [DEDUPE_PARTITION_KEY]: { S: key },
            [DEDUPE_TTL_ATTRIBUTE]: { N: String(now + Math.ceil(ttlSeconds)) },
            [STOP_FACT_AT_ATTRIBUTE]: { N: String(factAt.getTime()) },
          },
          // Stops arrive out of order too: the later fact wins. An expired record lingers until
          // TTL deletion gets to it, and counts as absent.
          ConditionExpression: `attribute_not_exists(${DEDUPE_PARTITION_KEY}) OR #at <= :at OR #exp < :now`,
          ExpressionAttributeNames: { "#at": STOP_FACT_AT_ATTRIBUTE, "#exp": DEDUPE_TTL_ATTRIBUTE },
          ExpressionAttributeValues: {
            ":at": { N: String(factAt.getTime()) },
            ":now": { N: String(now) },
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
    const expires = Number(Item?.[DEDUPE_TTL_ATTRIBUTE]?.N);
    if (!Number.isFinite(at) || expires < this.#clock.now().getTime() / 1000) return null;
    return new Date(at);
  }
}
