import type { AuditRecord } from "../domain/audit.js";
import type { AuditLog } from "../ports.js";
import type { JsonlFile } from "./jsonl-file.js";

/**
 * The local runtime's audit trail: every record to `$KUBLER_DATA_DIR/audit.jsonl` (what `kubler
 * audit` reads locally), and to an optional listener that prints it for the person at the terminal.
 *
 * @example
 * const audit = new JsonlAuditLog(new JsonlFile(".kubler/audit.jsonl"), (r) => console.log(r.reason));
 */
export class JsonlAuditLog implements AuditLog {
  constructor(
    private readonly file: JsonlFile,
    private readonly listener: (record: AuditRecord) => void = () => undefined,
  ) {}

  record(record: AuditRecord): void {
    this.file.append(record);
    this.listener(record);
  }
}
