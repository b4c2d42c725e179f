/**
 * How long job-credentials may wait on what it calls, kept well inside its 15 s Lambda timeout
 * (infra/function-specs.ts): between claiming the ID token's `jti:` key and releasing it on a failure
 * it makes 2 DynamoDB calls (claim, release), 1 STS AssumeRole and 5 Kubernetes calls (namespace and
 * Role reads, ServiceAccount and RoleBinding applies, the TokenRequest); before the claim, verifying
 * the ID token may fetch GitLab's signing keys (cold start, key rotation), within the same timeout. A Lambda timeout there skips
 * the release, and the job's retry is refused as `replayed` until the token expires; failing fast, the
 * key is released and the job may simply ask again. Checked by test/infra/function-budgets.test.ts.
 *
 * The five Kubernetes calls share one deadline (`kubernetesDeadlineMs`, from the first of them:
 * KubernetesCluster.withDeadline), so each may retry a blip (a reset, a 429 or 5xx, a slow answer)
 * while time is left, and together they still end within it: an attempt is cut to the time left,
 * and a call made once it has passed fails at once. AssumeRole runs between the reads and the
 * applies, on the same clock: the window is at most the deadline plus AssumeRole's own limit. Worst case:
 * JWKS 1.5 s + claim 2.1 s + Kubernetes 5 s + AssumeRole 2.1 s + release 2.1 s = 12.8 s (it was 13.8 s
 * with five single attempts of 1.2 s and no retry at all).
 */
import { AWS_CLIENT_LIMITS } from "../../shared/adapters/aws-request-limits.js";

export const JOB_CREDENTIALS_LIMITS = {
  // Each call answers in tens of milliseconds when the API is healthy: an attempt that takes 1.2 s
  // has hung, and is better sent again. Backoff is full jitter under 100 ms, then 200 ms; a retry is
  // made only when its wait and a whole attempt fit before the deadline (a longer Retry-After: none).
  cluster: { maxAttempts: 3, timeoutMs: 1_200, baseDelayMs: 100 },
  kubernetesDeadlineMs: 5_000,
  // GitLab's JWKS, read once per cold start and on an unknown kid: one small JSON document.
  jwks: { timeoutMs: 1_500 },
  aws: AWS_CLIENT_LIMITS,
  // The audit archive (published after the release, or once credentials are issued).
  publisher: { maxAttempts: 2 },
} as const;
