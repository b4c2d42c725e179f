import { setTimeout as delay } from "node:timers/promises";
import {
  CreateScheduleCommand,
  type CreateScheduleCommandInput,
  DeleteScheduleCommand,
  type SchedulerClient,
  UpdateScheduleCommand,
} from "@aws-sdk/client-scheduler";
import { systemClock } from "../clock.js";
import { type Detail, KUBLER_SOURCE, validateDetail } from "../domain/catalog.js";
import { UnavailableError } from "../errors.js";
import type { Clock, Scheduler } from "../ports.js";

const STOP_DETAIL_TYPE = "Environment Stop Requested";

/** https://docs.aws.amazon.com/scheduler/latest/APIReference/API_CreateSchedule.html#API_CreateSchedule_RequestSyntax (Name) */
const SCHEDULE_NAME = /^[0-9a-zA-Z_.-]{1,64}$/;

/** Description: 0 to 512 characters (same page). */
const MAX_DESCRIPTION_LENGTH = 512;

/** The precision an `at()` schedule fires with (see `scheduleStop`). */
const MINUTE_MS = 60_000;

/**
 * How long Scheduler keeps trying to put the stop event on the bus. Time is the bound that matters:
 * a duplicate stop is harmless (deleting a deleted environment is success) and the reconcile sweep
 * publishes a stop for any environment past `expires-at` every minute (DESIGN §6), so retrying
 * longer than a quarter of an hour only widens the window in which a stale stop can arrive after a
 * redeploy moved the expiry. Attempts are at their maximum so that the age alone decides.
 * Ranges (60–86400 s, 0–185): https://docs.aws.amazon.com/scheduler/latest/APIReference/API_RetryPolicy.html
 */
const RETRY_POLICY = { MaximumRetryAttempts: 185, MaximumEventAgeInSeconds: 900 } as const;

/** Names of errors that are transient even when they come back as a 4xx. */
const RETRYABLE_ERRORS = new Set([
  "ThrottlingException",
  "TooManyRequestsException",
  "InternalServerException",
  "InternalFailure",
  "ServiceUnavailable",
  "RequestTimeout",
  "RequestTimeoutException",
  "TimeoutError",
]);

/**
 * Scheduler's own modelled errors: their messages are the service's and safe to repeat. Anything
 * else (a network or signing error) is reported by name only.
 * https://docs.aws.amazon.com/scheduler/latest/APIReference/CommonErrors.html
 */
const MODELLED_ERRORS = new Set([
  "ConflictException",
  "InternalServerException",
  "ResourceNotFoundException",
  "ServiceQuotaExceededException",
  "ThrottlingException",
  "ValidationException",
  "AccessDeniedException",
]);

/** Caps one backoff; the callers are bus consumers, not a webhook waiting on GitLab. */
const MAX_DELAY_MS = 5_000;

export interface EventBridgeSchedulerOptions {
  /** Create it with `maxAttempts: 1`: this adapter owns the retries (see the class example). */
  client: SchedulerClient;
  /** The schedule group every stop schedule lives in. */
  groupName: string;
  /** The `kubler` bus the schedules put their event on. */
  busArn: string;
  /** The role Scheduler assumes to call PutEvents on the bus (and to dead-letter). */
  roleArn: string;
  /** The SQS queue a stop goes to when Scheduler could not put it on the bus within the retry policy. */
  deadLetterArn: string;
  /** The time "in the past" is judged by. Default: the system clock. */
  clock?: Clock;
  /** Calls of one operation at most, the first included. Default 5. */
  maxAttempts?: number;
  /** The backoff ceiling before the second attempt; it doubles each attempt. Default 100. */
  baseDelayMs?: number;
  sleep?: (ms: number) => Promise<void>;
  /** Uniform in [0, 1), like `Math.random`. */
  random?: () => number;
}

/**
 * `at` was not in the future: Scheduler refuses a one-time schedule in the past, so none was
 * created. The caller decides what a stop that is already due means (publish it now, or leave it to
 * the sweep); the deploy service only schedules future expiries.
 */
export class ScheduleInPastError extends Error {
  override readonly name = "ScheduleInPastError";
  constructor(
    readonly scheduleName: string,
    readonly at: Date,
    readonly now: Date,
  ) {
    super(
      `cannot schedule "${scheduleName}" at ${at.toISOString()}: not after now (${now.toISOString()}); ` +
        "EventBridge Scheduler refuses one-time schedules in the past",
    );
  }
}

