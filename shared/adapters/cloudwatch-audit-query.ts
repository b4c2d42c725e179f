import { setTimeout as delay } from "node:timers/promises";
import {
  CloudWatchLogsClient,
  GetQueryResultsCommand,
  type GetQueryResultsCommandOutput,
  StartQueryCommand,
  StopQueryCommand,
} from "@aws-sdk/client-cloudwatch-logs";

/** One result row: field name → value, as Logs Insights returns them (all strings). */
export type InsightsRow = Record<string, string>;

export interface InsightsProgress {
  status: string;
  elapsedMs: number;
  recordsMatched: number;
  recordsScanned: number;
  bytesScanned: number;
}

export interface CloudWatchAuditQueryOptions {
  /** Default: a client that reads AWS_REGION, credentials and AWS_ENDPOINT_URL_CLOUDWATCH_LOGS itself. */
  client?: CloudWatchLogsClient;
  /** The functions' log groups (names or ARNs); Logs Insights takes up to 50 in one query. */
  logGroups: readonly string[];
  /** Between GetQueryResults calls. Default 1000 ms. */
  pollMs?: number;
  /** Give up (and stop the query) after this long. Default 120 s. */
  timeoutMs?: number;
  /** Told after each poll, for a progress line. */
  onProgress?: (progress: InsightsProgress) => void;
  sleep?: (ms: number) => Promise<void>;
  now?: () => number;
}

/** The query did not complete: Logs Insights failed, cancelled or timed it out, or we gave up. */
export class AuditQueryError extends Error {
  override readonly name = "AuditQueryError";
  constructor(
    message: string,
    readonly status: string,
  ) {
    super(message);
  }
}

/**
 * `kubler audit` in AWS: one Logs Insights query over the functions' log groups, StartQuery and
 * then GetQueryResults until it completes, fails or runs out of time.
 * https://docs.aws.amazon.com/AmazonCloudWatchLogs/latest/APIReference/API_StartQuery.html
 *
 * @example
 * // CloudWatchLogsClient reads AWS_REGION and AWS_ENDPOINT_URL_CLOUDWATCH_LOGS itself.
 * const query = new CloudWatchAuditQuery({ logGroups, onProgress: (p) => console.error(p.status) });
 * const rows = await query.run(insightsQueryText(filter), { since, until: new Date() });
 */
export class CloudWatchAuditQuery {
  readonly #options: Required<Omit<CloudWatchAuditQueryOptions, "onProgress">> &
    Pick<CloudWatchAuditQueryOptions, "onProgress">;

  constructor(options: CloudWatchAuditQueryOptions) {
    if (options.logGroups.length === 0) throw new RangeError("no log group to query");
    this.#options = {
      pollMs: 1000,
      timeoutMs: 120_000,
      sleep: (ms) => delay(ms),
      now: Date.now,
      ...options,
      client: options.client ?? new CloudWatchLogsClient({}),
    };
  }

  async run(queryString: string, window: { since: Date; until: Date }): Promise<InsightsRow[]> {
    const { client, logGroups, pollMs, timeoutMs, onProgress, sleep, now } = this.#options;
    const started = now();
    const { queryId } = await client.send(
      new StartQueryCommand({
        ...(logGroups.some((group) => group.startsWith("arn:"))
          ? { logGroupIdentifiers: [...logGroups] }
          : { logGroupNames: [...logGroups] }),
        // Seconds since the epoch; the end is inclusive, so round it up.
        startTime: Math.floor(window.since.getTime() / 1000),
        endTime: Math.ceil(window.until.getTime() / 1000),
        queryString,
      }),
    );
    if (!queryId) throw new AuditQueryError("Logs Insights returned no query id", "Unknown");

    for (;;) {
      const output: GetQueryResultsCommandOutput = await client.send(new GetQueryResultsCommand({ queryId }));
      const status = output.status ?? "Unknown";
      const elapsedMs = now() - started;
      onProgress?.({
        status,
        elapsedMs,
        recordsMatched: output.statistics?.recordsMatched ?? 0,
        recordsScanned: output.statistics?.recordsScanned ?? 0,
        bytesScanned: output.statistics?.bytesScanned ?? 0,
      });
      if (status === "Complete") return (output.results ?? []).map(toRow);
      if (status === "Failed" || status === "Cancelled" || status === "Timeout" || status === "Unknown") {
        throw new AuditQueryError(`Logs Insights query ${queryId} ended ${status}`, status);
      }
      if (elapsedMs >= timeoutMs) {
        // Stop it, or it keeps scanning (and billing) after we have gone.
        await client.send(new StopQueryCommand({ queryId })).catch(() => undefined);
        throw new AuditQueryError(
          `Logs Insights query ${queryId} still ${status} after ${Math.round(elapsedMs / 1000)} s: stopped; narrow --since or raise --timeout`,
          "Timeout",
        );
      }
      await sleep(pollMs);
    }
  }
}

function toRow(fields: { field?: string | undefined; value?: string | undefined }[]): InsightsRow {
  const row: InsightsRow = {};
  for (const { field, value } of fields) {
    // @ptr is an opaque pointer to the log event, for GetLogRecord: nothing to show.
    if (field && field !== "@ptr" && value !== undefined) row[field] = value;
  }
  return row;
}
