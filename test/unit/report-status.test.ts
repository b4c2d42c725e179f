import { describe, expect, it } from "vitest";
import { createReportStatusConsumer } from "../../functions/report-status/consumer.js";
import type { Detail } from "../../shared/domain/catalog.js";
import { ConfigError, UnavailableError } from "../../shared/errors.js";
import type { CommitStatus, CommitStatuses } from "../../shared/ports.js";
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

/** Keeps every status set; `fail` makes the next calls throw it. */
class RecordingStatuses implements CommitStatuses {
  readonly set_: CommitStatus[] = [];
  fail: Error | null = null;
  async set(status: CommitStatus): Promise<"set"> {
    if (this.fail) throw this.fail;
    this.set_.push(status);
    return "set";
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