/** The schedule changed under us between Create and Update (fired and deleted, or cancelled): start over. */
class RacedError extends Error {
  override readonly name = "RacedError";
  constructor(readonly underlying: unknown) {
    super(describe(underlying));
  }
}

/**
 * Stop schedules on EventBridge Scheduler: one one-time `at()` schedule per environment, putting an
 * "Environment Stop Requested" event on the bus and deleting itself once it has fired. Creating a
 * schedule that exists updates it (Update replaces the whole schedule, so it is sent the same input).
 * Throttling, 5xx and network errors are retried with full-jitter exponential backoff; whatever
 * still fails becomes `UnavailableError`. Scheduler fires within the minute after `at` (60-second
 * precision: https://docs.aws.amazon.com/scheduler/latest/UserGuide/schedule-types.html).
 *
 * @example
 * // SchedulerClient reads AWS_REGION and AWS_ENDPOINT_URL_SCHEDULER itself.
 * const scheduler = new EventBridgeScheduler({
 *   client: new SchedulerClient({ maxAttempts: 1 }), groupName, busArn, roleArn, deadLetterArn,
 * });
 * await scheduler.scheduleStop(namespace, expiresAt, stopDetail); // creates or moves
 * await scheduler.cancel(namespace); // already gone is fine
 */
export class EventBridgeScheduler implements Scheduler {
  readonly #client: SchedulerClient;
  readonly #groupName: string;
  readonly #busArn: string;
  readonly #roleArn: string;
  readonly #deadLetterArn: string;
  readonly #clock: Clock;
  readonly #maxAttempts: number;
  readonly #baseDelayMs: number;
  readonly #sleep: (ms: number) => Promise<void>;
  readonly #random: () => number;

  constructor(options: EventBridgeSchedulerOptions) {
    this.#client = options.client;
    this.#groupName = options.groupName;
    this.#busArn = options.busArn;
    this.#roleArn = options.roleArn;
    this.#deadLetterArn = options.deadLetterArn;
    this.#clock = options.clock ?? systemClock;
    this.#maxAttempts = Math.max(1, Math.floor(options.maxAttempts ?? 5));
    this.#baseDelayMs = Math.max(0, options.baseDelayMs ?? 100);
    this.#sleep = options.sleep ?? ((ms) => delay(ms));
    this.#random = options.random ?? Math.random;
  }

