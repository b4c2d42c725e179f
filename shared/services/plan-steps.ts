/**
 * The plan-steps use case (DESIGN §4 "Plan"): a GitLab fact from the bus, the project's `kubler.yaml`
 * at the fact's commit under the environment rules of the one on its default branch, the pure
 * decision, and the steps published once. Every decision is audited, ignored ones included; a bad
 * `kubler.yaml` is an audited failure, never a crash or a retry.
 */

import type { AuditOutcome } from "../domain/audit.js";
import { type GitlabRef, validateBusDetail } from "../domain/catalog.js";
import {
  type KublerManifest,
  MANIFEST_FILE,
  ManifestError,
  parseKublerManifest,
} from "../domain/kubler-manifest.js";
import {
  environmentStopKey,
  type GitlabFact,
  isRefusedByStop,
  leadsOnlyToStops,
  type MergeRequestState,
  mergeRequestEnded,
  mergeRequestStateKey,
  type Plan,
  type PlannedStep,
  planSteps,
  STEPS_UNDONE_BY,
  stepKey,
  triageFact,
  withDefaultBranchRules,
} from "../domain/plan-steps.js";
import { InvalidDetailError, messageOf, UnavailableError } from "../errors.js";
import type {
  AuditLog,
  Clock,
  DedupeStore,
  EnvironmentStops,
  EventPublisher,
  ManifestSource,
  Reservation,
} from "../ports.js";
import { createStepAudit } from "./step-audit.js";

const FN = "plan-steps";
/**
 * A fact is one delivery (its correlation id is GitLab's Idempotency-Key or the ingress's own UUID):
 * remembered as long as EventBridge may redeliver it (24 h retries) with room to spare, like the ingress.
 */
export const FACT_TTL_SECONDS = 3 * 86_400;
/**
 * How long an attempt holds its fact's key while it plans, before the key is confirmed for
 * `FACT_TTL_SECONDS` (or released on a failure). Twice plan-steps' 30 s Lambda timeout
 * (infra/function-specs.ts), so another delivery of the fact never takes the key from an attempt still
 * running; no longer than the minute Lambda waits before retrying an attempt it killed (which took
 * its lease before the timeout), so that retry finds the key free, not 3 days of "already planned".
 * https://docs.aws.amazon.com/lambda/latest/dg/invocation-async-error-handling.html
 */
export const FACT_LEASE_SECONDS = 60;
/**
 * GitLab's second delivery of one change (two MR events for one push, an old instance resending)
 * arrives within seconds or minutes. Held longer, a deliberate rebuild of the same commit (reopen
 * after an expiry) would be swallowed; the steps themselves are idempotent beyond this window.
 */
export const STEP_TTL_SECONDS = 3_600;
/**
 * How long a stop refuses what GitLab sent before it, counted from the stop's GitLab time (the stores
 * count from the fact, not the write): longer than a build runs plus EventBridge's 24 h of retries,
 * with room for a dead letter redriven by hand. Only what was sent before the stop is refused, so a
 * fact this old is all it has to outlast.
 */
export const STOP_RECORD_TTL_SECONDS = 7 * 86_400;
/**
 * How long a merge, close or reopen is remembered: for good (null). These refuse a merge request's
 * pipelines and updates whatever their time, so any expiry would let a closed or merged MR's
 * pipeline that runs later (retried, or held back in GitLab's queue) deploy its environment again,
 * and an environment may live forever (`ttl: never`). A close is undone only by a later reopen, which
 * must then be remembered as long. Three small items at most per merge request, never deleted.
 */
const MERGE_REQUEST_RECORD_TTL_SECONDS = null;
/**
 * The longest key a step or stop is remembered under: DynamoDB's partition key limit (the dedupe
 * table's). A longer one is refused there (ValidationException) at every retry, though not by the
 * memory stores. https://docs.aws.amazon.com/amazondynamodb/latest/developerguide/Constraints.html
 */
const MAX_KEY_BYTES = 2048;

export interface PlanStepsDeps {
  /** Its default branch's kubler.yaml too: where the environment rules come from. */
  manifests: ManifestSource & Required<Pick<ManifestSource, "readDefaultBranchManifest">>;
  publisher: EventPublisher;
  dedupe: DedupeStore;
  stops: EnvironmentStops;
  audit: AuditLog;
  clock: Clock;
}

