/**
 * How long deploy-environment may wait on what it calls, inside its 900 s Lambda timeout
 * (DEPLOY_FUNCTION_TIMEOUT_SECONDS). All of an invocation's Kubernetes calls share one deadline
 * (`kubernetesDeadlineMs`, from the first): past it a call fails at once and the request goes back to
 * the bus, audited, instead of Lambda killing it mid-deploy; the number of objects no longer matters.
 * What runs after the deadline (the expiry schedule and Deploy Finished) still fits the timeout.
 *
 * The rollout and its rollback are each waited for up to MAX_ROLLOUT_TIMEOUT_SECONDS (390 s, their
 * applies included: each deadline starts before its writes), and each wait may overrun by one poll and
 * one read: 784 s. The deadline leaves 101 s for the rest (the manifests read, the reads before the
 * "deploying" write, the read past each wait, the final write): a one-file deploy on a slow cluster
 * (each call one 10 s attempt) and a slow GitLab (5 s a read) needs 77.4 s of it, so both waits get
 * their full time. A deploy whose rest takes longer has its rollback's wait cut by the deadline: thrown
 * back to the bus, and reconcile fails the namespace past the deadline it shows.
 *
 * GitLab's reads (kubler.yaml, the manifests directory) are held to the same deadline by the service
 * (`withinDeadline`, through the cluster's `remainingMs`): a directory of up to `maxFiles` manifest files,
 * read `concurrency` at once, every read hanging to its limit, ends well before it (checked), and one
 * with thousands of other entries (50 tree pages at most), which would not, is cut at the deadline and
 * retried by the bus. Checked by test/infra/function-budgets.test.ts.
 */
import { AWS_CLIENT_LIMITS } from "../../shared/adapters/aws-request-limits.js";
import { DEFAULT_MAX_FILES } from "../../shared/adapters/gitlab-manifest-source.js";

export const DEPLOY_ENVIRONMENT_LIMITS = {
  // kubler.yaml, a tree page or a manifest file: a few seconds on a slow day, retried twice. Eight
  // files at once (the adapter's default is 4) keep a full directory's read to 25 rounds.
  gitlab: { maxAttempts: 3, timeoutMs: 5_000, concurrency: 8, maxFiles: DEFAULT_MAX_FILES },
  // A real cluster's: an apply through admission webhooks, or a large server-side apply, takes seconds
  // (a webhook's timeout is 10 s by default). The deadline, not the attempts, bounds the invocation.
  cluster: { maxAttempts: 3, timeoutMs: 10_000, baseDelayMs: 100 },
  /** All of an invocation's Kubernetes calls together (KubernetesCluster.withDeadline). */
  kubernetesDeadlineMs: 885_000,
  aws: AWS_CLIENT_LIMITS,
  // Deploy Finished: 3 attempts of 800 ms.
  publisher: { maxAttempts: 3 },
  // The expiry schedule's cancel, or its create and update: 3 attempts (the adapter's default is 5).
  scheduler: { maxAttempts: 3 },
  // The service's default poll between reads of a rollout.
  rolloutPollMs: 2_000,
} as const;
