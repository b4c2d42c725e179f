import {
  EventBridgeClient,
  EventBridgeServiceException,
  PutEventsCommand,
  type PutEventsCommandInput,
  type PutEventsCommandOutput,
  type PutEventsRequestEntry,
} from "@aws-sdk/client-eventbridge";
import { type AwsClientStub, mockClient } from "aws-sdk-client-mock";
import "aws-sdk-client-mock-vitest/extend";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import {
  EventBridgePublisher,
  type EventBridgePublisherOptions,
  groupIntoBatches,
} from "../../shared/adapters/eventbridge-publisher.js";
import { type BusEntry, MAX_DETAIL_BYTES, ROUTES } from "../../shared/domain/catalog.js";
import { InvalidDetailError, PublishError } from "../../shared/errors.js";
import type { JsonlFile } from "../../shared/local/jsonl-file.js";
import { LocalBus } from "../../shared/local/local-bus.js";
import { FixedClock, RecordingAuditLog, samplePush, sequentialIds } from "../fakes/index.js";

const BUS = "kubler-test";

const push = samplePush;

function pushes(count: number): ReturnType<typeof samplePush>[] {
  return Array.from({ length: count }, (_, n) => push(n));
}

/** The correlation id of a sent entry: tells which input entry it was. */
function correlationOf(entry: PutEventsRequestEntry): string {
  return (JSON.parse(entry.Detail ?? "{}") as { correlationId: string }).correlationId;
}

/** What EventBridge answers for an accepted entry; the id tells which input entry it was. */
function accepted(entry: PutEventsRequestEntry) {
  return { EventId: `id-${correlationOf(entry)}` };
}

function answer(input: PutEventsCommandInput, failing: (entry: PutEventsRequestEntry) => string | undefined) {
  const entries = (input.Entries ?? []).map((entry) => {
    const code = failing(entry);
    return code ? { ErrorCode: code, ErrorMessage: `${code} (test)` } : accepted(entry);
  });
  return {
    FailedEntryCount: entries.filter((entry) => "ErrorCode" in entry).length,
    Entries: entries,
  } as PutEventsCommandOutput;
}

function sentCorrelations(mock: AwsClientStub<EventBridgeClient>): string[][] {
  return mock
    .commandCalls(PutEventsCommand)
    .map((call) => (call.args[0].input.Entries ?? []).map(correlationOf));
}

let client: EventBridgeClient;
let mock: AwsClientStub<EventBridgeClient>;
let sleeps: number[];

function publisher(options: Partial<EventBridgePublisherOptions> = {}) {
  return new EventBridgePublisher({
    client,
    busName: BUS,
    sleep: async (ms) => {
      sleeps.push(ms);
    },
    random: () => 0.5,
    ...options,
  });
}

beforeEach(() => {
  client = new EventBridgeClient({
    region: "eu-west-1",
    credentials: { accessKeyId: "test", secretAccessKey: "test" },
  });
  mock = mockClient(client);
  sleeps = [];
});

afterEach(() => {
  mock.restore();
});

