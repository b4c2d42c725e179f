/**
 * How long deploy-environment may wait on what it calls, inside its 900 s Lambda timeout
 * (DEPLOY_FUNCTION_TIMEOUT_SECONDS): a rollout and its rollback are each waited for at most
 * MAX_ROLLOUT_TIMEOUT_SECONDS (390 s), and a wait ends at the first read after its deadline (one poll
 * and one read more). That leaves 120 s for the rest. With the adapters' defaults (4 × 10 s a call,
 * waits of up to 5 s between) the one read past a wait alone is 55 s, and the rest of a one-file
 * deploy 262 s: 1371 s in all. Checked by test/infra/function-budgets.test.ts (a deploy of one
 * manifest file and one object, right after a token rotation: 894.5 s). A deploy of many files or
 * objects, every call hanging to its limit, still does not fit: that needs a deadline inside
 * shared/services/deploy-environment.ts.
 */
import { AWS_CLIENT_LIMITS } from "../../shared/adapters/aws-request-limits.js";

export const DEPLOY_ENVIRONMENT_LIMITS = {
  // kubler.yaml, a tree page or a manifest file answers in well under a second.
  gitlab: { maxAttempts: 2, timeoutMs: 1_700 },
  // A namespace, Deployment or object apply answers in tens of milliseconds: 2 s is a hung attempt.
  cluster: { maxAttempts: 2, timeoutMs: 2_000, baseDelayMs: 100 },
  aws: AWS_CLIENT_LIMITS,
  // Deploy Finished: 3 attempts of 800 ms (the default 4 do not fit with the rest).
  publisher: { maxAttempts: 3 },
  // The expiry schedule's cancel and set: 3 attempts each (the adapter's default is 5).
  scheduler: { maxAttempts: 3 },
  // The service's default poll between reads of a rollout.
  rolloutPollMs: 2_000,
} as const;