export type PlanOutcome =
  | { kind: "published"; steps: PlannedStep[]; duplicates: PlannedStep[]; reason: string }
  | { kind: "ignored"; reason: string }
  | { kind: "failed"; reason: string };

/**
 * `factAt` is the fact's envelope time (when the ingress published it): the order GitLab sent its
 * events in, carried on every step so the deploy and a stop compare facts, not their own event times.
 *
 * @example
 * const outcome = await planStepsFor(deps, { detailType: "Merge Request", detail }, envelopeTime);
 * // { kind: "published", steps: [{ entry: { detailType: "Build Requested", … } }], duplicates: [], reason }
 */
export async function planStepsFor(
  deps: PlanStepsDeps,
  fact: GitlabFact,
  factAt: Date | null = null,
): Promise<PlanOutcome> {
  const { detail } = fact;
  const audit = createStepAudit(deps, { fn: FN, action: "plan.steps", trigger: fact.detailType, detail });

  const triage = triageFact(fact);
  if (triage.kind === "ignored") {
    audit("ignored", triage.reason);
    return triage;
  }
  const factKey = `plan/fact/${fact.detailType}/${detail.correlationId}`;
  const { sha } = triage;
  let reservation: Reservation;
  try {
    reservation = await deps.dedupe.reserve(factKey, FACT_LEASE_SECONDS);
  } catch (error) {
    audit(
      "failure",
      `could not claim ${fact.detailType} ${detail.correlationId}: ${messageOf(error)}; will retry`,
      { sha },
    );
    throw audited(error);
  }
  if (reservation === "duplicate") {
    const reason = `duplicate delivery of ${fact.detailType} ${detail.correlationId}: already planned`;
    audit("ignored", reason, { sha });
    return { kind: "ignored", reason };
  }
  if (reservation === "in-flight") {
    // Another attempt on this fact is still running and may yet fail: taking this one for a
    // duplicate would then lose the fact. The bus's retry finds it planned, or free again.
    const reason = `${fact.detailType} ${detail.correlationId} is being planned by another attempt`;
    audit("failure", `${reason}; will retry`, { sha });
    throw audited(new UnavailableError(reason));
  }
  // The fact's key is leased from here: a decision (steps, ignored, a bad kubler.yaml) confirms it
  // with its audit line; a failure that a retry may get past releases it (`releaseForRetry`).
  const decide = async (outcome: AuditOutcome, reason: string, subject: Record<string, unknown>) =>
    audit(outcome, reason + (await confirmFact(deps, factKey)), subject);

  // A close, merge or reopen is remembered whatever the decision (a reopen plans nothing without an
  // image, or at a commit whose kubler.yaml is bad): the MR's later pipelines and updates are judged
  // by it. Never rejects: a failure is returned, for the attempt to be retried.
  const remember = () =>
    rememberMergeRequestState(deps, fact, factAt).then(
      () => null,
      (error: unknown) => ({ error }),
    );
  const retryUnremembered = async (failure: { error: unknown }, claimed: readonly string[] = []) => {
    const retry = await releaseForRetry(deps, factKey, claimed);
    const what = `the merge request's ${fact.detailType === "Merge Request" ? fact.detail.action : null}`;
    audit("failure", `could not record ${what}: ${messageOf(failure.error)}; ${retry}`, { sha });
    return audited(failure.error);
  };
  const decideRemembered = async (
    outcome: AuditOutcome,
    reason: string,
    subject: Record<string, unknown>,
  ): Promise<void> => {
    const failure = await remember();
    if (failure) throw await retryUnremembered(failure);
    await decide(outcome, reason, subject);
  };

  let plan: Plan;
  try {
    const manifest = await readManifest(deps, fact, sha);
    plan =
      manifest.kind === "ignored"
        ? manifest
        : planSteps(fact, manifest.manifest, factAt?.toISOString() ?? null);
  } catch (error) {
    if (error instanceof ManifestError) {
      // The project's mistake, not ours: retrying cannot fix it, so it is final (and confirmed).
      const where = error instanceof DefaultBranchManifestError ? { ref: "default branch" } : {};
      await decideRemembered("failure", error.message, { sha, file: MANIFEST_FILE, ...where });
      return { kind: "failed", reason: error.message };
    }
    const retry = await releaseForRetry(deps, factKey);
    audit("failure", `could not read ${MANIFEST_FILE} at ${sha}: ${messageOf(error)}; ${retry}`, { sha });
    throw audited(error);
  }
  if (plan.kind === "ignored") {
    await decideRemembered("ignored", plan.reason, { sha });
    return plan;
  }
  const tooLarge = oversizeStep(plan);
  if (tooLarge !== null) {
    // Final, like a bad kubler.yaml: the bus's retries would meet the same limit for a day, then
    // dead-letter it.
    await decideRemembered("failure", tooLarge, { sha });
    return { kind: "failed", reason: tooLarge };
  }
  try {
    plan = await heedStops(deps, plan, factAt, heedsMergeRequestEnd(fact), stopJobPipeline(fact));
  } catch (error) {
    const retry = await releaseForRetry(deps, factKey);
    audit("failure", `could not check or record a stop: ${messageOf(error)}; ${retry}`, { sha });
    throw audited(error);
  }
  if (plan.kind === "ignored") {
    await decideRemembered("ignored", plan.reason, { sha });
    return plan;
  }

  const fresh: PlannedStep[] = [];
  const duplicates: PlannedStep[] = [];
  const claimed: string[] = [];
  // Alongside the claims, after the stop's own record: one call's time in the function's budget
  // (functions/plan-steps/limits.ts); before the steps go out, so its failure can still be retried.
  const remembering = remember();
  try {
    for (const step of plan.steps) {
      const key = keyOf(step);
      if (await deps.dedupe.claim(key, STEP_TTL_SECONDS)) {
        claimed.push(key);
        fresh.push(step);
      } else {
        duplicates.push(step);
      }
    }
  } catch (error) {
    await remembering;
    const retry = await releaseForRetry(deps, factKey, claimed);
    audit("failure", `publishing ${describe(plan.steps)} failed: ${messageOf(error)}; ${retry}`);
    throw audited(error);
  }
  const unremembered = await remembering;
  if (unremembered) throw await retryUnremembered(unremembered, claimed);
  try {
    if (fresh.length > 0) await deps.publisher.publish(fresh.map((step) => step.entry));
  } catch (error) {
    // Unclaim everything, so EventBridge's retry of this fact plans it again in full.
    const retry = await releaseForRetry(deps, factKey, claimed);
    audit("failure", `publishing ${describe(plan.steps)} failed: ${messageOf(error)}; ${retry}`);
    throw audited(error);
  }

  const subject = {
    sha,
    environments: [...new Set(plan.steps.map((s) => s.entry.detail.environment))],
    steps: fresh.map((s) => s.entry.detailType),
  };
  if (fresh.length === 0) {
    const reason = `duplicate: ${describe(duplicates)} already planned (${plan.reason})`;
    await decide("ignored", reason, subject);
    return { kind: "ignored", reason };
  }
  // The steps are out: neither call may turn this attempt into a retry (which would find the fact
  // planned and audit it as a duplicate). Run together, as the time budget has room for one call here
  // (functions/plan-steps/limits.ts).
  const [unconfirmed, unreleased] = await Promise.all([
    confirmFact(deps, factKey),
    releaseUndoneSteps(deps, fresh),
  ]);
  audit(
    "success",
    (duplicates.length > 0 ? `${plan.reason}; ${describe(duplicates)} already planned` : plan.reason) +
      unconfirmed,
    subject,
  );
  if (unreleased) audit("failure", unreleased.reason, { unreleased: unreleased.keys });
  return { kind: "published", steps: fresh, duplicates, reason: plan.reason };
}

