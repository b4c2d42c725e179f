import { closeSync, mkdirSync, openSync, writeSync } from "node:fs";
import { dirname } from "node:path";

/** Lines wait at most this long before they are written: unnoticeable to someone tailing the file. */
const FLUSH_AFTER_MS = 20;
/** ...or until this much is gathered, so a burst never holds much in memory. */
const FLUSH_AT_CHARS = 64 * 1024;

/**
 * An append-only JSON Lines file (events.jsonl, audit.jsonl, dead letters). Lines are gathered and
 * written every 20 ms (or 64 KB) with one synchronous append. Measured on the local server under
 * load: a write per event-loop turn cost ≈ 60 µs per webhook, and a `WriteStream` write (libuv
 * thread pool) ≈ 95 µs of CPU against ≈ 15 µs for `writeSync` of the same 17 KB to the page cache.
 * A crash can lose the last 20 ms of lines. `flush()` writes what is gathered; `close()` flushes and
 * closes.
 *
 * @example
 * const file = new JsonlFile(".kubler/events.jsonl");
 * file.append({ id: "…" });
 * await file.close();
 */
export class JsonlFile {
  #fd: number | undefined;
  #pending: string[] = [];
  #pendingChars = 0;
  #timer: NodeJS.Timeout | undefined;

  constructor(readonly path: string) {
    mkdirSync(dirname(path), { recursive: true });
    this.#fd = openSync(path, "a");
  }

  append(value: unknown): void {
    if (this.#fd === undefined) throw new Error(`${this.path} is closed`);
    const line = `${JSON.stringify(value)}\n`;
    this.#pending.push(line);
    this.#pendingChars += line.length;
    if (this.#pendingChars >= FLUSH_AT_CHARS) this.flush();
    else this.#timer ??= setTimeout(() => this.flush(), FLUSH_AFTER_MS);
  }

  /** Writes every gathered line now. */
  flush(): void {
    clearTimeout(this.#timer);
    this.#timer = undefined;
    if (this.#pending.length === 0 || this.#fd === undefined) return;
    const chunk = Buffer.from(this.#pending.join(""));
    this.#pending = [];
    this.#pendingChars = 0;
    // A regular file takes the whole write unless the disk is full, which throws.
    for (let written = 0; written < chunk.length; ) {
      written += writeSync(this.#fd, chunk, written);
    }
  }

  async close(): Promise<void> {
    this.flush();
    if (this.#fd !== undefined) closeSync(this.#fd);
    this.#fd = undefined;
  }
}