describe("EventBridgePublisher", () => {
  it("sends 23 entries as 10 + 10 + 3 and answers their ids in input order", async () => {
    mock.on(PutEventsCommand).callsFake((input: PutEventsCommandInput) => answer(input, () => undefined));

    const ids = await publisher().publish(pushes(23));

    expect(mock).toHaveReceivedCommandTimes(PutEventsCommand, 3);
    expect(sentCorrelations(mock).map((batch) => batch.length)).toEqual([10, 10, 3]);
    expect(sentCorrelations(mock).flat()).toEqual(pushes(23).map((entry) => entry.detail.correlationId));
    expect(ids).toEqual(Array.from({ length: 23 }, (_, n) => `id-c-${n}`));
    expect(sleeps).toEqual([]);
  });

  it("fills Source, DetailType, Detail and EventBusName from the catalog", async () => {
    mock.on(PutEventsCommand).callsFake((input: PutEventsCommandInput) => answer(input, () => undefined));
    const buildRequested: BusEntry = {
      detailType: "Build Requested",
      detail: {
        correlationId: "c-9",
        gitlab: { instance: "https://gitlab.example.com", projectId: 15, projectPath: "group/app" },
        environment: "review/feature-x",
        sha: "da1560886d4f094c3e6c9ef40349f7d38b5d27d7",
        ref: "feature-x",
        pipelineId: null,
        mrIid: 7,
      },
    };

    await publisher().publish([push(0), buildRequested]);

    expect(mock).toHaveReceivedCommandExactlyOnceWith(PutEventsCommand, {
      Entries: [
        {
          Source: "kubler.gitlab",
          DetailType: "Push",
          Detail: JSON.stringify(push(0).detail),
          EventBusName: BUS,
        },
        {
          Source: "kubler",
          DetailType: "Build Requested",
          Detail: JSON.stringify(buildRequested.detail),
          EventBusName: BUS,
        },
      ],
    });
  });

  it("resends only the failed entries and still answers the ids in input order", async () => {
    const failedOnce = new Set<string>();
    mock.on(PutEventsCommand).callsFake((input: PutEventsCommandInput) =>
      answer(input, (entry) => {
        const id = correlationOf(entry);
        if ((id === "c-1" || id === "c-3") && !failedOnce.has(id)) {
          failedOnce.add(id);
          return "InternalFailure";
        }
        return undefined;
      }),
    );

    const ids = await publisher().publish(pushes(5));

    expect(sentCorrelations(mock)).toEqual([
      ["c-0", "c-1", "c-2", "c-3", "c-4"],
      ["c-1", "c-3"],
    ]);
    expect(ids).toEqual(["id-c-0", "id-c-1", "id-c-2", "id-c-3", "id-c-4"]);
    expect(sleeps).toHaveLength(1);
  });

  it("resends failures from several batches together, re-batched", async () => {
    let call = 0;
    mock.on(PutEventsCommand).callsFake((input: PutEventsCommandInput) => {
      call++;
      // First round: the last entry of each of the three batches fails.
      return answer(input, (entry) =>
        call <= 3 && /^c-(9|19|22)$/.test(correlationOf(entry)) ? "ThrottlingException" : undefined,
      );
    });

    const ids = await publisher().publish(pushes(23));

    expect(sentCorrelations(mock).slice(3)).toEqual([["c-9", "c-19", "c-22"]]);
    expect(ids).toEqual(Array.from({ length: 23 }, (_, n) => `id-c-${n}`));
  });

  it("throws PublishError with failedCount after exactly maxAttempts attempts", async () => {
    mock
      .on(PutEventsCommand)
      .callsFake((input: PutEventsCommandInput) =>
        answer(input, (entry) => (correlationOf(entry) === "c-2" ? undefined : "InternalFailure")),
      );

    const error = await publisher({ maxAttempts: 3 })
      .publish(pushes(4))
      .catch((e: unknown) => e);

    expect(error).toBeInstanceOf(PublishError);
    expect(error).toMatchObject({ failedCount: 3 });
    expect((error as PublishError).message).toMatch(/3 of 4 .*after 3 attempt.*InternalFailure/);
    expect((error as PublishError).message).not.toContain("jsmith");
    expect(mock).toHaveReceivedCommandTimes(PutEventsCommand, 3);
    expect(sleeps).toHaveLength(2);
  });

  it("uses 4 attempts by default", async () => {
    mock
      .on(PutEventsCommand)
      .callsFake((input: PutEventsCommandInput) => answer(input, () => "InternalFailure"));

    await expect(publisher().publish(pushes(1))).rejects.toThrow(PublishError);
    expect(mock).toHaveReceivedCommandTimes(PutEventsCommand, 4);
  });

  it("does not resend entries that failed with a non-retryable code", async () => {
    mock
      .on(PutEventsCommand)
      .callsFake((input: PutEventsCommandInput) =>
        answer(input, (entry) =>
          correlationOf(entry) === "c-1" ? "NotAuthorizedForSourceException" : undefined,
        ),
      );

    const error = await publisher()
      .publish(pushes(3))
      .catch((e: unknown) => e);

    expect(error).toBeInstanceOf(PublishError);
    expect(error).toMatchObject({ failedCount: 1 });
    // Which one: the caller keeps the others as published (reconcile does).
    expect((error as PublishError).failed).toEqual([1]);
    expect((error as PublishError).message).toContain("NotAuthorizedForSourceException");
    expect(mock).toHaveReceivedCommandTimes(PutEventsCommand, 1);
    expect(sleeps).toEqual([]);
  });

  it("retries a throttled call (the whole call rejected) and then succeeds", async () => {
    const throttled = new Error("Rate exceeded");
    throttled.name = "ThrottlingException";
    mock
      .on(PutEventsCommand)
      .rejectsOnce(throttled)
      .callsFake((input: PutEventsCommandInput) => answer(input, () => undefined));

    const ids = await publisher().publish(pushes(2));

    expect(ids).toEqual(["id-c-0", "id-c-1"]);
    expect(sentCorrelations(mock)).toEqual([
      ["c-0", "c-1"],
      ["c-0", "c-1"],
    ]);
    expect(sleeps).toHaveLength(1);
  });

  it("tells onRetry how many entries each retry sends again (the PublishRetries metric)", async () => {
    const throttled = new Error("Rate exceeded");
    throttled.name = "ThrottlingException";
    mock
      .on(PutEventsCommand)
      .rejectsOnce(throttled)
      .callsFakeOnce((input: PutEventsCommandInput) =>
        answer(input, (e) => (correlationOf(e) === "c-1" ? "InternalFailure" : undefined)),
      )
      .callsFake((input: PutEventsCommandInput) => answer(input, () => undefined));
    const retries: number[] = [];

    await publisher({ onRetry: (entries) => retries.push(entries) }).publish(pushes(3));

    expect(retries).toEqual([3, 1]);
  });

  it("retries a 5xx or a network error for the whole call", async () => {
    const unavailable = new EventBridgeServiceException({
      name: "InternalException",
      $fault: "server",
      $metadata: { httpStatusCode: 503 },
      message: "try again",
    });
    const reset = Object.assign(new Error("socket hang up"), { code: "ECONNRESET" });
    mock
      .on(PutEventsCommand)
      .rejectsOnce(unavailable)
      .rejectsOnce(reset)
      .callsFake((input: PutEventsCommandInput) => answer(input, () => undefined));

    await expect(publisher().publish(pushes(1))).resolves.toEqual(["id-c-0"]);
    expect(mock).toHaveReceivedCommandTimes(PutEventsCommand, 3);
  });

  it("does not retry a call rejected with a non-retryable 4xx", async () => {
    mock.on(PutEventsCommand).rejects(
      new EventBridgeServiceException({
        name: "AccessDeniedException",
        $fault: "client",
        $metadata: { httpStatusCode: 400 },
        message: "not allowed",
      }),
    );

    const error = await publisher()
      .publish(pushes(12))
      .catch((e: unknown) => e);

    expect(error).toBeInstanceOf(PublishError);
    expect(error).toMatchObject({ failedCount: 12 });
    expect((error as PublishError).message).toContain("AccessDeniedException");
    expect(mock).toHaveReceivedCommandTimes(PutEventsCommand, 2);
  });

  it("backs off with full jitter, doubling the ceiling each attempt", async () => {
    mock
      .on(PutEventsCommand)
      .callsFake((input: PutEventsCommandInput) => answer(input, () => "InternalFailure"));
    const draws = [0.5, 0.25, 0.999];
    const random = () => draws.shift() ?? 0;

    await expect(publisher({ maxAttempts: 4, baseDelayMs: 100, random }).publish(pushes(1))).rejects.toThrow(
      PublishError,
    );

    // Ceilings 100, 200, 400 ms; each delay is a uniform draw below its ceiling.
    expect(sleeps).toEqual([50, 50, 399]);
  });

  it("keeps every delay within [0, ceiling) and capped, whatever the draws", async () => {
    mock
      .on(PutEventsCommand)
      .callsFake((input: PutEventsCommandInput) => answer(input, () => "InternalFailure"));

    await expect(
      publisher({ maxAttempts: 12, baseDelayMs: 50, random: Math.random }).publish(pushes(1)),
    ).rejects.toThrow(PublishError);

    expect(sleeps).toHaveLength(11);
    sleeps.forEach((ms, retry) => {
      expect(ms).toBeGreaterThanOrEqual(0);
      expect(ms).toBeLessThan(Math.min(2_000, 50 * 2 ** retry));
    });
  });

  it("rejects an invalid detail with InvalidDetailError before sending anything", async () => {
    const bad = { detailType: "Push", detail: { ...push(1).detail, before: "not-a-sha" } } as BusEntry;

    await expect(publisher().publish([push(0), bad])).rejects.toThrow(InvalidDetailError);
    expect(mock).not.toHaveReceivedAnyCommand();
  });

  it("rejects a detail over MAX_DETAIL_BYTES before sending anything", async () => {
    const big: BusEntry = { detailType: "Push", detail: { ...push(1).detail, user: "x".repeat(9_000) } };

    await expect(publisher().publish([push(0), big])).rejects.toThrow(/over the 8192-byte limit/);
    expect(mock).not.toHaveReceivedAnyCommand();
  });

  it("accepts and refuses by size exactly what the local bus does (UTF-8 bytes, not characters)", async () => {
    mock.on(PutEventsCommand).callsFake((input: PutEventsCommandInput) => answer(input, () => undefined));
    const discard = { append() {} } as unknown as JsonlFile;
    const bus = new LocalBus({
      routes: ROUTES,
      consumers: {},
      events: discard,
      deadLetters: discard,
      audit: new RecordingAuditLog(),
      clock: new FixedClock(),
      newId: sequentialIds("evt"),
    });
    const withUser = (user: string): BusEntry => ({
      detailType: "Push",
      detail: { ...push(0).detail, user },
    });
    const room = MAX_DETAIL_BYTES - Buffer.byteLength(JSON.stringify(withUser("").detail));
    const atLimit = withUser("x".repeat(room));
    // As many characters, one byte more: "é" is two bytes in UTF-8.
    const overByOne = withUser(`${"x".repeat(room - 1)}é`);

    const outcome = (promise: Promise<unknown>) =>
      promise.then(
        () => "accepted",
        (error: Error) => `${error.name}: ${error.message}`,
      );
    for (const entry of [atLimit, overByOne]) {
      expect(await outcome(bus.publish([entry]))).toBe(await outcome(publisher().publish([entry])));
    }
    expect(await outcome(bus.publish([atLimit]))).toBe("accepted");
    expect(await outcome(bus.publish([overByOne]))).toMatch(
      /InvalidDetailError: .* 8193 bytes, over the 8192-byte limit/,
    );
  });

  it("sends nothing for no entries", async () => {
    await expect(publisher().publish([])).resolves.toEqual([]);
    expect(mock).not.toHaveReceivedAnyCommand();
  });
});

describe("groupIntoBatches", () => {
  it("puts at most 10 entries in a request", () => {
    expect(groupIntoBatches(new Array(23).fill(100)).map((batch) => batch.length)).toEqual([10, 10, 3]);
  });

  it("keeps each request's entries under 256 KB in total", () => {
    expect(groupIntoBatches([100_000, 100_000, 100_000, 10])).toEqual([
      [0, 1],
      [2, 3],
    ]);
    // "Less than 256KB": exactly 262144 bytes must be split.
    expect(groupIntoBatches([131_072, 131_072])).toEqual([[0], [1]]);
    expect(groupIntoBatches([131_072, 131_071])).toEqual([[0, 1]]);
  });

  it("answers nothing for nothing", () => {
    expect(groupIntoBatches([])).toEqual([]);
  });
});
