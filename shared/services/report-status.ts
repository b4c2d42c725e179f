/**
 * Status back to GitLab (DESIGN §8): every step of an environment's deploy moves the commit status
 * `kubler/<environment>` on its SHA along pending → running → success / failed, with the
 * environment's URL once it is known; a deleted environment's last commit gets a final `canceled`,
 * in the pipeline that deployed it when the event names one.
 * Optional by design: whatever GitLab answers (after the adapter's retries) is audited, never thrown,
 * so reporting can never fail or hold up a deploy. A pipeline or commit GitLab no longer has is
 * audited as ignored, not as a failure: nothing can show the status, and nothing is to be fixed.
 *
 * A finished status is never reopened by a late event. GitLab only moves a pending or running status of
 * that name; once the newest is finished, a POST adds a new status instead
 * (app/services/ci/create_commit_status_service.rb, `running_or_pending.find_or_initialize_by`), so a
 * late or redelivered Build Requested / Build Finished would leave the commit pending or running for
 * good. A pending or running published before the newest status finished is therefore not set; one
 * published after it is a new run of that commit (a retried pipeline, a redeploy, a recreated
 * environment) and is. Final states are always set, except one the newest status already has (a
 * retried stop's second `canceled`), which would only pile up beside it.
 */
import type { Detail, DetailType } from "../domain/catalog.js";
import { GoneError, messageOf } from "../errors.js";
import type {
  AuditLog,
  Clock,
  CommitState,
  CommitStatus,
  CommitStatuses,
  LatestCommitStatus,
} from "../ports.js";
import { createStepAudit } from "./step-audit.js";

const FN = "report-status";

/** GitLab states a status does not leave: a POST after one of these starts a new status. */
export const FINAL_COMMIT_STATES: ReadonlySet<string> = new Set(["success", "failed", "canceled", "skipped"]);

export const REPORTED_TYPES = [
  "Build Requested",
  "Build Finished",
  "Deploy Requested",
  "Deploy Finished",
  "Environment Deleted",
] as const satisfies readonly DetailType[];
export type ReportedType = (typeof REPORTED_TYPES)[number];

/** `time`: when the event was published (its envelope time), to tell a late event from a new run. */
export type ReportEvent = {
  [T in ReportedType]: { detailType: T; detail: Detail<T>; time: Date };
}[ReportedType];

export interface ReportStatusDeps {
  statuses: CommitStatuses;
  audit: AuditLog;
  clock: Clock;
}

export type ReportOutcome =
  | { kind: "set" | "unchanged"; state: CommitState }
  | { kind: "ignored"; reason: string }
  | { kind: "failed"; reason: string };

/** Where an event puts the commit status, and what it says. Null: nothing to report (no SHA). */
export function statusFor(event: ReportEvent): Omit<CommitStatus, "projectId" | "projectPath"> | null {
  const name = `kubler/${event.detail.environment}`;
  switch (event.detailType) {
    case "Build Requested": {
      const d = event.detail;
      return common(d, name, "pending", "Building the image", null);
    }
    case "Build Finished": {
      const d = event.detail;
      return d.status === "succeeded"
        ? common(d, name, "running", "Image built; deploying", null)
        : common(d, name, "failed", `Build failed: ${firstLine(d.reason) ?? "no reason given"}`, null);
    }
    case "Deploy Requested": {
      const d = event.detail;
      return common(d, name, "running", "Deploying", null);
    }
    case "Deploy Finished": {
      const d = event.detail;
      if (d.status === "succeeded") return common(d, name, "success", `Deployed to ${d.environment}`, d.url);
      // Not deployed, and never will be: a newer deploy, or a stop, came first. Final, but not a failure.
      if (d.status === "superseded") {
        return common(d, name, "canceled", `Not deployed: ${firstLine(d.reason) ?? "superseded"}`, null);
      }
      const what = d.status === "rolled_back" ? "Deploy failed and was rolled back" : "Deploy failed";
      return common(d, name, "failed", `${what}: ${firstLine(d.reason) ?? "no reason given"}`, d.url);
    }
    case "Environment Deleted": {
      const d = event.detail;
      if (!d.sha) return null;
      return {
        sha: d.sha,
        state: "canceled",
        name,
        ref: d.ref ?? null,
        // Where the deploy's statuses are: with it the ref is not sent, and GitLab takes the pipeline's.
        pipelineId: d.pipelineId ?? null,
        targetUrl: null,
        description: `Environment ${d.environment} stopped and deleted`,
      };
    }
  }
}

