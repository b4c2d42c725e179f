/**
 * Status back to GitLab (DESIGN §8): every step of an environment's deploy moves the commit status
 * `kubler/<environment>` on its SHA along pending → running → success / failed, with the
 * environment's URL once it is known; a deleted environment's last commit gets a final `canceled`.
 * Optional by design: whatever GitLab answers (after the adapter's retries) is audited, never thrown,
 * so reporting can never fail or hold up a deploy.
 *
 * A finished status is never reopened. GitLab only moves a pending or running status of that name; once
 * the newest is finished, a POST adds a new status instead (app/services/ci/create_commit_status_service.rb,
 * `running_or_pending.find_or_initialize_by`), so a late or redelivered Build Requested / Build Finished
 * would leave the commit pending or running for good. Pending and running are therefore set only when
 * the newest status of the name is not final; final states are always set.
 */
import type { Detail, DetailType } from "../domain/catalog.js";
import type { AuditLog, Clock, CommitState, CommitStatus, CommitStatuses } from "../ports.js";
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

export type ReportEvent = {
  [T in ReportedType]: { detailType: T; detail: Detail<T> };
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
        pipelineId: null,
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
 * await reportStatus(deps, { detailType: "Deploy Finished", detail }); // { kind: "set", state: "success" }
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
  if (!FINAL_COMMIT_STATES.has(status.state)) {
    let latest: string | null;
    try {
      latest = await deps.statuses.latest(target);
    } catch (error) {
      // Not set blind: a pending or running status that lands on a finished one would stay for good,
      // while one that is missing only shortens what the MR shows until the final state arrives.
      const reason = `GitLab did not tell the status before setting it: ${messageOf(error)}`;
      audit("failure", reason, subject);
      return { kind: "failed", reason };
    }
    if (latest !== null && FINAL_COMMIT_STATES.has(latest)) {
      // Read, then write: a final state set between the two by a concurrent delivery is still
      // overtaken; GitLab offers no conditional write to close that window.
      const reason = `already ${latest}: a late or repeated ${event.detailType} does not reopen it as ${status.state}`;
      audit("ignored", reason, { ...subject, latest });
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
    // Reported, never thrown: a commit status is information, and the deploy it describes stands.
    const reason = `GitLab did not take the status: ${messageOf(error)}`;
    audit("failure", reason, subject);
    return { kind: "failed", reason };
  }
}

function messageOf(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}
