/**
 * Each function's worst case when every call it waits on hangs to its limit, from the limits its
 * handler builds its clients with (functions/<name>/limits.ts), against its Lambda timeout: a
 * function that outlives its own timeout cannot undo what it started (release a key, write a final
 * status). Sequential calls add up; retries add their waits.
 */
import { describe, expect, it } from "vitest";
import { BUILD_IMAGE_LIMITS } from "../../functions/build-image/limits.js";
import { DEPLOY_ENVIRONMENT_LIMITS } from "../../functions/deploy-environment/limits.js";
import { JOB_CREDENTIALS_LIMITS } from "../../functions/job-credentials/limits.js";
import { PLAN_STEPS_LIMITS } from "../../functions/plan-steps/limits.js";
import { RECONCILE_LIMITS } from "../../functions/reconcile/limits.js";
import { REPORT_STATUS_LIMITS } from "../../functions/report-status/limits.js";
import { FUNCTION_SPECS } from "../../infra/function-specs.js";
import type { FunctionName } from "../../shared/domain/catalog.js";
import { MAX_ROLLOUT_TIMEOUT_SECONDS } from "../../shared/domain/kubler-manifest.js";
import { FACT_LEASE_SECONDS } from "../../shared/services/plan-steps.js";

/** The GitLab and Kubernetes adapters cap one wait at 5 s, a `Retry-After` included (their MAX_DELAY_MS). */
const HTTP_ADAPTER_MAX_DELAY_MS = 5_000;
/** The SDK's standard retry waits at most 500 ms × 2^0 before its second attempt (throttling's base). */
const SDK_FIRST_RETRY_DELAY_MS = 500;
/** EventBridgePublisher: a 50 ms base doubling per retry, capped at 2 s. */
const publisherDelay = (retry: number) => Math.min(2_000, 50 * 2 ** (retry - 1));

/** A GitLab or Kubernetes call: every attempt times out, every wait is the longest allowed. */
function httpCall(limits: { maxAttempts: number; timeoutMs: number }): number {
  return limits.maxAttempts * limits.timeoutMs + (limits.maxAttempts - 1) * HTTP_ADAPTER_MAX_DELAY_MS;
}

/**
 * Kubernetes calls run inside `KubernetesCluster.withDeadline`: together they end by the deadline,
 * whatever their attempts and waits, except that a call outside them made between two of them (on the
 * same clock) can push the last ones past it by its own length: they then fail at once. The deadline
 * must also leave room for what it is for: a timed-out attempt and its retry after the longest backoff.
 */
function clusterWithin(
  limits: { maxAttempts: number; timeoutMs: number; baseDelayMs: number },
  deadlineMs: number,
): number {
  expect(limits.maxAttempts).toBeGreaterThan(1);
  const longestBackoff = limits.baseDelayMs * 2 ** (limits.maxAttempts - 2);
  expect(2 * limits.timeoutMs + longestBackoff).toBeLessThanOrEqual(deadlineMs);
  return deadlineMs;
}

/** An SDK call (DynamoDB, STS, Secrets Manager): `requestTimeout` bounds an attempt, connection included. */
function awsCall(limits: { maxAttempts: number; requestHandler: { requestTimeout: number } }): number {
  expect(limits.maxAttempts).toBeLessThanOrEqual(2); // SDK_FIRST_RETRY_DELAY_MS covers one retry only.
  return (
    limits.maxAttempts * limits.requestHandler.requestTimeout +
    (limits.maxAttempts - 1) * SDK_FIRST_RETRY_DELAY_MS
  );
}

/**
 * What a token rotation adds to a function's GitLab requests (GitlabApi after a 401, right after
 * GitLab's rotate API revoked the token sent): a refused request reads the secret again past its
 * cache and, given another token, sends once more at once, even past its last attempt. A refusal at
 * the last attempt, after a timed-out one and the longest wait, is the longest case: earlier, the
 * refused send is one of the attempts and the read replaces a wait. One rotation changes the token
 * once, so only one of the requests sends again; each may still spend a read on its own 401 (one
 * whose read failed keeps it, and the next request reads again). Requests sent together share one
 * read and one send's time: list them once.
 */
function afterRotation(
  requests: readonly { timeoutMs: number }[],
  aws: Parameters<typeof awsCall>[0],
): number {
  return requests.length * awsCall(aws) + Math.max(...requests.map((request) => request.timeoutMs));
}

/** PutEvents through EventBridgePublisher, over a client of one attempt. */
function publish(maxAttempts: number, requestHandler: { requestTimeout: number }): number {
  let total = maxAttempts * requestHandler.requestTimeout;
  for (let retry = 1; retry < maxAttempts; retry++) total += publisherDelay(retry);
  return total;
}

/** A schedule call through EventBridgeScheduler: its own attempts, a 100 ms base doubling, capped at 5 s. */
function schedule(maxAttempts: number, requestHandler: { requestTimeout: number }): number {
  let total = maxAttempts * requestHandler.requestTimeout;
  for (let retry = 1; retry < maxAttempts; retry++) total += Math.min(5_000, 100 * 2 ** (retry - 1));
  return total;
}

