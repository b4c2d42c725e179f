import { createWriteStream, mkdirSync, type WriteStream } from "node:fs";
import { dirname } from "node:path";

/**
 * An append-only JSON Lines file (events.jsonl, audit.jsonl, dead letters). Writes are buffered by
 * one open stream, so appending costs microseconds; `close()` flushes.
 *
 * @example
 * const file = new JsonlFile(".kubler/events.jsonl");
 * file.append({ id: "…" });
 * await file.close();
 */
export class JsonlFile {
  readonly #stream: WriteStream;

  constructor(readonly path: string) {
    mkdirSync(dirname(path), { recursive: true });
    this.#stream = createWriteStream(path, { flags: "a" });
  }

  append(value: unknown): void {
    this.#stream.write(`${JSON.stringify(value)}\n`);
  }

  close(): Promise<void> {
    return new Promise((resolve, reject) =>
      this.#stream.end((error?: Error | null) => (error ? reject(error) : resolve())),
    );
  }
}
