import { mkdtempSync, readFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, it, vi } from "vitest";
import {
  EmfMetricsAuditLog,
  logErrorToStderr,
  StdoutAuditLog,
  withLambdaRequestId,
} from "../../shared/adapters/stdout-audit-log.js";
import { type AuditRecord, REDACTED } from "../../shared/domain/audit.js";
import { metricsOfAuditRecord } from "../../shared/domain/audit-metrics.js";
import { SAVED_AUDIT_QUERIES } from "../../shared/domain/audit-queries.js";
import { parseAuditRecord } from "../../shared/domain/audit-schema.js";
import { JsonlAuditLog } from "../../shared/local/jsonl-audit-log.js";
import { JsonlFile } from "../../shared/local/jsonl-file.js";

function record(overrides: Partial<AuditRecord> = {}): AuditRecord {
  return {
    audit: true,
    action: "environment.deploy",
    outcome: "success",
    reason: "deployed abc1234",
    actor: { function: "deploy-environment" },
    subject: { project: "group/app", environment: "staging", status: "succeeded" },
    correlationId: "c-1",
    gitlab: null,
    function: "deploy-environment",
    at: "2026-03-01T10:00:00.000Z",
    ...overrides,
  };
}

function capture() {
  const lines: string[] = [];
  return { lines, write: (line: string) => lines.push(line) };
}

