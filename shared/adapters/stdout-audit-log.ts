import { AsyncLocalStorage } from "node:async_hooks";
import {
  type AuditRecord,
  type AuditRedactor,
  createAuditRedactor,
  prepareAuditRecord,
} from "../domain/audit.js";
import {
  type AUDIT_METRIC,
  type AuditMetric,
  emfDocument,
  metricsOfAuditRecord,
} from "../domain/audit-metrics.js";
import type { AuditLog } from "../ports.js";

/**
 * Unexpected errors as one JSON line on stderr (CloudWatch keeps it with the function's logs), with
 * the stack: what on-call needs. The message and stack go through the audit redaction (the
 * configured `secrets` and secret-shaped text): an error may quote what it failed on. `level` is
 * "error" for a request answered 500 (the internal-errors alarm counts those lines), "warn" for a
 * failure the caller never saw (an archive event not published).
 *
 * @example
 * const logError = logErrorToStderr("gitlab-webhook", webhookSecrets);
 * const logWarning = logErrorToStderr("job-credentials", [], "warn");
 */
export function logErrorToStderr(
  fn: string,
  secrets: readonly string[] = [],
  level: "error" | "warn" = "error",
): (error: unknown) => void {
  const redact = createAuditRedactor(secrets);
  return (error) => {
    const { name, message, stack } = error instanceof Error ? error : new Error(String(error));
    const line = {
      level,
      function: fn,
      name,
      message: redact.text(message),
      stack: stack && redact.text(stack),
    };
    process.stderr.write(`${JSON.stringify(line)}\n`);
  };
}

const writeStdout = (line: string) => {
  process.stdout.write(line);
};

/** The Lambda invocation a record is written in; one store per invocation, safe with concurrency. */
const invocation = new AsyncLocalStorage<{ requestId: string; startedAt: number }>();

/**
 * Wraps a Lambda handler so that audit lines written during the invocation carry its
 * `awsRequestId` (the id in the function's REPORT line and in X-Ray) and, unless the producer set
 * one, `durationMs`: the time from the start of the invocation to the decision (the step latency).
 *
 * @example
 * export const handler = withLambdaRequestId(handle(app));
 */
export function withLambdaRequestId<Args extends unknown[], Result>(
  handler: (...args: Args) => Result,
): (...args: Args) => Result {
  return (...args) => {
    const requestId = (args[1] as { awsRequestId?: unknown } | undefined)?.awsRequestId;
    if (typeof requestId !== "string") return handler(...args);
    return invocation.run({ requestId, startedAt: performance.now() }, () => handler(...args));
  };
}

/** Milliseconds from the start of the invocation, to a tenth. */
function invocationDuration(context: { startedAt: number }): number {
  return Math.round((performance.now() - context.startedAt) * 10) / 10;
}

export interface StdoutAuditLogOptions {
  /** Configured secret values (webhook tokens, signing keys, API tokens): redacted wherever they appear. */
  secrets?: readonly string[];
}

/**
 * Audit lines as single JSON lines on stdout: in Lambda, CloudWatch Logs stores each as one event,
 * queryable by field in Logs Insights. Every record is redacted and stamped (schema version, the
 * invocation's request id) on the way out.
 *
 * Written directly rather than through Powertools Logger: the Logger adds ~24 KB to the webhook
 * bundle (400 KB budget; `npm run bench` prints its size); an audit line must not be dropped by a
 * log-level setting (`POWERTOOLS_LOG_LEVEL`, `AWS_LAMBDA_LOG_LEVEL`); and every function then writes
 * the same shape.
 *
 * @example
 * const audit = new StdoutAuditLog(undefined, { secrets: webhook.secrets.tokens });
 * audit.record(record); // {"audit":true,"auditVersion":1,"action":"webhook.receive",...}
 */
export class StdoutAuditLog implements AuditLog {
  readonly #redact: AuditRedactor;

  constructor(
    private readonly write: (line: string) => void = writeStdout,
    options: StdoutAuditLogOptions = {},
  ) {
    this.#redact = createAuditRedactor(options.secrets);
  }

  /** A secret read after start-up (from Secrets Manager): redacted from every later line. */
  redactAlso(secret: string): void {
    this.#redact.add(secret);
  }

