/** Kubernetes timestamps are RFC 3339 with second precision: "2026-11-21T10:00:00Z". */
export function rfc3339(at: Date = new Date()): string {
  return at.toISOString().replace(/\.\d{3}Z$/, "Z");
}