describe("StdoutAuditLog", () => {
  it("writes one redacted, versioned JSON line per record", () => {
    const out = capture();
    new StdoutAuditLog(out.write, { secrets: ["gitlab-api-token-123"] }).record(
      record({ reason: "GitLab answered 401 for gitlab-api-token-123" }),
    );
    expect(out.lines).toHaveLength(1);
    expect(out.lines[0]?.endsWith("\n")).toBe(true);
    const line = parseAuditRecord(JSON.parse(out.lines[0] as string));
    expect(line).toMatchObject({ auditVersion: 1, reason: `GitLab answered 401 for ${REDACTED}` });
    expect(line.requestId).toBeUndefined();
  });

  it("redacts a secret it learns after start-up (read from Secrets Manager), through the EMF decorator too", () => {
    const out = capture();
    const audit = new EmfMetricsAuditLog(new StdoutAuditLog(out.write), () => undefined);
    // Not shaped like any known token: only being told makes it redactable.
    const token = "an-old-style-token-20c";
    audit.record(record({ reason: `before: ${token}` }));
    audit.redactAlso(token);
    audit.redactAlso("short"); // too short to redact without mangling words: ignored
    audit.record(record({ reason: `after: ${token}, in short` }));
    expect(JSON.parse(out.lines[0] as string).reason).toBe(`before: ${token}`);
    expect(JSON.parse(out.lines[1] as string).reason).toBe(`after: ${REDACTED}, in short`);
  });

  it("keeps a record with a huge reason or subject under CloudWatch's 256 KB event limit, as JSON the queries still find", () => {
    const out = capture();
    const audit = new StdoutAuditLog(out.write);
    const branch = `feature/${"add-login-page-".repeat(30_000)}`;
    audit.record(
      record({
        reason: `deploy of ${branch} failed: ${"é".repeat(200_000)}`,
        subject: {
          project: "group/app",
          environment: "review-huge",
          namespace: "kubler-app-review-huge-3f2a9c1b",
          sha: "3f2a9c1b4d5e6f708192a3b4c5d6e7f8091a2b3c",
          ref: branch,
          pruned: Array.from({ length: 20_000 }, (_, i) => `ConfigMap/config-${i}`),
          nested: { deeper: { list: Array.from({ length: 5000 }, () => ({ name: "y".repeat(100) })) } },
        },
        correlationId: "c-huge",
      }),
    );
    expect(out.lines).toHaveLength(1);
    const line = out.lines[0] as string;
    expect(Buffer.byteLength(line)).toBeLessThan(256 * 1024);
    expect(line.endsWith("\n")).toBe(true);
    const written = parseAuditRecord(JSON.parse(line));
    // What the saved queries filter and show is still there, whole.
    expect(written).toMatchObject({
      auditVersion: 1,
      action: "environment.deploy",
      outcome: "success",
      correlationId: "c-huge",
      function: "deploy-environment",
      at: "2026-03-01T10:00:00.000Z",
      subject: {
        project: "group/app",
        environment: "review-huge",
        namespace: "kubler-app-review-huge-3f2a9c1b",
        sha: "3f2a9c1b4d5e6f708192a3b4c5d6e7f8091a2b3c",
      },
      truncated: true,
    });
    expect(written.reason.startsWith("deploy of feature/add-login-page-add-login-page-")).toBe(true);
    expect(written.reason).toMatch(/cut/);
    // Wide as well as long: still bounded, the fields the queries read still there.
    const wide: Record<string, unknown> = { project: "group/app", environment: "review-wide" };
    // ≈ 1 MB of 1 KB strings: over the limit even after the loose cut (it keeps 100 fields, 8 KB strings).
    for (let i = 0; i < 200; i++) wide[`field${i}`] = Array.from({ length: 5 }, () => "z-".repeat(500));
    audit.record(record({ subject: wide, actor: { function: "deploy-environment", gitlabUser: "alice" } }));
    const second = out.lines[1] as string;
    expect(Buffer.byteLength(second)).toBeLessThan(256 * 1024);
    expect(parseAuditRecord(JSON.parse(second))).toMatchObject({
      subject: { project: "group/app", environment: "review-wide" },
      actor: { gitlabUser: "alice" },
      truncated: true,
    });
    // An ordinary record is written as it was.
    audit.record(record());
    expect(JSON.parse(out.lines[2] as string)).not.toHaveProperty("truncated");
  });

  it("stamps the Lambda request id of the invocation that wrote the record, also across awaits", async () => {
    const out = capture();
    const audit = new StdoutAuditLog(out.write);
    const handler = withLambdaRequestId(async (_event: unknown, _context: { awsRequestId: string }) => {
      await new Promise((resolve) => setTimeout(resolve, 1));
      audit.record(record());
      return "done";
    });
    await Promise.all([handler({}, { awsRequestId: "req-a" }), handler({}, { awsRequestId: "req-b" })]);
    audit.record(record());
    const lines = out.lines.map((line) => JSON.parse(line));
    expect(lines.map((line) => line.requestId)).toEqual(expect.arrayContaining(["req-a", "req-b"]));
    expect(lines[2].requestId).toBeUndefined();
    // The step latency: from the start of the invocation to the decision.
    expect(lines[0].durationMs).toBeGreaterThan(0);
    expect(lines[2].durationMs).toBeUndefined();
    audit.record(record({ durationMs: 7 }));
    expect(JSON.parse(out.lines[3] as string).durationMs).toBe(7);
  });
});

/**
 * The fields Logs Insights finds in a JSON line: "CloudWatch Logs Insights can extract a maximum of
 * 200 log event fields from a JSON log"
 * (https://docs.aws.amazon.com/AmazonCloudWatch/latest/logs/CWL_AnalyzeLogData-discoverable-fields.html),
 * objects flattened to dotted names and arrays to one field per index, in the line's order.
 */
function insightsFields(line: string, max = 200): string[] {
  const names: string[] = [];
  const walk = (value: unknown, path: string) => {
    if (value !== null && typeof value === "object") {
      for (const [key, item] of Object.entries(value)) walk(item, path ? `${path}.${key}` : key);
    } else names.push(path);
  };
  walk(JSON.parse(line), "");
  return names.slice(0, max);
}