  record(record: AuditRecord): void {
    const context = invocation.getStore();
    const stamp = context ? { requestId: context.requestId, durationMs: invocationDuration(context) } : {};
    const prepared = prepareAuditRecord(record, this.#redact, stamp);
    let line = JSON.stringify(prepared);
    // A UTF-8 character is at most 3 bytes per UTF-16 unit: shorter lines skip the byte count.
    if (line.length * 3 > MAX_AUDIT_LINE_BYTES && Buffer.byteLength(line) > MAX_AUDIT_LINE_BYTES)
      line = JSON.stringify(boundedAuditRecord(prepared));
    this.write(`${line}\n`);
  }
}

/**
 * CloudWatch Logs keeps at most 256 KB of one event: a longer line arrives cut (or split), is no
 * longer JSON, and no saved query finds it. A producer's reason or subject can quote input of that
 * size (a branch name, an error echoing a manifest, a list of pruned objects), so such a record is
 * cut down, marked `truncated: true`, with some room left under the limit.
 */
const MAX_AUDIT_LINE_BYTES = 192 * 1024;

/**
 * Generous first, so most evidence stays; then tight, which guarantees the size whatever the shape:
 * `subject` and `actor` keep their first 40 fields' text and numbers (what the queries read), not lists.
 */
const LOOSE = { text: 8192, items: 100, depth: 6 };
const TIGHT = { text: 512, items: 40, depth: 1 };
/** Top-level strings: the reason (and anything else) a person reads first. */
const TOP_TEXT = 8192;

type Bounds = typeof LOOSE;

function cutText(text: string, max: number): string {
  return text.length <= max ? text : `${text.slice(0, max)}…[cut: ${text.length - max} more characters]`;
}

function bounded(value: unknown, bounds: Bounds, depth: number): unknown {
  if (typeof value === "string") return cutText(value, bounds.text);
  if (value === null || typeof value !== "object") return value;
  if (depth >= bounds.depth) return "[cut: too deep]";
  if (Array.isArray(value)) {
    const kept = value.slice(0, bounds.items).map((item) => bounded(item, bounds, depth + 1));
    if (value.length > bounds.items) kept.push(`…[cut: ${value.length - bounds.items} more items]`);
    return kept;
  }
  const out: Record<string, unknown> = {};
  let kept = 0;
  const names = Object.keys(value);
  for (const name of names) {
    if (kept++ === bounds.items) {
      out["…"] = `[cut: ${names.length - bounds.items} more fields]`;
      break;
    }
    out[cutText(name, 128)] = bounded((value as Record<string, unknown>)[name], bounds, depth + 1);
  }
  return out;
}

/** The record cut to fit `MAX_AUDIT_LINE_BYTES`: top-level fields kept, long text and lists cut. */
function boundedAuditRecord(record: AuditRecord): AuditRecord {
  const cut = (bounds: Bounds) => {
    const out: Record<string, unknown> = {};
    for (const [name, value] of Object.entries(record)) {
      out[name] = typeof value === "string" ? cutText(value, TOP_TEXT) : bounded(value, bounds, 0);
    }
    out.truncated = true;
    return out as unknown as AuditRecord;
  };
  const loose = cut(LOOSE);
  return Buffer.byteLength(JSON.stringify(loose)) <= MAX_AUDIT_LINE_BYTES ? loose : cut(TIGHT);
}

/**
 * An `AuditLog` decorator that turns decisions into CloudWatch metrics (EMF lines on stdout) as they
 * are audited: webhooks by outcome, deploys by outcome, rollbacks, credentials issued and denied,
 * sweep deletions, step latency. The few counts that are not decisions (publish retries) go through
 * `count`.
 *
 * EMF is written directly rather than with Powertools Metrics: Metrics buffers until a
 * per-invocation `publishStoredMetrics()` that every entry point would have to call (and that a
 * crash skips), and adds ~16 KB to the webhook bundle; one EMF line per decision is ~2 µs.
 *
 * @example
 * const audit = new EmfMetricsAuditLog(new StdoutAuditLog());
 * audit.record(record); // the audit line, then {"_aws":{...},"Outcome":"success","Webhooks":1}
 */
export class EmfMetricsAuditLog implements AuditLog {
  readonly #directives = new Map<string, string>();

  constructor(
    private readonly inner: AuditLog,
    private readonly write: (line: string) => void = writeStdout,
    private readonly now: () => number = Date.now,
  ) {}

  record(producers: AuditRecord): void {
    // The step latency is stamped here, once, when the producer gave none: the inner writer keeps it
    // and StepLatency reports the same value (stamped only inside the writer, the metric never saw it).
    const context = producers.durationMs === undefined ? invocation.getStore() : undefined;
    const record = context ? { ...producers, durationMs: invocationDuration(context) } : producers;
    this.inner.record(record);
    const metrics = metricsOfAuditRecord(record);
    if (metrics.length === 0) return;
    const at = Date.parse(record.at);
    this.#emit(metrics, Number.isNaN(at) ? this.now() : at);
  }

  /** A secret read after start-up: the writer it decorates redacts it from every later line. */
  redactAlso(secret: string): void {
    this.inner.redactAlso?.(secret);
  }

  /** A count that is not an audited decision: `PublishRetries` today. */
  count(name: typeof AUDIT_METRIC.publishRetries, value: number): void {
    if (value > 0) this.#emit([{ name, unit: "Count", value, dimensions: {} }], this.now());
  }

  #emit(metrics: AuditMetric[], timestampMs: number): void {
    if (metrics.length === 0) return;
    // The directives depend only on the metric names and dimension names: rendered once each, the
    // line costs a few string joins instead of a JSON.stringify of the whole document.
    const shape = metrics.map((m) => `${m.name}:${Object.keys(m.dimensions).join(",")}`).join("|");
    let directives = this.#directives.get(shape);
    if (directives === undefined) {
      const document = emfDocument(metrics, 0) as { _aws: { CloudWatchMetrics: unknown } };
      directives = JSON.stringify(document._aws.CloudWatchMetrics);
      this.#directives.set(shape, directives);
    }
    let line = `{"_aws":{"Timestamp":${timestampMs},"CloudWatchMetrics":${directives}}`;
    const written = new Set<string>();
    for (const metric of metrics) {
      for (const name in metric.dimensions) {
        if (written.has(name)) continue;
        written.add(name);
        line += `,${JSON.stringify(name)}:${JSON.stringify(metric.dimensions[name])}`;
      }
    }
    for (const metric of metrics) line += `,"${metric.name}":${metric.value}`;
    this.write(`${line}}\n`);
  }
}

/**
 * What each Lambda entry point uses: redacted audit lines with the request id, and the metrics
 * derived from them.
 *
 * @example
 * const audit = createLambdaAuditLog({ secrets: [gitlab.token] });
 * export const handler = withLambdaRequestId((event: unknown) => consume(event));
 */
export function createLambdaAuditLog(options: StdoutAuditLogOptions = {}): EmfMetricsAuditLog {
  return new EmfMetricsAuditLog(new StdoutAuditLog(writeStdout, options));
}
