/**
 * `kubler audit`: the saved audit queries from the command line — against CloudWatch Logs Insights
 * when log groups are given (`--log-group`, or KUBLER_AUDIT_LOG_GROUPS), else against the local
 * `$KUBLER_DATA_DIR/audit.jsonl` — with the same filters, as a table, JSON lines, or (for one
 * correlation id) the story of one webhook, step by step.
 */
import { join } from "node:path";
import { parseArgs } from "node:util";
import type { InsightsRow } from "../shared/adapters/cloudwatch-audit-query.js";
import { ENV, fileProblem } from "../shared/config.js";
import { AUDIT_OUTCOMES, type AuditOutcome, type AuditRecord } from "../shared/domain/audit.js";
import {
  type AuditFilter,
  type AuditQueryParam,
  auditField,
  insightsQueryText,
  type KeptRecords,
  keepNewestDistinct,
  MAX_INSIGHTS_ROWS,
  SAVED_AUDIT_QUERIES,
  type SavedAuditQuery,
} from "../shared/domain/audit-queries.js";
import { ConfigError } from "../shared/errors.js";
import { type AuditScanReport, isAuditRecord, scanAuditFile } from "../shared/local/audit-file-query.js";
import { awsSetupProblem, OPERATOR_CLIENT_LIMITS } from "./aws-setup-problem.js";
import { printable, printableJson } from "./terminal-text.js";
import { UsageError } from "./usage-error.js";

/** Comma-separated log groups (names or ARNs) of the Kubler functions: switches `kubler audit` to AWS. */
export const AUDIT_LOG_GROUPS_ENV = "KUBLER_AUDIT_LOG_GROUPS";

/** The flag that fills in each saved query's parameter. */
const PARAM_FLAG: Record<AuditQueryParam, string> = {
  environment: "--environment",
  roleArn: "--role",
  correlationId: "--correlation",
};

const NEEDS = SAVED_AUDIT_QUERIES.filter((q) => q.params.length > 0)
  .map((q) => `${q.name} needs ${q.params.map((p) => PARAM_FLAG[p]).join(" and ")}`)
  .join("; ");

export const AUDIT_USAGE = `usage: kubler audit [filters] [--json] [--limit N]
  --query NAME          a saved query: ${SAVED_AUDIT_QUERIES.map((q) => q.name).join(", ")}
                        (${NEEDS})
  --since 24h|7d|ISO    from when (default 24h; 14d with --correlation; "all" locally);
                        an ISO time without an offset is UTC, as the table prints it
  --until 1h|ISO        until when: a duration before now or an ISO 8601 time (default now)
  --project PATH  --environment ENV  --action ACTION|PREFIX.*  --outcome O[,O]
  --correlation ID      everything one GitLab delivery caused, as a timeline
  --role ARN  --instance URL
  --json                JSON lines instead of a table
  --limit N             the newest N records (default 1000, at most 10000); with --correlation, the first N
  --log-group G         query CloudWatch Logs Insights (repeatable; or ${AUDIT_LOG_GROUPS_ENV})
  --timeout S           give up on a Logs Insights query after S seconds (default 120)
  --local               read $KUBLER_DATA_DIR/audit.jsonl even when log groups are configured`;

export interface AuditCommandIo {
  /** A line of output (stdout). */
  print(line: string): void;
  /** Progress and summaries (stderr); `rewrite` replaces the previous progress line on a terminal. */
  progress(line: string, rewrite?: boolean): void;
  env: Readonly<Record<string, string | undefined>>;
  now(): Date;
  /** Test seam: how long to wait between Logs Insights polls. */
  sleep?: (ms: number) => Promise<void>;
  pollMs?: number;
}

interface Plan {
  filter: AuditFilter & { since: Date; until: Date };
  query: SavedAuditQuery | null;
  json: boolean;
  limit: number;
  timeline: boolean;
  groupBy: readonly string[] | null;
  /** A saved query's one-row-per fields; not in a timeline, where every step is the story. */
  dedup: readonly string[] | null;
}

/**
 * @example
 * process.exitCode = await runAuditCommand(["--query", "denied-credentials", "--since", "7d"], io);
 */