/**
 * Makes the fact's decision final for `FACT_TTL_SECONDS`; never throws, as the decision stands (its
 * steps may be out). Says, for the decision's audit line, what a key left leased means.
 */
async function confirmFact(deps: Pick<PlanStepsDeps, "dedupe">, factKey: string): Promise<string> {
  try {
    await deps.dedupe.confirm(factKey, FACT_TTL_SECONDS);
    return "";
  } catch (error) {
    return (
      `; its claim could not be confirmed (${messageOf(error)}): a redelivery after ` +
      `${FACT_LEASE_SECONDS} s plans it again`
    );
  }
}

/**
 * Releases the fact's lease and the step keys a failed attempt claimed, so the bus's retry plans the
 * fact again; never throws. Says what the retry will find, for the attempt's one audit line: a fact
 * left leased is planned once the lease ends; a step left claimed is taken for "already planned"
 * (DESIGN §12 prefers that to a double).
 */
async function releaseForRetry(
  deps: Pick<PlanStepsDeps, "dedupe">,
  factKey: string,
  stepKeys: readonly string[] = [],
): Promise<string> {
  const [fact, ...steps] = await Promise.allSettled(
    [factKey, ...stepKeys].map((key) => deps.dedupe.release(key)),
  );
  const step = steps.find((result) => result.status === "rejected");
  if (step) {
    return `and could not release its claim (${messageOf(step.reason)}): a retry will find it already planned`;
  }
  if (fact?.status === "rejected") {
    return `and could not release its claim (${messageOf(fact.reason)}): a retry plans it once its ${FACT_LEASE_SECONDS} s lease ends`;
  }
  return "will retry";
}

