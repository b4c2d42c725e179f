import {
  CloudWatchLogsClient,
  GetQueryResultsCommand,
  type GetQueryResultsCommandOutput,
  ResourceNotFoundException,
  StartQueryCommand,
  StopQueryCommand,
} from "@aws-sdk/client-cloudwatch-logs";
import { mockClient } from "aws-sdk-client-mock";
import "aws-sdk-client-mock-vitest/extend";
import { mkdirSync, mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { type AuditCommandIo, fmtMs, parseSince, runAuditCommand } from "../../cli/audit-command.js";
import { UsageError } from "../../cli/usage-error.js";
import type { AuditRecord } from "../../shared/domain/audit.js";
import { ConfigError } from "../../shared/errors.js";

const NOW = new Date("2026-03-02T12:00:00.000Z");

function record(overrides: Partial<AuditRecord> = {}): AuditRecord {
  return {
    audit: true,
    auditVersion: 1,
    action: "environment.deploy",
    outcome: "success",
    reason: "deployed abc1234",
    actor: { function: "deploy-environment" },
    subject: { project: "group/app", environment: "staging" },
    correlationId: "c-1",
    gitlab: null,
    function: "deploy-environment",
    at: "2026-03-02T11:00:00.000Z",
    ...overrides,
  };
}

function harness(env: Record<string, string> = {}) {
  const out: string[] = [];
  const err: string[] = [];
  let clock = NOW.getTime();
  const io: AuditCommandIo = {
    print: (line) => out.push(line),
    progress: (line) => err.push(line),
    env,
    now: () => new Date(clock),
    sleep: async (ms) => {
      clock += ms;
    },
    pollMs: 1000,
  };
  return { io, out, err, json: () => out.map((line) => JSON.parse(line)) };
}

describe("kubler audit, local mode (audit.jsonl)", () => {
  let dataDir: string;
  const write = (lines: string[]) => writeFileSync(join(dataDir, "audit.jsonl"), lines.join("\n"));
  const run = (...args: string[]) => {
    const h = harness({ KUBLER_DATA_DIR: dataDir });
    return runAuditCommand(args, h.io).then((code) => ({ code, ...h }));
  };

  beforeEach(() => {
    dataDir = mkdtempSync(join(tmpdir(), "kubler-audit-cli-"));
  });

  it("filters by project, environment, action and outcome within --since, as JSON lines", async () => {
    write([
      JSON.stringify(record({ reason: "old", at: "2026-03-01T11:59:59.999Z" })),
      JSON.stringify(record({ reason: "match 1" })),
      "{not json",
      JSON.stringify({ _aws: { Timestamp: 1 }, Deploys: 1 }),
      JSON.stringify(
        record({ reason: "other env", subject: { project: "group/app", environment: "production" } }),
      ),
      JSON.stringify(
        record({ reason: "other project", subject: { project: "group/other", environment: "staging" } }),
      ),
      JSON.stringify(record({ reason: "failed", outcome: "failure" })),
      JSON.stringify(record({ reason: "other action", action: "environment.stop" })),
      // The last line without a newline, as a crash would leave it.
      JSON.stringify(record({ reason: "match 2", at: "2026-03-02T11:30:00.000Z" })),
    ]);
    const { code, json, err } = await run(
      "--project",
      "group/app",
      "--environment",
      "staging",
      "--action",
      "environment.deploy",
      "--outcome",
      "success",
      "--json",
    );
    expect(code).toBe(0);
    expect(json().map((r) => r.reason)).toEqual(["match 1", "match 2"]);
    expect(err.at(-1)).toMatch(/2 matched, 2 shown$/);
  });

  it("keeps the newest --limit matches, oldest first, and takes an action prefix and several outcomes", async () => {
    write(
      Array.from({ length: 50 }, (_, i) =>
        JSON.stringify(
          record({
            reason: `r${i}`,
            action: i % 2 ? "credentials.issue" : "environment.deploy",
            outcome: i % 3 ? "deny" : "allow",
            at: new Date(NOW.getTime() - (50 - i) * 1000).toISOString(),
          }),
        ),
      ).concat(""),
    );
    const { json } = await run(
      "--action",
      "credentials.*",
      "--outcome",
      "allow,deny",
      "--limit",
      "3",
      "--json",
    );
    expect(json().map((r) => r.reason)).toEqual(["r45", "r47", "r49"]);
  });

  it("prints a table with who at GitLab caused each line, skipping lines that are not audit records", async () => {
    write([
      JSON.stringify(
        record({ reason: "deployed\nabc", actor: { function: "deploy-environment", gitlabUser: "jsmith" } }),
      ),
      "{not json",
      '{"_aws":{}}',
      JSON.stringify(
        record({
          action: "credentials.issue",
          outcome: "allow",
          reason: "rule ci",
          actor: { user: "mona", job: 7 },
        }),
      ),
      JSON.stringify(record({ reason: "swept", actor: { function: "cleanup-environments" } })),
      "",
    ]);
    const { out, err } = await run();
    expect(err.at(-1)).toMatch(/3 matched, 3 shown, 2 malformed line\(s\) skipped$/);
    expect(out[0]).toMatch(/^AT\s+FUNCTION\s+ACTION\s+OUTCOME\s+WHO\s+PROJECT\s+ENVIRONMENT\s+REASON$/);
    expect(out.slice(1)).toEqual([
      expect.stringMatching(
        /^2026-03-02 11:00:00\.000Z\s+deploy-environment\s+environment\.deploy\s+success\s+jsmith\s+group\/app\s+staging\s+deployed abc$/,
      ),
      expect.stringMatching(/\s+credentials\.issue\s+allow\s+mona\s+group\/app\s+staging\s+rule ci$/),
      expect.stringMatching(/\s+success\s+-\s+group\/app\s+staging\s+swept$/),
    ]);
  });

  it("names the environments a plan.steps line decided for, in the table and the timeline", async () => {
    const plan = (at: string, environments: string[] | undefined) => {
      const { environment: _none, ...subject } = record().subject;
      return JSON.stringify(
        record({
          action: "plan.steps",
          function: "plan-steps",
          reason: "planned",
          at,
          subject: { ...subject, sha: "e59094b8", ...(environments ? { environments, steps: [] } : {}) },
        }),
      );
    };
    write([
      plan("2026-03-02T11:00:01.000Z", ["review/feature/booking-validation"]),
      plan("2026-03-02T11:00:02.000Z", ["staging", "production"]),
      plan("2026-03-02T11:00:03.000Z", ["review/feature/a-very-long-branch-name-indeed", "staging", "qa"]),
      plan("2026-03-02T11:00:04.000Z", undefined),
    ]);
    const { out } = await run("--action", "plan.steps");
    const environment = out.slice(1).map((line) => line.split(/\s{2,}/)[6]);
    expect(environment).toEqual([
      "review/…/booking-validation",
      "staging +1",
      "review/f…anch-name-indeed +2",
      "-",
    ]);
    // The timeline has room for every name.
    const timeline = await run("--correlation", "c-1");
    expect(timeline.out[3]).toContain("[review/feature/booking-validation] planned");
    expect(timeline.out[4]).toContain("[staging, production] planned");
  });

  it("finds with --environment the plan.steps line that ordered its stop, which names it in a list", async () => {
    const env = "review/feature/booking-validation";
    write([
      JSON.stringify(
        record({
          action: "plan.steps",
          function: "plan-steps",
          reason: `merge request !16 closed: stop ${env}`,
          subject: { project: "group/app", environments: [env], steps: ["Environment Stop Requested"] },
        }),
      ),
      JSON.stringify(
        record({
          action: "environment.stop",
          reason: "namespace deleted",
          at: "2026-03-02T11:00:01.000Z",
          subject: { project: "group/app", environment: env },
        }),
      ),
      JSON.stringify(record({ reason: "another environment's deploy" })),
    ]);
    const { json } = await run("--environment", env, "--json");
    expect(json().map((r) => r.reason)).toEqual([
      `merge request !16 closed: stop ${env}`,
      "namespace deleted",
    ]);
  });

  it("cuts a long project or environment in the middle, so two that differ at the end never read the same", async () => {
    const deploy = (project: string, environment: string) =>
      JSON.stringify(record({ subject: { project, environment } }));
    write([
      deploy("platform/team-payments/checkout-service", "review/feature/booking-validation"),
      deploy("platform/team-payments/checkout-service-v2", "review/feature/booking-validation-v2"),
      deploy("platform/checkout", "review/feature-a-very-long-single-branch-name"),
    ]);
    const { out } = await run();
    const cells = out.slice(1).map((line) => line.split(/\s{2,}/).slice(5, 7));
    expect(cells).toEqual([
      ["platform/…/checkout-service", "review/…/booking-validation"],
      ["platform/…heckout-service-v2", "review/fe…king-validation-v2"],
      ["platform/checkout", "review/fe…single-branch-name"],
    ]);
    for (const cell of cells.flat()) expect(cell.length).toBeLessThanOrEqual(28);
  });

  it("marks the table's times as UTC, as --since reads a time without an offset", async () => {
    write([JSON.stringify(record())]);
    const { out } = await run();
    expect(out[1]).toMatch(/^2026-03-02 11:00:00\.000Z\s/);
  });

  it("prints no control character a payload carried: the operator's terminal would obey it", async () => {
    // Through an authenticated webhook, a project path or ref reaches the line as GitLab sent it.
    write([
      JSON.stringify(
        record({
          reason: "published Push mike/\u001b[2Jdiaspora x\u001b[41mRED\u001b[0m",
          actor: { function: "gitlab-webhook", gitlabUser: "j\u0007smith" },
          subject: { project: "mike/\u001b[2Jdiaspora", environment: "review/\u202egnp.exe" },
        }),
      ),
    ]);
    for (const args of [
      [],
      ["--correlation", "c-1"],
      ["--query", "rejected-webhooks", "--outcome", "success"],
    ]) {
      const { out } = await run(...args);
      for (const line of out) expect(line).not.toMatch(/[\p{Cc}\u202a-\u202e\u2066-\u2069]/u);
      const table = out.join("\n");
      if (args.length === 0) {
        expect(table).toContain("published Push mike/\\x1b[2Jdiaspora x\\x1b[41mRED\\x1b[0m");
        expect(table).toContain("j\\x07smith");
        expect(table).toContain("review/\\u202egnp.exe");
      }
    }
    // --json keeps the record as written (JSON escapes them).
    const { out } = await run("--json");
    expect(JSON.parse(out[0] as string).subject.project).toBe("mike/\u001b[2Jdiaspora");
    // JSON.stringify leaves DEL, C1 (U+009B is CSI) and the bidi controls raw: escaped all the same.
    expect(out[0]).not.toMatch(/[\p{Cc}\u202a-\u202e\u2066-\u2069]/u);
    expect(JSON.parse(out[0] as string).subject.environment).toBe("review/\u202egnp.exe");
  });

  it("names the audit file, and what is wrong with it, when it cannot be read", async () => {
    mkdirSync(join(dataDir, "audit.jsonl"));
    await expect(run()).rejects.toThrow(
      new ConfigError(`${join(dataDir, "audit.jsonl")} is a directory, not a file`),
    );
  });

  it("skips a JSON line marked audit that lacks a record's fields, instead of failing the whole query", async () => {
    write([
      '{"audit":true,"subject":{},"at":"2026-03-02T11:00:00.000Z"}',
      JSON.stringify({ ...record(), actor: null }),
      JSON.stringify({ ...record(), reason: 7 }),
      JSON.stringify(record({ reason: "kept" })),
    ]);
    for (const args of [[], ["--action", "environment.*"], ["--correlation", "c-1"]]) {
      const { code, out, err } = await run(...args);
      expect(code).toBe(0);
      expect(out.at(-1)).toMatch(/kept/);
      // Lines without a filter's values are not parsed, so not counted: all three only unfiltered.
      expect(err.at(-1)).toMatch(
        args.length === 0 ? /1 matched, 1 shown, 3 malformed line\(s\) skipped$/ : /1 matched, 1 shown, /,
      );
    }
  });

  it("says who stopped an environment: the GitLab user, else the operator of kubler stop, an ARN cut to fit", async () => {
    const stop = (actor: Record<string, string>, at: string) =>
      JSON.stringify(
        record({
          action: "environment.stop",
          function: "cleanup-environments",
          reason: "deleted (stopped)",
          actor: { function: "cleanup-environments", ...actor },
          at,
        }),
      );
    write([
      stop({ gitlabUser: "agarcia" }, "2026-03-02T11:00:01.000Z"),
      stop(
        { operator: "aws:arn:aws:sts::123456789012:assumed-role/Admin/alice" },
        "2026-03-02T11:00:02.000Z",
      ),
      stop({ operator: "aws:arn:aws:iam::123456789012:user/ops/bob" }, "2026-03-02T11:00:03.000Z"),
      stop({ operator: "local:carol" }, "2026-03-02T11:00:04.000Z"),
      stop({}, "2026-03-02T11:00:05.000Z"),
    ]);
    const { out } = await run("--action", "environment.stop");
    const who = out.slice(1).map((line) => line.split(/\s{2,}/)[4]);
    expect(who).toEqual(["agarcia", "aws:Admin/alice", "aws:bob", "local:carol", "-"]);
    // --json keeps the whole identity.
    const { json } = await run("--action", "environment.stop", "--json");
    expect(json()[1].actor.operator).toBe("aws:arn:aws:sts::123456789012:assumed-role/Admin/alice");
  });

  it("tells the story of one correlation id, step by step, with the time between steps", async () => {
    const step = (at: string, fn: string, action: string, reason: string, extra: Partial<AuditRecord> = {}) =>
      JSON.stringify(record({ correlationId: "abc", at, function: fn, action, reason, ...extra }));
    write([
      step("2026-03-02T10:00:00.050Z", "plan-steps", "plan.steps", "build + deploy review/x"),
      step("2026-03-02T10:00:00.000Z", "gitlab-webhook", "webhook.receive", "published Merge Request"),
      JSON.stringify(record({ correlationId: "other" })),
      step("2026-03-02T10:00:02.550Z", "deploy-environment", "environment.deploy", "deployed", {
        durationMs: 2400,
      }),
      step("2026-03-02T11:00:02.550Z", "cleanup-environments", "environment.stop", "deleted (expired)"),
    ]);
    const { out } = await run("--correlation", "abc");
    expect(out[0]).toBe("correlation abc (group/app): 4 step(s) over 1h 00m, from 2026-03-02T10:00:00.000Z");
    const steps = out.slice(3).map((line) => line.split(/\s{2,}/));
    expect(steps.map((cells) => cells.slice(0, 4))).toEqual([
      ["0 ms", "gitlab-webhook", "webhook.receive", "success"],
      ["50 ms", "+50 ms", "plan-steps", "plan.steps"],
      ["2.5 s", "+2.5 s", "deploy-environment", "environment.deploy"],
      ["1h 00m", "+1h 00m", "cleanup-environments", "environment.stop"],
    ]);
    expect(out[5]).toContain("[staging] deployed (took 2.4 s)");
  });

  it("with --limit, tells the first steps of a correlation, as Logs Insights' oldest-first query returns them", async () => {
    const step = (at: string, action: string) =>
      JSON.stringify(record({ correlationId: "abc", at, action, reason: action }));
    write([
      step("2026-03-02T10:00:00.000Z", "webhook.receive"),
      step("2026-03-02T10:00:00.050Z", "plan.steps"),
      JSON.stringify(record({ correlationId: "other" })),
      step("2026-03-02T10:00:02.550Z", "environment.deploy"),
      step("2026-03-02T11:00:02.550Z", "environment.stop"),
    ]);
    const { json } = await run("--correlation", "abc", "--limit", "2", "--json");
    expect(json().map((r) => r.action)).toEqual(["webhook.receive", "plan.steps"]);
    const { out } = await run("--correlation", "abc", "--limit", "2");
    expect(out[0]).toBe("correlation abc (group/app): 2 step(s) over 50 ms, from 2026-03-02T10:00:00.000Z");
  });

  it("runs a saved query: rejected webhooks counted by reason and instance", async () => {
    const webhook = (outcome: AuditRecord["outcome"], reason: string, instance: string) =>
      JSON.stringify(
        record({
          action: "webhook.receive",
          function: "gitlab-webhook",
          outcome,
          reason,
          gitlab: { instance, event: "Push Hook", idempotencyKey: null, webhookUuid: null },
        }),
      );
    write([
      webhook("deny", "X-Gitlab-Token does not match any configured secret", "https://a.example"),
      webhook("deny", "X-Gitlab-Token does not match any configured secret", "https://a.example"),
      webhook("success", "published Push", "https://a.example"),
      webhook("failure", "body is not valid JSON", "https://b.example"),
    ]);
    const { json } = await run("--query", "rejected-webhooks", "--json");
    expect(json()).toEqual([
      {
        records: "2",
        last: "2026-03-02T11:00:00.000Z",
        reason: "X-Gitlab-Token does not match any configured secret",
        "gitlab.instance": "https://a.example",
      },
      {
        records: "1",
        last: "2026-03-02T11:00:00.000Z",
        reason: "body is not valid JSON",
        "gitlab.instance": "https://b.example",
      },
    ]);
    // As a table, each reason whole: it is what the query is run for (cut at 40, both read "X-Gitlab-
    // Token does not match any confi…"). An instance a rejected delivery never named is "-".
    write([
      webhook("deny", "X-Gitlab-Token does not match any configured secret", "https://a.example"),
      webhook("deny", "webhook-signature does not match any configured signing key", ""),
      webhook("failure", `Merge Request Hook payload: "project.id" is missing`, "https://b.example"),
    ]);
    const { out } = await run("--query", "rejected-webhooks");
    expect(out.slice(1).map((line) => line.split(/\s{2,}/).slice(2))).toEqual([
      ["X-Gitlab-Token does not match any configured secret", "https://a.example"],
      ["webhook-signature does not match any configured signing key", "-"],
      [`Merge Request Hook payload: "project.id" is missing`, "https://b.example"],
    ]);
  });

  it("takes --until as a duration before now, like --since", async () => {
    write([
      JSON.stringify(
        record({ reason: "two hours ago", at: new Date(NOW.getTime() - 2 * 3_600_000).toISOString() }),
      ),
      JSON.stringify(record({ reason: "a minute ago", at: new Date(NOW.getTime() - 60_000).toISOString() })),
    ]);
    const { code, json } = await run("--since", "3h", "--until", "1h", "--json");
    expect(code).toBe(0);
    expect(json().map((r) => r.reason)).toEqual(["two hours ago"]);
  });

  it("answers an empty trail when there is no audit file yet", async () => {
    const { code, out } = await run();
    expect(code).toBe(0);
    expect(out).toEqual(["no audit records match"]);
  });

  it("says how to look further back when nothing matched since --since", async () => {
    write([JSON.stringify(record({ at: "2026-02-20T11:00:00.000Z" }))]);
    const { out, err } = await run();
    expect(out).toEqual(["no audit records match"]);
    expect(err.at(-1)).toMatch(
      /0 matched, 0 shown; nothing since 2026-03-01T12:00:00\.000Z: look further back with --since 7d, or --since all$/,
    );
  });

  it.each([
    [["--since", "7d"], "--since all"],
    [["--correlation", "corr-1"], "--since all"], // its default window is 14 days
  ])("suggests only a longer window than %j's when nothing matched", async (args, suggested) => {
    write([JSON.stringify(record({ at: "2026-01-01T11:00:00.000Z" }))]);
    const { err } = await run(...args);
    expect(err.at(-1)).toMatch(new RegExp(`: look further back with ${suggested}$`));
  });

  it.each([
    [["--outcome", "maybe"], "--outcome"],
    [["--since", "yesterday"], "--since"],
    [["--until", "soon"], "--until"],
    [["--limit", "0"], "--limit"],
    // Logs Insights answers at most 10,000 rows: the local trail must not quietly show more than AWS.
    [["--limit", "10001"], "--limit"],
    // An empty window: AWS's StartQuery refuses it; the local trail answered "nothing".
    [["--since", "1h", "--until", "2h"], "--since"],
    [["--query", "nope"], "--query"],
    // Past what a Date holds: once "Invalid time value", naming nothing.
    [["--since", "99999999999d"], "--since"],
    [["--until", "99999999999999h"], "--until"],
  ])("refuses %j naming %s, as a usage mistake (kubler exits 2)", async (args, flag) => {
    await expect(run(...args)).rejects.toThrow(UsageError);
    await expect(run(...args)).rejects.toThrow(flag);
  });

  it.each([
    ["credentials-for-role", "--role"],
    ["deploys-to-environment", "--environment"],
    ["correlation", "--correlation"],
  ])("refuses --query %s without %s instead of answering for everything", async (name, flag) => {
    write([JSON.stringify(record())]);
    await expect(run("--query", name)).rejects.toThrow(new UsageError(`--query ${name} needs ${flag}`));
  });

  it("runs a saved query given its parameter", async () => {
    const role = "arn:aws:iam::123456789012:role/app";
    const issued = (roleArn: string) =>
      JSON.stringify(record({ action: "credentials.issue", outcome: "allow", subject: { roleArn } }));
    write([issued(role), issued("arn:aws:iam::123456789012:role/other")]);
    const { code, json } = await run("--query", "credentials-for-role", "--role", role, "--json");
    expect(code).toBe(0);
    expect(json().map((r: AuditRecord) => r.subject.roleArn)).toEqual([role]);
  });
});

describe("kubler audit, AWS mode (CloudWatch Logs Insights)", () => {
  const logs = mockClient(CloudWatchLogsClient);
  const message = (r: AuditRecord) => [
    { field: "@timestamp", value: r.at.replace("T", " ").replace("Z", "") },
    { field: "@message", value: JSON.stringify(r) },
    { field: "@ptr", value: "opaque" },
  ];
  const results = (
    status: GetQueryResultsCommandOutput["status"],
    rows: ReturnType<typeof message>[] = [],
  ) => ({
    status,
    statistics: { recordsMatched: rows.length, recordsScanned: 1200, bytesScanned: 2_097_152 },
    results: rows,
  });

  beforeEach(() => {
    logs.reset();
    logs.on(StartQueryCommand).resolves({ queryId: "q-1" });
  });
  afterEach(() => {
    logs.reset();
  });

  it("starts a query over the log groups and polls until it completes, with progress on stderr", async () => {
    const newest = record({ reason: "newest", at: "2026-03-02T11:30:00.000Z" });
    const older = record({ reason: "older" });
    logs
      .on(GetQueryResultsCommand)
      .resolvesOnce(results("Scheduled"))
      .resolvesOnce(results("Running"))
      .resolves(results("Complete", [message(newest), message(older)]));
    const h = harness({ KUBLER_AUDIT_LOG_GROUPS: "/aws/lambda/a, /aws/lambda/b" });
    const code = await runAuditCommand(["--environment", "staging", "--since", "2h", "--json"], h.io);

    expect(code).toBe(0);
    expect(logs).toHaveReceivedCommandWith(StartQueryCommand, {
      logGroupNames: ["/aws/lambda/a", "/aws/lambda/b"],
      startTime: NOW.getTime() / 1000 - 7200,
      endTime: NOW.getTime() / 1000,
      queryString: [
        "fields @timestamp, @message",
        '| filter ispresent(auditVersion) and (subject.environment = "staging" or @message like /"environments":\\[("(\\\\.|[^"\\\\])*",)*"staging"[,\\]]/)',
        "| sort @timestamp desc",
        "| limit 1000",
      ].join("\n"),
    });
    expect(logs).toHaveReceivedCommandTimes(GetQueryResultsCommand, 3);
    expect(h.json().map((r) => r.reason)).toEqual(["older", "newest"]);
    expect(h.err[0]).toBe("querying 2 log group(s) from 2026-03-02T10:00:00.000Z");
    expect(h.err.slice(1)).toEqual([
      "Logs Insights: Scheduled 0 ms, 1,200 records scanned (2.0 MB), 0 matched",
      "Logs Insights: Running 1.0 s, 1,200 records scanned (2.0 MB), 0 matched",
      "Logs Insights: Complete 2.0 s, 1,200 records scanned (2.0 MB), 2 matched",
    ]);
  });

  it("skips a row whose message lacks a record's fields, instead of failing the whole table", async () => {
    const odd = [{ field: "@message", value: '{"audit":true,"auditVersion":1,"subject":{}}' }];
    logs.on(GetQueryResultsCommand).resolves(results("Complete", [odd, message(record({ reason: "kept" }))]));
    const h = harness({ KUBLER_AUDIT_LOG_GROUPS: "/aws/lambda/a" });
    expect(await runAuditCommand([], h.io)).toBe(0);
    expect(h.out).toHaveLength(2);
    expect(h.out[1]).toMatch(/kept$/);
  });

  it("asks for the timeline oldest first, over --log-group ARNs", async () => {
    logs
      .on(GetQueryResultsCommand)
      .resolves(results("Complete", [message(record({ correlationId: "abc" }))]));
    const arn = "arn:aws:logs:eu-west-1:123456789012:log-group:/aws/lambda/kubler-webhook";
    const h = harness();
    expect(await runAuditCommand(["--correlation", "abc", "--log-group", arn], h.io)).toBe(0);
    const input = logs.commandCalls(StartQueryCommand)[0]?.args[0].input;
    expect(input?.logGroupIdentifiers).toEqual([arn]);
    expect(input?.queryString).toContain('correlationId = "abc"');
    expect(input?.queryString).toContain("| sort @timestamp asc");
    expect(input?.startTime).toBe(NOW.getTime() / 1000 - 14 * 86_400);
    expect(h.out[0]).toMatch(/^correlation abc \(group\/app\): 1 step\(s\)/);
  });

  it("prints a saved aggregate query's rows", async () => {
    logs.on(GetQueryResultsCommand).resolves({
      status: "Complete",
      results: [
        [
          { field: "reason", value: "bad signature" },
          { field: "gitlab.instance", value: "https://a.example" },
          { field: "records", value: "7" },
          { field: "last", value: "2026-03-02T11:00:00.000Z" },
        ],
      ],
    });
    const h = harness({ KUBLER_AUDIT_LOG_GROUPS: "/aws/lambda/a" });
    expect(await runAuditCommand(["--query", "rejected-webhooks"], h.io)).toBe(0);
    expect(logs.commandCalls(StartQueryCommand)[0]?.args[0].input.queryString).toContain(
      "| stats count(*) as records, latest(at) as last by reason, gitlab.instance",
    );
    expect(h.out[1]).toMatch(/^7\s+2026-03-02 11:00:00\.000Z\s+bad signature\s+https:\/\/a\.example$/);
  });

  it.each(["Failed", "Cancelled", "Timeout"] as const)(
    "reports a query that ends %s and exits 1",
    async (status) => {
      logs.on(GetQueryResultsCommand).resolvesOnce(results("Running")).resolves(results(status));
      const h = harness({ KUBLER_AUDIT_LOG_GROUPS: "/aws/lambda/a" });
      expect(await runAuditCommand([], h.io)).toBe(1);
      expect(h.err.at(-1)).toBe(`kubler audit: Logs Insights query q-1 ended ${status}`);
      expect(h.out).toEqual([]);
    },
  );

  it("gives up after --timeout, stops the query so it does not keep scanning, and exits 1", async () => {
    logs.on(GetQueryResultsCommand).resolves(results("Running"));
    logs.on(StopQueryCommand).resolves({ success: true });
    const h = harness({ KUBLER_AUDIT_LOG_GROUPS: "/aws/lambda/a" });
    expect(await runAuditCommand(["--timeout", "5"], h.io)).toBe(1);
    expect(logs).toHaveReceivedCommandWith(StopQueryCommand, { queryId: "q-1" });
    expect(logs).toHaveReceivedCommandTimes(GetQueryResultsCommand, 6);
    expect(h.err.at(-1)).toMatch(
      /query q-1 still Running after 5 s: stopped; narrow --since or raise --timeout$/,
    );
  });

  it("names what CloudWatch refused (a log group that does not exist)", async () => {
    logs
      .on(StartQueryCommand)
      .rejects(new ResourceNotFoundException({ message: "Log group does not exist", $metadata: {} }));
    const h = harness({ KUBLER_AUDIT_LOG_GROUPS: "/aws/lambda/missing" });
    expect(await runAuditCommand([], h.io)).toBe(1);
    expect(h.err.at(-1)).toBe(
      "kubler audit: CloudWatch Logs refused the query: ResourceNotFoundException: Log group does not exist",
    );
  });

  it.each([
    [
      "no region",
      Object.assign(new Error("Region is missing"), { name: "Error" }),
      /^kubler audit: no AWS region for CloudWatch Logs \(Region is missing\): set AWS_REGION to the stack's region, or add --local to read \S*audit\.jsonl$/,
    ],
    [
      "an empty region (AWS_REGION set to nothing)",
      Object.assign(new Error('Region not accepted: region="" is not a valid hostname component.'), {
        name: "Error",
      }),
      /^kubler audit: no AWS region for CloudWatch Logs \(Region not accepted: region="" is not a valid hostname component\.\): set AWS_REGION to the stack's region, or add --local to read \S*audit\.jsonl$/,
    ],
    [
      "no credentials",
      Object.assign(new Error("Could not load credentials from any providers"), {
        name: "CredentialsProviderError",
      }),
      /^kubler audit: no AWS credentials for CloudWatch Logs \(Could not load credentials from any providers\): set AWS_PROFILE, or AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, or add --local to read \S*audit\.jsonl$/,
    ],
  ])(
    "says what to set when the SDK has %s (it sent nothing, so nothing was refused)",
    async (_, error, line) => {
      logs.on(StartQueryCommand).rejects(error);
      const h = harness({ KUBLER_AUDIT_LOG_GROUPS: "/aws/lambda/a" });
      expect(await runAuditCommand([], h.io)).toBe(1);
      expect(h.err.at(-1)).toMatch(line);
    },
  );

  it("reads the local file with --local even when log groups are configured", async () => {
    const dataDir = mkdtempSync(join(tmpdir(), "kubler-audit-cli-"));
    writeFileSync(join(dataDir, "audit.jsonl"), `${JSON.stringify(record())}\n`);
    const h = harness({ KUBLER_AUDIT_LOG_GROUPS: "/aws/lambda/a", KUBLER_DATA_DIR: dataDir });
    expect(await runAuditCommand(["--local", "--json"], h.io)).toBe(0);
    expect(h.json()).toHaveLength(1);
    expect(logs).not.toHaveReceivedCommand(StartQueryCommand);
  });
});

describe("audit command helpers", () => {
  it("reads --since as a duration, an instant or all", () => {
    expect(parseSince("90m", NOW).toISOString()).toBe("2026-03-02T10:30:00.000Z");
    expect(parseSince("1w", NOW).toISOString()).toBe("2026-02-23T12:00:00.000Z");
    expect(parseSince("2026-03-01T00:00:00Z", NOW).toISOString()).toBe("2026-03-01T00:00:00.000Z");
    expect(parseSince("all", NOW).getTime()).toBe(0);
  });

  it("reads an ISO time without an offset as UTC, as the table prints it, whatever the machine's zone", () => {
    const zone = process.env.TZ;
    process.env.TZ = "Europe/Berlin"; // Node applies a TZ set at run time to every Date after it
    try {
      expect(parseSince("2026-03-01T10:00", NOW).toISOString()).toBe("2026-03-01T10:00:00.000Z");
      expect(parseSince("2026-03-01 10:00:00.000", NOW).toISOString()).toBe("2026-03-01T10:00:00.000Z");
      expect(parseSince("2026-03-01", NOW).toISOString()).toBe("2026-03-01T00:00:00.000Z");
      expect(parseSince("2026-03-01T10:00+01:00", NOW).toISOString()).toBe("2026-03-01T09:00:00.000Z");
    } finally {
      if (zone === undefined) delete process.env.TZ;
      else process.env.TZ = zone;
    }
  });

  it("formats durations for people", () => {
    expect([850, 2400, 185_000, 7_800_000, 273_600_000].map(fmtMs)).toEqual([
      "850 ms",
      "2.4 s",
      "3m 05s",
      "2h 10m",
      "3d 4h",
    ]);
  });
});
