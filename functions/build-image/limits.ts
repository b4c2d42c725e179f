/**
 * How long build-image may run before it reports a failed build to the environments still waiting
 * on it (a new request for its commit replaces it): their report is a mark then a publish, and an
 * invocation killed between the two (Lambda's 60 s timeout, infra/function-specs.ts) loses their
 * Build Finished for good. Past it, the request is thrown back to the bus and the next reconcile
 * reports them. Its client keeps the Kubernetes adapter's defaults (10 s an attempt, at most 5 s
 * between): the mark, one attempt timed out and retried, and PutEvents still end inside the timeout.
 * Checked by test/integration/build-waiters-never-lost.test.ts.
 */
export const BUILD_IMAGE_LIMITS = {
  reportBudgetMs: 30_000,
  /** A failed build's log, read to report it: past this it is reported without it (reconcile's limit). */
  logReadMs: 3_000,
} as const;