function timeoutMs(name: FunctionName): number {
  return FUNCTION_SPECS[name].timeout.toMilliseconds();
}

describe("the time each function may wait, against its Lambda timeout", () => {
  it("job-credentials releases a jti: key well before its timeout, whatever hangs", () => {
    const { cluster, kubernetesDeadlineMs, aws, jwks } = JOB_CREDENTIALS_LIMITS;
    // The JWKS fetch (before the claim, same invocation), then claim, namespace and Role reads,
    // AssumeRole, ServiceAccount and RoleBinding, TokenRequest, release. The five Kubernetes calls
    // share one deadline; the AssumeRole between them is counted on its own (clusterWithin).
    const worst =
      jwks.timeoutMs +
      awsCall(aws) +
      clusterWithin(cluster, kubernetesDeadlineMs) +
      awsCall(aws) +
      awsCall(aws);
    expect(worst).toBeLessThanOrEqual(timeoutMs("job-credentials") - 1_000);
    expect(aws.requestHandler).toMatchObject({ throwOnRequestTimeout: true });
  });

  it("plan-steps reads kubler.yaml and publishes inside its timeout, with time to spare", () => {
    const { gitlab, aws, publisher } = PLAN_STEPS_LIMITS;
    // Token, fact lease, kubler.yaml (at the commit and on the default branch together), stop record,
    // step claim, PutEvents, then a release, or the fact's confirmation and the undone steps' release
    // together.
    const worst =
      awsCall(aws) +
      awsCall(aws) +
      httpCall(gitlab) +
      awsCall(aws) +
      awsCall(aws) +
      publish(publisher.maxAttempts, aws.requestHandler) +
      awsCall(aws);
    expect(httpCall(gitlab)).toBeLessThan(timeoutMs("plan-steps") / 2);
    expect(worst).toBeLessThanOrEqual(timeoutMs("plan-steps") - 4_000);
    // Right after a rotation: both kubler.yaml reads are refused together, and read the secret once.
    const rotated = worst + afterRotation([gitlab], aws);
    expect(rotated).toBeLessThanOrEqual(timeoutMs("plan-steps") - 4_000);
    expect(aws.requestHandler).toMatchObject({ throwOnRequestTimeout: true });
  });

  it("plan-steps holds a fact's lease longer than any attempt on it can run", () => {
    // An attempt still running must not lose its fact to another delivery; one killed at the timeout
    // took its lease before then, and Lambda retries it a minute after: the retry must find it free.
    // https://docs.aws.amazon.com/lambda/latest/dg/invocation-async-error-handling.html
    const lambdaFirstRetryDelayMs = 60_000;
    expect(FACT_LEASE_SECONDS * 1000).toBeGreaterThanOrEqual(2 * timeoutMs("plan-steps"));
    expect(FACT_LEASE_SECONDS * 1000).toBeLessThanOrEqual(lambdaFirstRetryDelayMs);
  });

  it("report-status always has time left for the POST after the GET of the latest status", () => {
    const { latest, set, aws } = REPORT_STATUS_LIMITS;
    expect(latest.maxAttempts).toBe(1);
    expect(httpCall(latest)).toBeLessThanOrEqual(5_000);
    // Token, GET, POST.
    const worst = awsCall(aws) + httpCall(latest) + httpCall(set);
    expect(worst).toBeLessThanOrEqual(timeoutMs("report-status") - 4_000);
    // Right after a rotation: the GET's one attempt refused, the secret read, the GET sent again; or
    // the GET's read failed and the POST, refused at its last attempt, reads and sends a third time.
    const rotated = worst + afterRotation([latest, set], aws);
    expect(rotated).toBeLessThanOrEqual(timeoutMs("report-status") - 4_000);
    expect(set.maxAttempts).toBeGreaterThan(1);
  });

  it("build-image reads kubler.yaml, makes or replaces its Job and reports a failed one inside its timeout, whatever hangs", () => {
    const { gitlab, cluster, kubernetesDeadlineMs, aws, publisher, reportBudgetMs, logReadMs } =
      BUILD_IMAGE_LIMITS;
    const publishing = publish(publisher.maxAttempts, aws.requestHandler);
    // Token, kubler.yaml, then every Kubernetes call (Secrets, Job create, get, a failed Job's pods,
    // log, mark, TTL, delete, create again; rounds on a conflict) and the publishes between them under
    // one deadline. Past it every Kubernetes call fails at once, and each path to a publish (Build
    // Finished failed, a failed Job's report) goes through one: one PutEvents begun before it may end
    // after it.
    const worst = awsCall(aws) + httpCall(gitlab) + clusterWithin(cluster, kubernetesDeadlineMs) + publishing;
    expect(httpCall(gitlab)).toBeLessThan(timeoutMs("build-image") / 2);
    expect(worst).toBeLessThanOrEqual(timeoutMs("build-image") - 5_000);
    // Right after a rotation: the kubler.yaml read refused, the secret read again, sent once more.
    const rotated = worst + afterRotation([gitlab], aws);
    expect(rotated).toBeLessThanOrEqual(timeoutMs("build-image") - 5_000);
    // A failed Job's waiters are marked only before reportBudgetMs (from the start, so before the
    // deadline, which starts at the first Kubernetes call). A mark made then, PutEvents, and after a
    // failed PutEvents the unmark (a read and a write) land before the deadline, each Kubernetes call
    // answered within one attempt however slow the cluster: past the deadline the unmark would fail at
    // once, and those marked would never hear. PutEvents is not cut by it, and ends inside the timeout
    // (above), so none is killed marked and untold. (A cluster letting attempts time out may fail the
    // unmark by its attempts too: audited, and the request thrown back.)
    expect(reportBudgetMs + 3 * cluster.timeoutMs + publishing).toBeLessThanOrEqual(kubernetesDeadlineMs);
    // A real cluster's apply through admission webhooks takes seconds: an attempt is not cut at once.
    expect(cluster.timeoutMs).toBeGreaterThanOrEqual(8_000);
    // Its log is given up on in time to leave the rest of the budget to what comes before the mark.
    expect(logReadMs).toBeLessThan(reportBudgetMs);
    expect(aws.requestHandler).toMatchObject({ throwOnRequestTimeout: true });
  });

  it("deploy-environment ends inside its timeout whatever hangs, and its rollout and rollback each get their full wait on a slow cluster", () => {
    const { gitlab, cluster, kubernetesDeadlineMs, aws, publisher, scheduler, rolloutPollMs } =
      DEPLOY_ENVIRONMENT_LIMITS;
    const deadline = clusterWithin(cluster, kubernetesDeadlineMs);
    // Past the deadline every Kubernetes call fails at once; after the last one (the final namespace
    // write) come the expiry schedule (a create refused as existing, then an update, each attempt) and
    // Deploy Finished.
    const after =
      2 * schedule(scheduler.maxAttempts, aws.requestHandler) +
      publish(publisher.maxAttempts, aws.requestHandler);
    expect(deadline + after).toBeLessThanOrEqual(timeoutMs("deploy-environment") - 5_000);

    // GitLab's reads are not under the deadline: they must end before it, every one hanging, for a
    // directory of maxFiles YAML files (tree pages of 100), read `concurrency` at once, after the
    // namespace's resolution (a read and a list, cut by the deadline). With them the token, the stop
    // record and the pull secret, and after a rotation one read sent again.
    const filePages = Math.ceil(gitlab.maxFiles / 100);
    const fileRounds = Math.ceil(gitlab.maxFiles / gitlab.concurrency);
    const manifestsRead =
      (1 + filePages + fileRounds) * httpCall(gitlab) + 3 * awsCall(aws) + afterRotation([gitlab], aws);
    expect(2 * httpCall(cluster) + manifestsRead).toBeLessThanOrEqual(deadline);

    // Both waits get their full time when the cluster answers each call within one attempt, however
    // slowly, and GitLab each read within one attempt: a wait ends at the first read after its
    // deadline (one poll and one read more), and its applies are inside it. Outside the waits, for a
    // one-file deploy: the namespace's resolution (a read and a list) and its read before "deploying",
    // the read past each wait, the final write; kubler.yaml, the tree, the file; the token, the stop
    // record, the pull secret.
    const waits = 2 * (MAX_ROLLOUT_TIMEOUT_SECONDS * 1000 + rolloutPollMs);
    const rest = 6 * cluster.timeoutMs + 3 * gitlab.timeoutMs + 3 * aws.requestHandler.requestTimeout;
    expect(waits + rest).toBeLessThanOrEqual(deadline);
    // A real cluster's apply through admission webhooks (10 s by default each) is not cut at once.
    expect(cluster.timeoutMs).toBeGreaterThanOrEqual(10_000);
    expect(aws.requestHandler).toMatchObject({ throwOnRequestTimeout: true });
  });

  it("reconcile of builds stops taking up Jobs early enough for the one in flight to end inside its timeout, one cluster call retried", () => {
    const { cluster, buildsBudgetMs } = RECONCILE_LIMITS;
    // The budget counts from the handler's start; the Job taken up just before it is a few calls
    // well under a second each, one of which may time out and be retried after the longest wait.
    // Killed past the timeout, it may be marked reported and its Build Finished never published.
    expect(buildsBudgetMs + httpCall(cluster)).toBeLessThanOrEqual(timeoutMs("reconcile"));
    expect(buildsBudgetMs).toBeGreaterThan(0);
  });

  it("reconcile fails a stuck rollout inside its timeout, whatever hangs", () => {
    const { cluster, aws, publisher } = RECONCILE_LIMITS;
    // The namespace list, the read before publishing, PutEvents, the mark.
    const worst = 3 * httpCall(cluster) + publish(publisher.maxAttempts, aws.requestHandler);
    expect(worst).toBeLessThanOrEqual(timeoutMs("reconcile") - 5_000);
    expect(aws.requestHandler).toMatchObject({ throwOnRequestTimeout: true });
  });
});
