/**
 * How long build-image may wait on what it calls, inside its 60 s Lambda timeout
 * (infra/function-specs.ts): the GitLab token (Secrets Manager, when its cache expired), kubler.yaml,
 * then its Kubernetes calls (the build Secrets, the Job's create, on a 409 its read, and for a failed
 * Job with waiters their report and the Job made again, rounds on a conflict), then Build Finished.
 * The Kubernetes calls share one deadline (`kubernetesDeadlineMs`): however many there are, and however
 * slow each, they end by then, and past it a call fails at once, so the request goes back to the bus
 * rather than Lambda killing it between two calls. Per call the limits are a real cluster's: an apply
 * through admission webhooks (Kyverno, Gatekeeper) takes seconds. Right after a token rotation the
 * kubler.yaml read, refused, reads the secret again and sends once more. Checked by
 * test/infra/function-budgets.test.ts: 2.1 s token + 11 s kubler.yaml + 33 s Kubernetes + 3.55 s
 * PutEvents = 49.65 s; 54.75 s rotated, of the 55 s left after a 5 s margin.
 *
 * 60 s is what bounds these: 10 s attempts (above a webhook's default 10 s timeout) and 3 × 5 s for
 * kubler.yaml would need a timeout of about 82 s (2.1 + 25 + 7.1 s before a 39 s deadline, the report below at 10 s a
 * call, then 3.55 s and the margin): 90 s would do.
 */
import { AWS_CLIENT_LIMITS } from "../../shared/adapters/aws-request-limits.js";

export const BUILD_IMAGE_LIMITS = {
  // kubler.yaml: plan-steps read the same file moments before. A read of a slow day (a few seconds)
  // passes; more would leave the Kubernetes deadline too short for the report below.
  gitlab: { maxAttempts: 2, timeoutMs: 3_000 },
  // An attempt of 8 s lets a Job create or a mark through a slow admission webhook; the deadline, not
  // the attempts, bounds the invocation, so a third attempt costs nothing when time is short.
  cluster: { maxAttempts: 3, timeoutMs: 8_000, baseDelayMs: 100 },
  /**
   * All of an invocation's Kubernetes calls together (KubernetesCluster.withDeadline, from the first):
   * whatever their number (a replaced Job is up to a dozen), they end by then, and a call past it fails
   * at once, so the request is thrown back to the bus rather than killed mid-way. Past it at most one
   * PutEvents (begun before it) still runs: every path to a publish goes through a Kubernetes call.
   */
  kubernetesDeadlineMs: 33_000,
  aws: AWS_CLIENT_LIMITS,
  // EventBridgePublisher's default, each attempt bounded by the request limits.
  publisher: { maxAttempts: 4 },
  /**
   * How long after its start an invocation may still mark a failed build's waiters reported (their
   * report is a mark then a publish, and after a failed publish an unmark, a read and a write): past it
   * the request is thrown back to the bus and the next reconcile reports them. A mark made at this
   * limit, PutEvents and the unmark, each Kubernetes call answered within one attempt (8 s, however
   * slow the cluster), land before the Kubernetes deadline: 5 + 3 × 8 + 3.55 = 32.55 s ≤ 33 s. The
   * PutEvents is not cut by the deadline, and the deadline plus it ends inside the timeout, so those
   * marked are told, or unmarked, and never killed in between. Healthy, everything before the mark
   * takes well under a second (a 3 s log read at most).
   */
  reportBudgetMs: 5_000,
  /** A failed build's log, read to report it: past this it is reported without it (reconcile's limit). */
  logReadMs: 3_000,
} as const;
