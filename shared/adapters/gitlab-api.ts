/**
 * The HTTP transport the GitLab REST API v4 adapters share: where the API is, the token, bounded
 * attempts with backoff, and bodies read within a limit. What a status code means is each adapter's.
 */
import { setTimeout as delay } from "node:timers/promises";
import { ENV } from "../config.js";
import { ConfigError, messageOf, UnavailableError } from "../errors.js";
import { isTlsFailure, networkCode, RETRYABLE_NETWORK_CODES, retryAfterMs } from "./http-retry.js";

/** Caps one wait (a backoff or a `Retry-After`) so retries stay within a Lambda's time budget. */
const MAX_DELAY_MS = 5_000;
/** Enough of an error body for GitLab's `{"message": "404 File Not Found"}`. */
const MAX_ERROR_BYTES = 4 * 1024;

export interface GitlabApiOptions {
  /** `GITLAB_URL`, e.g. `https://gitlab.example.com`, or with a relative root `https://host/gitlab`. */
  baseUrl: string;
  /**
   * `GITLAB_API_TOKEN`; read once per request, so it may rotate. After a 401 it is asked once more,
   * told the token GitLab `refused`: one from a secret store is then read past its cache
   * (`gitlabApiToken`), and a different answer is sent again.
   */
  token: (refused?: string) => Promise<string>;
  fetch?: typeof fetch;
  /** Sends of one request at most, the first included. Default 4. */
  maxAttempts?: number;
  /** The backoff ceiling before the second attempt; it doubles each attempt. Default 200. */
  baseDelayMs?: number;
  /** One attempt's limit, the whole body included. Default 10 000. */
  timeoutMs?: number;
  sleep?: (ms: number) => Promise<void>;
  /** Uniform in [0, 1), like `Math.random`. */
  random?: () => number;
}

export interface GitlabRequest {
  /** What is asked for, in the `UnavailableError`: "kubler.yaml of project 15 (group/app) at 3f2a…". */
  what: string;
  /** A JSON document to send. */
  body?: string;
  /** A 200's body must fit in this many bytes, or the answer is "too large". Without it, any body is cut to 4 KiB. */
  maxBytes?: number;
  /** Answers that this endpoint documents as passing (a 409 lock conflict), retried like a 429. */
  retryOn?: readonly number[];
}

/** A final answer: anything but 429, 5xx and the request's `retryOn`, which are retried. Redirects are not followed. */
export interface GitlabAnswer {
  status: number;
  headers: Headers;
  /** A 200's whole body when `maxBytes` was given; the first 4 KiB otherwise. */
  body: Buffer;
  /** GitLab's `{"message"}` or `{"error"}` from the body, without the token; "" when there is none. */
  message: string;
}

/** Why an attempt may succeed if sent again. */
interface Transient {
  reason: string;
  retryAfterMs?: number;
}

/**
 * Requests to one GitLab's API with `PRIVATE-TOKEN`. 429, 5xx, timeouts and network failures that may
 * pass (a refused or reset connection, a DNS timeout) are retried with full-jitter backoff (honouring
 * `Retry-After`), then `UnavailableError`. A 401 asks `token` again, once: a token rotated since it
 * was read (GitLab revokes the old one at once) is sent again with the new value, within the attempts
 * left but at least once; the same token, or a failed read, keeps the 401. A bad `GITLAB_URL` (at
 * construction, or when sending: a TLS failure, a host that does not resolve) or token (per request,
 * before sending) is a `ConfigError`, sent once; any other failure is an `Error`, sent once. No
 * message it produces repeats the token.
 *
 * @example
 * const api = new GitlabApi({ baseUrl: "https://gitlab.example.com", token: async () => token });
 * const answer = await api.request("GET", `/projects/15/repository/files/kubler.yaml/raw?ref=${sha}`, {
 *   what: "kubler.yaml", maxBytes: 1024 * 1024,
 * });
 * if (answer !== "too large" && answer.status === 200) console.log(answer.body.toString("utf8"));
 */
