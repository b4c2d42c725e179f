import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { createReportStatusConsumer } from "../../functions/report-status/consumer.js";
import type { Detail } from "../../shared/domain/catalog.js";
import { ConfigError, UnavailableError } from "../../shared/errors.js";
import { JsonlCommitStatuses } from "../../shared/local/jsonl-commit-statuses.js";
import { JsonlFile } from "../../shared/local/jsonl-file.js";
import type { CommitStatus, CommitStatuses, CommitStatusKey } from "../../shared/ports.js";
import { type ReportEvent, reportStatus } from "../../shared/services/report-status.js";
import { FixedClock, RecordingAuditLog } from "../fakes/index.js";

const SHA = "da1560886d4f094c3e6c9ef40349f7d38b5d27d7";
const gitlab = { instance: "https://gitlab.example.com", projectId: 15, projectPath: "group/app" };
const step = {
  correlationId: "c-1",
  gitlab,
  environment: "review/feature-x",
  sha: SHA,
  ref: "feature-x",
  pipelineId: null,
  mrIid: 7,
};
const URL = "https://review-feature-x.apps.example.com";

/**
 * Keeps every status set, and answers `latest` from them (or from `finishedBy`, a status set by
 * someone else); `fail` makes the next calls throw it.
 */
class RecordingStatuses implements CommitStatuses {
  readonly set_: CommitStatus[] = [];
  readonly asked: CommitStatusKey[] = [];
  finishedBy: string | null = null;
  fail: Error | null = null;
  async set(status: CommitStatus): Promise<"set"> {
    if (this.fail) throw this.fail;
    this.set_.push(status);
    return "set";
  }
  async latest(key: CommitStatusKey): Promise<string | null> {
    if (this.fail) throw this.fail;
    this.asked.push(key);
    const mine = this.set_.findLast((s) => s.sha === key.sha && s.name === key.name && s.ref === key.ref);
    return mine?.state ?? this.finishedBy;
  }
}

function setup() {
  const statuses = new RecordingStatuses();
  const audit = new RecordingAuditLog();
  return { statuses, audit, deps: { statuses, audit, clock: new FixedClock() } };
}

const built: Detail<"Build Finished"> = {
  ...step,
  status: "succeeded",
  imageDigest: `sha256:${"a".repeat(64)}`,
  reason: null,
};
const deployed: Detail<"Deploy Finished"> = {
  ...step,
  status: "succeeded",
  namespace: "group-app-review-feature-x-1a2b3c4d",
  url: URL,
  reason: null,
};