export async function runAuditCommand(args: string[], io: AuditCommandIo): Promise<number> {
  const { values } = parseArgs({
    args,
    options: {
      query: { type: "string" },
      since: { type: "string" },
      until: { type: "string" },
      project: { type: "string" },
      environment: { type: "string" },
      action: { type: "string" },
      outcome: { type: "string" },
      correlation: { type: "string" },
      role: { type: "string" },
      instance: { type: "string" },
      json: { type: "boolean" },
      limit: { type: "string" },
      "log-group": { type: "string", multiple: true },
      timeout: { type: "string" },
      local: { type: "boolean" },
      help: { type: "boolean", short: "h" },
    },
  });
  if (values.help) {
    io.print(AUDIT_USAGE);
    return 0;
  }
  const query = values.query === undefined ? null : savedQuery(values.query);
  const now = io.now();
  const correlationId = values.correlation;
  const flags: AuditFilter = {
    ...(values.project !== undefined ? { project: values.project } : {}),
    ...(values.environment !== undefined ? { environment: values.environment } : {}),
    ...(values.action !== undefined ? { action: values.action } : {}),
    ...(values.outcome !== undefined ? { outcome: parseOutcomes(values.outcome) } : {}),
    ...(correlationId !== undefined ? { correlationId } : {}),
    ...(values.role !== undefined ? { roleArn: values.role } : {}),
    ...(values.instance !== undefined ? { instance: values.instance } : {}),
  };
  if (query) requireParams(query, flags);
  const since = parseSince(values.since ?? (correlationId ? "14d" : "24h"), now);
  const until = values.until === undefined ? now : parseAgo("--until", values.until, now);
  if (since > until) {
    throw new UsageError(
      `--since (${since.toISOString()}) is after --until (${until.toISOString()}): no record can match`,
    );
  }
  const timeline = correlationId !== undefined && !query?.groupBy;
  const plan: Plan = {
    filter: { ...query?.filter, ...flags, since, until },
    query,
    json: values.json ?? false,
    limit: parseLimit(values.limit),
    timeline,
    groupBy: query?.groupBy ?? null,
    dedup: (!timeline && query?.dedup) || null,
  };

  const logGroups = values.local
    ? []
    : (values["log-group"] ?? (io.env[AUDIT_LOG_GROUPS_ENV] ?? "").split(","))
        .map((g) => g.trim())
        .filter(Boolean);
  return logGroups.length > 0
    ? runInsights(plan, logGroups, parseTimeout(values.timeout), io)
    : runLocal(plan, localAuditPath(io), io);
}

function localAuditPath(io: AuditCommandIo): string {
  return join(io.env[ENV.DATA_DIR] || ".kubler", "audit.jsonl");
}

/** The local trail, scanned; a file that cannot be read is named, with what is wrong with it. */
function scanLocal(
  path: string,
  filter: Plan["filter"],
  onMatch: (record: AuditRecord) => void,
): ReturnType<typeof scanAuditFile> {
  return scanAuditFile(path, filter, onMatch).catch((error: unknown) => {
    throw new ConfigError(`${path} ${fileProblem(error)}`);
  });
}

async function runLocal(plan: Plan, path: string, io: AuditCommandIo): Promise<number> {
  const started = performance.now();
  if (plan.groupBy) {
    const groups = new Map<string, { values: unknown[]; records: number; last: string }>();
    const groupBy = plan.groupBy;
    const report = await scanLocal(path, plan.filter, (record) => {
      const values = groupBy.map((field) => auditField(record, field) ?? null);
      const key = JSON.stringify(values);
      const group = groups.get(key) ?? { values, records: 0, last: "" };
      group.records++;
      if (record.at > group.last) group.last = record.at;
      groups.set(key, group);
    });
    const rows = [...groups.values()]
      .sort((a, b) => b.records - a.records)
      .slice(0, plan.limit)
      .map((group) => {
        const row: InsightsRow = { records: String(group.records), last: group.last };
        groupBy.forEach((field, i) => {
          row[field] = String(group.values[i] ?? "");
        });
        return row;
      });
    printGroups(rows, groupBy, plan, io);
    io.progress(
      `${path}: ${fmtBytes(report.bytes)} read in ${fmtMs(performance.now() - started)}, ${report.matched} matched${lookFurther(plan, report)}`,
    );
    return 0;
  }
  // Only `limit` matches are kept: memory is bounded by the limit, not the file.
  const keep = plan.timeline
    ? keepOldest(plan.limit)
    : plan.dedup
      ? keepNewestDistinct(plan.limit, plan.dedup)
      : keepNewest(plan.limit);
  const report = await scanLocal(path, plan.filter, keep.add);
  const records = keep.records();
  printRecords(records, plan, io);
  const malformed = report.malformed ? `, ${report.malformed} malformed line(s) skipped` : "";
  io.progress(
    `${path}: ${fmtBytes(report.bytes)} read in ${fmtMs(performance.now() - started)}, ${report.matched} matched, ${records.length} shown${malformed}${lookFurther(plan, report)}`,
  );
  return 0;
}

