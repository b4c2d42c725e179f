import { mkdtempSync, readFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, describe, expect, it, vi } from "vitest";
import { startLocalRuntime } from "../../cli/local-runtime.js";
import { loadLocalConfig } from "../../shared/config.js";
import { REDACTED } from "../../shared/domain/audit.js";
import {
  type BusEntry,
  type BusEnvelope,
  type FunctionName,
  MAX_DETAIL_BYTES,
  ROUTES,
} from "../../shared/domain/catalog.js";
import { matchesPattern } from "../../shared/domain/event-pattern.js";
import { InvalidDetailError, PublishError } from "../../shared/errors.js";
import { JsonlFile } from "../../shared/local/jsonl-file.js";
import {
  type BusConsumer,
  type BusListener,
  DEFAULT_ATTEMPT_TIMEOUT_MS,
  LocalBus,
  type LocalBusOptions,
} from "../../shared/local/local-bus.js";
import { FixedClock, RecordingAuditLog, samplePush, sequentialIds } from "../fakes/index.js";

const gitlab = { instance: "https://gitlab.example.com", projectId: 15, projectPath: "group/app" };
const push: BusEntry = {
  ...samplePush(),
  detail: { ...samplePush().detail, correlationId: "corr-1", gitlab },
};
const step = {
  correlationId: "corr-1",
  gitlab,
  environment: "review/feature",
  sha: "da1560886d4f094c3e6c9ef40349f7d38b5d27d7",
  ref: "feature",
  pipelineId: 42,
  mrIid: 7,
};
const buildFinished = (status: "succeeded" | "failed"): BusEntry => ({
  detailType: "Build Finished",
  detail: {
    ...step,
    status,
    imageDigest: status === "succeeded" ? `sha256:${"a".repeat(64)}` : null,
    reason: null,
  },
});
const credentialsIssued: BusEntry = {
  detailType: "Credentials Issued",
  detail: {
    correlationId: "c",
    gitlab,
    environment: null,
    jobId: 302,
    rule: "r",
    reason: "ok",
    roleArn: null,
  },
};

function setup(
  consumers: Partial<Record<FunctionName, BusConsumer>>,
  options: Partial<
    Pick<LocalBusOptions, "attemptTimeoutMs" | "listener" | "maxAttempts" | "routes" | "secrets">
  > = {},
) {
  const dir = mkdtempSync(join(tmpdir(), "kubler-bus-"));
  const files = {
    events: new JsonlFile(join(dir, "events.jsonl")),
    deadLetters: new JsonlFile(join(dir, "dl.jsonl")),
  };
  const audit = new RecordingAuditLog();
  const sleeps: number[] = [];
  const bus = new LocalBus({
    routes: ROUTES,
    consumers,
    ...files,
    audit,
    clock: new FixedClock(new Date("2026-11-21T10:00:00.123Z")),
    newId: sequentialIds("evt"),
    region: "eu-west-1",
    sleep: async (ms) => {
      sleeps.push(ms);
    },
    ...options,
  });
  const read = async (file: JsonlFile) => {
    await file.close();
    return readFileSync(file.path, "utf8")
      .split("\n")
      .filter(Boolean)
      .map((line) => JSON.parse(line));
  };
  return { bus, audit, sleeps, events: () => read(files.events), deadLetters: () => read(files.deadLetters) };
}

const hangs: BusConsumer = () => new Promise<void>(() => {});
const takes = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

afterEach(() => {
  vi.restoreAllMocks();
});

/** What the code under test wrote to stderr while `run` ran. */
async function stderrOf(run: () => Promise<void>): Promise<string> {
  let written = "";
  const spy = vi.spyOn(process.stderr, "write").mockImplementation((chunk) => {
    written += String(chunk);
    return true;
  });
  try {
    await run();
  } finally {
    spy.mockRestore();
  }
  return written;
}

function recorder() {
  const seen: BusEnvelope[] = [];
  const consumer: BusConsumer = async (envelope) => {
    seen.push(envelope);
  };
  return { seen, consumer };
}

