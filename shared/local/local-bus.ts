/**
 * The embedded default's event bus: EventBridge's contract in one process. Same route table and
 * pattern semantics as the CDK rules; asynchronous and at-least-once (a failing consumer is retried,
 * then dead-lettered); every envelope appended to events.jsonl in EventBridge's shape.
 */

import { type AuditRecord, type AuditRedactor, createAuditRedactor } from "../domain/audit.js";
import {
  type BusEntry,
  type BusEnvelope,
  type DetailType,
  type FunctionName,
  type Route,
  sourceOf,
  validateBusDetail,
} from "../domain/catalog.js";
import { type EventPattern, matchesPattern, validatePattern } from "../domain/event-pattern.js";
import { PublishError } from "../errors.js";
import type { AuditLog, Clock, EventPublisher, IdGenerator } from "../ports.js";
import type { JsonlFile } from "./jsonl-file.js";

/** A function's handler for the events its route delivers. Throwing means "retry me". */
export type BusConsumer = (envelope: BusEnvelope) => Promise<void>;

/** What the bus tells the terminal (and tests) as events flow. */
export interface BusListener {
  published?(envelope: BusEnvelope, targets: readonly FunctionName[]): void;
  delivered?(envelope: BusEnvelope, route: Route, attempt: number): void;
  retrying?(envelope: BusEnvelope, route: Route, attempt: number, error: unknown): void;
  deadLettered?(envelope: BusEnvelope, route: Route, error: unknown): void;
}

export interface LocalBusOptions {
  routes: readonly Route[];
  consumers: Partial<Record<FunctionName, BusConsumer>>;
  events: JsonlFile;
  deadLetters: JsonlFile;
  audit: AuditLog;
  clock: Clock;
  newId: IdGenerator;
  region?: string;
  /** Attempts per delivery before dead-lettering; EventBridge retries far longer, 3 is enough locally. */
  maxAttempts?: number;
  /** How long one attempt may run before it counts as failed, like a Lambda timeout. */
  attemptTimeoutMs?: number;
  baseDelayMs?: number;
  sleep?: (ms: number) => Promise<void>;
  listener?: BusListener;
  /** Configured secret values: redacted, with secret-shaped text, from the errors kept in dead-letters.jsonl. */
  secrets?: readonly string[];
}

/**
 * Lambda's maximum timeout, the longest any Kubler function can run in AWS: a consumer still running
 * then has hung, and is failed as AWS would fail it.
 * https://docs.aws.amazon.com/lambda/latest/dg/configuration-timeout.html
 */
export const DEFAULT_ATTEMPT_TIMEOUT_MS = 15 * 60 * 1000;

/** A delivery still running when `drain` stopped waiting. */
export interface UnfinishedDelivery {
  eventId: string;
  detailType: DetailType;
  target: FunctionName;
  /**
   * Set on an attempt that outlived its deadline and still runs: the delivery has moved on (retried
   * or dead-lettered) but this attempt's writes are not over until it settles.
   */
  timedOutAttempt?: number;
}

const LOCAL_ACCOUNT = "000000000000";
/** The envelope fields that depend on nothing but the detail-type (the bus derives the source). */
const TYPE_FIELDS = new Set(["source", "detail-type"]);

interface CompiledRoute {
  route: Route;
  pattern: EventPattern;
  /** The pattern names only source and detail-type: its verdict is the same for every event of a type. */
  byTypeOnly: boolean;
  /** The detail-types it lists plainly, so any other type cannot match; null when it cannot tell. */
  listedTypes: ReadonlySet<string> | null;
}

/**
 * @example
 * const bus = new LocalBus({ routes: ROUTES, consumers: { "plan-steps": planSteps }, ... });
 * const [id] = await bus.publish([{ detailType: "Push", detail }]);
 * await bus.drain(); // every delivery done, retried or dead-lettered
 */
