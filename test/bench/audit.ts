/**
 * Audit benchmarks. (1) What writing one decision costs: the Lambda writer (redaction, stamps, the
 * JSON line, the EMF metrics line) and the local one (audit.jsonl), against a bare JSON.stringify of
 * the same record in the same run. (2) `kubler audit` over a generated 1,000,000-record audit.jsonl:
 * the real command in a child process, wall time and peak RSS, against a child that only streams
 * the same file and counts its lines (the I/O floor).
 */
import { spawn } from "node:child_process";
import { closeSync, mkdtempSync, openSync, rmSync, statSync, writeSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { pathToFileURL } from "node:url";
import {
  EmfMetricsAuditLog,
  StdoutAuditLog,
  withLambdaRequestId,
} from "../../shared/adapters/stdout-audit-log.js";
import type { AuditRecord } from "../../shared/domain/audit.js";
import { JsonlAuditLog } from "../../shared/local/jsonl-audit-log.js";
import { JsonlFile } from "../../shared/local/jsonl-file.js";
import { type Figure, fmt, median, rate } from "./support.js";

const ROOT = join(import.meta.dirname, "../..");

/** Decisions as the functions write them: a published webhook, a rolled-back deploy, issued credentials. */
function sampleRecords(): AuditRecord[] {
  const at = "2026-03-01T10:00:00.000Z";
  const gitlab = {
    instance: "https://gitlab.example.com",
    event: "Merge Request Hook",
    idempotencyKey: "3f0c2b4e-8a5d-4c1e-9f7a-2b6d8e0a1c3f",
    webhookUuid: "9d2f7a44-3b1e-4c8e-a1f2-6b7c8d9e0f1a",
  };
  return [
    {
      audit: true,
      action: "webhook.receive",
      outcome: "success",
      reason: "published Merge Request !16 (update) feature/booking-validation → main",
      actor: { userAgent: "GitLab/17.4.0", gitlabUser: "jsmith" },
      subject: {
        project: "flightjs/flight-management",
        projectId: 2,
        detailType: "Merge Request",
        eventIds: ["b1946ac9-2492-4b1a-9f4c-3c3d5e6f7a8b"],
      },
      correlationId: gitlab.idempotencyKey,
      gitlab,
      function: "gitlab-webhook",
      at,
    },
    {
      audit: true,
      action: "environment.deploy",
      outcome: "failure",
      reason: "rollout of deployment/app did not finish by its deadline; rolled back to 0123abc",
      actor: { function: "deploy-environment" },
      subject: {
        project: "flightjs/flight-management",
        projectId: 2,
        environment: "review/feature/booking-validation",
        namespace: "flightjs-flight-management-review-feature-booking-1a2b3c4d",
        sha: "abcdef0123456789abcdef0123456789abcdef01",
        status: "rolled_back",
        url: "https://review-feature-booking-validation.apps.example.com",
      },
      correlationId: gitlab.idempotencyKey,
      gitlab: { ...gitlab, event: "Deploy Requested", idempotencyKey: null, webhookUuid: null },
      function: "deploy-environment",
      at,
    },
    {
      audit: true,
      action: "credentials.issue",
      outcome: "allow",
      reason: 'rule "review-apps" matched project_path flightjs/* and environment review/*',
      actor: { user: "jsmith", job: "4711", pipeline: "815" },
      subject: {
        project: "flightjs/flight-management",
        projectId: "2",
        rule: "review-apps",
        environment: "review/feature/booking-validation",
        roleArn: "arn:aws:iam::123456789012:role/kubler-review",
        expiresAt: "2026-03-01T11:00:00.000Z",
        jti: "c0ffee00-1234-4abc-8def-0123456789ab",
        claims: {
          ref: "feature/booking-validation",
          ref_protected: "false",
          pipeline_source: "merge_request_event",
        },
      },
      correlationId: "c0ffee00-1234-4abc-8def-0123456789ab",
      gitlab: {
        instance: "https://gitlab.example.com",
        event: "id_token",
        idempotencyKey: null,
        webhookUuid: null,
      },
      function: "job-credentials",
      at,
    },
  ];
}

async function benchWriteOverhead(): Promise<Figure[]> {
  const records = sampleRecords();
  let sink = 0;
  const write = (line: string) => {
    sink += line.length;
  };
  const secrets = [
    "a-configured-webhook-token",
    "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
    "glpat-configuredApiToken01",
  ];
  const lambda = new EmfMetricsAuditLog(new StdoutAuditLog(write, { secrets }), write);
  const dir = mkdtempSync(join(tmpdir(), "kubler-bench-audit-"));
  const file = new JsonlFile(join(dir, "audit.jsonl"));
  const local = new JsonlAuditLog(file, () => undefined, { secrets });
  const pick = (i: number) => records[i % records.length] as AuditRecord;

  const baseline: number[] = [];
  const lambdaRates: number[] = [];
  const localRates: number[] = [];
  // Interleaved rounds, so a noisy neighbour hurts all three alike.
  await withLambdaRequestId(async (_event: unknown, _context: { awsRequestId: string }) => {
    for (let round = 0; round < 7; round++) {
      baseline.push(await rate(300, (i) => write(`${JSON.stringify(pick(i))}\n`)));
      lambdaRates.push(await rate(300, (i) => lambda.record(pick(i))));
      localRates.push(await rate(300, (i) => local.record(pick(i))));
    }
  })({}, { awsRequestId: "bench-request" });
  await file.close();
  rmSync(dir, { recursive: true, force: true });
  if (sink === 0) throw new Error("nothing written");

  const us = (perSecond: number) => 1e6 / perSecond;
  const base = us(median(baseline));
  const figures: Figure[] = [];
  for (const [name, rates] of [
    ["Lambda writer (redact, stamp, line + EMF metrics)", lambdaRates],
    ["local writer (redact, stamp, audit.jsonl)", localRates],
  ] as const) {
    const measured = us(median(rates));
    figures.push({
      name: `audit write overhead per decision: ${name}`,
      value: `${fmt(measured - base, 1)} µs over baseline (${fmt(measured, 1)} µs total)`,
      baseline: `JSON.stringify of the record: ${fmt(base, 1)} µs`,
      ratio: `${fmt(measured / base, 1)}×`,
      target: "≤ 20 µs overhead",
      met: measured - base <= 20,
    });
  }
  return figures;
}

const RECORDS = 1_000_000;
const ACTIONS = [
  ["webhook.receive", "gitlab-webhook", 50],
  ["plan.steps", "plan-steps", 15],
  ["environment.deploy", "deploy-environment", 15],
  ["credentials.issue", "job-credentials", 10],
  ["environment.stop", "cleanup-environments", 5],
  ["environment.sweep.delete", "cleanup-environments", 5],
] as const;
const OUTCOMES = ["success", "success", "success", "failure", "ignored", "deny", "allow"] as const;
const ENVIRONMENTS = [
  "production",
  "staging",
  ...Array.from({ length: 48 }, (_, i) => `review/feature-${i}`),
];

/** A realistic trail: actions in the proportions a busy instance sees, 20 days, 200 projects. */
function generateAuditFile(path: string, now: number): number {
  const fd = openSync(path, "w");
  const actions = ACTIONS.flatMap(([action, fn, weight]) =>
    Array.from({ length: weight }, () => [action, fn] as const),
  );
  const start = now - 20 * 86_400_000;
  const step = (20 * 86_400_000) / RECORDS;
  let batch: string[] = [];
  // xorshift32, seeded: the same file every run.
  let seed = 0x9e3779b9;
  const random = (n: number) => {
    seed ^= seed << 13;
    seed ^= seed >>> 17;
    seed ^= seed << 5;
    return (seed >>> 0) % n;
  };
  for (let i = 0; i < RECORDS; i++) {
    const [action, fn] = actions[random(actions.length)] as readonly [string, string];
    const environment = ENVIRONMENTS[random(ENVIRONMENTS.length)] as string;
    const project = `group-${random(200)}/app-${random(7)}`;
    const correlationId = `${(i >>> 2).toString(16).padStart(8, "0")}-8a5d-4c1e-9f7a-2b6d8e0a1c3f`;
    const record: AuditRecord = {
      audit: true,
      auditVersion: 1,
      action,
      outcome: OUTCOMES[random(OUTCOMES.length)] as AuditRecord["outcome"],
      reason: `${action} of ${project} in ${environment}: decision ${i}`,
      actor:
        fn === "gitlab-webhook"
          ? { userAgent: "GitLab/17.4.0", gitlabUser: `user${i % 50}` }
          : { function: fn },
      subject: {
        project,
        projectId: (i * 13) % 200,
        environment,
        sha: (i * 2654435761).toString(16).padStart(40, "a"),
      },
      correlationId,
      gitlab: {
        instance: "https://gitlab.example.com",
        event: "Merge Request Hook",
        idempotencyKey: correlationId,
        webhookUuid: null,
      },
      function: fn,
      at: new Date(start + i * step).toISOString(),
    };
    batch.push(JSON.stringify(record));
    if (batch.length === 10_000) {
      writeSync(fd, `${batch.join("\n")}\n`);
      batch = [];
    }
  }
  if (batch.length) writeSync(fd, `${batch.join("\n")}\n`);
  closeSync(fd);
  return statSync(path).size;
}

interface ChildRun {
  ms: number;
  maxRssKb: number;
  stdoutLines: number;
}

/** Runs a module script in a fresh Node process; it reports its own peak RSS on exit. */
function runChild(script: string, env: NodeJS.ProcessEnv): Promise<ChildRun> {
  const reporter = `process.on("exit", () => process.stderr.write("\\nmaxRSS=" + process.resourceUsage().maxRSS + "\\n"));\n`;
  return new Promise((resolve, reject) => {
    const started = performance.now();
    const child = spawn(process.execPath, ["--no-warnings", "--input-type=module", "-e", reporter + script], {
      cwd: ROOT,
      env,
      stdio: ["ignore", "pipe", "pipe"],
    });
    let stdoutLines = 0;
    let stderr = "";
    child.stdout.on("data", (chunk: Buffer) => {
      for (const byte of chunk) if (byte === 10) stdoutLines++;
    });
    child.stderr.on("data", (chunk) => {
      stderr += chunk;
    });
    child.once("error", reject);
    child.once("exit", (code) => {
      const ms = performance.now() - started;
      const rss = /maxRSS=(\d+)/.exec(stderr);
      if (code !== 0 || !rss) reject(new Error(`child exited ${code}:\n${stderr}`));
      else resolve({ ms, maxRssKb: Number(rss[1]), stdoutLines });
    });
  });
}

async function benchLocalQuery(runs = 3): Promise<Figure[]> {
  const dir = mkdtempSync(join(tmpdir(), "kubler-bench-audit-file-"));
  const path = join(dir, "audit.jsonl");
  try {
    process.stderr.write(`  generating ${fmt(RECORDS)} audit records…\n`);
    const bytes = generateAuditFile(path, Date.now());
    const env = { PATH: process.env.PATH, KUBLER_DATA_DIR: dir, KUBLER_AUDIT_LOG_GROUPS: "" };
    const cli = pathToFileURL(join(ROOT, "bin/kubler.js")).href;
    const args = [
      "audit",
      "--since",
      "30d",
      "--environment",
      "production",
      "--action",
      "environment.deploy",
      "--outcome",
      "failure",
      "--json",
    ];
    const query = `process.argv = [process.execPath, "kubler", ...${JSON.stringify(args)}];\nawait import(${JSON.stringify(cli)});`;
    const floor = `import { createReadStream } from "node:fs";
let lines = 0;
for await (const chunk of createReadStream(${JSON.stringify(path)}, { highWaterMark: 1 << 20 }))
  for (let at = chunk.indexOf(10); at !== -1; at = chunk.indexOf(10, at + 1)) lines++;
console.log(lines);`;
    const queried: ChildRun[] = [];
    const floors: ChildRun[] = [];
    for (let i = 0; i < runs; i++) {
      queried.push(await runChild(query, env));
      floors.push(await runChild(floor, env));
    }
    const ms = median(queried.map((r) => r.ms));
    const rssMb = median(queried.map((r) => r.maxRssKb)) / 1024;
    const floorMs = median(floors.map((r) => r.ms));
    const floorRssMb = median(floors.map((r) => r.maxRssKb)) / 1024;
    const matched = queried[0]?.stdoutLines ?? 0;
    return [
      {
        name: `\`kubler audit\` filtered query over ${fmt(RECORDS)} local records (${fmt(bytes / 1024 / 1024)} MB; ${fmt(matched)} shown), child process, median of ${runs}`,
        value: `${fmt(ms / 1000, 2)} s`,
        baseline: `stream + count lines only: ${fmt(floorMs / 1000, 2)} s`,
        ratio: `${fmt(ms / floorMs, 1)}×`,
        target: "≤ 4 s",
        met: ms <= 4000,
      },
      {
        name: "`kubler audit` peak RSS on that query (streamed, never loaded whole)",
        value: `${fmt(rssMb)} MB`,
        baseline: `stream + count lines only: ${fmt(floorRssMb)} MB`,
        ratio: `${fmt(rssMb / floorRssMb, 1)}×`,
        target: `bounded: ≤ 256 MB for a ${fmt(bytes / 1024 / 1024)} MB file`,
        met: rssMb <= 256,
      },
    ];
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

export async function benchAudit(): Promise<Figure[]> {
  return [...(await benchWriteOverhead()), ...(await benchLocalQuery())];
}
