/**
 * A real DynamoDB API in the test process: dynalite (an emulator over an in-memory LevelDB) on port 0,
 * which evaluates condition and update expressions as DynamoDB does, unlike aws-sdk-client-mock. Its
 * tables are made from the key schema the CDK stack declares for the dedupe table
 * (infra/dedupe-table.ts), so a store tested here writes what the deployed table accepts.
 *
 * dynalite does not run TTL deletion: an expired item stays, as one does in DynamoDB until its TTL
 * process gets to it (typically within days), so the stores' own expiry checks are what is tested.
 * Nor does it know `ReturnValuesOnConditionCheckFailure` (DynamoDB has since 2023): a small proxy in
 * front of it adds the item to a failed write's answer, as DynamoDB does (`withItemOnConditionFailure`).
 */
import { createServer, type IncomingMessage, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import {
  type BillingMode,
  CreateTableCommand,
  type CreateTableCommandInput,
  DynamoDBClient,
  type KeyType,
  type ScalarAttributeType,
} from "@aws-sdk/client-dynamodb";
import { App, Stack } from "aws-cdk-lib";
import type { CfnTable } from "aws-cdk-lib/aws-dynamodb";
import dynalite from "dynalite";
import { DedupeTable } from "../../infra/dedupe-table.js";

export interface DynamoDbEmulator {
  /** A real client for the emulator (the only place tests pass an endpoint; production code never does). */
  client: DynamoDBClient;
  endpoint: string;
  /** Creates a new, empty dedupe table and returns its name: one per test keeps tests apart. */
  createDedupeTable(): Promise<string>;
  close(): Promise<void>;
}

/**
 * @example
 * const dynamodb = await startDynamoDbEmulator(); // once per file: beforeAll
 * const tableName = await dynamodb.createDedupeTable(); // per test
 * const store = new DynamoDbDedupeStore({ client: dynamodb.client, tableName, clock });
 * await dynamodb.close(); // afterAll
 */
export async function startDynamoDbEmulator(): Promise<DynamoDbEmulator> {
  const schema = dedupeTableSchema();
  const emulator = dynalite({ createTableMs: 0, deleteTableMs: 0, updateTableMs: 0 });
  const server = withItemOnConditionFailure(await listen(emulator));
  const endpoint = await listen(server);
  const client = new DynamoDBClient({
    endpoint,
    region: "eu-west-1",
    credentials: { accessKeyId: "test", secretAccessKey: "test" },
  });
  let tables = 0;
  return {
    client,
    endpoint,
    async createDedupeTable() {
      const name = `kubler-dedupe-${++tables}`;
      await client.send(new CreateTableCommand({ ...schema, TableName: name }));
      return name;
    },
    async close() {
      client.destroy();
      await Promise.all([close(server), close(emulator)]);
    },
  };
}

/**
 * The dedupe table's key schema, attribute definitions and billing mode as the stack declares them:
 * read from the construct's CloudFormation resource, resolved as synthesis would (a full synth takes
 * seconds; this, milliseconds). Its TTL setting is not a CreateTable field, and dynalite ignores TTL.
 */
export function dedupeTableSchema(): Omit<CreateTableCommandInput, "TableName"> {
  const stack = new Stack(new App(), "DedupeTableOnly");
  const table = new DedupeTable(stack, "Dedupe").table.node.defaultChild as CfnTable;
  const { keySchema, attributeDefinitions, billingMode } = stack.resolve({
    keySchema: table.keySchema,
    attributeDefinitions: table.attributeDefinitions,
    billingMode: table.billingMode,
  }) as {
    keySchema: { attributeName: string; keyType: KeyType }[];
    attributeDefinitions: { attributeName: string; attributeType: ScalarAttributeType }[];
    billingMode: BillingMode;
  };
  return {
    KeySchema: keySchema.map((k) => ({ AttributeName: k.attributeName, KeyType: k.keyType })),
    AttributeDefinitions: attributeDefinitions.map((a) => ({
      AttributeName: a.attributeName,
      AttributeType: a.attributeType,
    })),
    BillingMode: billingMode,
  };
}

/**
 * A proxy to the emulator at `emulatorUrl` that answers a write refused by its condition, when the
 * write asked for `ReturnValuesOnConditionCheckFailure: ALL_OLD`, with the item that made it fail:
 * read right after, consistently, where DynamoDB returns it from the check itself (the same item
 * unless another write came in between).
 * https://docs.aws.amazon.com/amazondynamodb/latest/APIReference/API_PutItem.html#DDB-PutItem-request-ReturnValuesOnConditionCheckFailure
 */
function withItemOnConditionFailure(emulatorUrl: string): Server {
  const forward = (headers: IncomingMessage["headers"], body: string) =>
    fetch(emulatorUrl, {
      method: "POST",
      headers: Object.fromEntries(
        Object.entries(headers).flatMap(([name, value]) =>
          typeof value === "string" && !["host", "content-length", "connection"].includes(name)
            ? [[name, value]]
            : [],
        ),
      ),
      body,
    });
  return createServer(async (request, response) => {
    try {
      const chunks: Buffer[] = [];
      for await (const chunk of request) chunks.push(chunk as Buffer);
      const body = Buffer.concat(chunks).toString("utf8");
      const answer = await forward(request.headers, body);
      let text = await answer.text();
      const input = body ? (JSON.parse(body) as Record<string, unknown>) : {};
      if (
        answer.status === 400 &&
        text.includes("ConditionalCheckFailedException") &&
        input.ReturnValuesOnConditionCheckFailure === "ALL_OLD"
      ) {
        // The dedupe table's key is its partition key alone (dedupeTableSchema).
        const key = input.Key ?? { pk: (input.Item as Record<string, unknown>).pk };
        const held = await forward(
          { ...request.headers, "x-amz-target": "DynamoDB_20120810.GetItem" },
          JSON.stringify({ TableName: input.TableName, Key: key, ConsistentRead: true }),
        );
        const { Item } = (await held.json()) as { Item?: unknown };
        if (Item) text = JSON.stringify({ ...(JSON.parse(text) as object), Item });
      }
      response.writeHead(answer.status, { "content-type": answer.headers.get("content-type") ?? "" });
      response.end(text);
    } catch (error) {
      response.writeHead(500).end(String(error));
    }
  });
}

async function listen(server: Server): Promise<string> {
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  return `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
}

function close(server: Server): Promise<void> {
  const closed = new Promise<void>((resolve, reject) =>
    server.close((error) => (error ? reject(error) : resolve())),
  );
  // Kept-alive connections (the SDK's, the proxy's fetch) would hold the close for their idle timeout.
  server.closeAllConnections();
  return closed;
}
