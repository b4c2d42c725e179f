/**
 * How long job-credentials may wait on what it calls, kept well inside its 15 s Lambda timeout
 * (infra/function-specs.ts): between claiming the ID token's `jti:` key and releasing it on a failure
 * it makes 2 DynamoDB calls (claim, release), 1 STS AssumeRole and 5 Kubernetes calls (namespace and
 * Role reads, ServiceAccount and RoleBinding applies, the TokenRequest); before the claim, verifying
 * the ID token may fetch GitLab's signing keys (cold start, key rotation), within the same timeout. A Lambda timeout there skips
 * the release, and the job's retry is refused as `replayed` until the token expires; failing fast, the
 * key is released and the job may simply ask again. Checked by test/infra/function-budgets.test.ts.
 */
import { AWS_MAX_ATTEMPTS, AWS_REQUEST_LIMITS } from "../../shared/adapters/aws-request-limits.js";

export const JOB_CREDENTIALS_LIMITS = {
  // One attempt: five calls in a row, and the adapter's backoff honours a Retry-After of up to 5 s, so
  // any retry would take the budget. Each answers in tens of milliseconds when the API is healthy.
  cluster: { maxAttempts: 1, timeoutMs: 1_200 },
  // GitLab's JWKS, read once per cold start and on an unknown kid: one small JSON document.
  jwks: { timeoutMs: 1_500 },
  aws: { maxAttempts: AWS_MAX_ATTEMPTS, requestHandler: AWS_REQUEST_LIMITS },
  // The audit archive (published after the release, or once credentials are issued).
  publisher: { maxAttempts: 2 },
} as const;
