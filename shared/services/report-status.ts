/**
 * Status back to GitLab (DESIGN §8): every step of an environment's deploy moves the commit status
 * `kubler/<environment>` on its SHA along pending → running → success / failed, with the
 * environment's URL once it is known; a deleted environment's last commit gets a final `canceled`.
 * Optional by design: whatever GitLab answers (after the adapter's retries) is audited, never thrown,
 * so reporting can never fail or hold up a deploy.
 */
import type { Detail, DetailType } from "../domain/catalog.js";
import type { AuditLog, Clock, CommitState, CommitStatus, CommitStatuses } from "../ports.js";
import { createStepAudit } from "./step-audit.js";

const FN = "report-status";

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
  try {
    const result = await deps.statuses.set({
      ...status,
      projectId: detail.gitlab.projectId,
      projectPath: detail.gitlab.projectPath,
    });
    if (result === "unchanged") {
      audit("ignored", `GitLab kept the status as it was (already ${status.state}, or past it)`, subject);
    } else {
      audit("success", `${status.state}: ${status.description}`, subject);
    }
    return { kind: result, state: status.state };
  } catch (error) {
    // Reported, never thrown: a commit status is information, and the deploy it describes stands.
    const reason = `GitLab did not take the status: ${error instanceof Error ? error.message : String(error)}`;
    audit("failure", reason, subject);
    return { kind: "failed", reason };
  }
}