  /**
   * Creates or moves the schedule `name` to fire at `at`, rounded up to the next whole minute:
   * Scheduler invokes anywhere in the minute an `at()` names ("60 second precision",
   * https://docs.aws.amazon.com/scheduler/latest/UserGuide/schedule-types.html), so `at(10:00:37)`
   * may fire at 10:00:05, before the expiry, where cleanup refuses the stop as not yet due and the
   * environment waits for reconcile. Throws `ScheduleInPastError` without calling AWS when the
   * rounded time is not after now, and `InvalidDetailError` for a detail the catalog refuses.
   */
  async scheduleStop(name: string, at: Date, detail: Detail<typeof STOP_DETAIL_TYPE>): Promise<void> {
    checkName(name);
    const valid = validateDetail(STOP_DETAIL_TYPE, detail);
    if (Number.isNaN(at.getTime())) throw new RangeError(`cannot schedule "${name}": the time is invalid`);
    const fireAt = new Date(Math.ceil(at.getTime() / MINUTE_MS) * MINUTE_MS);
    const now = this.#clock.now();
    if (fireAt.getTime() <= now.getTime()) throw new ScheduleInPastError(name, at, now);

    const input: CreateScheduleCommandInput = {
      Name: name,
      GroupName: this.#groupName,
      Description: describeStop(valid, fireAt),
      // at(yyyy-mm-ddThh:mm:ss), evaluated in the given zone:
      // https://docs.aws.amazon.com/scheduler/latest/UserGuide/schedule-types.html#one-time
      ScheduleExpression: `at(${fireAt.toISOString().slice(0, 19)})`,
      ScheduleExpressionTimezone: "UTC",
      FlexibleTimeWindow: { Mode: "OFF" },
      ActionAfterCompletion: "DELETE",
      State: "ENABLED",
      Target: {
        Arn: this.#busArn,
        RoleArn: this.#roleArn,
        EventBridgeParameters: { DetailType: STOP_DETAIL_TYPE, Source: KUBLER_SOURCE },
        // For an EventBridge target the input is the event's detail.
        Input: JSON.stringify(valid),
        RetryPolicy: { ...RETRY_POLICY },
        // Without it a stop that exhausted its retries is dropped without a trace; queued, it
        // raises the DLQ alarm. https://docs.aws.amazon.com/scheduler/latest/UserGuide/configuring-schedule-dlq.html
        DeadLetterConfig: { Arn: this.#deadLetterArn },
      },
    };

    await this.#withRetries(`create or update schedule ${this.#groupName}/${name}`, async () => {
      try {
        await this.#client.send(new CreateScheduleCommand(input));
        return;
      } catch (error) {
        if (errorName(error) !== "ConflictException") throw error;
      }
      try {
        await this.#client.send(new UpdateScheduleCommand(input));
      } catch (error) {
        const code = errorName(error);
        if (code === "ResourceNotFoundException" || code === "ConflictException") throw new RacedError(error);
        throw error;
      }
    });
  }

  /** Deletes the schedule `name`; one that has already fired (and deleted itself) or never existed is fine. */
  async cancel(name: string): Promise<void> {
    checkName(name);
    await this.#withRetries(`delete schedule ${this.#groupName}/${name}`, async () => {
      try {
        await this.#client.send(new DeleteScheduleCommand({ Name: name, GroupName: this.#groupName }));
      } catch (error) {
        const code = errorName(error);
        // A concurrent create or update of the same schedule (a deploy moving it): try again.
        if (code === "ConflictException") throw new RacedError(error);
        if (code !== "ResourceNotFoundException") throw error;
      }
    });
  }

  async #withRetries(action: string, operation: () => Promise<void>): Promise<void> {
    for (let attempt = 1; ; attempt++) {
      if (attempt > 1) await this.#sleep(this.#backoff(attempt - 1));
      try {
        await operation();
        return;
      } catch (error) {
        const retryable = error instanceof RacedError || isRetryable(error);
        if (!retryable || attempt >= this.#maxAttempts) {
          const cause = error instanceof RacedError ? error.underlying : error;
          throw new UnavailableError(`could not ${action} after ${attempt} attempt(s): ${describe(cause)}`);
        }
      }
    }
  }

  /** Full jitter: https://aws.amazon.com/blogs/architecture/exponential-backoff-and-jitter/ */
  #backoff(retry: number): number {
    const ceiling = Math.min(MAX_DELAY_MS, this.#baseDelayMs * 2 ** (retry - 1));
    return Math.floor(this.#random() * ceiling);
  }
}

function checkName(name: string): void {
  if (!SCHEDULE_NAME.test(name)) {
    throw new RangeError(
      `invalid schedule name ${JSON.stringify(name)}: EventBridge Scheduler takes 1-64 characters of [0-9a-zA-Z-_.]`,
    );
  }
}

function describeStop(detail: Detail<typeof STOP_DETAIL_TYPE>, fireAt: Date): string {
  const text =
    `Kubler: stop environment ${detail.environment} of ${detail.gitlab.projectPath} ` +
    `(${detail.reason}) at ${fireAt.toISOString()}`;
  return text.length <= MAX_DESCRIPTION_LENGTH ? text : `${text.slice(0, MAX_DESCRIPTION_LENGTH - 1)}…`;
}

function errorName(error: unknown): string {
  return error instanceof Error ? error.name : "UnknownError";
}

/** The error's name, code and HTTP status; the message only for Scheduler's modelled errors (never a request dump). */
function describe(error: unknown): string {
  const name = errorName(error);
  const status = (error as { $metadata?: { httpStatusCode?: number } } | null)?.$metadata?.httpStatusCode;
  const code = (error as { code?: unknown } | null)?.code;
  const head =
    name + (typeof code === "string" ? ` ${code}` : "") + (status === undefined ? "" : ` (HTTP ${status})`);
  const message = error instanceof Error ? error.message.slice(0, 300) : "";
  return MODELLED_ERRORS.has(name) && message ? `${head}: ${message}` : head;
}

/**
 * Throttling, 5xx and errors without an HTTP answer (network, timeout) are transient; another 4xx
 * (AccessDenied, a missing group, a validation error) will fail the same way again.
 */
function isRetryable(error: unknown): boolean {
  if (typeof error !== "object" || error === null) return true;
  const e = error as { name?: unknown; $retryable?: unknown; $metadata?: { httpStatusCode?: number } };
  if (typeof e.name === "string" && RETRYABLE_ERRORS.has(e.name)) return true;
  if (e.$retryable) return true;
  const status = e.$metadata?.httpStatusCode;
  if (status === undefined) return true;
  return status === 429 || status >= 500;
}
