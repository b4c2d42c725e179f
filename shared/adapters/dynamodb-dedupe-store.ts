import { randomUUID } from "node:crypto";
import {
  DeleteItemCommand,
  type DynamoDBClient,
  PutItemCommand,
  UpdateItemCommand,
} from "@aws-sdk/client-dynamodb";
import { expiresAtSeconds } from "../domain/hold-expiry.js";
import type { Clock, DedupeStore, IdGenerator, Reservation } from "../ports.js";

/** The dedupe table's partition key (a string: the delivery key). */
export const DEDUPE_PARTITION_KEY = "pk";

/**
 * The dedupe table's TTL attribute: epoch seconds, as DynamoDB TTL requires. For a reserved key it is
 * the end of the lease, so a lease left by a killed Lambda expires (and is removed) like a claim.
 * An item is live while the clock is before it: held for its TTL, rounded up to the whole second
 * (`expiresAtSeconds`), as the memory stores hold theirs (test/integration/*-contract.test.ts).
 */
export const DEDUPE_TTL_ATTRIBUTE = "expiresAt";

/**
 * "pending" while a reservation's work is in flight, "confirmed" once done. Claims made with `claim`
 * (and those written before reservations existed) have none: they count as confirmed.
 */
export const DEDUPE_STATE_ATTRIBUTE = "state";

/**
 * Which `reserve` or `claim` call wrote an item. The SDK retries a PutItem that timed out, and the
 * first attempt may have been applied: the retry then meets its own item, which must read as
 * "reserved", not as another delivery in flight (which would answer 503 until the lease ran out),
 * nor as a duplicate claim (a plan step dropped, a job's ID token refused as replayed).
 */
export const DEDUPE_OWNER_ATTRIBUTE = "owner";

export interface DynamoDbDedupeStoreOptions {
  client: DynamoDBClient;
  tableName: string;
  clock: Clock;
  /** A new id for each reservation (tests fix it). */
  newId?: IdGenerator;
}

/**
 * Claims delivery keys with a conditional PutItem, so two concurrent deliveries of one webhook
 * cannot both win; the table's TTL removes old claims and abandoned leases.
 *
 * @example
 * const dedupe = new DynamoDbDedupeStore({ client: new DynamoDBClient({}), tableName, clock });
 * if ((await dedupe.reserve(key, 60)) === "reserved") { await publish(); await dedupe.confirm(key, 3 * 86_400); }
 */
export class DynamoDbDedupeStore implements DedupeStore {
  readonly #client: DynamoDBClient;
  readonly #tableName: string;
  readonly #clock: Clock;
  readonly #newId: IdGenerator;

  constructor(options: DynamoDbDedupeStoreOptions) {
    this.#client = options.client;
    this.#tableName = options.tableName;
    this.#clock = options.clock;
    this.#newId = options.newId ?? randomUUID;
  }

  async claim(key: string, ttlSeconds: number): Promise<boolean> {
    return (await this.#put(key, ttlSeconds, null)) === "reserved";
  }

  async reserve(key: string, leaseSeconds: number): Promise<Reservation> {
    return this.#put(key, leaseSeconds, "pending");
  }

  async confirm(key: string, ttlSeconds: number): Promise<void> {
    // Unconditional: the work is done, so the key must dedupe from now on whatever became of the lease.
    await this.#client.send(
      new UpdateItemCommand({
        TableName: this.#tableName,
        Key: { [DEDUPE_PARTITION_KEY]: { S: key } },
        UpdateExpression: "SET #state = :confirmed, #exp = :exp",
        ExpressionAttributeNames: { "#state": DEDUPE_STATE_ATTRIBUTE, "#exp": DEDUPE_TTL_ATTRIBUTE },
        ExpressionAttributeValues: {
          ":confirmed": { S: "confirmed" },
          ":exp": { N: String(expiresAtSeconds(this.#clock.now().getTime(), ttlSeconds)) },
        },
      }),
    );
  }

  async release(key: string): Promise<void> {
    await this.#client.send(
      new DeleteItemCommand({
        TableName: this.#tableName,
        Key: { [DEDUPE_PARTITION_KEY]: { S: key } },
      }),
    );
  }

  async #put(key: string, seconds: number, state: "pending" | null): Promise<Reservation> {
    const now = this.#clock.now().getTime();
    const owner = this.#newId();
    try {
      await this.#client.send(
        new PutItemCommand({
          TableName: this.#tableName,
          Item: {
            [DEDUPE_PARTITION_KEY]: { S: key },
            [DEDUPE_TTL_ATTRIBUTE]: { N: String(expiresAtSeconds(now, seconds)) },
            ...(state && { [DEDUPE_STATE_ATTRIBUTE]: { S: state } }),
            [DEDUPE_OWNER_ATTRIBUTE]: { S: owner },
          },
          // An expired lease or claim is free again. TTL deletion lags expiry (typically within a few
          // days), so an expired item still in the table must not count:
          // https://docs.aws.amazon.com/amazondynamodb/latest/developerguide/howitworks-ttl.html
          // The expiry is a whole second: floor(now) >= it exactly when now has reached it.
          ConditionExpression: `attribute_not_exists(${DEDUPE_PARTITION_KEY}) OR #exp <= :now`,
          ExpressionAttributeNames: { "#exp": DEDUPE_TTL_ATTRIBUTE },
          ExpressionAttributeValues: { ":now": { N: String(Math.floor(now / 1000)) } },
          // The item that won, in the same call: our own (an SDK retry), or a pending one ("retry").
          ReturnValuesOnConditionCheckFailure: "ALL_OLD",
        }),
      );
      return "reserved";
    } catch (error) {
      if (error instanceof Error && error.name === "ConditionalCheckFailedException") {
        const holder = (error as { Item?: Record<string, { S?: string }> }).Item;
        if (holder?.[DEDUPE_OWNER_ATTRIBUTE]?.S === owner) return "reserved";
        return holder?.[DEDUPE_STATE_ATTRIBUTE]?.S === "pending" ? "in-flight" : "duplicate";
      }
      // The put may have been written before its answer was lost (the SDK's retry then failing at
      // the network): the caller is told to try again, and our item would meet that retry as
      // another's (a job's token refused as replayed until it expires, a resend held off as in
      // flight). Only our own item goes; if this fails too, the TTL ends it.
      await this.#deleteOwn(key, owner).catch(() => undefined);
      throw error;
    }
  }

  async #deleteOwn(key: string, owner: string): Promise<void> {
    await this.#client.send(
      new DeleteItemCommand({
        TableName: this.#tableName,
        Key: { [DEDUPE_PARTITION_KEY]: { S: key } },
        ConditionExpression: "#owner = :owner",
        ExpressionAttributeNames: { "#owner": DEDUPE_OWNER_ATTRIBUTE },
        ExpressionAttributeValues: { ":owner": { S: owner } },
      }),
    );
  }
}
