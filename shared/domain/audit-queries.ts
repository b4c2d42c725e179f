/**
 * The audit queries as data (DESIGN §9): each saved query is a filter over audit records, written
 * once and rendered twice — as CloudWatch Logs Insights text (the CDK stack's QueryDefinitions and
 * `kubler audit` in AWS) and as a predicate over records (`kubler audit` on the local audit.jsonl).
 * Fields are those of `AuditRecord`; nested ones are dotted, as Logs Insights flattens JSON.
 */
import type { AuditOutcome, AuditRecord } from "./audit.js";

/** A filter over audit records. Every field set must match; an unset field matches anything. */
export interface AuditFilter {
  /** Records at or after this instant (Logs Insights: the query's start time). */
  since?: Date;
  /** Records before this instant (Logs Insights: the query's end time). */
  until?: Date;
  /** `subject.project`: the GitLab project path. */
  project?: string;
  /**
   * `subject.environment`, or one of a `plan.steps` line's `subject.environments` (one fact can plan
   * several, and the decision that ordered a stop or a deploy is part of an environment's story).
   */
  environment?: string;
  /** `action`, exactly, or a prefix when it ends in `*` (`credentials.*`); a list: any of them. */
  action?: string | readonly string[];
  /** `outcome`, any of these. */
  outcome?: readonly AuditOutcome[];
  correlationId?: string;
  /** `subject.roleArn`: the AWS role credentials were issued for. */
  roleArn?: string;
  /** `gitlab.instance`. */
  instance?: string;
}

/** The filters that come from the command line (or an edited saved query), not from the query. */
export type AuditQueryParam = "environment" | "roleArn" | "correlationId";

export interface SavedAuditQuery {
  /** Its name on the command line (`kubler audit --query <name>`) and, under `kubler/`, in the console. */
  name: string;
  description: string;
  /** What the query always selects. */
  filter: AuditFilter;
  /**
   * Filters a person fills in; the saved text carries them commented out, to be edited, and
   * `kubler audit --query` refuses to run without them (unfiltered, it would answer for everything).
   */
  params: readonly AuditQueryParam[];
  /** The columns a person reads (Logs Insights `fields`; the table locally). */
  fields: readonly string[];
  /** Aggregate instead of listing: count records by these fields. */
  groupBy?: readonly string[];
  /** Oldest first (a story) instead of newest first (a log). */
  chronological?: boolean;
  /**
   * One row per distinct combination of these fields: the newest line of each (Logs Insights
   * `dedup` after the sort). For a decision whose writer adds a line when its follow-up fails.
   */
  dedup?: readonly string[];
}

/** Where each filter looks in a record, by its Logs Insights field name. */
const FIELD: Record<Exclude<keyof AuditFilter, "since" | "until" | "outcome" | "action">, string> = {
  project: "subject.project",
  environment: "subject.environment",
  correlationId: "correlationId",
  roleArn: "subject.roleArn",
  instance: "gitlab.instance",
};

const PLACEHOLDER: Record<AuditQueryParam, string> = {
  environment: "production",
  roleArn: "arn:aws:iam::123456789012:role/app-prod",
  correlationId: "<correlation id>",
};

const COMMON_FIELDS = ["at", "function", "action", "outcome", "reason"] as const;

/**
 * The saved queries DESIGN §9 and the audit issue name. Their text is asserted in the tests, and
 * the CDK stack creates one QueryDefinition each (`savedQueryDefinitions`).
 *
 * @example
 * const denied = SAVED_AUDIT_QUERIES.find((q) => q.name === "denied-credentials");
 */
