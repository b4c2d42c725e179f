import type { AuditRecord } from "../domain/audit.js";
import type { AuditLog } from "../ports.js";

/**
 * Audit lines as single JSON lines on stdout: in Lambda, CloudWatch Logs stores each as one event,
 * queryable by field in Logs Insights.
 *
 * @example
 * new StdoutAuditLog().record(record); // {"audit":true,"action":"webhook.receive",...}
 */
export class StdoutAuditLog implements AuditLog {
  constructor(private readonly write: (line: string) => void = (line) => process.stdout.write(line)) {}

  record(record: AuditRecord): void {
    this.write(`${JSON.stringify(record)}\n`);
  }
}
