import { DeleteItemCommand, type DynamoDBClient, PutItemCommand } from "@aws-sdk/client-dynamodb";
import type { Clock, DedupeStore } from "../ports.js";

/** The dedupe table's partition key (a string: the delivery key). */
export const DEDUPE_PARTITION_KEY = "pk";

/** The dedupe table's TTL attribute: epoch seconds, as DynamoDB TTL requires. */
export const DEDUPE_TTL_ATTRIBUTE = "expiresAt";

export interface DynamoDbDedupeStoreOptions {
  client: DynamoDBClient;
  tableName: string;
  clock: Clock;
}

/**
 * Claims delivery keys with a conditional PutItem, so two concurrent deliveries of one webhook
 * cannot both win; the table's TTL removes old claims.
 *
 * @example
 * const dedupe = new DynamoDbDedupeStore({ client: new DynamoDBClient({}), tableName, clock });
 * if (!(await dedupe.claim(key, 3 * 86_400))) return duplicate();
 */
export class DynamoDbDedupeStore implements DedupeStore {
  readonly #client: DynamoDBClient;
  readonly #tableName: string;
  readonly #clock: Clock;

  constructor(options: DynamoDbDedupeStoreOptions) {
    this.#client = options.client;
    this.#tableName = options.tableName;
    this.#clock = options.clock;
  }

  async claim(key: string, ttlSeconds: number): Promise<boolean> {
    const now = Math.floor(this.#clock.now().getTime() / 1000);
    try {
      await this.#client.send(
        new PutItemCommand({
          TableName: this.#tableName,
          Item: {
            [DEDUPE_PARTITION_KEY]: { S: key },
            [DEDUPE_TTL_ATTRIBUTE]: { N: String(now + Math.ceil(ttlSeconds)) },
          },
          // TTL deletion lags expiry (typically within a few days), so an expired claim still in the
          // table must not count: https://docs.aws.amazon.com/amazondynamodb/latest/developerguide/howitworks-ttl.html
          ConditionExpression: `attribute_not_exists(${DEDUPE_PARTITION_KEY}) OR #exp < :now`,
          ExpressionAttributeNames: { "#exp": DEDUPE_TTL_ATTRIBUTE },
          ExpressionAttributeValues: { ":now": { N: String(now) } },
        }),
      );
      return true;
    } catch (error) {
      if (error instanceof Error && error.name === "ConditionalCheckFailedException") return false;
      throw error;
    }
  }

  async release(key: string): Promise<void> {
    await this.#client.send(
      new DeleteItemCommand({
        TableName: this.#tableName,
        Key: { [DEDUPE_PARTITION_KEY]: { S: key } },
      }),
    );
  }
}
