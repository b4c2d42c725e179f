/**
 * How long build-image may wait on what it calls, inside its 60 s Lambda timeout
 * (infra/function-specs.ts): the GitLab token (Secrets Manager, when its cache expired), kubler.yaml,
 * then its Kubernetes calls (the build Secrets, the Job's create, on a 409 its read, and for a failed
 * Job with waiters their report and the Job made again, rounds on a conflict), then Build Finished.
 * With the adapters' defaults kubler.yaml alone could take 55 s and each Kubernetes call as long:
 * killed between two calls, a failed Job's waiters could be marked and never told, or this request
 * left to 2 async retries. Right after a token rotation the kubler.yaml read, refused, reads the
 * secret again and sends once more. Checked by test/infra/function-budgets.test.ts:
 * 2.1 s token + 8.8 s kubler.yaml + 33 s Kubernetes + 2 × 3.55 s PutEvents = 51 s; 55 s rotated.
 */
import { AWS_CLIENT_LIMITS } from "../../shared/adapters/aws-request-limits.js";

export const BUILD_IMAGE_LIMITS = {
  // kubler.yaml answers in well under a second, and plan-steps read it just before (its limit too).
  gitlab: { maxAttempts: 2, timeoutMs: 1_900 },
  // A Secret, Job or Pod list answers in tens of milliseconds: 1.5 s is a hung attempt, sent again.
  cluster: { maxAttempts: 2, timeoutMs: 1_500, baseDelayMs: 100 },
  /**
   * All of an invocation's Kubernetes calls together (KubernetesCluster.withDeadline, from the first):
   * whatever their number (a replaced Job is up to a dozen), they end by then, and a call past it fails
   * at once, so the request is thrown back to the bus rather than killed mid-way.
   */
  kubernetesDeadlineMs: 33_000,
  aws: AWS_CLIENT_LIMITS,
  // EventBridgePublisher's default, each attempt bounded by the request limits.
  publisher: { maxAttempts: 4 },
  /**
   * How long after its start an invocation may still mark a failed build's waiters reported (their
   * report is a mark then a publish, and after a failed publish an unmark): past it the request is
   * thrown back to the bus and the next reconcile reports them. The mark, PutEvents and the unmark
   * (3 × 8 s + 3.55 s) must land before the Kubernetes deadline, past which they would fail at once.
   * Healthy, everything before the mark takes well under a second (a 3 s log read at most).
   */
  reportBudgetMs: 5_000,
  /** A failed build's log, read to report it: past this it is reported without it (reconcile's limit). */
  logReadMs: 3_000,
} as const;