/**
 * Errors `planStepsFor` audited before throwing them back for the bus to retry: the consumer's
 * catch-all (`auditFailedAttempt`) skips them, so each failed attempt has one line.
 */
const AUDITED = new WeakSet<object>();

function audited(error: unknown): unknown {
  if (typeof error === "object" && error !== null) AUDITED.add(error);
  return error;
}

/**
 * True when `planStepsFor` already wrote the failure line of this error.
 *
 * @example
 * catch (error) { if (!isAuditedPlanFailure(error)) auditFailedAttempt(deps, …, error); throw error; }
 */
export function isAuditedPlanFailure(error: unknown): boolean {
  return typeof error === "object" && error !== null && AUDITED.has(error);
}

/**
 * A stop makes the next build of the same commit a new step again (close, then reopen), and back;
 * a push from A to B makes the next one from B to A new again.
 * Best effort, never throws: a key left claimed expires after `STEP_TTL_SECONDS`; until then the
 * undone step counts as a duplicate, which the caller audits with the keys and reason returned.
 */
async function releaseUndoneSteps(
  deps: Pick<PlanStepsDeps, "dedupe">,
  fresh: readonly PlannedStep[],
): Promise<{ reason: string; keys: (string | undefined)[] } | null> {
  const keys = fresh.flatMap(undoneKeys);
  const results = await Promise.allSettled(keys.map((key) => deps.dedupe.release(key)));
  const failed = results.flatMap((result, index) =>
    result.status === "rejected" ? [{ key: keys[index], error: result.reason as unknown }] : [],
  );
  const first = failed[0];
  if (!first) return null;
  return {
    reason:
      `published, but could not release ${failed.length} undone step key(s) (${messageOf(first.error)}): ` +
      `the same step within ${STEP_TTL_SECONDS / 60} min is taken for a duplicate`,
    keys: failed.map((f) => f.key),
  };
}

/** The keys of the steps a step undoes (`releaseUndoneSteps`). */
function undoneKeys(step: PlannedStep): string[] {
  const { detailType, detail } = step.entry;
  const undone = STEPS_UNDONE_BY[detailType].map((type) =>
    stepKey(type, detail.gitlab, detail.environment, step.sha),
  );
  // A push from A to B undoes one from B to A (a force push back and forth): the next push from B
  // back to A is a new change, not a second delivery of the first.
  const previousSha = "previousSha" in detail ? detail.previousSha : null;
  return previousSha
    ? [...undone, stepKey(detailType, detail.gitlab, detail.environment, previousSha, step.sha)]
    : undone;
}

/**
 * Records the plan's stops, and drops the builds and deploys GitLab asked for before the last stop of
 * their environment: a late delivery of an MR update after its merge must not bring the environment
 * back. A fact without a time (published before times were carried) cannot be ordered and goes ahead.
 * A merge request's builds and deploys are also dropped once it was merged, or closed and not
 * reopened, whatever their time: facts reach Kubler in the order GitLab's queue sends them, not the
 * order they happened in.
 */
