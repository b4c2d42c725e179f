/**
 * Commit statuses through the GitLab REST API v4 with `fetch` (DESIGN §8):
 * `POST /projects/:id/statuses/:sha` (https://docs.gitlab.com/api/commits/#set-the-pipeline-status-of-a-commit).
 */
import { setTimeout as delay } from "node:timers/promises";
import { ENV } from "../config.js";
import { ConfigError, UnavailableError } from "../errors.js";
import type { CommitStatus, CommitStatuses } from "../ports.js";
import { networkCode, retryAfterMs } from "./http-retry.js";

/** Caps one wait (a backoff or a `Retry-After`) so retries stay within a Lambda's time budget. */
const MAX_DELAY_MS = 5_000;
/** GitLab stores descriptions as a string column; keep them short enough to read in the MR widget. */
const MAX_DESCRIPTION = 255;
/** Enough of an error body for GitLab's `{"message": "..."}`. */
const MAX_ERROR_BYTES = 4 * 1024;

export interface GitlabCommitStatusesOptions {
  /** `GITLAB_URL`, e.g. `https://gitlab.example.com` (a relative root such as `/gitlab` is kept). */
  baseUrl: string;
  /** The token (scope `api`, Developer role or more); read once per call, so it may rotate. */
  token: () => Promise<string>;
  fetch?: typeof fetch;
  /** Sends of one request at most, the first included. Default 4. */
  maxAttempts?: number;
  /** The backoff ceiling before the second attempt; it doubles each attempt. Default 200. */
  baseDelayMs?: number;
  /** One attempt's limit. Default 10 000. */
  timeoutMs?: number;
  sleep?: (ms: number) => Promise<void>;
  random?: () => number;
}

/**
 * `CommitStatuses` over GitLab's API. 429, 5xx, timeouts and dropped connections are retried with
 * full-jitter backoff (honouring `Retry-After`), then `UnavailableError`; 401/403 are a `ConfigError`
 * naming `GITLAB_API_TOKEN`. GitLab refusing a transition it has already made (the same state twice,
 * or an older event arriving late) is "unchanged", not an error.
 *
 * @example
 * const statuses = new GitlabCommitStatuses({ baseUrl: "https://gitlab.example.com", token: async () => token });
 * await statuses.set({ projectId: 15, projectPath: "group/app", sha, state: "success", name: "kubler/staging", ... });
 */
export class GitlabCommitStatuses implements CommitStatuses {
  readonly #api: string;
  readonly #token: () => Promise<string>;
  readonly #fetch: typeof fetch;
  readonly #maxAttempts: number;
  readonly #baseDelayMs: number;
  readonly #timeoutMs: number;
  readonly #sleep: (ms: number) => Promise<void>;
  readonly #random: () => number;

  constructor(options: GitlabCommitStatusesOptions) {
    let url: URL;
    try {
      url = new URL(options.baseUrl.trim());
    } catch {
      throw new ConfigError(`${ENV.GITLAB_URL} is not a URL (expected e.g. https://gitlab.example.com)`);
    }
    if (url.protocol !== "https:" && url.protocol !== "http:") {
      throw new ConfigError(`${ENV.GITLAB_URL} must be an http(s) URL, got ${url.protocol}`);
    }
    this.#api = `${url.origin}${url.pathname.replace(/\/+$/, "")}/api/v4`;
    this.#token = options.token;
    this.#fetch = options.fetch ?? fetch;
    this.#maxAttempts = Math.max(1, Math.floor(options.maxAttempts ?? 4));
    this.#baseDelayMs = Math.max(0, options.baseDelayMs ?? 200);
    this.#timeoutMs = Math.max(1, options.timeoutMs ?? 10_000);
    this.#sleep = options.sleep ?? ((ms) => delay(ms));
    this.#random = options.random ?? Math.random;
  }

