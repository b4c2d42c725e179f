import {
  ConflictException,
  CreateScheduleCommand,
  type CreateScheduleCommandInput,
  DeleteScheduleCommand,
  InternalServerException,
  ResourceNotFoundException,
  SchedulerClient,
  ThrottlingException,
  UpdateScheduleCommand,
  ValidationException,
} from "@aws-sdk/client-scheduler";
import { type AwsClientStub, mockClient } from "aws-sdk-client-mock";
import "aws-sdk-client-mock-vitest/extend";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import {
  EventBridgeScheduler,
  type EventBridgeSchedulerOptions,
  ScheduleInPastError,
} from "../../shared/adapters/eventbridge-scheduler.js";
import type { Detail } from "../../shared/domain/catalog.js";
import { InvalidDetailError, UnavailableError } from "../../shared/errors.js";
import { FixedClock } from "../fakes/index.js";

const GROUP = "kubler-stops";
const BUS_ARN = "arn:aws:events:eu-west-1:123456789012:event-bus/kubler";
const ROLE_ARN = "arn:aws:iam::123456789012:role/kubler-scheduler";
const DLQ_ARN = "arn:aws:sqs:eu-west-1:123456789012:kubler-expiry-dead-letters";
const NAME = "group-app-review-feature-x-1a2b3c4d";
const NOW = new Date("2026-11-21T10:00:00.000Z");

const stop: Detail<"Environment Stop Requested"> = {
  correlationId: "c-1",
  gitlab: { instance: "https://gitlab.example.com", projectId: 15, projectPath: "group/app" },
  environment: "review/feature-x",
  reason: "expired",
};

/** The whole CreateSchedule input for `stop` at 2026-11-22T10:01:00Z, written out by hand. */
const expectedInput = {
  Name: NAME,
  GroupName: GROUP,
  Description: "Kubler: stop environment review/feature-x of group/app (expired) at 2026-11-22T10:01:00.000Z",
  ScheduleExpression: "at(2026-11-22T10:01:00)",
  ScheduleExpressionTimezone: "UTC",
  FlexibleTimeWindow: { Mode: "OFF" },
  ActionAfterCompletion: "DELETE",
  State: "ENABLED",
  Target: {
    Arn: BUS_ARN,
    RoleArn: ROLE_ARN,
    EventBridgeParameters: { DetailType: "Environment Stop Requested", Source: "kubler" },
    Input: JSON.stringify(stop),
    RetryPolicy: { MaximumRetryAttempts: 185, MaximumEventAgeInSeconds: 900 },
    DeadLetterConfig: { Arn: DLQ_ARN },
  },
} satisfies CreateScheduleCommandInput;

/** A time that rounds up to 10:01:00 the next day. */
const AT = new Date("2026-11-22T10:00:00.250Z");

/** What the SDK builds from an error answer: the service's message and the HTTP status. */
const answer = (message: string, httpStatusCode: number) => ({
  message,
  Message: message,
  $metadata: { httpStatusCode },
});
const conflict = () => new ConflictException(answer("Schedule already exists.", 409));
const notFound = () => new ResourceNotFoundException(answer("Schedule not found.", 404));
const throttled = () => new ThrottlingException(answer("Rate exceeded", 429));
const internal = () => new InternalServerException(answer("try again", 500));

let client: SchedulerClient;
let mock: AwsClientStub<SchedulerClient>;
let sleeps: number[];

function scheduler(options: Partial<EventBridgeSchedulerOptions> = {}) {
  return new EventBridgeScheduler({
    client,
    groupName: GROUP,
    busArn: BUS_ARN,
    roleArn: ROLE_ARN,
    deadLetterArn: DLQ_ARN,
    clock: new FixedClock(NOW),
    sleep: async (ms) => {
      sleeps.push(ms);
    },
    random: () => 0.5,
    ...options,
  });
}

beforeEach(() => {
  client = new SchedulerClient({
    region: "eu-west-1",
    credentials: { accessKeyId: "test", secretAccessKey: "test" },
  });
  mock = mockClient(client);
  sleeps = [];
});

afterEach(() => {
  mock.restore();
});

