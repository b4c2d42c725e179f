/**
 * What the HTTP adapters (Kubernetes, GitLab) read off a failed call to decide on a retry.
 */

/**
 * `Retry-After` in seconds or as an HTTP date, as milliseconds from now:
 * https://www.rfc-editor.org/rfc/rfc9110#field.retry-after
 *
 * @example
 * retryAfterMs("2"); // 2000
 */
export function retryAfterMs(value: string | null | undefined): number | undefined {
  const trimmed = value?.trim();
  if (!trimmed) return undefined;
  if (/^\d+$/.test(trimmed)) return Number(trimmed) * 1000;
  const at = Date.parse(trimmed);
  return Number.isNaN(at) ? undefined : Math.max(0, at - Date.now());
}

/** The system error code (`ECONNRESET`, …) of a failed request, looked for down its `cause` chain. */
export function networkCode(error: unknown): string | undefined {
  for (let cause: unknown = error, depth = 0; cause && depth < 4; depth++) {
    const code = (cause as { code?: unknown }).code;
    if (typeof code === "string") return code;
    cause = (cause as { cause?: unknown }).cause;
  }
  return undefined;
}
