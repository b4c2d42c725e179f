/**
 * JsonlFile when the disk is full: /dev/full for the real failure, and a `writeSync` that runs out of
 * room after a given number of bytes for partial writes and recovery.
 */
import { existsSync, mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, beforeEach, describe, expect, it, type MockInstance, vi } from "vitest";
import type { AuditRecord } from "../../shared/domain/audit.js";
import { ROUTES } from "../../shared/domain/catalog.js";
import { PublishError, UnavailableError } from "../../shared/errors.js";
import { toErrorAnswer } from "../../shared/http-errors.js";
import { JsonlAuditLog } from "../../shared/local/jsonl-audit-log.js";
import { JsonlFile, MAX_UNWRITTEN_BYTES } from "../../shared/local/jsonl-file.js";
import { LocalBus } from "../../shared/local/local-bus.js";
import { FixedClock, RecordingAuditLog, samplePush, sequentialIds } from "../fakes/index.js";

/** Bytes the disk still takes; null: as many as the real file system does. */
const disk = vi.hoisted(() => ({ room: null as number | null }));

vi.mock("node:fs", async (importOriginal) => {
  const fs = await importOriginal<typeof import("node:fs")>();
  const writeSync = (fd: number, buffer: Buffer, offset = 0): number => {
    if (disk.room === null) return fs.writeSync(fd, buffer, offset);
    if (disk.room === 0) {
      throw Object.assign(new Error("ENOSPC: no space left on device, write"), { code: "ENOSPC" });
    }
    const written = fs.writeSync(fd, buffer, offset, Math.min(disk.room, buffer.length - offset));
    disk.room -= written;
    return written;
  };
  return { ...fs, default: { ...fs, writeSync }, writeSync };
});

const HAS_DEV_FULL = existsSync("/dev/full");
const wait = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

let stderr: MockInstance;
beforeEach(() => {
  disk.room = null;
  stderr = vi.spyOn(process.stderr, "write").mockImplementation(() => true);
});
afterEach(() => {
  stderr.mockRestore();
});

const said = () => stderr.mock.calls.map(([text]) => String(text));

function tempFile(): JsonlFile {
  return new JsonlFile(join(mkdtempSync(join(tmpdir(), "kubler-jsonl-")), "events.jsonl"));
}

