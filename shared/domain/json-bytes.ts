/**
 * Sizes of text as it goes into JSON, where the bus counts a detail's 8 KB (`MAX_DETAIL_BYTES`):
 * characters undercount it (a "━" is 3 bytes, a control character 6 once escaped as `\uXXXX`), so
 * text from elsewhere (a build's log, a cluster's refusal) is bounded in these bytes.
 */

/**
 * What `text` adds to a JSON document, in bytes: its string's content, quotes excluded.
 *
 * @example
 * jsonBytes("a\u0001━"); // 1 + 6 + 3 = 10
 */
export function jsonBytes(text: string): number {
  return Buffer.byteLength(JSON.stringify(text)) - 2;
}

/**
 * The longest start or end of `text` within `maxBytes` of JSON, never half a surrogate pair.
 *
 * @example
 * clipJson("\u0001\u0001\u0001", 12, "start"); // "\u0001\u0001"
 * clipJson("log…last line", 9, "end"); // "last line"
 */
export function clipJson(text: string, maxBytes: number, keep: "start" | "end"): string {
  const part = (length: number) =>
    keep === "start" ? text.slice(0, length) : text.slice(text.length - length);
  let fits = 0;
  let over = text.length + 1;
  while (over - fits > 1) {
    const length = Math.floor((fits + over) / 2);
    if (jsonBytes(part(length)) <= maxBytes) fits = length;
    else over = length;
  }
  const clipped = part(fits);
  if (keep === "start" && /[\uD800-\uDBFF]$/.test(clipped)) return clipped.slice(0, -1);
  if (keep === "end" && /^[\uDC00-\uDFFF]/.test(clipped)) return clipped.slice(1);
  return clipped;
}
