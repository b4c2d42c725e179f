/**
 * JsonlFile when the disk is full: /dev/full for the real failure, and a `writeSync` that runs out of
 * room after a given number of bytes for partial writes and recovery.
 */
import { existsSync, mkdtempSync, readFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, beforeEach, describe, expect, it, type MockInstance, vi } from "vitest";
import { ROUTES } from "../../shared/domain/catalog.js";
import { PublishError } from "../../shared/errors.js";
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