/** The last `limit` records of the file: the newest, as a log is read. */
function keepNewest(limit: number): KeptRecords {
  const kept: AuditRecord[] = [];
  let next = 0;
  return {
    add(record) {
      if (kept.length < limit) kept.push(record);
      else kept[next] = record;
      next = (next + 1) % limit;
    },
    records: () => (kept.length < limit ? kept : [...kept.slice(next), ...kept.slice(0, next)]),
  };
}

/**
 * The `limit` earliest records by `at`: a correlation's first steps, as Logs Insights answers the
 * timeline (`sort @timestamp asc | limit N`); kept newest, like a log, the local trail told another
 * story than CloudWatch. The file is in time order but for lines two writers interleaved, so a later
 * line is almost always later than every kept one, and costs one comparison.
 */
function keepOldest(limit: number): KeptRecords {
  const kept: AuditRecord[] = [];
  let latest = -1;
  const findLatest = () => {
    latest = 0;
    for (let i = 1; i < kept.length; i++)
      if ((kept[i] as AuditRecord).at > (kept[latest] as AuditRecord).at) latest = i;
  };
  return {
    add(record) {
      if (kept.length < limit) {
        kept.push(record);
        if (kept.length === limit) findLatest();
        return;
      }
      if (record.at >= (kept[latest] as AuditRecord).at) return;
      kept.splice(latest, 1);
      kept.push(record);
      findLatest();
    },
    // Oldest first, as Logs Insights answers.
    records: () => [...kept].sort((a, b) => (a.at < b.at ? -1 : a.at > b.at ? 1 : 0)),
  };
}

/** Nothing matched within the default 24 h: the trail of yesterday's session is not gone, only older. */
function lookFurther(plan: Plan, report: AuditScanReport): string {
  const { since, until } = plan.filter;
  if (report.matched > 0 || report.bytes === 0 || since.getTime() === 0) return "";
  const longer = until.getTime() - since.getTime() < WEEK_MS ? "--since 7d, or --since all" : "--since all";
  return `; nothing since ${since.toISOString()}: look further back with ${longer}`;
}

const WEEK_MS = 7 * 24 * 3_600_000;

async function runInsights(
  plan: Plan,
  logGroups: string[],
  timeoutMs: number,
  io: AuditCommandIo,
): Promise<number> {
  // Whole lines come back (`@message`), so both modes print the same records the same way.
  const queryString = insightsQueryText(plan.filter, {
    limit: plan.limit,
    chronological: plan.timeline,
    ...(plan.groupBy ? { groupBy: plan.groupBy } : {}),
    ...(plan.dedup ? { dedup: plan.dedup } : {}),
  });
  // Loaded only in AWS mode: the SDK client is most of this command's start-up time.
  const [{ AuditQueryError, CloudWatchAuditQuery }, { CloudWatchLogsClient }] = await Promise.all([
    import("../shared/adapters/cloudwatch-audit-query.js"),
    import("@aws-sdk/client-cloudwatch-logs"),
  ]);
  const insights = new CloudWatchAuditQuery({
    client: new CloudWatchLogsClient(OPERATOR_CLIENT_LIMITS),
    logGroups,
    timeoutMs,
    now: () => io.now().getTime(),
    ...(io.sleep ? { sleep: io.sleep } : {}),
    ...(io.pollMs !== undefined ? { pollMs: io.pollMs } : {}),
    onProgress: (p) =>
      io.progress(
        `Logs Insights: ${p.status} ${fmtMs(p.elapsedMs)}, ${p.recordsScanned.toLocaleString("en-US")} records scanned (${fmtBytes(p.bytesScanned)}), ${p.recordsMatched.toLocaleString("en-US")} matched`,
        true,
      ),
  });
  io.progress(`querying ${logGroups.length} log group(s) from ${plan.filter.since.toISOString()}`);
  let rows: InsightsRow[];
  try {
    rows = await insights.run(queryString, plan.filter);
  } catch (error) {
    if (error instanceof AuditQueryError) {
      io.progress(`kubler audit: ${error.message}`);
      return 1;
    }
    // The SDK's modelled errors (AccessDenied, ResourceNotFound for a wrong group) name the problem.
    const { name, message } = error as Error;
    const setup = awsSetupProblem(error as Error, " for CloudWatch Logs", io.env);
    io.progress(
      setup
        ? `kubler audit: ${setup}, or add --local to read ${localAuditPath(io)}`
        : `kubler audit: CloudWatch Logs refused the query: ${name}: ${message}`,
    );
    return 1;
  }
  if (plan.groupBy) {
    printGroups(rows, plan.groupBy, plan, io);
    return 0;
  }
  const records: AuditRecord[] = [];
  for (const row of rows) {
    try {
      const record: unknown = JSON.parse(row["@message"] ?? "");
      if (isAuditRecord(record)) records.push(record);
    } catch {
      // Not one of our lines (the filter should have kept it out): nothing to show.
    }
  }
  if (!plan.timeline) records.reverse();
  printRecords(records, plan, io);
  return 0;
}