export class GitlabApi {
  /** `https://host/gitlab/api/v4`: request paths are relative to it. */
  readonly root: string;
  readonly #token: (refused?: string) => Promise<string>;
  readonly #fetch: typeof fetch;
  readonly #maxAttempts: number;
  readonly #baseDelayMs: number;
  readonly #timeoutMs: number;
  readonly #sleep: (ms: number) => Promise<void>;
  readonly #random: () => number;

  constructor(options: GitlabApiOptions) {
    this.root = `${instanceRoot(options.baseUrl)}/api/v4`;
    this.#token = options.token;
    this.#fetch = options.fetch ?? fetch;
    this.#maxAttempts = Math.max(1, Math.floor(options.maxAttempts ?? 4));
    this.#baseDelayMs = Math.max(0, options.baseDelayMs ?? 200);
    this.#timeoutMs = Math.max(1, options.timeoutMs ?? 10_000);
    this.#sleep = options.sleep ?? ((ms) => delay(ms));
    this.#random = options.random ?? Math.random;
  }

  /** Sends until an answer will not change by sending again, or `maxAttempts` is spent. */
  request(
    method: "GET" | "POST",
    path: string,
    request: GitlabRequest & { maxBytes: number },
  ): Promise<GitlabAnswer | "too large">;
  request(method: "GET" | "POST", path: string, request: GitlabRequest): Promise<GitlabAnswer>;
  async request(
    method: "GET" | "POST",
    path: string,
    request: GitlabRequest,
  ): Promise<GitlabAnswer | "too large"> {
    let token = await this.#readToken();
    let last: Transient | undefined;
    let sends = this.#maxAttempts;
    let renewed = false;
    for (let attempt = 1; attempt <= sends; attempt++) {
      if (last) await this.#sleep(this.#delayBefore(attempt, last));
      const outcome = await this.#attempt(method, `${this.root}${path}`, token, request).then(
        (answer) => ({ answer }),
        (error: unknown) => ({ error }),
      );
      if ("error" in outcome) {
        const failure = this.#classify(outcome.error, token);
        // Sending again would meet the same certificate, host or bug, until the event dead-letters.
        if (failure instanceof Error) throw failure;
        last = failure;
        continue;
      }
      const { answer } = outcome;
      if (
        answer !== "too large" &&
        (answer.status === 429 || answer.status >= 500 || request.retryOn?.includes(answer.status))
      ) {
        last = {
          reason: `HTTP ${answer.status}`,
          retryAfterMs: retryAfterMs(answer.headers.get("retry-after")),
        };
        continue;
      }
      if (answer !== "too large" && answer.status === 401 && !renewed) {
        // Once per request: a token refused again, even a new one, is the operator's to fix.
        renewed = true;
        const fresh = await this.#renewToken(token);
        if (fresh !== token) {
          token = fresh;
          last = undefined;
          sends = Math.max(sends, attempt + 1);
          continue;
        }
      }
      return answer;
    }
    // A GET is served, a POST taken: "did not serve kubler.yaml …", "did not take status …".
    const verb = method === "GET" ? "serve" : "take";
    throw new UnavailableError(
      `GitLab at ${this.root} did not ${verb} ${request.what} after ${sends} attempt(s); last problem: ${last?.reason}`,
    );
  }

  /**
   * The token after GitLab refused `refused`, or `refused` itself when reading it again fails: the
   * 401 then stands, which names what to fix, and the next request reads the store again anyway.
   */
  async #renewToken(refused: string): Promise<string> {
    let fresh: string;
    try {
      fresh = await this.#token(refused);
    } catch {
      return refused;
    }
    return this.#checkToken(fresh);
  }

  async #readToken(): Promise<string> {
    return this.#checkToken(await this.#token());
  }

  #checkToken(value: string): string {
    const token = value.trim();
    if (!token) throw new ConfigError(`${ENV.GITLAB_API_TOKEN} is empty`);
    // Checked here because fetch's own error for a bad header value quotes the value.
    if (!/^[\x21-\x7e]+$/.test(token)) {
      throw new ConfigError(`${ENV.GITLAB_API_TOKEN} has characters that cannot be sent in an HTTP header`);
    }
    return token;
  }

  /** One try, bounded by `timeoutMs` from the request to the body's last byte. */
  async #attempt(
    method: "GET" | "POST",
    url: string,
    token: string,
    request: GitlabRequest,
  ): Promise<GitlabAnswer | "too large"> {
    const controller = new AbortController();
    const timer = setTimeout(() => controller.abort(new AttemptTimeoutError()), this.#timeoutMs);
    // Also bounds a `fetch` (an injected one) that ignores its signal.
    const timedOut = new Promise<never>((_, reject) => {
      controller.signal.addEventListener("abort", () => reject(controller.signal.reason), { once: true });
    });
    const init: RequestInit = {
      method,
      headers: { "PRIVATE-TOKEN": token },
      // A redirect may lead to another host, and fetch forwards custom headers such as PRIVATE-TOKEN.
      redirect: "manual",
      signal: controller.signal,
    };
    if (request.body !== undefined) {
      init.headers = {
        "PRIVATE-TOKEN": token,
        "Content-Type": "application/json",
        Accept: "application/json",
      };
      init.body = request.body;
    }
    const send = async (): Promise<GitlabAnswer | "too large"> => {
      const response = await this.#fetch(url, init);
      const { status, headers } = response;
      if (status === 429 || status >= 500) {
        await response.body?.cancel().catch(() => {});
        return { status, headers, body: Buffer.alloc(0), message: "" };
      }
      const limit = status === 200 ? request.maxBytes : undefined;
      const body = await readBody(response, limit ?? MAX_ERROR_BYTES, limit === undefined);
      if (body === null) return "too large";
      return { status, headers, body, message: limit === undefined ? gitlabMessage(body, token) : "" };
    };
    try {
      return await Promise.race([send(), timedOut]);
    } finally {
      clearTimeout(timer);
    }
  }

  /** Full jitter (https://aws.amazon.com/blogs/architecture/exponential-backoff-and-jitter/), or the server's `Retry-After`. */
  #delayBefore(attempt: number, last: Transient): number {
    if (last.retryAfterMs !== undefined) return Math.min(MAX_DELAY_MS, last.retryAfterMs);
    const ceiling = Math.min(MAX_DELAY_MS, this.#baseDelayMs * 2 ** (attempt - 2));
    return Math.floor(this.#random() * ceiling);
  }

  /** What a failed attempt means: worth another (`Transient`), or an error to throw now. */
  #classify(error: unknown, token: string): Transient | Error {
    if (error instanceof AttemptTimeoutError) return { reason: `no answer within ${this.#timeoutMs} ms` };
    const code = networkCode(error);
    if (code !== undefined && RETRYABLE_NETWORK_CODES.has(code)) return { reason: code };
    const detail = scrub(innermostMessage(error), token).slice(0, 200);
    const at = `GitLab at ${this.root}`;
    if (code !== undefined && isTlsFailure(code)) {
      return new ConfigError(
        `${at}: TLS failed (${code}: ${detail}); check ${ENV.GITLAB_URL} (scheme and host) and the server's certificate`,
      );
    }
    if (code === "ENOTFOUND") {
      return new ConfigError(`${at}: the host does not resolve (${code}); check ${ENV.GITLAB_URL}`);
    }
    // fetch refuses some ports outright (https://fetch.spec.whatwg.org/#port-blocking), with no code.
    if (code === "ERR_INVALID_URL" || (code === undefined && detail === "bad port")) {
      return new ConfigError(`${at}: not a URL fetch will send to (${detail}); check ${ENV.GITLAB_URL}`);
    }
    return new Error(`${at} could not be asked: ${code ? `${code}: ` : ""}${detail}`);
  }
}