describe("audit lines as Logs Insights reads them", () => {
  it("keeps every field the queries filter on or show within the 200 it extracts, whatever the subject's lists", async () => {
    const out = capture();
    const audit = new StdoutAuditLog(out.write);
    // A deploy that pruned 250 objects (a project that dropped a chart): its subject alone is 250+ fields.
    const pruned = Array.from({ length: 250 }, (_, i) => `ConfigMap/settings-${i}`);
    const handler = withLambdaRequestId(async (_event: unknown, _context: { awsRequestId: string }) =>
      audit.record(
        record({
          subject: {
            project: "group/app",
            environment: "staging",
            sha: "abc1234",
            status: "succeeded",
            pruned,
          },
          gitlab: {
            instance: "https://gitlab.example.com",
            event: "Deploy Requested",
            idempotencyKey: null,
            webhookUuid: null,
          },
        }),
      ),
    );
    await handler({}, { awsRequestId: "req-a" });
    const line = out.lines[0] as string;
    const found = insightsFields(line);
    const carried = insightsFields(line, Number.POSITIVE_INFINITY);
    const queried = new Set([
      "auditVersion",
      "action",
      "outcome",
      "correlationId",
      "gitlab.instance",
      ...SAVED_AUDIT_QUERIES.flatMap((q) => [...q.fields, ...(q.groupBy ?? [])]),
    ]);
    const lost = [...queried].filter((field) => carried.includes(field) && !found.includes(field));
    expect(lost).toEqual([]);
    expect(found).toEqual(expect.arrayContaining(["requestId", "durationMs", "subject.environment"]));
  });
});

describe("JsonlAuditLog", () => {
  it("redacts a secret it learns after start-up (the local runtime's GitLab token secret)", async () => {
    const file = new JsonlFile(join(mkdtempSync(join(tmpdir(), "kubler-audit-")), "audit.jsonl"));
    const audit = new JsonlAuditLog(file);
    audit.redactAlso("an-old-style-token-20c");
    audit.record(record({ reason: "GitLab refused an-old-style-token-20c" }));
    await file.close();
    expect(JSON.parse(readFileSync(file.path, "utf8")).reason).toBe(`GitLab refused ${REDACTED}`);
  });

  it("appends the redacted record to the file and hands the same to the listener", async () => {
    const path = join(mkdtempSync(join(tmpdir(), "kubler-audit-")), "audit.jsonl");
    const file = new JsonlFile(path);
    const heard: AuditRecord[] = [];
    new JsonlAuditLog(file, (r) => heard.push(r), { secrets: ["local-secret-token"] }).record(
      record({ subject: { note: "local-secret-token", authorization: "Basic eDp5" } }),
    );
    await file.close();
    const [line] = readFileSync(path, "utf8")
      .trim()
      .split("\n")
      .map((l) => JSON.parse(l));
    expect(line).toEqual(heard[0]);
    expect(line.subject).toEqual({ note: REDACTED, authorization: REDACTED });
    expect(line.auditVersion).toBe(1);
  });
});

