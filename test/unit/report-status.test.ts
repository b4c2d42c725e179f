import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { createReportStatusConsumer } from "../../functions/report-status/consumer.js";
import type { Detail } from "../../shared/domain/catalog.js";
import { ConfigError, UnavailableError } from "../../shared/errors.js";
import { JsonlCommitStatuses } from "../../shared/local/jsonl-commit-statuses.js";
import { JsonlFile } from "../../shared/local/jsonl-file.js";
import type {
  CommitStatus,
  CommitStatuses,
  CommitStatusKey,
  LatestCommitStatus,
} from "../../shared/ports.js";
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
/** When the events are published (envelope time, whole seconds, as EventBridge gives it). */
const T0 = new Date("2026-11-21T10:00:00Z");
const later = (seconds: number) => new Date(T0.getTime() + seconds * 1_000);

/**
 * Keeps every status set, stamped with its clock (a moment after T0: a status is set after the
 * event that asks for it was published), and answers `latest` from them (or from `finishedBy`, a
 * status set by someone else); `fail` makes the next calls throw it.
 */
class RecordingStatuses implements CommitStatuses {
  readonly set_: CommitStatus[] = [];
  readonly times: Date[] = [];
  readonly asked: CommitStatusKey[] = [];
  readonly clock = new FixedClock(new Date(T0.getTime() + 400));
  finishedBy: LatestCommitStatus | null = null;
  fail: Error | null = null;
  async set(status: CommitStatus): Promise<"set"> {
    if (this.fail) throw this.fail;
    this.set_.push(status);
    this.times.push(this.clock.now());
    return "set";
  }
  async latest(key: CommitStatusKey): Promise<LatestCommitStatus | null> {
    if (this.fail) throw this.fail;
    this.asked.push(key);
    const i = this.set_.findLastIndex((s) => s.sha === key.sha && s.name === key.name && s.ref === key.ref);
    const mine = this.set_[i];
    return mine ? { state: mine.state, at: this.times[i] ?? null } : this.finishedBy;
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
      { detailType: "Build Requested", detail: step, time: T0 },
      { detailType: "Build Finished", detail: built, time: T0 },
      { detailType: "Deploy Finished", detail: deployed, time: T0 },
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
    await reportStatus(deps, {
      detailType: "Deploy Requested",
      detail: { ...step, pipelineId: 42 },
      time: T0,
    });
    await reportStatus(deps, {
      detailType: "Deploy Finished",
      detail: { ...deployed, status: "rolled_back", reason: "rollout did not finish\nmore" },
      time: T0,
    });
    expect(statuses.set_.map((s) => [s.state, s.description, s.pipelineId])).toEqual([
      ["running", "Deploying", 42],
      ["failed", "Deploy failed and was rolled back: rollout did not finish", null],
    ]);
  });

  it("ends the status of a deploy refused as stale, or after a stop, as canceled, not left running", async () => {
    const { statuses, deps } = setup();
    await reportStatus(deps, { detailType: "Build Finished", detail: built, time: T0 });
    await reportStatus(deps, {
      detailType: "Deploy Finished",
      detail: { ...deployed, status: "superseded", url: null, reason: "stale: a newer deploy was attempted" },
      time: T0,
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
      time: T0,
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
      time: T0,
    });
    expect(statuses.set_[0]).toMatchObject({
      state: "canceled",
      sha: SHA,
      description: "Environment review/feature-x stopped and deleted",
    });
    expect(
      await reportStatus(deps, { detailType: "Environment Deleted", detail: deleted, time: T0 }),
    ).toEqual({
      kind: "ignored",
      reason: "no commit to report on: the event names no SHA",
    });
    expect(audit.last()).toMatchObject({ outcome: "ignored" });
  });

  it("puts a deleted environment's canceled in the pipeline that deployed it; an event from before it was carried as before", async () => {
    const deleted = {
      correlationId: "c-9",
      gitlab,
      environment: "review/feature-x",
      namespace: "ns",
      sha: SHA,
      ref: "feature-x",
    };
    const set: CommitStatus[] = [];
    for (const detail of [{ ...deleted, pipelineId: 88 }, { ...deleted, pipelineId: null }, deleted]) {
      const { statuses, deps } = setup();
      await reportStatus(deps, { detailType: "Environment Deleted", detail, time: T0 });
      set.push(...statuses.set_);
    }
    expect(set.map((s) => [s.state, s.ref, s.pipelineId])).toEqual([
      ["canceled", "feature-x", 88],
      ["canceled", "feature-x", null],
      ["canceled", "feature-x", null],
    ]);
  });

  it("never reopens a finished status: a late or repeated pending or running is ignored, with the reason", async () => {
    const { statuses, audit, deps } = setup();
    await reportStatus(deps, { detailType: "Build Requested", detail: step, time: T0 });
    await reportStatus(deps, { detailType: "Build Finished", detail: built, time: T0 });
    await reportStatus(deps, { detailType: "Deploy Finished", detail: deployed, time: T0 });
    // GitLab would add a new running status beside the success, and the MR would show it for good.
    expect(await reportStatus(deps, { detailType: "Build Finished", detail: built, time: T0 })).toEqual({
      kind: "ignored",
      reason: "already success: a late or repeated Build Finished does not reopen it as running",
    });
    expect(audit.last()).toMatchObject({
      action: "status.report",
      outcome: "ignored",
      subject: { sha: SHA, state: "running", latest: "success", name: "kubler/review/feature-x" },
    });
    expect(await reportStatus(deps, { detailType: "Build Requested", detail: step, time: T0 })).toMatchObject(
      {
        kind: "ignored",
        reason: "already success: a late or repeated Build Requested does not reopen it as pending",
      },
    );
    expect(
      await reportStatus(deps, { detailType: "Deploy Requested", detail: step, time: T0 }),
    ).toMatchObject({
      kind: "ignored",
    });
    expect(statuses.set_.map((s) => s.state)).toEqual(["pending", "running", "success"]);
  });

  it("sets pending and running again for a new run of the commit, published after its status finished", async () => {
    const deleted = { correlationId: "c-9", gitlab, environment: "review/feature-x", namespace: "ns" };
    const finals: [string, ReportEvent][] = [
      ["a failed build", { detailType: "Build Finished", detail: { ...built, status: "failed" }, time: T0 }],
      [
        "a rollback",
        { detailType: "Deploy Finished", detail: { ...deployed, status: "rolled_back" }, time: T0 },
      ],
      [
        "a superseded deploy",
        { detailType: "Deploy Finished", detail: { ...deployed, status: "superseded" }, time: T0 },
      ],
      [
        "a deleted environment",
        { detailType: "Environment Deleted", detail: { ...deleted, sha: SHA, ref: "feature-x" }, time: T0 },
      ],
    ];
    for (const [what, final] of finals) {
      const { statuses, deps } = setup();
      await reportStatus(deps, final);
      statuses.clock.advance(60_000);
      // A retried pipeline, a redeploy, a recreated environment: same SHA, ref and name, a minute on.
      for (const event of [
        { detailType: "Build Requested", detail: step, time: later(60) },
        { detailType: "Build Finished", detail: built, time: later(61) },
        { detailType: "Deploy Requested", detail: step, time: later(62) },
        { detailType: "Deploy Finished", detail: deployed, time: later(63) },
      ] satisfies ReportEvent[]) {
        expect(await reportStatus(deps, event), `${event.detailType} after ${what}`).toMatchObject({
          kind: "set",
        });
      }
      expect(statuses.set_.slice(1).map((s) => s.state)).toEqual([
        "pending",
        "running",
        "running",
        "success",
      ]);
    }
  });

  it("takes an event published in the second the status finished in as late", async () => {
    const { statuses, deps } = setup();
    await reportStatus(deps, { detailType: "Deploy Finished", detail: deployed, time: T0 });
    // Finished at 10:00:00.400; the event's whole-second time may stand for 10:00:00.000 to .999.
    expect(await reportStatus(deps, { detailType: "Build Requested", detail: step, time: T0 })).toMatchObject(
      {
        kind: "ignored",
      },
    );
    expect(await reportStatus(deps, { detailType: "Build Requested", detail: step, time: later(1) })).toEqual(
      {
        kind: "set",
        state: "pending",
      },
    );
    expect(statuses.set_.map((s) => s.state)).toEqual(["success", "pending"]);
  });

  it("writes a final state over another final one, but not over the same one; reads skipped as final too", async () => {
    const { statuses, audit, deps } = setup();
    statuses.finishedBy = { state: "failed", at: T0 };
    await reportStatus(deps, { detailType: "Deploy Finished", detail: deployed, time: later(5) });
    expect(statuses.set_.map((s) => s.state)).toEqual(["success"]);
    // A redelivered or retried final event adds nothing beside the status it already set.
    expect(
      await reportStatus(deps, { detailType: "Deploy Finished", detail: deployed, time: later(9) }),
    ).toEqual({ kind: "unchanged", state: "success" });
    expect(audit.last()).toMatchObject({
      outcome: "ignored",
      reason: "already success: a repeated success would only add a second one",
      subject: { latest: "success", latestAt: "2026-11-21T10:00:00.400Z" },
    });
    expect(statuses.set_.map((s) => s.state)).toEqual(["success"]);

    const other = setup();
    // A status of someone else's, finished at a time GitLab did not give: any pending or running may be late.
    other.statuses.finishedBy = { state: "skipped", at: null };
    expect(
      await reportStatus(other.deps, { detailType: "Deploy Requested", detail: step, time: later(60) }),
    ).toMatchObject({
      kind: "ignored",
      reason: "already skipped: a late or repeated Deploy Requested does not reopen it as running",
    });
    expect(other.statuses.asked).toEqual([
      expect.objectContaining({ projectId: 15, sha: SHA, name: "kubler/review/feature-x", ref: "feature-x" }),
    ]);
    expect(other.statuses.set_).toEqual([]);
  });

  it("sets a final state even when the newest status cannot be read first", async () => {
    const { statuses, deps } = setup();
    const unreadable = new UnavailableError("GitLab did not serve the list");
    statuses.latest = async () => {
      throw unreadable;
    };
    expect(await reportStatus(deps, { detailType: "Deploy Finished", detail: deployed, time: T0 })).toEqual({
      kind: "set",
      state: "success",
    });
  });

  it("sets pending or running over a status still pending or running, or over none", async () => {
    const { statuses, deps } = setup();
    statuses.finishedBy = { state: "running", at: T0 };
    expect(await reportStatus(deps, { detailType: "Deploy Requested", detail: step, time: T0 })).toEqual({
      kind: "set",
      state: "running",
    });
  });

  it("does not set pending or running when the status cannot be read first: a failure, audited", async () => {
    const { statuses, audit, deps } = setup();
    statuses.fail = new UnavailableError("GitLab at https://gitlab.example.com/api/v4 did not serve status");
    expect(await reportStatus(deps, { detailType: "Build Requested", detail: step, time: T0 })).toEqual({
      kind: "failed",
      reason:
        "GitLab did not tell the status before setting it: GitLab at https://gitlab.example.com/api/v4 did not serve status",
    });
    expect(audit.last()).toMatchObject({ outcome: "failure", subject: { state: "pending" } });
    expect(statuses.set_).toEqual([]);
  });

  it("keeps a finished status finished in the local JSONL stand-in too, with the time it was set", async () => {
    const dir = mkdtempSync(join(tmpdir(), "kubler-statuses-"));
    try {
      const file = new JsonlFile(join(dir, "commit-statuses.jsonl"));
      const clock = new FixedClock(new Date(T0.getTime() + 400));
      const deps = {
        statuses: new JsonlCommitStatuses(file, clock),
        audit: new RecordingAuditLog(),
        clock,
      };
      await reportStatus(deps, { detailType: "Build Finished", detail: built, time: T0 });
      await reportStatus(deps, { detailType: "Deploy Finished", detail: deployed, time: T0 });
      expect(
        await reportStatus(deps, { detailType: "Build Finished", detail: built, time: T0 }),
      ).toMatchObject({
        kind: "ignored",
      });
      expect(await reportStatus(deps, { detailType: "Deploy Finished", detail: deployed, time: T0 })).toEqual(
        {
          kind: "unchanged",
          state: "success",
        },
      );
      // A new run, published after the success was recorded, is.
      clock.advance(60_000);
      expect(
        await reportStatus(deps, { detailType: "Build Requested", detail: step, time: later(60) }),
      ).toMatchObject({ kind: "set", state: "pending" });
      await file.close();
      const lines = readFileSync(file.path, "utf8").trim().split("\n");
      expect(lines.map((line) => JSON.parse(line) as CommitStatus & { at: string })).toEqual([
        expect.objectContaining({ state: "running", at: "2026-11-21T10:00:00.400Z" }),
        expect.objectContaining({ state: "success", at: "2026-11-21T10:00:00.400Z" }),
        expect.objectContaining({ state: "pending", at: "2026-11-21T10:01:00.400Z" }),
      ]);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it("keeps statuses per pipeline in the local JSONL stand-in, as GitLab does: an older pipeline's success of the commit does not stand for a new pipeline's", async () => {
    const dir = mkdtempSync(join(tmpdir(), "kubler-statuses-"));
    try {
      const file = new JsonlFile(join(dir, "commit-statuses.jsonl"));
      const clock = new FixedClock(new Date(T0.getTime() + 400));
      const deps = { statuses: new JsonlCommitStatuses(file, clock), audit: new RecordingAuditLog(), clock };
      const first = { ...deployed, pipelineId: 101 };
      expect(await reportStatus(deps, { detailType: "Deploy Finished", detail: first, time: T0 })).toEqual({
        kind: "set",
        state: "success",
      });
      // The same pipeline's success again is a repeat; a new pipeline deploying the commit gets its own.
      expect(await reportStatus(deps, { detailType: "Deploy Finished", detail: first, time: T0 })).toEqual({
        kind: "unchanged",
        state: "success",
      });
      const second = { ...deployed, pipelineId: 102 };
      expect(await reportStatus(deps, { detailType: "Deploy Finished", detail: second, time: T0 })).toEqual({
        kind: "set",
        state: "success",
      });
      await file.close();
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
      const outcome = await reportStatus(deps, { detailType: "Deploy Finished", detail: deployed, time: T0 });
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
    const envelope = (type: string, detail: unknown, time = "2026-11-21T10:00:00Z") => ({
      version: "0",
      id: "e-1",
      "detail-type": type,
      source: "kubler",
      account: "000000000000",
      time,
      region: "local",
      resources: [],
      detail,
    });
    expect(await consume(envelope("Deploy Finished", deployed))).toEqual({ kind: "set", state: "success" });
    // The envelope's time tells a late event from a new run.
    expect(await consume(envelope("Build Requested", step))).toMatchObject({ kind: "ignored" });
    expect(await consume(envelope("Build Requested", step, "2026-11-21T10:05:00Z"))).toEqual({
      kind: "set",
      state: "pending",
    });
    statuses.fail = new UnavailableError("down");
    expect(await consume(envelope("Build Requested", step))).toMatchObject({ kind: "failed" });
    await expect(
      consume(envelope("Environment Stop Requested", { ...step, reason: "merged" })),
    ).rejects.toThrow(
      /this consumer takes Build Requested, Build Finished, Deploy Requested, Deploy Finished, Environment Deleted/,
    );
  });
});

describe("report-status consumer audit", () => {
  it("audits an envelope that fails validation before throwing it back", async () => {
    const { statuses, audit, deps } = setup();
    const consume = createReportStatusConsumer(deps);
    await expect(
      consume({
        id: "e-7",
        "detail-type": "Deploy Finished",
        source: "kubler",
        detail: { correlationId: "c-7" },
      }),
    ).rejects.toThrow();
    expect(statuses.set_).toEqual([]);
    expect(audit.records).toEqual([
      expect.objectContaining({
        action: "status.report",
        outcome: "failure",
        function: "report-status",
        reason: expect.stringMatching(/^attempt failed, left to the bus to retry: /),
        correlationId: "c-7",
        subject: { eventId: "e-7" },
      }),
    ]);
  });
});
