import { setTimeout as delay } from "node:timers/promises";
import {
  type EventBridgeClient,
  PutEventsCommand,
  type PutEventsRequestEntry,
  type PutEventsResultEntry,
} from "@aws-sdk/client-eventbridge";
import { type BusEntry, sourceOf, validateBusDetail } from "../domain/catalog.js";
import { PublishError } from "../errors.js";
import type { EventPublisher } from "../ports.js";

/** https://docs.aws.amazon.com/eventbridge/latest/userguide/eb-quota.html (PutEvents: 10 entries a request) */
export const PUT_EVENTS_MAX_ENTRIES = 10;

/**
 * The entries of one PutEvents request must total less than 256 KB, counted as in
 * https://docs.aws.amazon.com/eventbridge/latest/userguide/eb-putevent-size.html
 */
export const PUT_EVENTS_MAX_BYTES = 256 * 1024;

/**
 * Per-entry codes worth sending again; the others (AccessDeniedException, InvalidArgument,
 * MalformedDetail, NotAuthorizedForSourceException, ...) fail the same way every time.
 * https://docs.aws.amazon.com/eventbridge/latest/APIReference/API_PutEventsResultEntry.html
 */
const RETRYABLE_ENTRY_CODES = new Set(["InternalFailure", "ThrottlingException"]);

/** Names of whole-call errors that are transient even when they come back as a 4xx. */
const RETRYABLE_CALL_ERRORS = new Set([
  "ThrottlingException",
  "TooManyRequestsException",
  "RequestLimitExceeded",
  "InternalException",
  "InternalFailure",
  "ServiceUnavailable",
  "RequestTimeout",
  "RequestTimeoutException",
  "TimeoutError",
]);

/** Caps one backoff so a large `maxAttempts` cannot stall the webhook past GitLab's 10 s timeout. */
const MAX_DELAY_MS = 2_000;

export interface EventBridgePublisherOptions {
  client: EventBridgeClient;
  busName: string;
  /** Sends of one entry at most, the first included. Default 4. */
  maxAttempts?: number;
  /** The backoff ceiling before the second attempt; it doubles each attempt. Default 50. */
  baseDelayMs?: number;
  sleep?: (ms: number) => Promise<void>;
  /** Uniform in [0, 1), like `Math.random`. */
  random?: () => number;
  /** Told how many entries are sent again before each retry (the `PublishRetries` metric). */
  onRetry?: (entries: number) => void;
}

interface Failure {
  code: string;
  retryable: boolean;
}

/**
 * Publishes catalog events with PutEvents: at most 10 entries (and < 256 KB) a call, per-entry
 * results checked, only the failed entries retried with full-jitter exponential backoff.
 *
 * @example
 * const publisher = new EventBridgePublisher({ client: new EventBridgeClient({}), busName: BUS_NAME });
 * const [id] = await publisher.publish([{ detailType: "Push", detail }]);
 */
export class EventBridgePublisher implements EventPublisher {
  readonly #client: EventBridgeClient;
  readonly #busName: string;
  readonly #maxAttempts: number;
  readonly #baseDelayMs: number;
  readonly #sleep: (ms: number) => Promise<void>;
  readonly #random: () => number;
  readonly #onRetry: ((entries: number) => void) | undefined;

  constructor(options: EventBridgePublisherOptions) {
    this.#client = options.client;
    this.#busName = options.busName;
    this.#maxAttempts = Math.max(1, Math.floor(options.maxAttempts ?? 4));
    this.#baseDelayMs = Math.max(0, options.baseDelayMs ?? 50);
    this.#sleep = options.sleep ?? ((ms) => delay(ms));
    this.#random = options.random ?? Math.random;
    this.#onRetry = options.onRetry;
  }