describe("LocalBus", () => {
  it("routes with the catalog's table: GitLab facts to plan-steps, only succeeded builds to deploy", async () => {
    const plan = recorder();
    const deploy = recorder();
    const report = recorder();
    const { bus } = setup({
      "plan-steps": plan.consumer,
      "deploy-environment": deploy.consumer,
      "report-status": report.consumer,
    });
    await bus.publish([push, buildFinished("succeeded"), buildFinished("failed"), credentialsIssued]);
    await bus.drain();
    expect(plan.seen.map((e) => e["detail-type"])).toEqual(["Push"]);
    expect(deploy.seen.map((e) => e.id)).toEqual(["evt-2"]);
    expect(report.seen.map((e) => e.id)).toEqual(["evt-2", "evt-3"]);
  });

  it("answers before consumers run (asynchronous delivery)", async () => {
    const plan = recorder();
    const { bus } = setup({ "plan-steps": plan.consumer });
    const ids = await bus.publish([push]);
    expect(ids).toEqual(["evt-1"]);
    expect(plan.seen).toHaveLength(0);
    await bus.drain();
    expect(plan.seen).toHaveLength(1);
  });

  it("appends every envelope, in EventBridge's shape, to events.jsonl", async () => {
    const { bus, events } = setup({});
    await bus.publish([push, credentialsIssued]);
    const written = await events();
    expect(written).toHaveLength(2);
    expect(written[0]).toEqual({
      version: "0",
      id: "evt-1",
      "detail-type": "Push",
      source: "kubler.gitlab",
      account: "000000000000",
      time: "2026-11-21T10:00:00Z",
      region: "eu-west-1",
      resources: [],
      detail: push.detail,
    });
    expect(written[1].source).toBe("kubler");
  });

  it("retries a failing consumer with backoff and delivers on a later attempt", async () => {
    let calls = 0;
    const { bus, sleeps, deadLetters } = setup({
      "plan-steps": async () => {
        if (++calls < 3) throw new Error("transient");
      },
    });
    await bus.publish([push]);
    await bus.drain();
    expect(calls).toBe(3);
    expect(sleeps).toHaveLength(2);
    expect(sleeps[0]).toBeGreaterThanOrEqual(50);
    expect(sleeps[0]).toBeLessThanOrEqual(100);
    expect(sleeps[1]).toBeGreaterThanOrEqual(100);
    expect(sleeps[1]).toBeLessThanOrEqual(200);
    expect(await deadLetters()).toEqual([]);
  });

  it("keeps no secret in dead-letters.jsonl: configured ones nor secret-shaped text", async () => {
    const configured = "configured-webhook-token-1f2e";
    const { bus, deadLetters } = setup(
      {
        "plan-steps": async () => {
          throw new Error(`GitLab refused ${configured} and glpat-abcdefghijklmnop1234`);
        },
      },
      { secrets: [configured] },
    );
    await bus.publish([push]);
    await bus.drain();
    const [letter] = await deadLetters();
    expect(letter.error).toBe("GitLab refused [redacted] and [redacted]");
  });

  it("dead-letters after 3 failed attempts, with the envelope and an audit line", async () => {
    let calls = 0;
    const { bus, audit, deadLetters } = setup({
      "plan-steps": async () => {
        calls++;
        throw new Error("consumer is broken");
      },
    });
    await bus.publish([push]);
    await bus.drain();
    expect(calls).toBe(3);
    const [letter] = await deadLetters();
    expect(letter).toMatchObject({
      route: "gitlab-facts-to-plan-steps",
      target: "plan-steps",
      attempts: 3,
      error: "consumer is broken",
      envelope: { id: "evt-1", "detail-type": "Push" },
    });
    expect(audit.last()).toMatchObject({
      action: "bus.deliver",
      outcome: "failure",
      correlationId: "corr-1",
      function: "plan-steps",
    });
  });

  it("isolates consumers: one failing target does not stop another", async () => {
    const report = recorder();
    const { bus, deadLetters } = setup({
      "deploy-environment": async () => {
        throw new Error("down");
      },
      "report-status": report.consumer,
    });
    await bus.publish([buildFinished("succeeded")]);
    await bus.drain();
    expect(report.seen).toHaveLength(1);
    expect((await deadLetters()).map((l) => l.target)).toEqual(["deploy-environment"]);
  });

  it("names the entries it could not record, after delivering those it did", async () => {
    const dir = mkdtempSync(join(tmpdir(), "kubler-bus-"));
    let appends = 0;
    // events.jsonl fails from the second line on (a full disk).
    const events = new (class extends JsonlFile {
      override append(value: unknown): void {
        if (++appends > 1) throw new Error("ENOSPC: no space left on device");
        super.append(value);
      }
    })(join(dir, "events.jsonl"));
    const { consumer, seen } = recorder();
    const bus = new LocalBus({
      routes: ROUTES,
      consumers: { "plan-steps": consumer },
      events,
      deadLetters: new JsonlFile(join(dir, "dl.jsonl")),
      audit: new RecordingAuditLog(),
      clock: new FixedClock(),
      newId: sequentialIds("evt"),
    });
    const error = await bus.publish([push, push, push]).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(PublishError);
    expect(error).toMatchObject({ failed: [1, 2], message: expect.stringContaining("ENOSPC") });
    await bus.drain();
    expect(seen).toHaveLength(1);
  });

  it("refuses an invalid detail before recording or routing anything", async () => {
    const plan = recorder();
    const { bus, events } = setup({ "plan-steps": plan.consumer });
    const bad = { detailType: "Push", detail: { ...push.detail, after: "not-a-sha" } } as BusEntry;
    await expect(bus.publish([push, bad])).rejects.toThrow(InvalidDetailError);
    await expect(bus.publish([bad])).rejects.toThrow(/after/);
    await bus.drain();
    expect(plan.seen).toHaveLength(0);
    expect(await events()).toEqual([]);
  });

  it("routes by pattern, whatever the pattern names: type lists, operators, detail fields, $or", async () => {
    const dir = mkdtempSync(join(tmpdir(), "kubler-bus-"));
    const seen: Record<string, string[]> = { "plan-steps": [], "build-image": [], "report-status": [] };
    const consumer = (target: string) => async (e: BusEnvelope) => {
      seen[target]?.push(`${e["detail-type"]}/${"status" in e.detail ? e.detail.status : "-"}`);
    };
    const bus = new LocalBus({
      routes: [
        { name: "prefix", target: "plan-steps", pattern: { "detail-type": [{ prefix: "Build" }] } },
        {
          name: "or-with-detail",
          target: "build-image",
          pattern: { $or: [{ "detail-type": ["Push"] }, { detail: { status: ["failed"] } }] },
        },
        {
          name: "listed-or",
          target: "report-status",
          pattern: {
            $or: [
              { "detail-type": ["Credentials Issued"] },
              { "detail-type": ["Build Finished"], detail: { status: ["succeeded"] } },
            ],
          },
        },
      ],
      consumers: {
        "plan-steps": consumer("plan-steps"),
        "build-image": consumer("build-image"),
        "report-status": consumer("report-status"),
      },
      events: new JsonlFile(join(dir, "events.jsonl")),
      deadLetters: new JsonlFile(join(dir, "dl.jsonl")),
      audit: new RecordingAuditLog(),
      clock: new FixedClock(new Date("2026-11-21T10:00:00.123Z")),
      newId: sequentialIds("evt"),
    });
    // Twice, so the second pass runs on what the bus remembered per detail-type.
    for (let pass = 0; pass < 2; pass++) {
      await bus.publish([push, buildFinished("succeeded"), buildFinished("failed"), credentialsIssued]);
    }
    await bus.drain();
    const twice = (...items: string[]) => [...items, ...items];
    expect(seen["plan-steps"]).toEqual(twice("Build Finished/succeeded", "Build Finished/failed"));
    expect(seen["build-image"]).toEqual(twice("Push/-", "Build Finished/failed"));
    expect(seen["report-status"]).toEqual(twice("Build Finished/succeeded", "Credentials Issued/-"));
  });

  it("fails an attempt that outlives its deadline: retried, then dead-lettered as timed out", async () => {
    let calls = 0;
    const retried: number[] = [];
    const { bus, audit, deadLetters } = setup(
      {
        "plan-steps": async () => {
          calls++;
          await takes(100);
        },
      },
      { attemptTimeoutMs: 20, listener: { retrying: (_e, _r, attempt) => retried.push(attempt) } },
    );
    await bus.publish([push]);
    await bus.drain();
    expect(calls).toBe(3);
    expect(retried).toEqual([1, 2]);
    expect(await deadLetters()).toMatchObject([
      { target: "plan-steps", attempts: 3, error: "timed out after 20 ms" },
    ]);
    expect(audit.last()?.reason).toContain("timed out after 20 ms");
  });

  it("keeps a timed-out attempt in flight until it settles: drain names it, then waits for it", async () => {
    let settled = 0;
    let release = () => {};
    const released = new Promise<void>((resolve) => {
      release = resolve;
    });
    let deadLettered = () => {};
    const bothTimedOut = new Promise<void>((resolve) => {
      deadLettered = resolve;
    });
    const { bus, deadLetters } = setup(
      {
        "plan-steps": async () => {
          await released;
          settled++;
        },
      },
      { attemptTimeoutMs: 50, maxAttempts: 2, listener: { deadLettered: () => deadLettered() } },
    );
    await bus.publish([push]);
    // Both attempts timed out and the delivery is dead-lettered, but they run until released. Waited
    // for, not timed: on a loaded machine drain's own timer could fire before the second deadline.
    await bothTimedOut;
    const running = { eventId: "evt-1", detailType: "Push", target: "plan-steps" };
    expect(await bus.drain(50)).toEqual([
      { ...running, timedOutAttempt: 1 },
      { ...running, timedOutAttempt: 2 },
    ]);
    expect(settled).toBe(0);
    let drained = false;
    const draining = bus.drain().then((left) => {
      drained = true;
      return left;
    });
    // A drain that did not wait for them would have resolved before this macrotask.
    await new Promise((resolve) => setImmediate(resolve));
    expect(drained).toBe(false);
    release();
    expect(await draining).toEqual([]);
    expect(settled).toBe(2);
    expect(await deadLetters()).toMatchObject([{ attempts: 2, error: "timed out after 50 ms" }]);
  });

  it("gives each attempt Lambda's longest timeout by default", () => {
    expect(DEFAULT_ATTEMPT_TIMEOUT_MS).toBe(15 * 60 * 1000);
  });

  it("stops waiting when drain's time is up, naming the deliveries still running", async () => {
    const { bus } = setup({ "plan-steps": hangs });
    await bus.publish([push]);
    expect(await bus.drain(20)).toEqual([{ eventId: "evt-1", detailType: "Push", target: "plan-steps" }]);
  });

  it("refuses a detail over the catalog's 8 KB limit, as the EventBridge publisher does", async () => {
    const report = recorder();
    const { bus, events } = setup({ "report-status": report.consumer });
    const finished: BusEntry = {
      detailType: "Deploy Finished",
      detail: {
        ...step,
        status: "failed",
        namespace: "kubler-review-feature",
        url: null,
        reason: "x".repeat(20 * 1024),
      },
    };
    const error = await bus.publish([buildFinished("failed"), finished]).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(InvalidDetailError);
    expect(error).toMatchObject({
      message: expect.stringContaining(`over the ${MAX_DETAIL_BYTES}-byte limit`),
    });
    await bus.drain();
    expect(report.seen).toHaveLength(0);
    expect(await events()).toEqual([]);
  });

  it("delivers once when the delivered listener throws, and says so on stderr", async () => {
    let calls = 0;
    const { bus, deadLetters } = setup(
      {
        "plan-steps": async () => {
          calls++;
        },
      },
      {
        listener: {
          delivered: () => {
            throw new Error("reporter broke");
          },
        },
      },
    );
    const stderr = await stderrOf(async () => {
      await bus.publish([push]);
      await bus.drain();
    });
    expect(calls).toBe(1);
    expect(await deadLetters()).toEqual([]);
    expect(stderr).toContain("the delivered listener failed: reporter broke");
  });

  it("retries and dead-letters as usual when the other listeners throw", async () => {
    let calls = 0;
    const broken = () => {
      throw new Error("reporter broke");
    };
    const listener: BusListener = { published: broken, retrying: broken, deadLettered: broken };
    const { bus, deadLetters } = setup(
      {
        "plan-steps": async () => {
          calls++;
          throw new Error("consumer is broken");
        },
      },
      { listener },
    );
    const stderr = await stderrOf(async () => {
      await expect(bus.publish([push])).resolves.toEqual(["evt-1"]);
      await bus.drain();
    });
    expect(calls).toBe(3);
    expect(await deadLetters()).toMatchObject([{ attempts: 3, error: "consumer is broken" }]);
    expect(stderr.match(/listener failed: reporter broke/g)).toHaveLength(4);
  });

  it("dead-letters a consumer that throws a non-Error, with what it threw in the error", async () => {
    const thrown: unknown[] = [
      "plain text",
      { statusCode: 404, body: { message: "project not found" } },
      Object.assign(Object.create(null), { reason: "null prototype" }),
      undefined,
    ];
    const { bus, audit, deadLetters } = setup({
      "report-status": async (envelope) => {
        throw thrown[Number(envelope.id.slice("evt-".length)) - 1];
      },
    });
    const failed = buildFinished("failed");
    const stderr = await stderrOf(async () => {
      await bus.publish([failed, failed, failed, failed]);
      await bus.drain();
    });
    expect(stderr).toBe("");
    const letters = await deadLetters();
    expect(letters.map((l) => [l.envelope.id, l.error])).toEqual([
      ["evt-1", "plain text"],
      ["evt-2", '{"statusCode":404,"body":{"message":"project not found"}}'],
      ["evt-3", '{"reason":"null prototype"}'],
      ["evt-4", "undefined"],
    ]);
    expect(audit.records.filter((r) => r.action === "bus.deliver")).toHaveLength(4);
  });

  it("dead-letters a thrown object with its secret-named fields redacted, as an audit record's are", async () => {
    // An HTTP client's failure as a plain object, quoting the request it sent. Once JSON, a header
    // named cookie or authorization is text whose value has no secret shape: only its name says so.
    const thrown = {
      statusCode: 401,
      request: { headers: { authorization: "8f14e45fceea167a", cookie: "_gitlab_session=c9f0f895fb98ab91" } },
    };
    const { bus, audit, deadLetters } = setup({
      "report-status": async () => {
        throw thrown;
      },
    });
    await bus.publish([buildFinished("failed")]);
    await bus.drain();
    const [letter] = await deadLetters();
    expect(JSON.parse(letter.error)).toEqual({
      statusCode: 401,
      request: { headers: { authorization: REDACTED, cookie: REDACTED } },
    });
    const line = audit.records.find((r) => r.action === "bus.deliver");
    expect(line?.reason).toContain('"statusCode":401');
    expect(line?.reason).not.toContain("8f14e45fceea167a");
    expect(line?.reason).not.toContain("c9f0f895fb98ab91");
  });

  it("agrees with the matcher when an $or branch names detail-type again", async () => {
    const pattern = {
      "detail-type": ["Tag Push"],
      $or: [
        { "detail-type": ["Push"], detail: { change: ["updated"] } },
        { detail: { change: ["deleted"] } },
      ],
    };
    const plan = recorder();
    const { bus } = setup(
      { "plan-steps": plan.consumer },
      { routes: [{ name: "overridden-type", target: "plan-steps", pattern }] },
    );
    const tagPush: BusEntry = {
      detailType: "Tag Push",
      detail: { ...push.detail, ref: "refs/tags/v1", tag: "v1", change: "updated", user: null },
    } as BusEntry;
    await bus.publish([push, tagPush]);
    await bus.drain();
    const expected = [push, tagPush]
      .filter((entry) => matchesPattern(pattern, { "detail-type": entry.detailType, detail: entry.detail }))
      .map((entry) => entry.detailType);
    expect(expected).toEqual(["Push"]);
    expect(plan.seen.map((e) => e["detail-type"])).toEqual(expected);
  });
});

describe("local runtime close()", () => {
  it("stops after a bounded drain, naming the deliveries it abandoned", async () => {
    const dataDir = mkdtempSync(join(tmpdir(), "kubler-close-"));
    const runtime = await startLocalRuntime(loadLocalConfig({ PORT: "0", KUBLER_DATA_DIR: dataDir }), {
      consumers: { "plan-steps": hangs },
      simulatedRolloutMs: 0,
      onError: () => {},
    });
    const [id] = await runtime.bus.publish([push]);
    const stderr = await stderrOf(() => runtime.close(50));
    expect(stderr).toContain(`plan-steps on Push ${id}`);
    expect(stderr).toContain("still running after 50 ms");
  }, 20_000);
});