describe("reportStatus", () => {
  it("moves kubler/<environment> through pending, running and success, with the URL at the end", async () => {
    const { statuses, deps } = setup();
    const events: ReportEvent[] = [
      { detailType: "Build Requested", detail: step },
      { detailType: "Build Finished", detail: built },
      { detailType: "Deploy Finished", detail: deployed },
    ];
    for (const event of events) await reportStatus(deps, event);
    expect(statuses.set_.map((s) => [s.state, s.name, s.targetUrl, s.description])).toEqual([
      ["pending", "kubler/review/feature-x", null, "Building the image"],
      ["running", "kubler/review/feature-x", null, "Image built; deploying"],
      ["success", "kubler/review/feature-x", URL, "Deployed to review/feature-x"],
    ]);
    expect(statuses.set_.every((s) => s.sha === SHA && s.projectId === 15 && s.ref === "feature-x")).toBe(
      true,
    );
  });

  it("reports a deploy without a build as running, then failed or rolled back with the reason's first line", async () => {
    const { statuses, deps } = setup();
    await reportStatus(deps, { detailType: "Deploy Requested", detail: { ...step, pipelineId: 42 } });
    await reportStatus(deps, {
      detailType: "Deploy Finished",
      detail: { ...deployed, status: "rolled_back", reason: "rollout did not finish\nmore" },
    });
    expect(statuses.set_.map((s) => [s.state, s.description, s.pipelineId])).toEqual([
      ["running", "Deploying", 42],
      ["failed", "Deploy failed and was rolled back: rollout did not finish", null],
    ]);
  });

  it("ends the status of a deploy refused as stale, or after a stop, as canceled, not left running", async () => {
    const { statuses, deps } = setup();
    await reportStatus(deps, { detailType: "Build Finished", detail: built });
    await reportStatus(deps, {
      detailType: "Deploy Finished",
      detail: { ...deployed, status: "superseded", url: null, reason: "stale: a newer deploy was attempted" },
    });
    expect(statuses.set_.map((s) => [s.state, s.description])).toEqual([
      ["running", "Image built; deploying"],
      ["canceled", "Not deployed: stale: a newer deploy was attempted"],
    ]);
  });

  it("fails the status of a failed build with the Job's reason", async () => {
    const { statuses, deps } = setup();
    await reportStatus(deps, {
      detailType: "Build Finished",
      detail: {
        ...built,
        status: "failed",
        imageDigest: null,
        reason:
          "BackoffLimitExceeded: Job has reached the specified backoff limit\n--- last log lines ---\nerror",
      },
    });
    expect(statuses.set_[0]).toMatchObject({
      state: "failed",
      description: "Build failed: BackoffLimitExceeded: Job has reached the specified backoff limit",
    });
  });

  it("gives a deleted environment's last commit a final canceled status; without a SHA there is nothing to set", async () => {
    const { statuses, audit, deps } = setup();
    const deleted = { correlationId: "c-9", gitlab, environment: "review/feature-x", namespace: "ns" };
    await reportStatus(deps, {
      detailType: "Environment Deleted",
      detail: { ...deleted, sha: SHA, ref: "feature-x" },
    });
    expect(statuses.set_[0]).toMatchObject({
      state: "canceled",
      sha: SHA,
      description: "Environment review/feature-x stopped and deleted",
    });
    expect(await reportStatus(deps, { detailType: "Environment Deleted", detail: deleted })).toEqual({
      kind: "ignored",
      reason: "no commit to report on: the event names no SHA",
    });
    expect(audit.last()).toMatchObject({ outcome: "ignored" });
  });

  it("never reopens a finished status: a late or repeated pending or running is ignored, with the reason", async () => {
    const { statuses, audit, deps } = setup();
    await reportStatus(deps, { detailType: "Build Requested", detail: step });
    await reportStatus(deps, { detailType: "Build Finished", detail: built });
    await reportStatus(deps, { detailType: "Deploy Finished", detail: deployed });
    // GitLab would add a new running status beside the success, and the MR would show it for good.
    expect(await reportStatus(deps, { detailType: "Build Finished", detail: built })).toEqual({
      kind: "ignored",
      reason: "already success: a late or repeated Build Finished does not reopen it as running",
    });
    expect(audit.last()).toMatchObject({
      action: "status.report",
      outcome: "ignored",
      subject: { sha: SHA, state: "running", latest: "success", name: "kubler/review/feature-x" },
    });
    expect(await reportStatus(deps, { detailType: "Build Requested", detail: step })).toMatchObject({
      kind: "ignored",
      reason: "already success: a late or repeated Build Requested does not reopen it as pending",
    });
    expect(await reportStatus(deps, { detailType: "Deploy Requested", detail: step })).toMatchObject({
      kind: "ignored",
    });
    expect(statuses.set_.map((s) => s.state)).toEqual(["pending", "running", "success"]);
  });

  it("always writes a final state, without asking; reads skipped as final too", async () => {
    const { statuses, deps } = setup();
    statuses.finishedBy = "failed";
    await reportStatus(deps, { detailType: "Deploy Finished", detail: deployed });
    expect(statuses.asked).toEqual([]);
    expect(statuses.set_.map((s) => s.state)).toEqual(["success"]);

    const other = setup();
    other.statuses.finishedBy = "skipped";
    expect(await reportStatus(other.deps, { detailType: "Deploy Requested", detail: step })).toMatchObject({
      kind: "ignored",
      reason: "already skipped: a late or repeated Deploy Requested does not reopen it as running",
    });
    expect(other.statuses.asked).toEqual([
      expect.objectContaining({ projectId: 15, sha: SHA, name: "kubler/review/feature-x", ref: "feature-x" }),
    ]);
    expect(other.statuses.set_).toEqual([]);
  });

  it("sets pending or running over a status still pending or running, or over none", async () => {
    const { statuses, deps } = setup();
    statuses.finishedBy = "running";
    expect(await reportStatus(deps, { detailType: "Deploy Requested", detail: step })).toEqual({
      kind: "set",
      state: "running",
    });
  });

  it("does not set pending or running when the status cannot be read first: a failure, audited", async () => {
    const { statuses, audit, deps } = setup();
    statuses.fail = new UnavailableError("GitLab at https://gitlab.example.com/api/v4 did not serve status");
    expect(await reportStatus(deps, { detailType: "Build Requested", detail: step })).toEqual({
      kind: "failed",
      reason:
        "GitLab did not tell the status before setting it: GitLab at https://gitlab.example.com/api/v4 did not serve status",
    });
    expect(audit.last()).toMatchObject({ outcome: "failure", subject: { state: "pending" } });
    expect(statuses.set_).toEqual([]);
  });

  it("keeps a finished status finished in the local JSONL stand-in too", async () => {
    const dir = mkdtempSync(join(tmpdir(), "kubler-statuses-"));
    try {
      const file = new JsonlFile(join(dir, "commit-statuses.jsonl"));
      const deps = {
        statuses: new JsonlCommitStatuses(file, new FixedClock()),
        audit: new RecordingAuditLog(),
        clock: new FixedClock(),
      };
      await reportStatus(deps, { detailType: "Build Finished", detail: built });
      await reportStatus(deps, { detailType: "Deploy Finished", detail: deployed });
      expect(await reportStatus(deps, { detailType: "Build Finished", detail: built })).toMatchObject({
        kind: "ignored",
      });
      await file.close();
      const lines = readFileSync(file.path, "utf8").trim().split("\n");
      expect(lines.map((line) => (JSON.parse(line) as CommitStatus).state)).toEqual(["running", "success"]);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it("never throws when GitLab fails: the failure is audited with GitLab's reason", async () => {
    for (const error of [
      new UnavailableError(
        "GitLab at https://gitlab.example.com/api/v4 did not take status after 4 attempt(s)",
      ),
      new ConfigError("GitLab refused GITLAB_API_TOKEN (HTTP 401)"),
      new Error("GitLab answered HTTP 422"),
    ]) {
      const { statuses, audit, deps } = setup();
      statuses.fail = error;
      const outcome = await reportStatus(deps, { detailType: "Deploy Finished", detail: deployed });
      expect(outcome).toEqual({ kind: "failed", reason: `GitLab did not take the status: ${error.message}` });
      expect(audit.last()).toMatchObject({
        action: "status.report",
        outcome: "failure",
        correlationId: "c-1",
        subject: {
          environment: "review/feature-x",
          sha: SHA,
          state: "success",
          name: "kubler/review/feature-x",
        },
      });
    }
  });
});

describe("report-status consumer", () => {
  it("takes the events of its route and refuses others", async () => {
    const { statuses, deps } = setup();
    const consume = createReportStatusConsumer(deps);
    const envelope = (type: string, detail: unknown) => ({
      version: "0",
      id: "e-1",
      "detail-type": type,
      source: "kubler",
      account: "000000000000",
      time: "2026-11-21T10:00:00Z",
      region: "local",
      resources: [],
      detail,
    });
    expect(await consume(envelope("Deploy Finished", deployed))).toEqual({ kind: "set", state: "success" });
    statuses.fail = new UnavailableError("down");
    expect(await consume(envelope("Build Requested", step))).toMatchObject({ kind: "failed" });
    await expect(
      consume(envelope("Environment Stop Requested", { ...step, reason: "merged" })),
    ).rejects.toThrow(
      /this consumer takes Build Requested, Build Finished, Deploy Requested, Deploy Finished, Environment Deleted/,
    );
  });
});