  async set(status: CommitStatus): Promise<"set" | "unchanged"> {
    const token = (await this.#token()).trim();
    if (!token || !/^[\x21-\x7e]+$/.test(token)) {
      throw new ConfigError(
        `${ENV.GITLAB_API_TOKEN} is empty or has characters that cannot be sent in a header`,
      );
    }
    if (!Number.isSafeInteger(status.projectId) || !/^[0-9a-f]{7,64}$/.test(status.sha)) {
      throw new Error(`not a project id and commit SHA: ${status.projectId}, ${JSON.stringify(status.sha)}`);
    }
    const what = `status ${status.name} (${status.state}) on ${status.projectPath}@${status.sha.slice(0, 12)}`;
    const url = `${this.#api}/projects/${status.projectId}/statuses/${status.sha}`;
    const body = JSON.stringify({
      state: status.state,
      name: status.name,
      ...(status.ref ? { ref: status.ref } : {}),
      ...(status.pipelineId !== null ? { pipeline_id: status.pipelineId } : {}),
      ...(status.targetUrl ? { target_url: status.targetUrl } : {}),
      description: status.description.slice(0, MAX_DESCRIPTION),
    });

    let last = "";
    for (let attempt = 1; attempt <= this.#maxAttempts; attempt++) {
      let answer: { status: number; retryAfter: string | null; message: string };
      try {
        answer = await this.#post(url, token, body);
      } catch (error) {
        last =
          error instanceof AttemptTimeoutError
            ? `no answer within ${this.#timeoutMs} ms`
            : describe(error, token);
        if (attempt < this.#maxAttempts) await this.#sleep(this.#backoff(attempt));
        continue;
      }
      const { status: code, message } = answer;
      if (code === 200 || code === 201) return "set";
      if (code === 429 || code >= 500) {
        last = `HTTP ${code}`;
        const wait = retryAfterMs(answer.retryAfter);
        if (attempt < this.#maxAttempts) {
          await this.#sleep(wait === undefined ? this.#backoff(attempt) : Math.min(MAX_DELAY_MS, wait));
        }
        continue;
      }
      // https://gitlab.com/gitlab-org/gitlab/-/blob/master/lib/api/commit_statuses.rb: a state the
      // status cannot move to from where it is (already there, or past it) is a 400 with this message.
      if (code === 400 && /cannot transition status/i.test(message)) return "unchanged";
      if (code === 401) {
        throw new ConfigError(
          `GitLab refused ${ENV.GITLAB_API_TOKEN} (HTTP 401) setting ${what}: the token is missing, expired or revoked`,
        );
      }
      if (code === 403) {
        throw new ConfigError(
          `${ENV.GITLAB_API_TOKEN} may not set commit statuses in ${status.projectPath} (HTTP 403): ` +
            "it needs the api scope and at least the Developer role in the project",
        );
      }
      throw new Error(
        `GitLab answered HTTP ${code} setting ${what}${message ? `: ${scrub(message, token)}` : ""}`,
      );
    }
    throw new UnavailableError(
      `GitLab at ${this.#api} did not take ${what} after ${this.#maxAttempts} attempt(s); last problem: ${last}`,
    );
  }

  /** Full jitter: https://aws.amazon.com/blogs/architecture/exponential-backoff-and-jitter/ */
  #backoff(attempt: number): number {
    return Math.floor(this.#random() * Math.min(MAX_DELAY_MS, this.#baseDelayMs * 2 ** (attempt - 1)));
  }

  async #post(
    url: string,
    token: string,
    body: string,
  ): Promise<{ status: number; retryAfter: string | null; message: string }> {
    const controller = new AbortController();
    const timer = setTimeout(() => controller.abort(new AttemptTimeoutError()), this.#timeoutMs);
    const timedOut = new Promise<never>((_, reject) => {
      controller.signal.addEventListener("abort", () => reject(controller.signal.reason), { once: true });
    });
    const send = async () => {
      const response = await this.#fetch(url, {
        method: "POST",
        headers: { "PRIVATE-TOKEN": token, "Content-Type": "application/json", Accept: "application/json" },
        body,
        // A redirect may lead to another host, and fetch forwards custom headers such as PRIVATE-TOKEN.
        redirect: "manual",
        signal: controller.signal,
      });
      const text = await readText(response);
      return {
        status: response.status,
        retryAfter: response.headers.get("retry-after"),
        message: gitlabMessage(text),
      };
    };
    try {
      return await Promise.race([send(), timedOut]);
    } finally {
      clearTimeout(timer);
    }
  }
}

async function readText(response: Response): Promise<string> {
  if (!response.body) return "";
  const reader = response.body.getReader();
  const chunks: Uint8Array[] = [];
  let bytes = 0;
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    chunks.push(value);
    bytes += value.length;
    if (bytes > MAX_ERROR_BYTES) {
      await reader.cancel().catch(() => {});
      break;
    }
  }
  return Buffer.concat(chunks).toString("utf8");
}

/** GitLab's errors are `{"message": ...}` or `{"error": ...}`; anything else (a proxy's page) says nothing. */
function gitlabMessage(text: string): string {
  try {
    const parsed = JSON.parse(text) as { message?: unknown; error?: unknown };
    const message = parsed.message ?? parsed.error;
    if (typeof message === "string") return message.slice(0, 200);
    if (message !== undefined) return JSON.stringify(message).slice(0, 200);
  } catch {
    // Not JSON.
  }
  return "";
}

function describe(error: unknown, token: string): string {
  const code = networkCode(error);
  if (code) return code;
  return scrub(error instanceof Error ? error.message : String(error), token);
}

/** Whatever a server or a network error says, the token is never repeated. */
function scrub(text: string, token: string): string {
  return text.split(token).join("[GITLAB_API_TOKEN]");
}

class AttemptTimeoutError extends Error {
  override readonly name = "AttemptTimeoutError";
}
