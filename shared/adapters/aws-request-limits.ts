/**
 * Time limits for the AWS calls a webhook delivery waits on (DynamoDB, EventBridge). Without them a
 * hung connection waits until Lambda kills the function at its 10 s timeout, before the use case can
 * release its dedupe key or answer GitLab. With them the worst case stays inside 10 s: a reservation
 * (2 DynamoDB attempts) + PutEvents (the publisher's 4 attempts, ≤ 350 ms of backoff) + a confirm or a
 * release (2 attempts) ≈ 8 × 0.8 s + 0.75 s of backoff ≈ 7.2 s. Either call answers in tens of
 * milliseconds when healthy. Passed as the client's `requestHandler` options, so the region and
 * endpoint still come from AWS_REGION and AWS_ENDPOINT_URL_*.
 *
 * @example
 * new EventBridgeClient({ maxAttempts: 1, requestHandler: WEBHOOK_AWS_REQUEST_LIMITS });
 */
export const WEBHOOK_AWS_REQUEST_LIMITS = {
  connectionTimeout: 500,
  requestTimeout: 800,
  // Without it the SDK only logs a warning when requestTimeout passes, and keeps waiting.
  throwOnRequestTimeout: true,
} as const;

/** DynamoDB attempts per call from the webhook (the SDK's default is 3): see the budget above. */
export const WEBHOOK_DYNAMODB_MAX_ATTEMPTS = 2;

/**
 * Time limits for the AWS calls of the functions the bus, the schedule or a CI job invoke
 * (job-credentials, plan-steps, report-status, reconcile): DynamoDB, EventBridge, STS, Secrets
 * Manager. Without them a hung connection waits until Lambda kills the function, and the work it
 * would undo on failure (a `jti:` or plan key to release) is left as it was. Each of those calls
 * answers in tens (STS: hundreds) of milliseconds when healthy. `requestTimeout` runs from the
 * request's creation, so it bounds the connection too: one attempt takes at most `requestTimeout`.
 * Each function's whole budget is in its `functions/<name>/limits.ts`, checked against its Lambda
 * timeout by test/infra/function-budgets.test.ts.
 *
 * @example
 * new DynamoDBClient({ maxAttempts: STEP_AWS_MAX_ATTEMPTS, requestHandler: STEP_AWS_REQUEST_LIMITS });
 */
export const STEP_AWS_REQUEST_LIMITS = {
  connectionTimeout: 500,
  requestTimeout: 800,
  throwOnRequestTimeout: true,
} as const;

/** SDK attempts per call (DynamoDB, STS, Secrets Manager) for those functions: a blip is retried once. */
export const STEP_AWS_MAX_ATTEMPTS = 2;
