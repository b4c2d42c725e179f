/**
 * Time limits for the AWS calls a Lambda waits on (DynamoDB, EventBridge, Scheduler, STS, Secrets
 * Manager). Without them a hung connection waits until Lambda kills the function, before it can undo
 * what it would undo on failure (a dedupe, `jti:` or plan key to release) or answer its caller. Each of those
 * calls answers in tens (STS: hundreds) of milliseconds when healthy. `requestTimeout` runs from the
 * request's creation, so it bounds the connection too: one attempt takes at most `requestTimeout`.
 * Passed as the client's `requestHandler` options, so the region and endpoint still come from
 * AWS_REGION and AWS_ENDPOINT_URL_*.
 *
 * The webhook's worst case stays inside its 10 s: a reservation (2 DynamoDB attempts) + PutEvents (the
 * publisher's 4 attempts, ≤ 350 ms of backoff) + a confirm or a release (2 attempts) ≈ 8 × 0.8 s +
 * 0.75 s of backoff ≈ 7.2 s. The other functions' budgets are in their `functions/<name>/limits.ts`,
 * checked against their Lambda timeouts by test/infra/function-budgets.test.ts.
 *
 * @example
 * new EventBridgeClient({ maxAttempts: 1, requestHandler: AWS_REQUEST_LIMITS });
 */
export const AWS_REQUEST_LIMITS = {
  connectionTimeout: 500,
  requestTimeout: 800,
  // Without it the SDK only logs a warning when requestTimeout passes, and keeps waiting.
  throwOnRequestTimeout: true,
} as const;

/** SDK attempts per call (the SDK's default is 3): a blip is retried once, within the budgets above. */
export const AWS_MAX_ATTEMPTS = 2;

/**
 * A Lambda's AWS client options for those calls: the time limits, a blip retried once. A client
 * whose adapter owns its retries (EventBridge, Scheduler) takes `requestHandler` alone.
 *
 * @example
 * new DynamoDBClient(AWS_CLIENT_LIMITS);
 */
export const AWS_CLIENT_LIMITS = {
  maxAttempts: AWS_MAX_ATTEMPTS,
  requestHandler: AWS_REQUEST_LIMITS,
} as const;
