/**
 * The webhook's AWS clients against a server that accepts requests and never answers: each call
 * must fail on its own time limit, through the endpoint that AWS_ENDPOINT_URL_* names.
 */
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { DynamoDBClient, PutItemCommand } from "@aws-sdk/client-dynamodb";
import { EventBridgeClient, PutEventsCommand } from "@aws-sdk/client-eventbridge";
import { afterAll, beforeAll, describe, expect, it, vi } from "vitest";
import { AWS_MAX_ATTEMPTS, AWS_REQUEST_LIMITS } from "../../shared/adapters/aws-request-limits.js";

let server: Server;
let url: string;
const seen: string[] = [];

beforeAll(async () => {
  server = createServer((req) => {
    seen.push(String(req.headers["x-amz-target"] ?? req.url));
    // Never answers.
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
});

afterAll(async () => {
  vi.unstubAllEnvs();
  server.closeAllConnections();
  await new Promise((resolve) => server.close(resolve));
});

function stubAwsEnv() {
  vi.stubEnv("AWS_REGION", "eu-west-1");
  vi.stubEnv("AWS_ACCESS_KEY_ID", "test");
  vi.stubEnv("AWS_SECRET_ACCESS_KEY", "test");
  vi.stubEnv("AWS_ENDPOINT_URL_EVENTBRIDGE", url);
  vi.stubEnv("AWS_ENDPOINT_URL_DYNAMODB", url);
}

describe("the webhook's AWS request limits", () => {
  it("a hung PutEvents fails with TimeoutError after requestTimeout", async () => {
    stubAwsEnv();
    const client = new EventBridgeClient({ maxAttempts: 1, requestHandler: AWS_REQUEST_LIMITS });
    const started = Date.now();
    const call = client.send(
      new PutEventsCommand({ Entries: [{ Source: "s", DetailType: "d", Detail: "{}" }] }),
    );
    await expect(call).rejects.toMatchObject({ name: "TimeoutError" });
    const elapsed = Date.now() - started;
    expect(elapsed).toBeGreaterThanOrEqual(AWS_REQUEST_LIMITS.requestTimeout - 50);
    expect(elapsed).toBeLessThan(AWS_REQUEST_LIMITS.requestTimeout + 1_000);
    expect(seen).toContain("AWSEvents.PutEvents");
    client.destroy();
  });

  it("a hung DynamoDB call fails within its attempts' limits, well inside the 10 s function timeout", async () => {
    stubAwsEnv();
    const client = new DynamoDBClient({
      maxAttempts: AWS_MAX_ATTEMPTS,
      requestHandler: AWS_REQUEST_LIMITS,
    });
    const started = Date.now();
    const call = client.send(new PutItemCommand({ TableName: "t", Item: { pk: { S: "k" } } }));
    await expect(call).rejects.toMatchObject({ name: "TimeoutError" });
    const elapsed = Date.now() - started;
    expect(elapsed).toBeLessThan(AWS_MAX_ATTEMPTS * AWS_REQUEST_LIMITS.requestTimeout + 1_000);
    expect(seen.filter((target) => target === "DynamoDB_20120810.PutItem")).toHaveLength(AWS_MAX_ATTEMPTS);
    client.destroy();
  });
});