export const SAVED_AUDIT_QUERIES: readonly SavedAuditQuery[] = [
  {
    name: "denied-credentials",
    description: "CI jobs refused credentials, with the rule, claims and reason",
    filter: { action: "credentials.*", outcome: ["deny"] },
    params: [],
    fields: [
      ...COMMON_FIELDS,
      "subject.project",
      "subject.environment",
      "subject.rule",
      "actor.user",
      "actor.job",
      "correlationId",
    ],
  },
  {
    name: "credentials-for-role",
    description: "Credentials issued for one AWS role: which job, project and environment got them",
    filter: { action: "credentials.*", outcome: ["allow"] },
    params: ["roleArn"],
    fields: [
      ...COMMON_FIELDS,
      "subject.roleArn",
      "subject.project",
      "subject.environment",
      "actor.user",
      "actor.job",
      "actor.pipeline",
      "subject.expiresAt",
    ],
  },
  {
    name: "deploys-to-environment",
    description:
      "Who deployed what where: every deploy decision for one environment, and the rollouts reconcile marked failed",
    // A deploy whose function stopped before its rollout finished writes no line; reconcile's
    // `environment.rollout` line is then that deploy's outcome (Deploy Finished failed).
    filter: { action: ["environment.deploy", "environment.rollout"] },
    params: ["environment"],
    fields: [
      ...COMMON_FIELDS,
      "actor.gitlabUser",
      "subject.project",
      "subject.environment",
      "subject.namespace",
      "subject.sha",
      "subject.status",
      "gitlab.event",
      "correlationId",
    ],
  },
  {
    name: "correlation",
    description: "Everything one GitLab delivery caused, across every function, oldest first",
    filter: {},
    params: ["correlationId"],
    fields: [...COMMON_FIELDS, "subject.project", "subject.environment", "durationMs", "requestId"],
    chronological: true,
  },
  {
    name: "sweep-deletions",
    description:
      "Environments the expiry sweep deleted, one row each; a failed follow-up (schedule not cancelled, Environment Deleted not published) is that row's outcome and reason",
    filter: { action: "environment.sweep.delete" },
    params: [],
    fields: [
      ...COMMON_FIELDS,
      "subject.project",
      "subject.environment",
      "subject.namespace",
      "correlationId",
    ],
    // The sweep writes a deletion's line, then a `failure` line with the same correlation id and
    // namespace when what follows it fails (cleanup-environments' afterSweepDelete): newest wins.
    dedup: ["correlationId", "subject.namespace"],
  },
  {
    name: "rejected-webhooks",
    description: "Webhook deliveries refused or failed, counted by reason and source GitLab instance",
    filter: { action: "webhook.receive", outcome: ["deny", "failure"] },
    params: [],
    fields: [...COMMON_FIELDS, "gitlab.instance", "gitlab.event", "actor.userAgent"],
    groupBy: ["reason", "gitlab.instance"],
  },
];

/** Logs Insights' own default and maximum number of rows a query returns. */
export const MAX_INSIGHTS_ROWS = 10_000;

export interface InsightsQueryOptions {
  /** Columns to show; default: the whole line (`@message`), which `kubler audit` parses back. */
  fields?: readonly string[];
  groupBy?: readonly string[];
  chronological?: boolean;
  limit?: number;
  /** Parameters left unset, rendered as commented-out filters for a person to fill in. */
  openParams?: readonly AuditQueryParam[];
  /** One row per distinct combination of these fields, the first in sort order (not with groupBy). */
  dedup?: readonly string[];
}

/**
 * Logs Insights text for a filter. The time window is not in the text (StartQuery takes it).
 *
 * @example
 * insightsQueryText({ action: "environment.deploy", environment: "production" }, { limit: 100 });
 * // fields @timestamp, @message
 * // | filter ispresent(auditVersion) and action = "environment.deploy" and subject.environment = "production"
 * // | sort @timestamp desc
 * // | limit 100
 */
export function insightsQueryText(filter: AuditFilter, options: InsightsQueryOptions = {}): string {
  const limit = Math.min(Math.max(1, Math.floor(options.limit ?? 1000)), MAX_INSIGHTS_ROWS);
  const lines: string[] = [];
  const dedup = options.groupBy ? [] : (options.dedup ?? []);
  if (!options.groupBy) {
    const fields = ["@timestamp", ...(options.fields ?? ["@message"])];
    // Named in `fields` too, so that dedup compares the fields whatever `fields` leaves out.
    fields.push(...dedup.filter((field) => !fields.includes(field)));
    lines.push(`fields ${fields.join(", ")}`);
  }
  lines.push(`filter ${insightsConditions(filter).join(" and ")}`);
  for (const param of options.openParams ?? []) {
    // A comment line: the console shows it, Logs Insights ignores it; remove "# " to use it.
    lines.push(`# | filter ${fieldCondition(param, PLACEHOLDER[param], filter.action)}`);
  }
  if (options.groupBy) {
    lines.push(`stats count(*) as records, latest(at) as last by ${options.groupBy.join(", ")}`);
    lines.push("sort records desc");
  } else {
    lines.push(`sort @timestamp ${options.chronological ? "asc" : "desc"}`);
    // Keeps the first line of each combination in the sort order; only `limit` may follow it.
    // https://docs.aws.amazon.com/AmazonCloudWatch/latest/logs/CWL_QuerySyntax-Dedup.html
    if (dedup.length > 0) lines.push(`dedup ${dedup.join(", ")}`);
  }
  lines.push(`limit ${limit}`);
  return lines.map((line, i) => (i === 0 || line.startsWith("#") ? line : `| ${line}`)).join("\n");
}

