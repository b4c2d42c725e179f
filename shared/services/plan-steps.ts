/**
 * The plan-steps use case (DESIGN §4 "Plan"): a GitLab fact from the bus, the project's `kubler.yaml`
 * at the fact's commit, the pure decision, and the steps published once. Every decision is audited,
 * ignored ones included; a bad `kubler.yaml` is an audited failure, never a crash or a retry.
 */

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
  type Plan,
  type PlannedStep,
  planSteps,
  STEPS_UNDONE_BY,
  stepKey,
  triageFact,
} from "../domain/plan-steps.js";
import type {
  AuditLog,
  Clock,
  DedupeStore,
  EnvironmentStops,
  EventPublisher,
  ManifestSource,
} from "../ports.js";
import { createStepAudit } from "./step-audit.js";

const FN = "plan-steps";
/**
 * A fact is one delivery (its correlation id is GitLab's Idempotency-Key or the ingress's own UUID):
 * remembered as long as EventBridge may redeliver it (24 h retries) with room to spare, like the ingress.
 */
export const FACT_TTL_SECONDS = 3 * 86_400;
/**
 * GitLab's second delivery of one change (two MR events for one push, an old instance resending)
 * arrives within seconds or minutes. Held longer, a deliberate rebuild of the same commit (reopen
 * after an expiry) would be swallowed; the steps themselves are idempotent beyond this window.
 */
export const STEP_TTL_SECONDS = 3_600;
/**
 * How long a stop refuses what GitLab sent before it: longer than a build runs plus EventBridge's
 * 24 h of retries, with room for a dead letter redriven by hand.
 */
export const STOP_RECORD_TTL_SECONDS = 7 * 86_400;

export interface PlanStepsDeps {
  manifests: ManifestSource;
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
  let claimedFact: boolean;
  try {
    claimedFact = await deps.dedupe.claim(factKey, FACT_TTL_SECONDS);
  } catch (error) {
    audit(
      "failure",
      `could not claim ${fact.detailType} ${detail.correlationId}: ${messageOf(error)}; will retry`,
      {
        sha: triage.sha,
      },
    );
    throw audited(error);
  }
  if (!claimedFact) {
    const reason = `duplicate delivery of ${fact.detailType} ${detail.correlationId}: already planned`;
    audit("ignored", reason, { sha: triage.sha });
    return { kind: "ignored", reason };
  }

  let plan: Plan;
  try {
    const manifest = await readManifest(deps, detail.gitlab, triage.sha);
    if (manifest.kind === "none") {
      const reason = `no ${MANIFEST_FILE} at ${triage.sha}: the project is not opted in`;
      audit("ignored", reason, { sha: triage.sha });
      return { kind: "ignored", reason };
    }
    plan = planSteps(fact, manifest.manifest, factAt?.toISOString() ?? null);
  } catch (error) {
    if (error instanceof ManifestError) {
      // The project's mistake, not ours: retrying cannot fix it, so it is final (and kept claimed).
      audit("failure", error.message, { sha: triage.sha, file: MANIFEST_FILE });
      return { kind: "failed", reason: error.message };
    }
    const retry = await releaseForRetry(deps, [factKey]);
    audit("failure", `could not read ${MANIFEST_FILE} at ${triage.sha}: ${messageOf(error)}; ${retry}`, {
      sha: triage.sha,
    });
    throw audited(error);
  }
  if (plan.kind === "ignored") {
    audit("ignored", plan.reason, { sha: triage.sha });
    return plan;
  }
  try {
    plan = await heedStops(deps, plan, factAt);
  } catch (error) {
    const retry = await releaseForRetry(deps, [factKey]);
    audit("failure", `could not check or record a stop: ${messageOf(error)}; ${retry}`, { sha: triage.sha });
    throw audited(error);
  }
  if (plan.kind === "ignored") {
    audit("ignored", plan.reason, { sha: triage.sha });
    return plan;
  }

  const fresh: PlannedStep[] = [];
  const duplicates: PlannedStep[] = [];
  const claimed: string[] = [];
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
    if (fresh.length > 0) await deps.publisher.publish(fresh.map((step) => step.entry));
  } catch (error) {
    // Unclaim everything, so EventBridge's retry of this fact plans it again in full.
    const retry = await releaseForRetry(deps, [...claimed, factKey]);
    audit("failure", `publishing ${describe(plan.steps)} failed: ${messageOf(error)}; ${retry}`);
    throw audited(error);
  }

  const subject = {
    sha: triage.sha,
    environments: [...new Set(plan.steps.map((s) => s.entry.detail.environment))],
    steps: fresh.map((s) => s.entry.detailType),
  };
  if (fresh.length === 0) {
    const reason = `duplicate: ${describe(duplicates)} already planned (${plan.reason})`;
    audit("ignored", reason, subject);
    return { kind: "ignored", reason };
  }
  audit(
    "success",
    duplicates.length > 0 ? `${plan.reason}; ${describe(duplicates)} already planned` : plan.reason,
    subject,
  );
  // After the success line: the steps are out, and a failure here must not turn into a retry that
  // finds the fact claimed and audits it as a duplicate.
  await releaseUndoneSteps(deps, fresh, audit);
  return { kind: "published", steps: fresh, duplicates, reason: plan.reason };
}