describe.skipIf(!HAS_DEV_FULL)("JsonlFile on a full disk (/dev/full)", () => {
  function busOnDevFull() {
    const events = new JsonlFile("/dev/full");
    const dir = mkdtempSync(join(tmpdir(), "kubler-jsonl-"));
    const bus = new LocalBus({
      routes: ROUTES,
      consumers: {},
      events,
      deadLetters: new JsonlFile(join(dir, "dl.jsonl")),
      audit: new RecordingAuditLog(),
      clock: new FixedClock(),
      newId: sequentialIds("evt"),
    });
    return { bus, events };
  }

  it("a background write that fails does not throw from the timer; stderr says so once", async () => {
    const { bus } = busOnDevFull();
    // Accepted: the write happens 20 ms later, after the webhook would have answered.
    await expect(bus.publish([samplePush(1)])).resolves.toEqual(["evt-1"]);
    await wait(60);
    expect(said().filter((text) => text.includes("could not write /dev/full"))).toHaveLength(1);
    expect(said()[0]).toMatch(/ENOSPC.*keeping \d+ bytes in memory and refusing new lines/);
  });

  it("the next append retries first and throws, so the bus answers PublishError (503)", async () => {
    const { bus } = busOnDevFull();
    await bus.publish([samplePush(1)]);
    await wait(60);
    for (const n of [2, 3]) {
      const error = await bus.publish([samplePush(n)]).catch((e: unknown) => e);
      expect(error).toBeInstanceOf(PublishError);
      expect(error).toMatchObject({ failed: [0], message: expect.stringMatching(/\/dev\/full: ENOSPC/) });
    }
    expect(said()).toHaveLength(1);
  });

  it("a dead letter that cannot be written is audited as such, never an unhandled rejection", async () => {
    const events = tempFile();
    const audit = new RecordingAuditLog();
    const bus = new LocalBus({
      routes: ROUTES,
      consumers: { "plan-steps": async () => Promise.reject(new Error("consumer down")) },
      events,
      deadLetters: new JsonlFile("/dev/full"),
      audit,
      clock: new FixedClock(),
      newId: sequentialIds("evt"),
      sleep: async () => undefined,
    });
    // The first letter is accepted and fails in the background; the second finds the file failing.
    await bus.publish([samplePush(1)]);
    await bus.drain();
    await wait(60);
    await bus.publish([samplePush(2)]);
    await bus.drain();
    expect(audit.records.map((r) => r.reason)).toEqual([
      "plan-steps failed 3 times: consumer down; dead-lettered",
      expect.stringMatching(
        /^plan-steps failed 3 times: consumer down; not dead-lettered: \/dev\/full cannot be written \(.*ENOSPC/,
      ),
    ]);
    await events.close();
  });

  it("an audit trail that cannot be written is a 503-class error, and the bus survives it", async () => {
    const audit = new JsonlAuditLog(new JsonlFile("/dev/full"));
    const record: AuditRecord = {
      audit: true,
      action: "webhook.receive",
      outcome: "success",
      reason: "published",
      actor: {},
      subject: {},
      correlationId: "c-1",
      gitlab: null,
      function: "gitlab-webhook",
      at: "2026-03-01T10:00:00.000Z",
    };
    audit.record(record);
    await wait(60);
    const error = (() => {
      try {
        audit.record(record);
      } catch (e) {
        return e;
      }
    })();
    expect(error).toBeInstanceOf(UnavailableError);
    expect(error).toMatchObject({ publicMessage: "the audit trail cannot be written" });
    expect(toErrorAnswer(error)).toMatchObject({
      status: 503,
      body: { message: "the audit trail cannot be written; retry later" },
    });
    // A delivery that dead-letters while the audit trail fails: said on stderr, the process goes on.
    const files = { events: tempFile(), deadLetters: tempFile() };
    const bus = new LocalBus({
      routes: ROUTES,
      consumers: { "plan-steps": async () => Promise.reject(new Error("consumer down")) },
      ...files,
      audit,
      clock: new FixedClock(),
      newId: sequentialIds("evt"),
      sleep: async () => undefined,
    });
    await bus.publish([samplePush(1)]);
    await bus.drain();
    expect(said().join("")).toMatch(/kubler: local bus: .*cannot be written/);
    await Promise.all([files.events.close(), files.deadLetters.close()]);
  });

  it("close() reports lines it could not write, and still closes", async () => {
    const events = new JsonlFile("/dev/full");
    events.append({ n: 1 });
    await expect(events.close()).rejects.toThrow(/could not write \/dev\/full/);
    expect(() => events.append({ n: 2 })).toThrow(/is closed/);
  });
});

describe("JsonlFile when a write stops part-way", () => {
  it("keeps what was not written, half a line included, and writes it once there is room", async () => {
    const file = tempFile();
    disk.room = 10;
    file.append({ n: 1, text: "first" });
    file.append({ n: 2, text: "second" });
    await wait(60);
    expect(readFileSync(file.path, "utf8")).toHaveLength(10);
    expect(() => file.append({ n: 3, text: "refused" })).toThrow(/could not write .*ENOSPC/);

    disk.room = null;
    file.append({ n: 4, text: "after" });
    await file.close();
    const lines = readFileSync(file.path, "utf8").trimEnd().split("\n");
    expect(lines.map((line) => JSON.parse(line).n)).toEqual([1, 2, 4]);
    expect(said().at(-1)).toMatch(/writable again/);
  });

  it(`keeps at most ${MAX_UNWRITTEN_BYTES} bytes, dropping whole lines and saying so`, async () => {
    const file = tempFile();
    disk.room = 0;
    file.append({ n: 1 });
    // Past the 64 KB flush threshold: written at once, and kept when the write fails.
    file.append({ n: 2, big: "x".repeat(MAX_UNWRITTEN_BYTES) });
    expect(said().join("")).toMatch(/dropped 1 line\(s\) \(\d+ bytes\) of .*events\.jsonl/);

    disk.room = null;
    file.append({ n: 3 });
    await file.close();
    const lines = readFileSync(file.path, "utf8").trimEnd().split("\n");
    expect(lines.map((line) => JSON.parse(line).n)).toEqual([1, 3]);
  });

  it("still batches: nothing is written before the timer or the 64 KB threshold", async () => {
    const file = tempFile();
    file.append({ n: 1 });
    expect(readFileSync(file.path, "utf8")).toBe("");
    await wait(60);
    expect(readFileSync(file.path, "utf8")).toBe('{"n":1}\n');
    await file.close();
  });
});

describe("JsonlFile after a write cut short", () => {
  it("starts its first line on a new line, so a torn last line (a crash, a full disk) does not swallow it", async () => {
    const path = join(mkdtempSync(join(tmpdir(), "kubler-jsonl-")), "audit.jsonl");
    writeFileSync(path, '{"n":0}\n{"n":1,"reason":"cut sh');
    const file = new JsonlFile(path);
    file.append({ n: 2 });
    await file.close();
    const lines = readFileSync(path, "utf8").split("\n");
    expect(lines).toEqual(['{"n":0}', '{"n":1,"reason":"cut sh', '{"n":2}', ""]);
    // A file that ends whole, or is empty, gets no blank line.
    const again = new JsonlFile(path);
    again.append({ n: 3 });
    await again.close();
    expect(readFileSync(path, "utf8").endsWith('{"n":2}\n{"n":3}\n')).toBe(true);
  });
});
