/**
 * `kubler audit` in local mode: the saved queries' filters over `$KUBLER_DATA_DIR/audit.jsonl`,
 * streamed in 1 MB chunks (memory stays flat however large the file). Lines are tested on their raw
 * bytes before they are decoded and parsed: a filter's exact values must appear in a matching line
 * as `JSON.stringify` wrote them, so most lines of a large file are never decoded at all.
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

const isObject = (value: unknown): value is Record<string, unknown> =>
  value !== null && typeof value === "object" && !Array.isArray(value);

/**
 * Whether a parsed line has the fields `kubler audit` filters and prints: JSON marked `audit` that
 * lacks one (another tool's, a hand edit) is skipped as malformed, not a TypeError ending the query.
 *
 * @example
 * isAuditRecord(JSON.parse('{"audit":true,"subject":{}}')); // false
 */
export function isAuditRecord(value: unknown): value is AuditRecord {
  if (!isObject(value) || value.audit !== true) return false;
  const { action, outcome, reason, at, actor, subject } = value;
  return (
    typeof action === "string" &&
    typeof outcome === "string" &&
    typeof reason === "string" &&
    typeof at === "string" &&
    typeof value.function === "string" &&
    isObject(actor) &&
    isObject(subject) &&
    (value.gitlab === undefined || value.gitlab === null || isObject(value.gitlab))
  );
}
const NEWLINE = 0x0a;

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
    if (!isAuditRecord(record)) {
      report.malformed++;
      return;
    }
    if (matchesAuditFilter(record, filter)) {
      report.matched++;
      onMatch(record);
    }
  };
  // Bytes, not text: the first value is searched for in the raw chunk (Buffer#indexOf, native),
  // and only the lines it is found on are decoded. Decoding every chunk cost more than the rest.
  const needle = first === undefined ? null : Buffer.from(first);
  const lines = (buffer: Buffer, end: number) => {
    if (needle) {
      for (let from = 0; from < end; ) {
        const hit = buffer.indexOf(needle, from);
        if (hit === -1 || hit >= end) return;
        const start = buffer.lastIndexOf(NEWLINE, hit) + 1;
        const stop = buffer.indexOf(NEWLINE, hit);
        consider(buffer.toString("utf8", start, stop));
        from = stop + 1;
      }
    } else {
      for (let start = 0; start < end; ) {
        const stop = buffer.indexOf(NEWLINE, start);
        consider(buffer.toString("utf8", start, stop));
        start = stop + 1;
      }
    }
  };

  const stream = createReadStream(path, { highWaterMark: CHUNK_BYTES });
  let carry: Buffer | null = null;
  try {
    for await (const chunk of stream as AsyncIterable<Buffer>) {
      const buffer: Buffer = carry ? Buffer.concat([carry, chunk]) : chunk;
      const end = buffer.lastIndexOf(NEWLINE);
      if (end === -1) {
        carry = buffer;
        continue;
      }
      // Copied, so the rest of a line does not keep the whole chunk alive.
      carry = end + 1 < buffer.length ? Buffer.from(buffer.subarray(end + 1)) : null;
      lines(buffer, end + 1);
    }
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === "ENOENT") return report;
    throw error;
  }
  if (carry) lines(Buffer.concat([carry, Buffer.from("\n")]), carry.length + 1);
  report.bytes = stream.bytesRead;
  return report;
}