/**
 * The error for a redirect `GitlabApi` did not follow (the token would go along): a `GITLAB_URL` on
 * http behind an https redirect, a moved instance. It names only the origin redirected to, as a
 * query may carry anything. Null for an answer that is no redirect.
 *
 * @example
 * const redirected = redirectRefusal(answer, `reading ${what}`, api.root);
 * if (redirected) throw redirected; // "GitLab redirected (HTTP 301) reading … to https://gitlab.example.com; set GITLAB_URL …"
 */
export function redirectRefusal(answer: GitlabAnswer, doing: string, root: string): ConfigError | null {
  const { status } = answer;
  if (status < 300 || status >= 400) return null;
  const location = answer.headers.get("location");
  const to = location ? ` to ${originOf(location, root)}` : "";
  return new ConfigError(
    `GitLab redirected (HTTP ${status}) ${doing}${to}; set ${ENV.GITLAB_URL} to the address the API is served at`,
  );
}

function originOf(location: string, root: string): string {
  try {
    return new URL(location, root).origin;
  } catch {
    return "an unparseable address";
  }
}

/** `https://host/gitlab/` → `https://host/gitlab`; credentials, queries and fragments are refused. */
function instanceRoot(baseUrl: string): string {
  let url: URL;
  try {
    url = new URL(baseUrl.trim());
  } catch {
    throw new ConfigError(`${ENV.GITLAB_URL} is not a URL (expected e.g. https://gitlab.example.com)`);
  }
  if (url.protocol !== "https:" && url.protocol !== "http:") {
    throw new ConfigError(`${ENV.GITLAB_URL} must be an http(s) URL, got ${url.protocol}`);
  }
  if (url.username || url.password || url.search || url.hash) {
    throw new ConfigError(
      `${ENV.GITLAB_URL} must be the instance's address only (no credentials, query or fragment)`,
    );
  }
  const path = url.pathname.replace(/\/+$/, "");
  // A common slip (the API's address, from a client's docs): every call would be /api/v4/api/v4, a 404.
  if (/\/api\/v4$/i.test(path)) {
    throw new ConfigError(
      `${ENV.GITLAB_URL} is the instance's address, without /api/v4 (e.g. https://gitlab.example.com or https://example.com/gitlab)`,
    );
  }
  return `${url.origin}${path}`;
}

