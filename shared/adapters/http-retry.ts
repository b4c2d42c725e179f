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

/**
 * Codes of a request that got no answer but may get one if sent again: refused, reset or timed-out
 * connections (Node's `socket hang up` is `ECONNRESET`), unreachable networks, a DNS server that did
 * not answer in time (`EAI_AGAIN`; `ENOTFOUND` is an answer: no such host), and undici's closed
 * sockets and timeouts (https://undici.nodejs.org/#/docs/api/Errors).
 */
export const RETRYABLE_NETWORK_CODES: ReadonlySet<string> = new Set([
  "ECONNREFUSED",
  "ECONNRESET",
  "ECONNABORTED",
  "EPIPE",
  "ETIMEDOUT",
  "EHOSTUNREACH",
  "ENETUNREACH",
  "ENETDOWN",
  "EAI_AGAIN",
  "UND_ERR_SOCKET",
  "UND_ERR_CLOSED",
  "UND_ERR_CONNECT_TIMEOUT",
  "UND_ERR_HEADERS_TIMEOUT",
  "UND_ERR_BODY_TIMEOUT",
]);

/**
 * Whether a TLS handshake failed in a way a resend repeats: the certificate (expired, self-signed,
 * an unknown CA, another host's name) or the protocol (`https://` to a plain-HTTP port). OpenSSL's
 * verify codes (https://nodejs.org/api/tls.html#x509-certificate-error-codes) and Node's `ERR_TLS_*`
 * / `ERR_SSL_*`.
 *
 * @example
 * isTlsFailure("CERT_HAS_EXPIRED"); // true
 */
export function isTlsFailure(code: string): boolean {
  return (
    /^ERR_(TLS|SSL)_/.test(code) ||
    /CERT|^UNABLE_TO_|^HOSTNAME_MISMATCH$|^INVALID_CA$|^INVALID_PURPOSE$|^PATH_LENGTH_EXCEEDED$/.test(code)
  );
}