  async publish(entries: readonly BusEntry[]): Promise<string[]> {
    const requests = entries.map((entry) => this.#toRequestEntry(entry));
    const sizes = requests.map(entrySize);
    const ids: (string | undefined)[] = new Array(requests.length).fill(undefined);
    let pending = requests.map((_, index) => index);

    for (let attempt = 1; ; attempt++) {
      if (attempt > 1) await this.#sleep(this.#backoff(attempt - 1));

      const batches = groupIntoBatches(pending.map((index) => sizes[index] ?? 0)).map((positions) =>
        positions.map((position) => pending[position] as number),
      );
      const failures = new Map<number, Failure>();
      await Promise.all(batches.map((batch) => this.#send(batch, requests, ids, failures)));
      if (failures.size === 0) return ids as string[];

      const failed = [...failures.values()];
      const fatal = failed.find((failure) => !failure.retryable);
      if (fatal || attempt >= this.#maxAttempts) {
        throw new PublishError(
          `${failures.size} of ${requests.length} events failed to publish to bus ${this.#busName} ` +
            `after ${attempt} attempt(s); last error ${(fatal ?? failed.at(-1))?.code}`,
          [...failures.keys()].sort((a, b) => a - b),
        );
      }
      pending = [...failures.keys()].sort((a, b) => a - b);
      this.#onRetry?.(pending.length);
    }
  }

  #toRequestEntry(entry: BusEntry): PutEventsRequestEntry {
    const { json } = validateBusDetail(entry.detailType, entry.detail);
    return {
      Source: sourceOf(entry.detailType),
      DetailType: entry.detailType,
      Detail: json,
      EventBusName: this.#busName,
    };
  }

  /** Sends one batch; records event ids and failures by input index, never throws. */
  async #send(
    batch: readonly number[],
    requests: readonly PutEventsRequestEntry[],
    ids: (string | undefined)[],
    failures: Map<number, Failure>,
  ): Promise<void> {
    let results: PutEventsResultEntry[];
    try {
      const output = await this.#client.send(
        new PutEventsCommand({ Entries: batch.map((index) => requests[index] as PutEventsRequestEntry) }),
      );
      results = output.Entries ?? [];
    } catch (error) {
      const failure = { code: errorName(error), retryable: isRetryableCallError(error) };
      for (const index of batch) failures.set(index, failure);
      return;
    }
    // Result i answers request entry i: https://docs.aws.amazon.com/eventbridge/latest/APIReference/API_PutEvents.html
    batch.forEach((index, position) => {
      const result = results[position];
      if (result?.EventId && !result.ErrorCode) {
        ids[index] = result.EventId;
      } else {
        // A missing result or one with neither id nor code is not a documented answer: try again.
        const code = result?.ErrorCode ?? "MissingResult";
        failures.set(index, { code, retryable: !result?.ErrorCode || RETRYABLE_ENTRY_CODES.has(code) });
      }
    });
  }

  /** Full jitter: https://aws.amazon.com/blogs/architecture/exponential-backoff-and-jitter/ */
  #backoff(retry: number): number {
    const ceiling = Math.min(MAX_DELAY_MS, this.#baseDelayMs * 2 ** (retry - 1));
    return Math.floor(this.#random() * ceiling);
  }
}

/**
 * Splits entries, given their sizes in bytes, into PutEvents requests of at most
 * `PUT_EVENTS_MAX_ENTRIES` entries totalling less than `PUT_EVENTS_MAX_BYTES`, keeping their order.
 * Returns the positions of the entries in each request.
 *
 * @example
 * groupIntoBatches(new Array(23).fill(100)); // [[0..9], [10..19], [20, 21, 22]]
 */
export function groupIntoBatches(sizes: readonly number[]): number[][] {
  const batches: number[][] = [];
  let current: number[] = [];
  let bytes = 0;
  sizes.forEach((size, position) => {
    if (
      current.length === PUT_EVENTS_MAX_ENTRIES ||
      (current.length > 0 && bytes + size >= PUT_EVENTS_MAX_BYTES)
    ) {
      batches.push(current);
      current = [];
      bytes = 0;
    }
    current.push(position);
    bytes += size;
  });
  if (current.length > 0) batches.push(current);
  return batches;
}

/** Time, Resources and TraceHeader are never set by this publisher, so they add nothing. */
function entrySize(entry: PutEventsRequestEntry): number {
  return (
    Buffer.byteLength(entry.Source ?? "", "utf8") +
    Buffer.byteLength(entry.DetailType ?? "", "utf8") +
    Buffer.byteLength(entry.Detail ?? "", "utf8")
  );
}

function errorName(error: unknown): string {
  return error instanceof Error ? error.name : "UnknownError";
}

/**
 * Throttling, 5xx and errors without an HTTP answer (network, timeout) are transient; another 4xx
 * (AccessDenied, a missing bus, a validation error) will fail the same way again.
 */
function isRetryableCallError(error: unknown): boolean {
  if (typeof error !== "object" || error === null) return true;
  const e = error as {
    name?: unknown;
    $retryable?: unknown;
    $metadata?: { httpStatusCode?: number };
  };
  if (typeof e.name === "string" && RETRYABLE_CALL_ERRORS.has(e.name)) return true;
  if (e.$retryable) return true;
  const status = e.$metadata?.httpStatusCode;
  if (status === undefined) return true;
  return status === 429 || status >= 500;
}