export class LocalBus implements EventPublisher {
  readonly #routes: readonly CompiledRoute[];
  /**
   * Per detail-type, each route's verdict when the type alone decides it (undefined: match the event).
   * Matching every route against every event cost ≈ 0.35× a JSON.parse of the webhook body.
   */
  readonly #verdictsByType = new Map<DetailType, readonly (boolean | undefined)[]>();
  readonly #inFlight = new Map<Promise<void>, UnfinishedDelivery>();
  readonly #options: Required<Omit<LocalBusOptions, "listener" | "secrets">> & { listener: BusListener };
  readonly #redact: AuditRedactor;

  constructor(options: LocalBusOptions) {
    this.#options = {
      region: "local",
      maxAttempts: 3,
      attemptTimeoutMs: DEFAULT_ATTEMPT_TIMEOUT_MS,
      baseDelayMs: 100,
      sleep: (ms) => new Promise((resolve) => setTimeout(resolve, ms)),
      listener: {},
      ...options,
    };
    this.#redact = createAuditRedactor(options.secrets);
    this.#routes = options.routes.map((route) => {
      const pattern = validatePattern(route.pattern);
      const byTypeOnly = [...fieldsNamed(pattern)].every((field) => TYPE_FIELDS.has(field));
      return { route, pattern, byTypeOnly, listedTypes: detailTypesListed(pattern) };
    });
  }

  async publish(entries: readonly BusEntry[]): Promise<string[]> {
    // Validate all first, like PutEvents refusing a malformed request: nothing is half-published.
    const envelopes = entries.map((entry) => this.#envelope(entry));
    for (const [index, envelope] of envelopes.entries()) {
      try {
        this.#options.events.append(envelope);
      } catch (error) {
        // The ones before went out (and are delivered); this one and those after did not.
        const failed = envelopes.slice(index).map((_, offset) => index + offset);
        throw new PublishError(`could not record event: ${(error as Error).message}`, failed);
      }
      const matched = this.#match(envelope);
      const targets = matched.map((route) => route.target);
      this.#notify("published", (listener) => listener.published?.(envelope, targets));
      for (const route of matched) {
        if (!this.#options.consumers[route.target]) continue;
        this.#track(this.#deliver(envelope, route), unfinished(envelope, route));
      }
    }
    return envelopes.map((envelope) => envelope.id);
  }

  /**
   * Resolves when every delivery started so far (and any it caused) has finished, attempts that
   * outlived their deadline included, or once `withinMs` has passed: then with the deliveries and
   * timed-out attempts still running (none when all finished).
   */
  async drain(withinMs = Number.POSITIVE_INFINITY): Promise<UnfinishedDelivery[]> {
    let timer: NodeJS.Timeout | undefined;
    const expired = new Promise<"expired">((resolve) => {
      if (Number.isFinite(withinMs)) timer = setTimeout(() => resolve("expired"), withinMs);
    });
    try {
      while (this.#inFlight.size > 0) {
        const settled = Promise.all(this.#inFlight.keys()).then(() => "settled" as const);
        if ((await Promise.race([settled, expired])) === "expired") break;
      }
    } finally {
      clearTimeout(timer);
    }
    return [...this.#inFlight.values()];
  }

  #match(envelope: BusEnvelope): Route[] {
    const type = envelope["detail-type"];
    let verdicts = this.#verdictsByType.get(type);
    if (!verdicts) {
      verdicts = this.#routes.map(({ pattern, byTypeOnly, listedTypes }) => {
        if (byTypeOnly) return matchesPattern(pattern, envelope);
        return listedTypes && !listedTypes.has(type) ? false : undefined;
      });
      this.#verdictsByType.set(type, verdicts);
    }
    const matched: Route[] = [];
    this.#routes.forEach(({ route, pattern }, i) => {
      if (verdicts[i] ?? matchesPattern(pattern, envelope)) matched.push(route);
    });
    return matched;
  }

  #envelope(entry: BusEntry): BusEnvelope {
    const { detail } = validateBusDetail(entry.detailType, entry.detail);
    return {
      version: "0",
      id: this.#options.newId(),
      "detail-type": entry.detailType,
      source: sourceOf(entry.detailType),
      account: LOCAL_ACCOUNT,
      // EventBridge's `time` has second precision.
      time: this.#options.clock
        .now()
        .toISOString()
        .replace(/\.\d{3}Z$/, "Z"),
      region: this.#options.region,
      resources: [],
      detail,
    };
  }

  #track(work: Promise<void>, delivery: UnfinishedDelivery): void {
    // Consumers' errors are retried, then dead-lettered: what gets here is the audit trail itself
    // failing (a full disk), which must not end the process as an unhandled rejection.
    const tracked = work.catch((error: unknown) => {
      process.stderr.write(`kubler: local bus: ${messageOf(error)}\n`);
    });
    this.#inFlight.set(tracked, delivery);
    void tracked.finally(() => this.#inFlight.delete(tracked));
  }

  async #deliver(envelope: BusEnvelope, route: Route): Promise<void> {
    const { consumers, maxAttempts, attemptTimeoutMs, baseDelayMs, sleep } = this.#options;
    const consumer = consumers[route.target];
    if (!consumer) return;
    // Deliver after the publisher's answer, as EventBridge does.
    await new Promise((resolve) => setImmediate(resolve));
    for (let attempt = 1; ; attempt++) {
      let failure: { error: unknown } | undefined;
      try {
        await withDeadline(
          () => consumer(envelope),
          attemptTimeoutMs,
          (overrun) => {
            // The next attempt may start while this one still runs, which at-least-once delivery
            // allows (consumers are idempotent). It stays in flight so that drain() waits for it and
            // close() does not close the files under it; its outcome no longer counts.
            const timedOut = { ...unfinished(envelope, route), timedOutAttempt: attempt };
            this.#track(
              overrun.catch(() => {}),
              timedOut,
            );
          },
        );
      } catch (error) {
        failure = { error };
      }
      // Listeners are told outside the try: one that throws must not fail a consumer that succeeded.
      if (!failure) {
        this.#notify("delivered", (listener) => listener.delivered?.(envelope, route, attempt));
        return;
      }
      if (attempt >= maxAttempts) {
        this.#deadLetter(envelope, route, attempt, failure.error);
        return;
      }
      const { error } = failure;
      this.#notify("retrying", (listener) => listener.retrying?.(envelope, route, attempt, error));
      await sleep(baseDelayMs * 2 ** (attempt - 1) * (0.5 + Math.random() / 2));
    }
  }

  /** The listener only watches: its failure is said on stderr and changes nothing about delivery. */
  #notify(event: keyof BusListener, tell: (listener: BusListener) => void): void {
    try {
      tell(this.#options.listener);
    } catch (error) {
      process.stderr.write(`kubler: local bus: the ${event} listener failed: ${messageOf(error)}\n`);
    }
  }

  #deadLetter(envelope: BusEnvelope, route: Route, attempts: number, error: unknown): void {
    const { deadLetters, audit, clock } = this.#options;
    // A consumer's error may quote what it failed on: the file is read by people, like the audit trail.
    const reason = this.#redact.text(messageOf(error, this.#redact));
    let kept = "dead-lettered";
    try {
      deadLetters.append({ route: route.name, target: route.target, attempts, error: reason, envelope });
    } catch (writeError) {
      // A full disk must not take the runtime down with an unhandled rejection: the audit line says
      // what could not be kept (the envelope itself is in events.jsonl when that file was writable).
      kept = `not dead-lettered: ${deadLetters.path} cannot be written (${messageOf(writeError)})`;
    }
    audit.record({
      audit: true,
      action: "bus.deliver",
      outcome: "failure",
      reason: `${route.target} failed ${attempts} times: ${reason}; ${kept}`,
      actor: { function: "local-bus" },
      subject: { eventId: envelope.id, detailType: envelope["detail-type"], target: route.target },
      correlationId: envelope.detail.correlationId,
      gitlab: null,
      function: route.target,
      at: clock.now().toISOString(),
    });
    this.#notify("deadLettered", (listener) => listener.deadLettered?.(envelope, route, error));
  }
}

