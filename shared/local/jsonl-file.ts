import { createWriteStream, mkdirSync, type WriteStream } from "node:fs";
import { dirname } from "node:path";

/**
 * An append-only JSON Lines file (events.jsonl, audit.jsonl, dead letters). Lines are gathered and
 * handed to one open stream once per event-loop turn: a stream write per line cost ~15% of the local
 * server's time under load. `flush()` writes what is gathered; `close()` flushes and closes.
 *
 * @example
 * const file = new JsonlFile(".kubler/events.jsonl");
 * file.append({ id: "…" });
 * await file.close();
 */
export class JsonlFile {
  readonly #stream: WriteStream;
  #pending: string[] = [];
  #scheduled = false;

  constructor(readonly path: string) {
    mkdirSync(dirname(path), { recursive: true });
    this.#stream = createWriteStream(path, { flags: "a" });
  }

  append(value: unknown): void {
    this.#pending.push(`${JSON.stringify(value)}\n`);
    if (!this.#scheduled) {
      this.#scheduled = true;
      setImmediate(() => this.flush());
    }
  }

  /** Hands every gathered line to the stream now. */
  flush(): void {
    this.#scheduled = false;
    if (this.#pending.length === 0) return;
    const chunk = this.#pending.join("");
    this.#pending = [];
    this.#stream.write(chunk);
  }

  close(): Promise<void> {
    this.flush();
    return new Promise((resolve, reject) =>
      this.#stream.end((error?: Error | null) => (error ? reject(error) : resolve())),
    );
  }
}
