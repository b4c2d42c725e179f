import type { AuditRecord } from "../domain/audit.js";
import type { AuditLog } from "../ports.js";

/**
 * Audit lines as single JSON lines on stdout: in Lambda, CloudWatch Logs stores each as one event,
 * queryable by field in Logs Insights.
 *
 * @example
 * new StdoutAuditLog().record(record); // {"audit":true,"action":"webhook.receive",...}
 */
/**
 * Unexpected errors as one JSON line on stderr (CloudWatch keeps it with the function's logs), with
 * the stack: what on-call needs, and nothing from the request.
 */
export function logErrorToStderr(fn: string): (error: unknown) => void {
  return (error) => {
    const { name, message, stack } = error instanceof Error ? error : new Error(String(error));
    process.stderr.write(`${JSON.stringify({ level: "error", function: fn, name, message, stack })}\n`);
  };
}

export class StdoutAuditLog implements AuditLog {
  constructor(private readonly write: (line: string) => void = (line) => process.stdout.write(line)) {}

  record(record: AuditRecord): void {
    this.write(`${JSON.stringify(record)}\n`);
  }
}