/** The top-level fields a pattern looks at, through `$or` branches. */
function fieldsNamed(pattern: EventPattern, into = new Set<string>()): Set<string> {
  for (const [field, value] of Object.entries(pattern)) {
    if (field === "$or" && Array.isArray(value)) {
      for (const branch of value) fieldsNamed(branch as EventPattern, into);
    } else {
      into.add(field);
    }
  }
  return into;
}

/**
 * The detail-types a pattern lists as plain strings, at its top level or in every `$or` branch: an
 * event of any other type cannot match it. Null when the pattern does not say (operators, no list).
 */
function detailTypesListed(pattern: EventPattern): ReadonlySet<string> | null {
  const listed = pattern["detail-type"];
  const branches = pattern.$or;
  if (listed !== undefined) {
    // A branch that names detail-type again replaces this list for that branch (the matcher keeps
    // the last definition of a path, as Ruler does), so this list does not bound what matches.
    if (
      Array.isArray(branches) &&
      branches.some((branch) => fieldsNamed(branch as EventPattern).has("detail-type"))
    ) {
      return null;
    }
    return Array.isArray(listed) && listed.every((value) => typeof value === "string")
      ? new Set(listed as string[])
      : null;
  }
  if (!Array.isArray(branches)) return null;
  const union = new Set<string>();
  for (const branch of branches) {
    const types = detailTypesListed(branch as EventPattern);
    if (!types) return null;
    for (const type of types) union.add(type);
  }
  return union;
}