// --- Output --------------------------------------------------------------------------------------

function printRecords(records: AuditRecord[], plan: Plan, io: AuditCommandIo): void {
  if (plan.json) {
    for (const record of records) io.print(printableJson(record));
    return;
  }
  if (plan.timeline) {
    printTimeline(records, plan.filter.correlationId ?? "", io);
    return;
  }
  if (records.length === 0) {
    io.print("no audit records match");
    return;
  }
  io.print(row(["AT", "FUNCTION", "ACTION", "OUTCOME", "WHO", "PROJECT", "ENVIRONMENT", "REASON"]));
  for (const r of records) {
    io.print(
      row([
        tableTime(r.at),
        printable(r.function),
        printable(r.action),
        printable(r.outcome),
        text(gitlabUserOf(r)),
        fitPath(text(r.subject.project), WIDTHS[5] as number),
        environmentCell(r, WIDTHS[6] as number),
        oneLine(r.reason),
      ]),
    );
  }
}

const WIDTHS = [24, 20, 24, 8, 16, 28, 28];

/**
 * `2026-03-02 11:00:00.000Z`: the Z says UTC (what --since and --until read a time without an
 * offset as); without it an operator in another zone read the times as local.
 */
function tableTime(at: string): string {
  return printable(at.replace("T", " "));
}

/**
 * A project path or environment name cut to `width` in the middle, where names share the least:
 * review environments share `review/feature/`, and two cut at the end read the same
 * (`review/feature/booking-vali…` for `…-validation` and `…-validation-v2`). Whole segments go first
 * (`review/…/booking-validation`), else characters, keeping the start and more of the end.
 */
function fitPath(value: string, width: number): string {
  if (value.length <= width) return value;
  const segments = value.split("/");
  for (let tail = segments.length - 2; tail >= 1 && segments.length > 2; tail--) {
    const cut = `${segments[0]}/…/${segments.slice(-tail).join("/")}`;
    if (cut.length <= width) return cut;
  }
  const head = Math.min(10, Math.floor((width - 1) / 3));
  return `${value.slice(0, head)}…${value.slice(value.length - (width - 1 - head))}`;
}

/**
 * The environments a line is about: `subject.environment`, or the `subject.environments` a plan.steps
 * decision names (one fact can plan several). The table showed "-" for those.
 */
function environmentsOf(record: AuditRecord): string[] {
  const { environment, environments } = record.subject;
  if (typeof environment === "string") return [printable(environment)];
  return Array.isArray(environments) ? environments.map((name) => printable(String(name))) : [];
}

/** The first environment and how many more (`staging +1`), the count kept when the name is cut. */
function environmentCell(record: AuditRecord, width: number): string {
  const [first, ...more] = environmentsOf(record);
  if (first === undefined) return "-";
  if (more.length === 0) return fitPath(first, width);
  const count = ` +${more.length}`;
  return `${fitPath(first, width - count.length)}${count}`;
}

/**
 * Who caused it: the pusher or merge request author carried through the steps (`actor.gitlabUser`),
 * the user of a CI job asking for credentials (`actor.user`), or the operator who ran `kubler stop`
 * (`actor.operator`), an ARN cut to the role and session or user name so it fits the column.
 */
function gitlabUserOf(record: AuditRecord): unknown {
  const operator = record.actor.operator;
  return (
    record.actor.gitlabUser ??
    record.actor.user ??
    (typeof operator === "string" ? shortOperator(operator) : operator)
  );
}