async function heedStops(
  deps: PlanStepsDeps,
  plan: Plan & { kind: "steps" },
  factAt: Date | null,
  heedEnd: boolean,
  stoppedByPipeline: number | null,
): Promise<Plan> {
  const kept: PlannedStep[] = [];
  const refused: string[] = [];
  for (const step of plan.steps) {
    const { gitlab, environment } = step.entry.detail;
    const key = environmentStopKey(gitlab, environment);
    if (step.entry.detailType === "Environment Stop Requested") {
      const at = factAt ?? deps.clock.now();
      // Recorded before the stop is published, so a deploy racing it already finds it. Together:
      // one call's time in the function's budget (functions/plan-steps/limits.ts).
      await Promise.all([
        deps.stops.record(key, at, STOP_RECORD_TTL_SECONDS),
        stoppedByPipeline !== null &&
          deps.stops.record(
            pipelineStopKey(gitlab, environment, stoppedByPipeline),
            at,
            STOP_RECORD_TTL_SECONDS,
          ),
      ]);
      kept.push(step);
      continue;
    }
    const { mrIid } = step.entry.detail;
    const pipelineId = step.entry.detailType === "Deploy Requested" ? step.entry.detail.pipelineId : null;
    const stateAt = (state: MergeRequestState) =>
      heedEnd && mrIid !== null ? deps.stops.stoppedAt(mergeRequestStateKey(gitlab, mrIid, state)) : null;
    // Read together: one call's time in the function's budget (functions/plan-steps/limits.ts).
    const [stoppedAt, stoppedByItsJob, merged, closed, reopened] = await Promise.all([
      factAt && deps.stops.stoppedAt(key),
      pipelineId !== null ? deps.stops.stoppedAt(pipelineStopKey(gitlab, environment, pipelineId)) : null,
      stateAt("merged"),
      stateAt("closed"),
      stateAt("reopened"),
    ]);
    const ended = mrIid === null ? null : mergeRequestEnded(mrIid, { merged, closed, reopened });
    if (factAt && stoppedAt && isRefusedByStop(factAt, stoppedAt)) {
      refused.push(
        `${environment} was stopped by a later event (${stoppedAt.toISOString()}) than this one (${factAt.toISOString()})`,
      );
    } else if (stoppedByItsJob) {
      refused.push(
        `${environment} was stopped by a stop job of pipeline ${pipelineId} (${stoppedByItsJob.toISOString()}), ` +
          "whose success GitLab sends again once that job ran: run a new pipeline to deploy it again",
      );
    } else if (ended) {
      refused.push(`${ended}: nothing is built or deployed for it`);
    } else {
      kept.push(step);
    }
  }
  if (kept.length === 0) return { kind: "ignored", reason: `${plan.reason}; refused: ${refused.join("; ")}` };
  return { ...plan, steps: kept };
}

/**
 * Why a planned step cannot go on the bus (over EventBridge's detail limit: a branch name of several
 * KB, which the step carries twice, as environment and ref) or be remembered (a key over
 * `MAX_KEY_BYTES`: a branch name of 2 KB), or null when every step can.
 */
function oversizeStep(plan: Plan & { kind: "steps" }): string | null {
  for (const step of plan.steps) {
    const { entry } = step;
    try {
      validateBusDetail(entry.detailType, entry.detail);
    } catch (error) {
      if (!(error instanceof InvalidDetailError)) throw error;
      return `${error.message}: a branch, tag or environment name in it is too long to deploy`;
    }
    const { gitlab, environment } = entry.detail;
    const keys = [keyOf(step), environmentStopKey(gitlab, environment), ...undoneKeys(step)];
    const bytes = Math.max(...keys.map((key) => Buffer.byteLength(key)));
    if (bytes > MAX_KEY_BYTES) {
      return (
        `"${entry.detailType}" is remembered under a key of ${bytes} bytes, over the ${MAX_KEY_BYTES}-byte ` +
        "limit of the table that remembers steps: a branch, tag or environment name in it is too long to deploy"
      );
    }
  }
  return null;
}

/**
 * The pipeline of a stop job (null: another fact). The job runs in the pipeline that deployed the
 * environment (a manual `action: stop` job, or GitLab's `on_stop` after the branch's deletion), so
 * that pipeline goes running and then success again, and its success reaches Kubler after the stop:
 * by time alone it would deploy what was just stopped.
 */
function stopJobPipeline(fact: GitlabFact): number | null {
  return fact.detailType === "Job" ? fact.detail.pipelineId : null;
}

/**
 * Where a stop by a stop job of a pipeline is remembered, beside the environment's stop record: under
 * its own prefix and with the id before the name, so it is never the stop key of another environment
 * (a name may hold `/pipeline/40`).
 */
function pipelineStopKey(gitlab: GitlabRef, environment: string, pipelineId: number): string {
  return `plan/stop-job/${gitlab.instance}/${gitlab.projectId}/${pipelineId}/${environment}`;
}

