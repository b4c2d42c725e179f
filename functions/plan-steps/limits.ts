/**
 * How long plan-steps may wait on what it calls, inside its 30 s Lambda timeout
 * (infra/function-specs.ts), for a fact of one environment: the GitLab token (Secrets Manager, when
 * its cache expired), the fact's lease, kubler.yaml from GitLab (at the commit and on the default
 * branch, read at once: one call's time), a stop record, the step's claim,
 * PutEvents, then a release (on a failure) or the fact's confirmation alongside the undone steps'
 * release. A Lambda timeout there leaves the step claimed with nothing published, and the fact
 * leased until `FACT_LEASE_SECONDS` (shared/services/plan-steps.ts) end. Right after a token
 * rotation the kubler.yaml reads, refused, read the secret again and send once more, even past their
 * last attempt: that case sets GitLab's timeout. Checked by test/infra/function-budgets.test.ts.
 */
import { AWS_CLIENT_LIMITS } from "../../shared/adapters/aws-request-limits.js";

export const PLAN_STEPS_LIMITS = {
  // kubler.yaml answers in well under a second; the adapter's default (4 × 10 s, with waits of up to
  // 5 s between) alone outlasts the function.
  gitlab: { maxAttempts: 2, timeoutMs: 1_900 },
  aws: AWS_CLIENT_LIMITS,
  publisher: { maxAttempts: 3 },
} as const;