/** `aws:arn:aws:sts::1234:assumed-role/Admin/alice` → `aws:Admin/alice`; `aws:…:user/ops/bob` → `aws:bob`. */
function shortOperator(operator: string): string {
  const arn = /^aws:arn:[^:]*:[^:]*:[^:]*:[^:]*:(.+)$/.exec(operator);
  if (!arn?.[1]) return operator;
  const [kind, ...names] = arn[1].split("/");
  // An assumed role's ARN has no path: role/session. A user's or role's may: the last part names it.
  return `aws:${kind === "assumed-role" ? names.join("/") : (names.at(-1) ?? kind)}`;
}

function row(cells: string[]): string {
  return cells.map((cell, i) => (i < WIDTHS.length ? pad(cell, WIDTHS[i] as number) : cell)).join("  ");
}

/**
 * The story of one webhook: each record in time order, the time since the first and since the
 * previous step, and how long the step itself took when it said so.
 */
function printTimeline(records: AuditRecord[], correlationId: string, io: AuditCommandIo): void {
  if (records.length === 0) {
    io.print(`no audit records for correlation id ${correlationId} (widen --since?)`);
    return;
  }
  const sorted = [...records].sort((a, b) => (a.at < b.at ? -1 : a.at > b.at ? 1 : 0));
  const first = Date.parse((sorted[0] as AuditRecord).at);
  const last = Date.parse((sorted.at(-1) as AuditRecord).at);
  const project = sorted.map((r) => r.subject.project).find((p) => typeof p === "string");
  const about = project ? ` (${printable(project)})` : "";
  io.print(
    `correlation ${printable(correlationId)}${about}: ${sorted.length} step(s) over ${fmtMs(last - first)}, from ${sorted[0]?.at}`,
  );
  io.print("");
  io.print(row2(["T+", "Δ PREVIOUS", "FUNCTION", "ACTION", "OUTCOME", "WHAT"]));
  let previous = first;
  for (const r of sorted) {
    const at = Date.parse(r.at);
    const took = typeof r.durationMs === "number" ? ` (took ${fmtMs(r.durationMs)})` : "";
    const environments = environmentsOf(r);
    const where = environments.length > 0 ? `[${environments.join(", ")}] ` : "";
    io.print(
      row2([
        fmtMs(at - first),
        r === sorted[0] ? "" : `+${fmtMs(at - previous)}`,
        printable(r.function),
        printable(r.action),
        printable(r.outcome),
        `${where}${oneLine(r.reason)}${took}`,
      ]),
    );
    previous = at;
  }
}

const TIMELINE_WIDTHS = [10, 12, 20, 24, 8];

function row2(cells: string[]): string {
  return cells
    .map((cell, i) => (i < TIMELINE_WIDTHS.length ? pad(cell, TIMELINE_WIDTHS[i] as number) : cell))
    .join("  ");
}

function printGroups(rows: InsightsRow[], groupBy: readonly string[], plan: Plan, io: AuditCommandIo): void {
  if (plan.json) {
    for (const r of rows) io.print(printableJson(r));
    return;
  }
  if (rows.length === 0) {
    io.print("no audit records match");
    return;
  }
  const header = ["RECORDS", "LAST", ...groupBy.map((field) => field.toUpperCase())];
  const cells = rows.map((r) => [
    printable(r.records ?? ""),
    tableTime(r.last ?? ""),
    ...groupBy.map((field) => oneLine(r[field] || "-")),
  ]);
  // Each column as wide as its longest value, up to a limit: the grouped values (a rejection's
  // reason) are what the query is run for, and cut at a fixed 40 two reasons read the same.
  const widths = header.map((title, i) =>
    Math.min(GROUP_WIDTH_LIMIT, Math.max(title.length, ...cells.map((row) => (row[i] as string).length))),
  );
  const line = (row: string[]) =>
    row.map((cell, i) => (i < row.length - 1 ? pad(cell, widths[i] as number) : cell)).join("  ");
  io.print(line(header));
  for (const row of cells) io.print(line(row));
}

const GROUP_WIDTH_LIMIT = 80;

function pad(cell: string, width: number): string {
  return cell.length > width ? `${cell.slice(0, width - 1)}…` : cell.padEnd(width);
}

function text(value: unknown): string {
  return value === undefined || value === null ? "-" : printable(String(value));
}

function oneLine(value: string): string {
  const flat = printable(value.replace(/\s+/g, " "));
  return flat.length > 160 ? `${flat.slice(0, 159)}…` : flat;
}