/** Records a merge, close or reopen by the MR's iid (`mergeRequestStateKey`); nothing for other facts. */
async function rememberMergeRequestState(
  deps: PlanStepsDeps,
  fact: GitlabFact,
  factAt: Date | null,
): Promise<void> {
  if (fact.detailType !== "Merge Request") return;
  const state = MERGE_REQUEST_STATES.get(fact.detail.action ?? "");
  if (state === undefined) return;
  const key = mergeRequestStateKey(fact.detail.gitlab, fact.detail.iid, state);
  await deps.stops.record(key, factAt ?? deps.clock.now(), MERGE_REQUEST_RECORD_TTL_SECONDS);
}

const MERGE_REQUEST_STATES: ReadonlyMap<string, MergeRequestState> = new Map([
  ["merge", "merged"],
  ["close", "closed"],
  ["reopen", "reopened"],
]);

/**
 * Whether a fact's builds and deploys are refused once their merge request was merged or closed: all
 * but an open or reopen, which is GitLab saying the MR is open, while a pipeline or an update may be
 * late news from before the merge or close.
 */
function heedsMergeRequestEnd(fact: GitlabFact): boolean {
  return !(
    fact.detailType === "Merge Request" &&
    (fact.detail.action === "open" || fact.detail.action === "reopen")
  );
}

/** A `kubler.yaml` on the default branch that cannot be used: no rules, so nothing is planned. */
class DefaultBranchManifestError extends ManifestError {}

/**
 * The commit's `kubler.yaml` under the environment rules of the default branch's
 * (`withDefaultBranchRules`), or why nothing is planned. Both are read at once: one GitLab call's
 * time in the function's budget (functions/plan-steps/limits.ts). A push or tag push reads the
 * default branch afresh: it is what a merge that changed the rules, or a release, is, and the other
 * facts of its burst then find the rules cached (GitlabManifestSource). A stop is planned with the
 * default branch's file alone (`leadsOnlyToStops`).
 */
async function readManifest(
  deps: PlanStepsDeps,
  fact: GitlabFact,
  sha: string,
): Promise<{ kind: "ignored"; reason: string } | { kind: "manifest"; manifest: KublerManifest }> {
  const project = fact.detail.gitlab;
  const fresh = fact.detailType === "Push" || fact.detailType === "Tag Push";
  // A stop's commit may have dropped or broken kubler.yaml (the branch's last commit): what was
  // deployed before must go all the same, by the rules alone. Its file is not read at all.
  const stopping = leadsOnlyToStops(fact);
  const [atSha, onDefaultBranch] = await Promise.all([
    stopping ? undefined : deps.manifests.readManifest(project, sha),
    // Kept for below: the commit's own verdict (not opted in, a bad file) comes first.
    deps.manifests
      .readDefaultBranchManifest(project, { fresh })
      .catch((error: unknown) => (error instanceof ManifestError ? error : Promise.reject(error))),
  ]);
  if (atSha === null) {
    return { kind: "ignored", reason: `no ${MANIFEST_FILE} at ${sha}: the project is not opted in` };
  }
  const manifest = atSha === undefined ? null : parseKublerManifest(atSha);
  if (onDefaultBranch === null) {
    return {
      kind: "ignored",
      reason:
        `no ${MANIFEST_FILE} on the default branch: its environment rules decide what is built, deployed ` +
        "or stopped, so nothing is (environment rules take effect once merged to the default branch)",
    };
  }
  let rules: KublerManifest;
  try {
    if (onDefaultBranch instanceof ManifestError) throw onDefaultBranch;
    rules = parseKublerManifest(onDefaultBranch);
  } catch (error) {
    if (!(error instanceof ManifestError)) throw error;
    // Never the commit's rules instead: they are what a branch's author may write.
    throw new DefaultBranchManifestError(
      `${error.message.replace(/^kubler\.yaml/, `${MANIFEST_FILE} on the default branch`)}; ` +
        "nothing is planned until it is fixed there",
    );
  }
  return { kind: "manifest", manifest: manifest ? withDefaultBranchRules(manifest, rules) : rules };
}

function keyOf(step: PlannedStep): string {
  const { detailType, detail } = step.entry;
  const previousSha = "previousSha" in detail ? (detail.previousSha ?? null) : null;
  const pipelineId = detailType === "Deploy Requested" ? detail.pipelineId : null;
  return stepKey(detailType, detail.gitlab, detail.environment, step.sha, previousSha, pipelineId);
}

function describe(steps: readonly PlannedStep[]): string {
  return steps
    .map((s) => `${s.entry.detailType} ${s.entry.detail.environment}@${s.sha.slice(0, 8)}`)
    .join(", ");
}
