/**
 * How long reconcile may wait on one call, inside its 55 s Lambda timeout (infra/function-specs.ts):
 * a stuck rollout is a namespace list, a read, a PutEvents and a mark. The Kubernetes adapter's
 * default (4 × 10 s, with waits of up to 5 s between) is the whole timeout for a single call.
 * Checked by test/infra/function-budgets.test.ts.
 */
import { AWS_REQUEST_LIMITS } from "../../shared/adapters/aws-request-limits.js";

export const RECONCILE_LIMITS = {
  cluster: { maxAttempts: 2, timeoutMs: 4_000 },
  aws: { requestHandler: AWS_REQUEST_LIMITS },
  // The publisher's default attempts (4), each bounded by the request limits.
  publisher: { maxAttempts: 4 },
  /**
   * How long reconcile of builds takes up finished Jobs (it stops before the next one after this): the
   * Job then in flight (well under a second; a call timed out and retried, 2 × 4 s and a wait)
   * still ends inside the timeout, not killed between its mark and its publish.
   */
  buildsBudgetMs: 40_000,
  /**
   * How long a failed build's log may take to read (well under a second when its node answers):
   * past it the build is reported without it, so a pod on an unreachable node costs a run this,
   * once, rather than a call timed out and retried (13 s) every run, the build never reported.
   */
  logReadMs: 3_000,
} as const;
