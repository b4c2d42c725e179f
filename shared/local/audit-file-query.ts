/**
 * `kubler audit` in local mode: the saved queries' filters over `$KUBLER_DATA_DIR/audit.jsonl`,
 * streamed in 1 MB chunks (memory stays flat however large the file). Lines are tested on their raw
 * text before they are parsed: a filter's exact values must appear in a matching line as
 * `JSON.stringify` wrote them, so most lines of a large file are never parsed at all.
 */
import { createReadStream } from "node:fs";
import type { AuditRecord } from "../domain/audit.js";
import { type AuditFilter, matchesAuditFilter, requiredSubstrings } from "../domain/audit-queries.js";

export interface AuditScanReport {
  bytes: number;
  matched: number;
  /** Lines that are not JSON audit records (a line cut short by a crash, or another tool's). */
  malformed: number;
}

const CHUNK_BYTES = 1024 * 1024;

/**
 * Calls `onMatch` for every record in the file that matches the filter, in file (append) order.
 * A missing file is an empty trail.
 *
 * @example
 * await scanAuditFile(".kubler/audit.jsonl", { action: "environment.deploy" }, (r) => rows.push(r));
 */
export async function scanAuditFile(
  path: string,
  filter: AuditFilter,
  onMatch: (record: AuditRecord) => void,
): Promise<AuditScanReport> {
  const report: AuditScanReport = { bytes: 0, matched: 0, malformed: 0 };
  // The longest value is usually the rarest: search for it, check the others on the lines it finds.
  const [first, ...rest] = requiredSubstrings(filter).sort((a, b) => b.length - a.length);
  const consider = (line: string) => {
    if (line.length === 0 || !rest.every((needle) => line.includes(needle))) return;
    let record: AuditRecord;
    try {
      record = JSON.parse(line);
    } catch {
      report.malformed++;
      return;
    }
    if (record === null || typeof record !== "object" || record.audit !== true || !record.subject) {
      report.malformed++;
      return;
    }
    if (matchesAuditFilter(record, filter)) {
      report.matched++;
      onMatch(record);
    }
  };
  // Every complete line of text[0..end).
  const lines = (text: string, end: number) => {
    if (first) {
      for (let from = 0; from < end; ) {
        const hit = text.indexOf(first, from);
        if (hit === -1 || hit >= end) return;
        const start = text.lastIndexOf("\n", hit) + 1;
        const stop = text.indexOf("\n", hit);
        consider(text.slice(start, stop));
        from = stop + 1;
      }
    } else {
      for (let start = 0; start < end; ) {
        const stop = text.indexOf("\n", start);
        consider(text.slice(start, stop));
        start = stop + 1;
      }
    }
  };

  const stream = createReadStream(path, { encoding: "utf8", highWaterMark: CHUNK_BYTES });
  let carry = "";
  try {
    for await (const chunk of stream as AsyncIterable<string>) {
      const text = carry + chunk;
      const end = text.lastIndexOf("\n");
      if (end === -1) {
        carry = text;
        continue;
      }
      carry = text.slice(end + 1);
      lines(text, end + 1);
    }
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === "ENOENT") return report;
    throw error;
  }
  if (carry) lines(`${carry}\n`, carry.length + 1);
  report.bytes = stream.bytesRead;
  return report;
}