/** The conditions of a filter, in a fixed order; the first keeps other JSON lines (EMF, errors) out. */
function insightsConditions(filter: AuditFilter): string[] {
  const conditions = ["ispresent(auditVersion)"];
  const actions = actionPatterns(filter.action);
  if (actions.length === 1) conditions.push(actionCondition(actions[0] as string));
  else if (actions.length > 1 && !actions.some((action) => action.endsWith("*")))
    conditions.push(`action in [${actions.map(quote).join(", ")}]`);
  else if (actions.length > 1) conditions.push(`(${actions.map(actionCondition).join(" or ")})`);
  if (filter.outcome?.length === 1) conditions.push(`outcome = ${quote(filter.outcome[0] as string)}`);
  else if (filter.outcome?.length) conditions.push(`outcome in [${filter.outcome.map(quote).join(", ")}]`);
  for (const key of ["correlationId", "project", "environment", "roleArn", "instance"] as const) {
    const value = filter[key];
    if (value !== undefined) conditions.push(fieldCondition(key, value, filter.action));
  }
  return conditions;
}

function actionPatterns(action: AuditFilter["action"]): readonly string[] {
  return action === undefined ? [] : typeof action === "string" ? [action] : action;
}

function actionCondition(action: string): string {
  return action.endsWith("*")
    ? `action like /^${escapeInsightsRegex(action.slice(0, -1))}/`
    : `action = ${quote(action)}`;
}

function matchesAction(pattern: string, action: string): boolean {
  return pattern.endsWith("*") ? action.startsWith(pattern.slice(0, -1)) : action === pattern;
}

/** The action whose lines name their environments in a list, `subject.environments`. */
const LISTS_ENVIRONMENTS = "plan.steps";

/**
 * Whether lines of `LISTS_ENVIRONMENTS` can pass the action filter. When they cannot, the list is not
 * looked in, so `deploys-to-environment` keeps the one comparison a person edits in the console.
 */
function mayListEnvironments(action: AuditFilter["action"]): boolean {
  if (action === undefined) return true;
  return actionPatterns(action).some((pattern) => matchesAction(pattern, LISTS_ENVIRONMENTS));
}

function fieldCondition(key: keyof typeof FIELD, value: string, action: AuditFilter["action"]): string {
  const equals = `${FIELD[key]} = ${quote(value)}`;
  if (key !== "environment" || !mayListEnvironments(action)) return equals;
  return `(${equals} or @message like ${listedEnvironmentRegex(value)})`;
}

/**
 * A regex for a line whose `environments` list holds `environment`. Logs Insights flattens a JSON
 * array into one field per index (`subject.environments.0`, `.1`, …: "JSON arrays are flattened
 * into a list of field names and values",
 * https://docs.aws.amazon.com/AmazonCloudWatch/latest/logs/CWL_AnalyzeLogData-discoverable-fields.html),
 * so no field comparison covers a list of any length. The line's own JSON does: the list opens, then
 * whole JSON strings each followed by a comma, then the value as `JSON.stringify` writes it (every
 * writer does), then a comma or the end of the list. A quote or `]` inside a name cannot end one early.
 */
function listedEnvironmentRegex(environment: string): string {
  const jsonString = String.raw`"(\\.|[^"\\])*"`;
  const value = escapeInsightsRegex(JSON.stringify(environment));
  return String.raw`/"environments":\[(${jsonString},)*${value}[,\]]/`;
}

/**
 * A saved query's text: its filter, with the parameters given, and the others commented out.
 *
 * @example
 * savedQueryText(query, { environment: "staging" });
 */
export function savedQueryText(
  query: SavedAuditQuery,
  params: Partial<AuditFilter> = {},
  limit?: number,
): string {
  return insightsQueryText(
    { ...query.filter, ...params },
    {
      fields: query.fields,
      ...(query.groupBy ? { groupBy: query.groupBy } : {}),
      ...(query.chronological ? { chronological: true } : {}),
      ...(query.dedup ? { dedup: query.dedup } : {}),
      openParams: query.params.filter((param) => params[param] === undefined),
      ...(limit !== undefined ? { limit } : {}),
    },
  );
}

/**
 * What the CDK stack turns into `AWS::Logs::QueryDefinition`s.
 *
 * @example
 * for (const q of savedQueryDefinitions()) new logs.QueryDefinition(this, q.name, { queryDefinitionName: q.name, ... });
 */
export function savedQueryDefinitions(): { name: string; queryString: string }[] {
  return SAVED_AUDIT_QUERIES.map((query) => ({
    name: `kubler/${query.name}`,
    queryString: savedQueryText(query),
  }));
}