function common(
  d: { sha: string; ref: string; pipelineId: number | null },
  name: string,
  state: CommitState,
  description: string,
  targetUrl: string | null,
): Omit<CommitStatus, "projectId" | "projectPath"> {
  return { sha: d.sha, state, name, ref: d.ref, pipelineId: d.pipelineId, targetUrl, description };
}

function firstLine(text: string | null): string | null {
  return text?.split("\n")[0]?.trim() || null;
}

/**
 * @example
 * await reportStatus(deps, { detailType: "Deploy Finished", detail, time }); // { kind: "set", state: "success" }
 */
export async function reportStatus(deps: ReportStatusDeps, event: ReportEvent): Promise<ReportOutcome> {
  const { detail } = event;
  const status = statusFor(event);
  const audit = createStepAudit(deps, {
    fn: FN,
    action: "status.report",
    trigger: event.detailType,
    detail,
    subject: { environment: detail.environment },
  });
  if (!status) {
    const reason = "no commit to report on: the event names no SHA";
    audit("ignored", reason);
    return { kind: "ignored", reason };
  }
  const subject = { sha: status.sha, state: status.state, name: status.name };
  const target = { ...status, projectId: detail.gitlab.projectId, projectPath: detail.gitlab.projectPath };
  const final = FINAL_COMMIT_STATES.has(status.state);
  let latest: LatestCommitStatus | null;
  try {
    latest = await deps.statuses.latest(target);
  } catch (error) {
    // The POST would be refused the same way: the commit is what the list did not find.
    if (error instanceof GoneError) return ignoreGone(audit, error, subject);
    // Not set blind: a pending or running status that lands on a finished one would stay for good,
    // while one that is missing only shortens what the MR shows until the final state arrives. A
    // final state is: a duplicate is one more line in GitLab, a missing one leaves the commit running.
    if (final) {
      latest = null;
    } else {
      const reason = `GitLab did not tell the status before setting it: ${messageOf(error)}`;
      audit("failure", reason, subject);
      return { kind: "failed", reason };
    }
  }
  if (latest && FINAL_COMMIT_STATES.has(latest.state)) {
    const since = { ...subject, latest: latest.state, latestAt: latest.at?.toISOString() ?? null };
    if (final && latest.state === status.state) {
      const reason = `already ${latest.state}: a repeated ${status.state} would only add a second one`;
      audit("ignored", reason, since);
      return { kind: "unchanged", state: status.state };
    }
    // Read, then write: a final state set between the two by a concurrent delivery is still
    // overtaken; GitLab offers no conditional write to close that window.
    if (!final && !publishedAfter(event.time, latest.at)) {
      const reason = `already ${latest.state}: a late or repeated ${event.detailType} does not reopen it as ${status.state}`;
      audit("ignored", reason, since);
      return { kind: "ignored", reason };
    }
  }
  try {
    const result = await deps.statuses.set(target);
    if (result === "unchanged") {
      audit("ignored", `GitLab kept the status as it was (already ${status.state}, or past it)`, subject);
    } else {
      audit("success", `${status.state}: ${status.description}`, subject);
    }
    return { kind: result, state: status.state };
  } catch (error) {
    if (error instanceof GoneError) return ignoreGone(audit, error, subject);
    // Reported, never thrown: a commit status is information, and the deploy it describes stands.
    const reason = `GitLab did not take the status: ${messageOf(error)}`;
    audit("failure", reason, subject);
    return { kind: "failed", reason };
  }
}

/**
 * A status for a pipeline or commit GitLab no longer has (a `ttl: never` environment stopped after
 * its pipeline expired, a force-pushed commit): nothing to show it on, and nothing Kubler did wrong.
 */
function ignoreGone(
  audit: ReturnType<typeof createStepAudit>,
  error: GoneError,
  subject: Record<string, unknown>,
): ReportOutcome {
  const reason = `not set: the pipeline or commit no longer exists in GitLab (${error.message})`;
  audit("ignored", reason, subject);
  return { kind: "ignored", reason };
}

/**
 * Whether an event was published at or after a status finished: a new run, not a late event. Not
 * when either time is unknown. EventBridge's `time` is whole seconds, so an event of the second the
 * status finished in counts as earlier: a pending or running missed is shown by the next final
 * state, one set over a late event's finished status would stay for good.
 */
function publishedAfter(time: Date, finishedAt: Date | null): boolean {
  return finishedAt !== null && time.getTime() >= finishedAt.getTime();
}