function unfinished(envelope: BusEnvelope, route: Route): UnfinishedDelivery {
  return { eventId: envelope.id, detailType: envelope["detail-type"], target: route.target };
}

/**
 * Runs one attempt, failing it once `ms` have passed as a Lambda timeout does. The attempt itself
 * cannot be stopped in-process: it runs on, handed to `onOverrun` before the failure is reported.
 */
async function withDeadline(
  attempt: () => Promise<void>,
  ms: number,
  onOverrun: (running: Promise<void>) => void,
): Promise<void> {
  const running = attempt();
  let timer: NodeJS.Timeout | undefined;
  const deadline = new Promise<never>((_, reject) => {
    timer = setTimeout(() => {
      onOverrun(running);
      reject(new Error(`timed out after ${formatDuration(ms)}`));
    }, ms);
    // A deadline alone must not keep a stopping process alive; whatever real work the consumer
    // waits on still does.
    timer.unref();
  });
  try {
    await Promise.race([running, deadline]);
  } finally {
    clearTimeout(timer);
  }
}

function formatDuration(ms: number): string {
  if (ms >= 60_000 && ms % 60_000 === 0) return `${ms / 60_000} min`;
  if (ms >= 1_000 && ms % 1_000 === 0) return `${ms / 1_000} s`;
  return `${ms} ms`;
}

/**
 * What a consumer threw, as text for dead-letters.jsonl and the audit line. Not only Errors: a
 * plain object (a library's `{ statusCode, body }`) is kept as JSON rather than "[object Object]",
 * and one String() cannot convert (a null prototype) must not throw and lose the dead letter. With
 * `redact`, the object's secret-named fields go first, as an audit record's do: once JSON, a
 * `"cookie":"…"` whose value has no secret shape is text the text redaction cannot tell.
 */
export function messageOf(error: unknown, redact?: AuditRedactor): string {
  if (error instanceof Error) return error.message;
  if (typeof error === "object" && error !== null) {
    try {
      const json = JSON.stringify(redact ? redactFields(error, redact) : error);
      if (json !== undefined && json !== "{}") return json;
    } catch {
      // A cycle or a BigInt: fall through to the tag.
    }
    return Object.prototype.toString.call(error);
  }
  return String(error);
}

/** `value` with its fields redacted by name, through the record redactor (which takes any object). */
function redactFields(value: object, redact: AuditRedactor): unknown {
  return (redact({ thrown: value } as unknown as AuditRecord) as unknown as { thrown: unknown }).thrown;
}