describe("metrics from audit records", () => {
  it.each<[Partial<AuditRecord>, object[]]>([
    [{ action: "webhook.receive", outcome: "deny" }, [{ name: "Webhooks", dimensions: { Outcome: "deny" } }]],
    [
      { action: "environment.deploy", outcome: "success" },
      [{ name: "Deploys", dimensions: { Outcome: "success" } }],
    ],
    [
      { action: "environment.deploy", outcome: "failure", subject: { status: "rolled_back" } },
      [
        { name: "Deploys", dimensions: { Outcome: "failure" } },
        { name: "Rollbacks", dimensions: {} },
      ],
    ],
    [{ action: "credentials.issue", outcome: "allow" }, [{ name: "CredentialsIssued" }]],
    [{ action: "credentials.issue", outcome: "deny" }, [{ name: "CredentialsDenied" }]],
    [{ action: "environment.sweep.delete", outcome: "success" }, [{ name: "SweepDeletions" }]],
    [{ action: "environment.stop", outcome: "success" }, []],
    [
      { action: "environment.stop", outcome: "success", durationMs: 42 },
      [
        {
          name: "StepLatency",
          unit: "Milliseconds",
          value: 42,
          dimensions: { Function: "deploy-environment" },
        },
      ],
    ],
  ])("%j counts %j", (change, expected) => {
    const metrics = metricsOfAuditRecord(record(change));
    expect(metrics).toHaveLength(expected.length);
    expected.forEach((metric, i) => {
      expect(metrics[i]).toMatchObject(metric);
    });
  });

  it("writes the audit line, then one EMF document with every metric of the record", () => {
    const out = capture();
    const audit = new EmfMetricsAuditLog(new StdoutAuditLog(out.write), out.write, () => 5);
    audit.record(record({ outcome: "failure", subject: { status: "rolled_back" }, durationMs: 900 }));
    audit.record(record({ action: "bus.deliver" }));
    audit.count("PublishRetries", 2);
    audit.count("PublishRetries", 0);
    expect(out.lines).toHaveLength(4);
    const emf = JSON.parse(out.lines[1] as string);
    expect(emf).toEqual({
      _aws: {
        Timestamp: Date.parse("2026-03-01T10:00:00.000Z"),
        CloudWatchMetrics: [
          { Namespace: "Kubler", Dimensions: [["Outcome"]], Metrics: [{ Name: "Deploys", Unit: "Count" }] },
          { Namespace: "Kubler", Dimensions: [[]], Metrics: [{ Name: "Rollbacks", Unit: "Count" }] },
          {
            Namespace: "Kubler",
            Dimensions: [["Function"]],
            Metrics: [{ Name: "StepLatency", Unit: "Milliseconds" }],
          },
        ],
      },
      Outcome: "failure",
      Function: "deploy-environment",
      Deploys: 1,
      Rollbacks: 1,
      StepLatency: 900,
    });
    expect(JSON.parse(out.lines[2] as string).action).toBe("bus.deliver");
    expect(JSON.parse(out.lines[3] as string)).toMatchObject({ _aws: { Timestamp: 5 }, PublishRetries: 2 });
  });

  it("emits StepLatency for the duration the Lambda writer stamped, the same value as the audit line's", async () => {
    const out = capture();
    const audit = new EmfMetricsAuditLog(new StdoutAuditLog(out.write), out.write, () => 5);
    const handler = withLambdaRequestId(async (_event: unknown, _context: { awsRequestId: string }) => {
      await new Promise((resolve) => setTimeout(resolve, 1));
      audit.record(record({ action: "environment.stop" }));
    });
    await handler({}, { awsRequestId: "req-a" });
    expect(out.lines).toHaveLength(2);
    const line = JSON.parse(out.lines[0] as string);
    const emf = JSON.parse(out.lines[1] as string);
    expect(line.durationMs).toBeGreaterThan(0);
    expect(emf._aws.CloudWatchMetrics[0].Metrics).toEqual([{ Name: "StepLatency", Unit: "Milliseconds" }]);
    expect(emf.StepLatency).toBe(line.durationMs);
  });
});

describe("logErrorToStderr", () => {
  it("writes one JSON line with the stack, the configured secrets and secret-shaped text redacted", () => {
    const lines: string[] = [];
    const spy = vi.spyOn(process.stderr, "write").mockImplementation((chunk) => {
      lines.push(String(chunk));
      return true;
    });
    try {
      const token = "configured-webhook-token-123";
      logErrorToStderr("gitlab-webhook", [token])(
        new Error(`upstream said: bad token ${token}; Authorization: Bearer glpat-AbCdEfGhIjKlMnOpQrSt`),
      );
    } finally {
      spy.mockRestore();
    }
    expect(lines).toHaveLength(1);
    const line = JSON.parse(lines[0] ?? "") as Record<string, string>;
    expect(line).toMatchObject({ level: "error", function: "gitlab-webhook", name: "Error" });
    expect(line.stack).toContain("audit-writers.test.ts");
    for (const secret of ["configured-webhook-token-123", "glpat-AbCdEfGhIjKlMnOpQrSt"]) {
      expect(lines[0]).not.toContain(secret);
    }
  });
});
