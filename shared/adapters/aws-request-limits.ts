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