describe("EventBridgeScheduler.scheduleStop", () => {
  it("creates a one-time UTC schedule that puts the stop on the bus and deletes itself", async () => {
    mock.on(CreateScheduleCommand).resolves({ ScheduleArn: "arn:schedule" });

    await scheduler().scheduleStop(NAME, AT, stop);

    expect(mock).toHaveReceivedCommandExactlyOnceWith(CreateScheduleCommand, expectedInput);
    expect(mock.commandCalls(CreateScheduleCommand)[0]?.args[0].input).toEqual(expectedInput);
    expect(mock).not.toHaveReceivedCommand(UpdateScheduleCommand);
  });

  it("dead-letters the stop to the configured queue, on create and on update alike", async () => {
    mock.on(CreateScheduleCommand).resolvesOnce({}).rejects(conflict());
    mock.on(UpdateScheduleCommand).resolves({});

    await scheduler().scheduleStop(NAME, AT, stop);
    await scheduler().scheduleStop(NAME, AT, stop);

    const sent = [
      ...mock.commandCalls(CreateScheduleCommand).map((call) => call.args[0].input),
      ...mock.commandCalls(UpdateScheduleCommand).map((call) => call.args[0].input),
    ];
    expect(sent).toHaveLength(3);
    for (const input of sent) expect(input.Target?.DeadLetterConfig).toEqual({ Arn: DLQ_ARN });
    expect(mock).toHaveReceivedCommandWith(UpdateScheduleCommand, {
      Target: expect.objectContaining({ DeadLetterConfig: { Arn: DLQ_ARN } }),
    });
  });

  it("keeps a time already on a whole minute as it is", async () => {
    mock.on(CreateScheduleCommand).resolves({});

    await scheduler().scheduleStop(NAME, new Date("2026-11-22T10:00:00.000Z"), stop);

    expect(mock.commandCalls(CreateScheduleCommand)[0]?.args[0].input.ScheduleExpression).toBe(
      "at(2026-11-22T10:00:00)",
    );
  });

  it("updates with the very same input when the schedule already exists", async () => {
    mock.on(CreateScheduleCommand).rejects(conflict());
    mock.on(UpdateScheduleCommand).resolves({ ScheduleArn: "arn:schedule" });

    await scheduler().scheduleStop(NAME, AT, stop);

    expect(mock).toHaveReceivedCommandTimes(CreateScheduleCommand, 1);
    expect(mock.commandCalls(UpdateScheduleCommand).map((call) => call.args[0].input)).toEqual([
      expectedInput,
    ]);
    expect(sleeps).toEqual([]);
  });

  it("starts over when the schedule vanished between Create and Update", async () => {
    mock.on(CreateScheduleCommand).rejectsOnce(conflict()).resolves({});
    mock.on(UpdateScheduleCommand).rejects(notFound());

    await scheduler().scheduleStop(NAME, AT, stop);

    expect(mock).toHaveReceivedCommandTimes(CreateScheduleCommand, 2);
    expect(mock).toHaveReceivedCommandTimes(UpdateScheduleCommand, 1);
  });

  it.each([
    ["now", NOW],
    ["a second ago", new Date(NOW.getTime() - 1_000)],
    ["last year", new Date("2025-01-01T00:00:00Z")],
  ])("refuses a time in the past (%s) without calling AWS", async (_, at) => {
    const error = await scheduler()
      .scheduleStop(NAME, at, stop)
      .catch((e: unknown) => e);

    expect(error).toBeInstanceOf(ScheduleInPastError);
    expect((error as ScheduleInPastError).message).toContain(NAME);
    expect(mock).not.toHaveReceivedAnyCommand();
  });

  it("accepts a time a fraction of a second ahead (it rounds up)", async () => {
    mock.on(CreateScheduleCommand).resolves({});

    await scheduler().scheduleStop(NAME, new Date(NOW.getTime() + 1), stop);

    expect(mock.commandCalls(CreateScheduleCommand)[0]?.args[0].input.ScheduleExpression).toBe(
      "at(2026-11-21T10:01:00)",
    );
  });

  // Scheduler fires anywhere in the minute at() names: at(10:00:37) may fire at 10:00:05, before
  // the expiry, and cleanup would refuse the stop as not yet due.
  it("never names a minute that starts before the expiry", async () => {
    mock.on(CreateScheduleCommand).resolves({});

    await scheduler().scheduleStop(NAME, new Date("2026-11-22T10:00:37.000Z"), stop);

    expect(mock.commandCalls(CreateScheduleCommand)[0]?.args[0].input.ScheduleExpression).toBe(
      "at(2026-11-22T10:01:00)",
    );
    expect(mock.commandCalls(CreateScheduleCommand)[0]?.args[0].input.Description).toContain(
      "2026-11-22T10:01:00",
    );
  });

  it("refuses an invalid date without calling AWS", async () => {
    await expect(scheduler().scheduleStop(NAME, new Date(Number.NaN), stop)).rejects.toThrow(/invalid/);
    expect(mock).not.toHaveReceivedAnyCommand();
  });

  it.each([
    ["empty", ""],
    ["65 characters", "a".repeat(65)],
    ["a slash", "group/app"],
    ["a space", "review x"],
    ["a colon", "a:b"],
  ])("refuses a name Scheduler would refuse (%s) without calling AWS", async (_, name) => {
    await expect(scheduler().scheduleStop(name, AT, stop)).rejects.toThrow(/invalid schedule name/);
    await expect(scheduler().cancel(name)).rejects.toThrow(/invalid schedule name/);
    expect(mock).not.toHaveReceivedAnyCommand();
  });

  it("accepts every character Scheduler allows, up to 64 of them", async () => {
    mock.on(CreateScheduleCommand).resolves({});
    const name = `Az09-_.${"x".repeat(57)}`;

    await scheduler().scheduleStop(name, AT, stop);

    expect(mock).toHaveReceivedCommandWith(CreateScheduleCommand, { Name: name });
  });

  it("refuses a detail the catalog refuses without calling AWS", async () => {
    const bad = { ...stop, reason: "bored" } as unknown as Detail<"Environment Stop Requested">;

    await expect(scheduler().scheduleStop(NAME, AT, bad)).rejects.toThrow(InvalidDetailError);
    expect(mock).not.toHaveReceivedAnyCommand();
  });

  it("retries throttling and 5xx with jittered backoff, then succeeds", async () => {
    mock.on(CreateScheduleCommand).rejectsOnce(throttled()).rejectsOnce(internal()).resolves({});

    await scheduler({ baseDelayMs: 100 }).scheduleStop(NAME, AT, stop);

    expect(mock).toHaveReceivedCommandTimes(CreateScheduleCommand, 3);
    // Ceilings 100 and 200 ms; random() = 0.5.
    expect(sleeps).toEqual([50, 100]);
  });

  it("retries a network error (no HTTP answer)", async () => {
    const reset = Object.assign(new Error("socket hang up"), { code: "ECONNRESET" });
    mock.on(CreateScheduleCommand).rejectsOnce(reset).resolves({});

    await scheduler().scheduleStop(NAME, AT, stop);

    expect(mock).toHaveReceivedCommandTimes(CreateScheduleCommand, 2);
  });

  it("throws UnavailableError after exactly maxAttempts when throttling persists", async () => {
    mock.on(CreateScheduleCommand).rejects(throttled());

    const error = await scheduler({ maxAttempts: 3 })
      .scheduleStop(NAME, AT, stop)
      .catch((e: unknown) => e);

    expect(error).toBeInstanceOf(UnavailableError);
    expect((error as Error).message).toBe(
      `could not create or update schedule ${GROUP}/${NAME} after 3 attempt(s): ` +
        "ThrottlingException (HTTP 429): Rate exceeded",
    );
    expect(mock).toHaveReceivedCommandTimes(CreateScheduleCommand, 3);
    expect(sleeps).toHaveLength(2);
  });

  it("does not retry a validation error, and reports it as UnavailableError with Scheduler's message", async () => {
    mock.on(CreateScheduleCommand).rejects(new ValidationException(answer("Invalid RoleArn provided.", 400)));

    const error = await scheduler()
      .scheduleStop(NAME, AT, stop)
      .catch((e: unknown) => e);

    expect(error).toBeInstanceOf(UnavailableError);
    expect((error as Error).message).toMatch(
      /after 1 attempt\(s\): ValidationException \(HTTP 400\): Invalid RoleArn/,
    );
    expect(mock).toHaveReceivedCommandTimes(CreateScheduleCommand, 1);
  });

  it("reports an unmodelled error by name only, never its message", async () => {
    const signing = Object.assign(new Error("canonical request ... X-Amz-Security-Token=SECRET"), {
      name: "InvalidSignatureException",
      $metadata: { httpStatusCode: 403 },
    });
    mock.on(CreateScheduleCommand).rejects(signing);

    const error = await scheduler()
      .scheduleStop(NAME, AT, stop)
      .catch((e: unknown) => e);

    expect(error).toBeInstanceOf(UnavailableError);
    expect((error as Error).message).toMatch(/: InvalidSignatureException \(HTTP 403\)$/);
    expect((error as Error).message).not.toContain("SECRET");
  });

  it("gives up when Create and Update keep racing, after maxAttempts", async () => {
    mock.on(CreateScheduleCommand).rejects(conflict());
    mock.on(UpdateScheduleCommand).rejects(notFound());

    const error = await scheduler({ maxAttempts: 2 })
      .scheduleStop(NAME, AT, stop)
      .catch((e: unknown) => e);

    expect(error).toBeInstanceOf(UnavailableError);
    expect((error as Error).message).toContain("ResourceNotFoundException");
    expect(mock).toHaveReceivedCommandTimes(CreateScheduleCommand, 2);
    expect(mock).toHaveReceivedCommandTimes(UpdateScheduleCommand, 2);
  });
});