/** 850 ms, 2.4 s, 3m 05s, 2h 10m, 3d 4h. */
export function fmtMs(ms: number): string {
  if (ms < 1000) return `${Math.round(ms)} ms`;
  if (ms < 60_000) return `${(ms / 1000).toFixed(1)} s`;
  const s = Math.round(ms / 1000);
  if (s < 3600) return `${Math.floor(s / 60)}m ${String(s % 60).padStart(2, "0")}s`;
  if (s < 86_400) return `${Math.floor(s / 3600)}h ${String(Math.floor((s % 3600) / 60)).padStart(2, "0")}m`;
  return `${Math.floor(s / 86_400)}d ${Math.floor((s % 86_400) / 3600)}h`;
}

function fmtBytes(bytes: number): string {
  return bytes < 1024 * 1024 ? `${(bytes / 1024).toFixed(1)} KB` : `${(bytes / 1024 / 1024).toFixed(1)} MB`;
}

// --- Arguments -----------------------------------------------------------------------------------

function savedQuery(name: string): SavedAuditQuery {
  const query = SAVED_AUDIT_QUERIES.find((q) => q.name === name);
  if (!query) {
    throw new UsageError(
      `--query: no saved query "${name}"; one of ${SAVED_AUDIT_QUERIES.map((q) => q.name).join(", ")}`,
    );
  }
  return query;
}

/** A saved query without its parameter would answer for every role (or environment, or delivery). */
function requireParams(query: SavedAuditQuery, flags: AuditFilter): void {
  const missing = query.params.filter((param) => flags[param] === undefined).map((p) => PARAM_FLAG[p]);
  if (missing.length > 0) {
    throw new UsageError(`--query ${query.name} needs ${missing.join(" and ")}`);
  }
}

function parseOutcomes(text: string): AuditOutcome[] {
  return text.split(",").map((value) => {
    const outcome = value.trim();
    if (!(AUDIT_OUTCOMES as readonly string[]).includes(outcome)) {
      throw new UsageError(`--outcome: "${outcome}" is not one of ${AUDIT_OUTCOMES.join(", ")}`);
    }
    return outcome as AuditOutcome;
  });
}

const UNIT_MS = { s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000, w: 604_800_000 } as const;

/** `24h`, `7d`, `90m`, `all`, or an ISO 8601 instant. */
export function parseSince(text: string, now: Date): Date {
  return text === "all" ? new Date(0) : parseAgo("--since", text, now);
}

/** `24h` (that long before now) or an ISO 8601 instant: what --since and --until both take. */
function parseAgo(flag: string, text: string, now: Date): Date {
  const relative = /^(\d+)([smhdw])$/.exec(text.trim());
  if (!relative) return parseInstant(flag, text);
  const at = new Date(now.getTime() - Number(relative[1]) * UNIT_MS[relative[2] as keyof typeof UNIT_MS]);
  // Before what a Date holds (±273,790 years): "all" is the way to say from the start.
  if (Number.isNaN(at.getTime())) {
    throw new UsageError(
      `${flag}: ${text} is too long ago${flag === "--since" ? '; use "all" for everything' : ""}`,
    );
  }
  return at;
}

function parseInstant(flag: string, text: string): Date {
  // A time without an offset is UTC, as the table prints it (JavaScript would read it as local time,
  // and a date alone as UTC).
  const utc = /^(\d{4}-\d{2}-\d{2})[T ](\d{2}:\d{2}(?::\d{2}(?:\.\d+)?)?)$/.exec(text);
  const at = new Date(utc ? `${utc[1]}T${utc[2]}Z` : text);
  if (!/^\d{4}-\d{2}-\d{2}/.test(text) || Number.isNaN(at.getTime())) {
    throw new UsageError(
      `${flag}: expected a duration like 24h or 7d, or an ISO 8601 time; got ${JSON.stringify(text)}`,
    );
  }
  return at;
}

function parseLimit(text: string | undefined): number {
  if (text === undefined) return 1000;
  if (!/^\d+$/.test(text) || Number(text) < 1)
    throw new UsageError(`--limit must be a whole number ≥ 1, got ${JSON.stringify(text)}`);
  // The local trail keeps to it too: the same command must not show more here than in AWS.
  if (Number(text) > MAX_INSIGHTS_ROWS) {
    throw new UsageError(`--limit is at most ${MAX_INSIGHTS_ROWS} (what Logs Insights answers), got ${text}`);
  }
  return Number(text);
}

function parseTimeout(text: string | undefined): number {
  if (text === undefined) return 120_000;
  if (!/^\d+$/.test(text) || Number(text) < 1)
    throw new UsageError(`--timeout must be whole seconds ≥ 1, got ${JSON.stringify(text)}`);
  return Number(text) * 1000;
}
