import { createWriteStream, mkdirSync, type WriteStream } from "node:fs";
import { dirname } from "node:path";

/** Lines wait at most this long before they are written: unnoticeable to someone tailing the file. */
const FLUSH_AFTER_MS = 20;
/** ...or until this much is gathered, so a burst never holds much in memory. */
const FLUSH_AT_CHARS = 64 * 1024;

/**
 * An append-only JSON Lines file (events.jsonl, audit.jsonl, dead letters). Lines are gathered and
 * handed to one open stream every 20 ms (or 64 KB): each stream write is an fs.write on libuv's
 * thread pool, and one per event-loop turn still cost ≈ 60 µs per webhook on the local server under
 * load (two files, a syscall plus a thread hand-off each). A crash can lose the last 20 ms of lines.
 * `flush()` writes what is gathered; `close()` flushes and closes.
 *
 * @example
 * const file = new JsonlFile(".kubler/events.jsonl");
 * file.append({ id: "…" });
 * await file.close();
 */
export class JsonlFile {
  readonly #stream: WriteStream;
  #pending: string[] = [];
  #pendingChars = 0;
  #timer: NodeJS.Timeout | undefined;

  constructor(readonly path: string) {
    mkdirSync(dirname(path), { recursive: true });
    this.#stream = createWriteStream(path, { flags: "a" });
  }

  append(value: unknown): void {
    const line = `${JSON.stringify(value)}\n`;
    this.#pending.push(line);
    this.#pendingChars += line.length;
    if (this.#pendingChars >= FLUSH_AT_CHARS) this.flush();
    else this.#timer ??= setTimeout(() => this.flush(), FLUSH_AFTER_MS);
  }

  /** Hands every gathered line to the stream now. */
  flush(): void {
    clearTimeout(this.#timer);
    this.#timer = undefined;
    if (this.#pending.length === 0) return;
    const chunk = this.#pending.join("");
    this.#pending = [];
    this.#pendingChars = 0;
    this.#stream.write(chunk);
  }

  close(): Promise<void> {
    this.flush();
    return new Promise((resolve, reject) =>
      this.#stream.end((error?: Error | null) => (error ? reject(error) : resolve())),
    );
  }
}