describe("EventBridgeScheduler.cancel", () => {
  it("deletes the schedule in its group", async () => {
    mock.on(DeleteScheduleCommand).resolves({});

    await scheduler().cancel(NAME);

    expect(mock).toHaveReceivedCommandExactlyOnceWith(DeleteScheduleCommand, {
      Name: NAME,
      GroupName: GROUP,
    });
  });

  it("is fine when the schedule is already gone", async () => {
    mock.on(DeleteScheduleCommand).rejects(notFound());

    await expect(scheduler().cancel(NAME)).resolves.toBeUndefined();
    expect(mock).toHaveReceivedCommandTimes(DeleteScheduleCommand, 1);
    expect(sleeps).toEqual([]);
  });

  it("retries a conflict (a deploy moving the schedule at that moment), then deletes it", async () => {
    const busy = "Updating or deleting the resource can cause an inconsistent state.";
    mock
      .on(DeleteScheduleCommand)
      .rejectsOnce(new ConflictException(answer(busy, 409)))
      .resolves({});

    await expect(scheduler().cancel(NAME)).resolves.toBeUndefined();

    expect(mock).toHaveReceivedCommandTimes(DeleteScheduleCommand, 2);
    expect(sleeps).toHaveLength(1);
  });

  it("retries throttling, then succeeds", async () => {
    mock.on(DeleteScheduleCommand).rejectsOnce(throttled()).resolves({});

    await scheduler().cancel(NAME);

    expect(mock).toHaveReceivedCommandTimes(DeleteScheduleCommand, 2);
    expect(sleeps).toHaveLength(1);
  });

  it("throws UnavailableError when 5xx persists", async () => {
    mock.on(DeleteScheduleCommand).rejects(internal());

    await expect(scheduler({ maxAttempts: 4 }).cancel(NAME)).rejects.toThrow(
      new UnavailableError(
        `could not delete schedule ${GROUP}/${NAME} after 4 attempt(s): InternalServerException (HTTP 500): try again`,
      ),
    );
    expect(mock).toHaveReceivedCommandTimes(DeleteScheduleCommand, 4);
  });
});

describe("backoff", () => {
  it("doubles the ceiling each attempt, capped at 5 s, each delay a draw below it", async () => {
    mock.on(DeleteScheduleCommand).rejects(internal());

    await expect(
      scheduler({ maxAttempts: 9, baseDelayMs: 100, random: () => 0.999 }).cancel(NAME),
    ).rejects.toThrow(UnavailableError);

    expect(sleeps).toEqual([99, 199, 399, 799, 1598, 3196, 4995, 4995]);
  });
});