/**
 * The body, at most `maxBytes` of it: null when it is larger, or its first `maxBytes` when `truncate`.
 * Read as a stream, so an oversized body is never held in full.
 */
async function readBody(response: Response, maxBytes: number, truncate: boolean): Promise<Buffer | null> {
  const declared = Number(response.headers.get("content-length") ?? Number.NaN);
  if (!truncate && declared > maxBytes) {
    await response.body?.cancel().catch(() => {});
    return null;
  }
  if (!response.body) return Buffer.alloc(0);
  const reader = response.body.getReader();
  const chunks: Uint8Array[] = [];
  let bytes = 0;
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    chunks.push(value);
    bytes += value.length;
    if (bytes > maxBytes) {
      await reader.cancel().catch(() => {});
      if (!truncate) return null;
      return Buffer.concat(chunks).subarray(0, maxBytes);
    }
  }
  return Buffer.concat(chunks, bytes);
}

/** GitLab's errors are `{"message": "404 File Not Found"}` (or `{"error": "..."}`). */
function gitlabMessage(body: Buffer, token: string): string {
  try {
    const parsed = JSON.parse(body.toString("utf8")) as { message?: unknown; error?: unknown };
    const message = parsed.message ?? parsed.error;
    // Scrubbed before it is cut, so a token across the cut cannot leave half of itself behind.
    if (typeof message === "string") return scrub(message, token).slice(0, 200);
    if (message !== undefined) return scrub(JSON.stringify(message), token).slice(0, 200);
  } catch {
    // Not JSON (a proxy's page): say nothing rather than quote HTML.
  }
  return "";
}

/** Whatever a server or a network error says, the token is never repeated. */
function scrub(text: string, token: string): string {
  return text.split(token).join(`[${ENV.GITLAB_API_TOKEN}]`);
}

/** fetch wraps the cause (`TypeError: fetch failed`); the innermost message says what went wrong. */
function innermostMessage(error: unknown): string {
  let message = messageOf(error);
  for (let cause: unknown = error, depth = 0; cause && depth < 4; depth++) {
    if (cause instanceof Error && cause.message) message = cause.message;
    cause = (cause as { cause?: unknown }).cause;
  }
  // OpenSSL's "80FC…:error:0A00010B:SSL routines:ssl3_get_record:wrong version number:<file>:<line>:"
  // says what it means in its fifth field.
  const openssl = /^[0-9A-F]+:error:[0-9A-F]+:[^:]*:[^:]*:([^:]+)/.exec(message);
  return (openssl?.[1] ?? message.split("\n")[0] ?? "").trim();
}

class AttemptTimeoutError extends Error {
  override readonly name = "AttemptTimeoutError";
}
