import {
  type AuditRecord,
  type AuditRedactor,
  createAuditRedactor,
  prepareAuditRecord,
} from "../domain/audit.js";
import { messageOf, UnavailableError } from "../errors.js";
import type { AuditLog } from "../ports.js";
import type { JsonlFile } from "./jsonl-file.js";

export interface JsonlAuditLogOptions {
  /** Configured secret values: redacted wherever they appear, in the file and at the terminal. */
  secrets?: readonly string[];
}

/**
 * The local runtime's audit trail: every record, redacted and stamped with the schema version, to
 * `$KUBLER_DATA_DIR/audit.jsonl` (what `kubler audit` reads locally), and to an optional listener
 * that prints it for the person at the terminal.
 *
 * @example
 * const audit = new JsonlAuditLog(new JsonlFile(".kubler/audit.jsonl"), (r) => console.log(r.reason));
 */
export class JsonlAuditLog implements AuditLog {
  readonly #redact: AuditRedactor;

  constructor(
    private readonly file: JsonlFile,
    private readonly listener: (record: AuditRecord) => void = () => undefined,
    options: JsonlAuditLogOptions = {},
  ) {
    this.#redact = createAuditRedactor(options.secrets);
  }

  redactAlso(secret: string): void {
    this.#redact.add(secret);
  }

  /** Throws `UnavailableError` when audit.jsonl cannot be written: a decision must not go unrecorded. */
  record(record: AuditRecord): void {
    const prepared = prepareAuditRecord(record, this.#redact);
    try {
      this.file.append(prepared);
    } catch (error) {
      throw new UnavailableError(`${this.file.path} cannot be written (${messageOf(error)})`, {
        publicMessage: "the audit trail cannot be written",
      });
    }
    this.listener(prepared);
  }
}