/**
 * The same filter as a predicate, for records read from the local audit.jsonl.
 *
 * @example
 * matchesAuditFilter(record, { action: "credentials.*", outcome: ["deny"] }); // true or false
 */
export function matchesAuditFilter(record: AuditRecord, filter: AuditFilter): boolean {
  if (filter.action !== undefined) {
    if (!actionPatterns(filter.action).some((pattern) => matchesAction(pattern, record.action))) return false;
  }
  if (filter.outcome?.length && !filter.outcome.includes(record.outcome)) return false;
  // ISO 8601 strings in UTC with milliseconds (what every writer stamps) order as text.
  if (filter.since && !(record.at >= filter.since.toISOString())) return false;
  if (filter.until && !(record.at < filter.until.toISOString())) return false;
  if (filter.correlationId !== undefined && record.correlationId !== filter.correlationId) return false;
  if (filter.project !== undefined && record.subject.project !== filter.project) return false;
  if (filter.environment !== undefined && !namesEnvironment(record, filter.environment, filter.action))
    return false;
  if (filter.roleArn !== undefined && record.subject.roleArn !== filter.roleArn) return false;
  if (filter.instance !== undefined && record.gitlab?.instance !== filter.instance) return false;
  return true;
}

function namesEnvironment(record: AuditRecord, environment: string, action: AuditFilter["action"]): boolean {
  if (record.subject.environment === environment) return true;
  const listed = record.subject.environments;
  return mayListEnvironments(action) && Array.isArray(listed) && listed.includes(environment);
}

/** Records kept from a scan: `add` them in file (time) order, read them oldest first. */
export interface KeptRecords {
  add(record: AuditRecord): void;
  records(): AuditRecord[];
}

/**
 * What `sort @timestamp desc | dedup <fields> | limit <limit>` answers, over records added in time
 * order: the newest record of each combination of `fields`, the newest `limit` of those. A record
 * missing one of the fields is never a duplicate (as in Logs Insights). Memory is bounded by the
 * limit: a combination pushed out by `limit` newer ones comes back only with a newer record.
 *
 * @example
 * const keep = keepNewestDistinct(1000, ["correlationId", "subject.namespace"]);
 * for (const record of records) keep.add(record);
 * keep.records(); // oldest first, one per deletion
 */
export function keepNewestDistinct(limit: number, fields: readonly string[]): KeptRecords {
  const kept = new Map<unknown, AuditRecord>();
  let unique = 0;
  return {
    add(record) {
      const values = fields.map((field) => auditField(record, field));
      const key = values.some((value) => value === undefined || value === null)
        ? unique++
        : JSON.stringify(values);
      // Deleted first, so the Map's order stays oldest to newest.
      kept.delete(key);
      kept.set(key, record);
      if (kept.size > limit) kept.delete(kept.keys().next().value);
    },
    records: () => [...kept.values()],
  };
}

/**
 * Exact strings a matching line must contain, as `JSON.stringify` writes them: a cheap test on the
 * raw line before parsing it (most lines of a large file fail it). Only values, not field names,
 * so it never rejects a line that matches.
 */
export function requiredSubstrings(filter: AuditFilter): string[] {
  const values: string[] = [];
  const actions = actionPatterns(filter.action);
  if (actions.length === 1 && !actions[0]?.endsWith("*")) values.push(actions[0] as string);
  for (const key of ["correlationId", "project", "environment", "roleArn", "instance"] as const) {
    const value = filter[key];
    if (value !== undefined) values.push(value);
  }
  if (filter.outcome?.length === 1) values.push(filter.outcome[0] as string);
  return values.map((value) => JSON.stringify(value));
}

/** A field of a record by its dotted Logs Insights name (`subject.environment`). */
export function auditField(record: AuditRecord, path: string): unknown {
  let node: unknown = record;
  for (const key of path.split(".")) {
    if (node === null || typeof node !== "object") return undefined;
    node = (node as Record<string, unknown>)[key];
  }
  return node;
}

/** A Logs Insights string literal; control characters are refused (they cannot come from a person). */
function quote(value: string): string {
  if ([...value].some((char) => char.charCodeAt(0) < 0x20))
    throw new RangeError(`control character in query value ${JSON.stringify(value)}`);
  return `"${value.replace(/\\/g, "\\\\").replace(/"/g, '\\"')}"`;
}

function escapeInsightsRegex(text: string): string {
  return text.replace(/[.*+?^${}()|[\]\\/]/g, "\\$&");
}