/**
 * Releases the keys a failed attempt claimed, so the bus's retry plans the fact again; never throws.
 * Says what the retry will find, for the attempt's one audit line: a release that failed leaves the
 * fact claimed, and the retry will answer "already planned" (DESIGN §12 prefers that to a double).
 */
async function releaseForRetry(
  deps: Pick<PlanStepsDeps, "dedupe">,
  keys: readonly string[],
): Promise<string> {
  const failed = (await Promise.allSettled(keys.map((key) => deps.dedupe.release(key)))).filter(
    (result): result is PromiseRejectedResult => result.status === "rejected",
  );
  if (failed.length === 0) return "will retry";
  return `and could not release its claim (${messageOf(failed[0]?.reason)}): a retry will find it already planned`;
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
 * A stop makes the next build of the same commit a new step again (close, then reopen), and back.
 * Best effort: a key left claimed expires after `STEP_TTL_SECONDS`; until then the undone step
 * counts as a duplicate, which is audited here.
 */
async function releaseUndoneSteps(
  deps: PlanStepsDeps,
  fresh: readonly PlannedStep[],
  audit: ReturnType<typeof createStepAudit>,
): Promise<void> {
  const keys = fresh.flatMap((step) =>
    STEPS_UNDONE_BY[step.entry.detailType].map((undone) =>
      stepKey(undone, step.entry.detail.gitlab, step.entry.detail.environment, step.sha),
    ),
  );
  const results = await Promise.allSettled(keys.map((key) => deps.dedupe.release(key)));
  const failed = results.flatMap((result, index) =>
    result.status === "rejected" ? [{ key: keys[index], error: result.reason as unknown }] : [],
  );
  const first = failed[0];
  if (!first) return;
  audit(
    "failure",
    `published, but could not release ${failed.length} undone step key(s) (${messageOf(first.error)}): ` +
      `the same step within ${STEP_TTL_SECONDS / 60} min is taken for a duplicate`,
    { unreleased: failed.map((f) => f.key) },
  );
}

/**
 * Records the plan's stops, and drops the builds and deploys GitLab asked for before the last stop of
 * their environment: a late delivery of an MR update after its merge must not bring the environment
 * back. A fact without a time (published before times were carried) cannot be ordered and goes ahead.
 */
async function heedStops(
  deps: PlanStepsDeps,
  plan: Plan & { kind: "steps" },
  factAt: Date | null,
): Promise<Plan> {
  const kept: PlannedStep[] = [];
  const refused: string[] = [];
  for (const step of plan.steps) {
    const key = environmentStopKey(step.entry.detail.gitlab, step.entry.detail.environment);
    if (step.entry.detailType === "Environment Stop Requested") {
      // Recorded before the stop is published, so a deploy racing it already finds it.
      await deps.stops.record(key, factAt ?? deps.clock.now(), STOP_RECORD_TTL_SECONDS);
      kept.push(step);
      continue;
    }
    const stoppedAt = factAt && (await deps.stops.stoppedAt(key));
    if (stoppedAt && isRefusedByStop(factAt, stoppedAt)) {
      refused.push(
        `${step.entry.detail.environment} was stopped by a later event (${stoppedAt.toISOString()}) than this one (${factAt.toISOString()})`,
      );
    } else {
      kept.push(step);
    }
  }
  if (kept.length === 0) return { kind: "ignored", reason: `${plan.reason}; refused: ${refused.join("; ")}` };
  return { ...plan, steps: kept };
}

async function readManifest(
  deps: PlanStepsDeps,
  project: { projectId: number; projectPath: string },
  sha: string,
): Promise<{ kind: "none" } | { kind: "manifest"; manifest: KublerManifest }> {
  const text = await deps.manifests.readManifest(project, sha);
  return text === null ? { kind: "none" } : { kind: "manifest", manifest: parseKublerManifest(text) };
}

function keyOf(step: PlannedStep): string {
  const { detailType, detail } = step.entry;
  return stepKey(detailType, detail.gitlab, detail.environment, step.sha);
}

function describe(steps: readonly PlannedStep[]): string {
  return steps
    .map((s) => `${s.entry.detailType} ${s.entry.detail.environment}@${s.sha.slice(0, 8)}`)
    .join(", ");
}

function messageOf(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}
