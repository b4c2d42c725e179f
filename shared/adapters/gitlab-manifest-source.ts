/**
 * A project's Kubler files at a commit, read through the GitLab REST API v4 (DESIGN §7) with `fetch`:
 * `kubler.yaml` at the repository root and the YAML files directly under its manifests directory.
 */
import { setTimeout as delay } from "node:timers/promises";
import { ENV } from "../config.js";
import { ManifestFilesError } from "../domain/deploy-manifests.js";
import { MANIFEST_FILE, ManifestError } from "../domain/kubler-manifest.js";
import { ConfigError, UnavailableError } from "../errors.js";
import type { ManifestSource } from "../ports.js";
import { networkCode, retryAfterMs } from "./http-retry.js";

/** The variables this adapter's settings come from (DESIGN §10), named in its configuration errors. */

/** One file's limit: Kubernetes YAML this large is a mistake or hostile, and it is held in memory. */
export const DEFAULT_MAX_FILE_BYTES = 1024 * 1024;
/** YAML files one manifests directory may hold. */
export const DEFAULT_MAX_FILES = 200;
/** All the files of one directory together, so 200 files of 1 MiB cannot exhaust a Lambda's memory. */
export const DEFAULT_MAX_TOTAL_BYTES = 8 * 1024 * 1024;

/** The largest page the tree API serves: https://docs.gitlab.com/api/rest/#pagination */
const TREE_PAGE_SIZE = 100;
/** Entries (YAML or not) one directory may list: 50 pages of 100. */
const MAX_TREE_PAGES = 50;
/** A page of 100 tree entries is ~20 KB of JSON. */
const MAX_TREE_PAGE_BYTES = 1024 * 1024;
/** Enough of an error body for GitLab's `{"message": "404 File Not Found"}`. */
const MAX_ERROR_BYTES = 4 * 1024;
/** Caps one wait (a backoff or a `Retry-After`) so retries stay within a Lambda's time budget. */
const MAX_DELAY_MS = 5_000;

const YAML_FILE = /\.ya?ml$/;
/** A symbolic link's tree mode: its raw content is the link's target path, not the file it names. */
const SYMLINK_MODE = "120000";

export interface GitlabManifestSourceOptions {
  /** `GITLAB_URL`, e.g. `https://gitlab.example.com`, or with a relative root `https://host/gitlab`. */
  baseUrl: string;
  /** `GITLAB_API_TOKEN` (scope `read_repository` or `read_api`); read once per call, so it may rotate. */
  token: () => Promise<string>;
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
  /** Files of a directory fetched at once. Default 4. */
  concurrency?: number;
  maxFileBytes?: number;
  maxFiles?: number;
  maxTotalBytes?: number;
}

type Project = { projectId: number; projectPath: string };

/** What one GET came back with once it stopped being worth retrying. */
interface Answer {
  status: number;
  headers: Headers;
  /** The body for a 200 (within its limit); the start of it otherwise. */
  body: Buffer;
}

/** Why an attempt may succeed if sent again. */
interface Transient {
  reason: string;
  retryAfterMs?: number;
}

interface TreeEntry {
  name: string;
  type: string;
  mode: string | undefined;
}

/**
 * `kubler.yaml` and the manifests directory at a commit, by numeric project id (paths can be renamed).
 * A missing file or directory is null / an empty map; a refused token is a `ConfigError` naming
 * `GITLAB_API_TOKEN`; 429, 5xx, timeouts and dropped connections are retried with full-jitter
 * backoff (honouring `Retry-After`) and end in `UnavailableError`. Oversized files are refused with
 * `ManifestError` (kubler.yaml) or `ManifestFilesError` (the directory), which deploys report as failed.
 *
 * @example
 * const source = new GitlabManifestSource({ baseUrl: env.GITLAB_URL, token: async () => env.GITLAB_API_TOKEN });
 * const text = await source.readManifest({ projectId: 15, projectPath: "group/app" }, sha); // or null
 * const files = await source.readDirectory({ projectId: 15, projectPath: "group/app" }, sha, "deploy/");
 */
export class GitlabManifestSource implements ManifestSource {
  readonly #api: string;
  readonly #token: () => Promise<string>;
  readonly #fetch: typeof fetch;
  readonly #maxAttempts: number;
  readonly #baseDelayMs: number;
  readonly #timeoutMs: number;
  readonly #sleep: (ms: number) => Promise<void>;
  readonly #random: () => number;
  readonly #concurrency: number;
  readonly #maxFileBytes: number;
  readonly #maxFiles: number;
  readonly #maxTotalBytes: number;

  constructor(options: GitlabManifestSourceOptions) {
    this.#api = `${apiRoot(options.baseUrl)}/api/v4`;
    this.#token = options.token;
    this.#fetch = options.fetch ?? fetch;
    this.#maxAttempts = Math.max(1, Math.floor(options.maxAttempts ?? 4));
    this.#baseDelayMs = Math.max(0, options.baseDelayMs ?? 200);
    this.#timeoutMs = Math.max(1, options.timeoutMs ?? 10_000);
    this.#sleep = options.sleep ?? ((ms) => delay(ms));
    this.#random = options.random ?? Math.random;
    this.#concurrency = Math.max(1, Math.floor(options.concurrency ?? 4));
    this.#maxFileBytes = Math.max(1, options.maxFileBytes ?? DEFAULT_MAX_FILE_BYTES);
    this.#maxFiles = Math.max(1, options.maxFiles ?? DEFAULT_MAX_FILES);
    this.#maxTotalBytes = Math.max(1, options.maxTotalBytes ?? DEFAULT_MAX_TOTAL_BYTES);
  }

  async readManifest(project: Project, sha: string): Promise<string | null> {
    const token = await this.#readToken();
    const what = `${MANIFEST_FILE} of ${describe(project)} at ${sha}`;
    const answer = await this.#get(
      this.#fileUrl(project, MANIFEST_FILE, sha),
      what,
      token,
      this.#maxFileBytes,
    );
    if (answer === "too large") {
      throw new ManifestError(`${MANIFEST_FILE}: larger than ${this.#maxFileBytes} bytes at ${sha}`);
    }
    if (answer.status === 404) {
      this.#expectAbsent(answer, what, project, token);
      return null; // No kubler.yaml at this commit: the project is not opted in.
    }
    this.#expectOk(answer, what, project, token);
    return answer.body.toString("utf8");
  }

  async readDirectory(
    project: Project,
    sha: string,
    directory: string,
  ): Promise<ReadonlyMap<string, string>> {
    const dir = repositoryDirectory(directory);
    const token = await this.#readToken();
    const names = await this.#listYamlFiles(project, sha, dir, token);
    const paths = names.map((name) => (dir ? `${dir}/${name}` : name)).sort();

    const texts = new Map<string, string>();
    let totalBytes = 0;
    let next = 0;
    let failed = false;
    const worker = async () => {
      while (!failed && next < paths.length) {
        const path = paths[next++] as string;
        try {
          const body = await this.#readFile(project, sha, path, token);
          totalBytes += body.length;
          if (totalBytes > this.#maxTotalBytes) {
            throw new ManifestFilesError(
              `${dir || "."}: the YAML files total more than ${this.#maxTotalBytes} bytes at ${sha}`,
            );
          }
          texts.set(path, body.toString("utf8"));
        } catch (error) {
          failed = true; // The other workers finish their current file and stop.
          throw error;
        }
      }
    };
    await Promise.all(Array.from({ length: Math.min(this.#concurrency, paths.length) }, worker));
    return new Map(paths.map((path) => [path, texts.get(path) as string]));
  }

  /** The names of the YAML blobs directly under `dir`, every page of the tree followed. */
  async #listYamlFiles(project: Project, sha: string, dir: string, token: string): Promise<string[]> {
    const what = `the tree of ${dir || "the repository root"} in ${describe(project)} at ${sha}`;
    const own = new URLSearchParams({ ref: sha, per_page: String(TREE_PAGE_SIZE), recursive: "false" });
    if (dir) own.set("path", dir);
    const names: string[] = [];
    const seen = new Set<string>();
    let query = new URLSearchParams(own);
    for (let page = 1; ; page++) {
      if (page > MAX_TREE_PAGES) {
        throw new ManifestFilesError(
          `${dir || "."}: more than ${MAX_TREE_PAGES * TREE_PAGE_SIZE} entries at ${sha}; keep the manifests in a directory of their own`,
        );
      }
      seen.add(query.toString());
      const url = `${this.#api}/projects/${projectId(project)}/repository/tree?${query}`;
      const answer = await this.#get(url, what, token, MAX_TREE_PAGE_BYTES);
      if (answer === "too large") {
        throw new Error(`GitLab's page ${page} of ${what} is over ${MAX_TREE_PAGE_BYTES} bytes`);
      }
      if (answer.status === 404 && page === 1) {
        // GitLab 17.7+ answers 404 for a missing path; older versions an empty 200.
        this.#expectAbsent(answer, what, project, token);
        return [];
      }
      this.#expectOk(answer, what, project, token);

      for (const entry of treeEntries(answer.body, what)) {
        if (entry.type !== "blob" || !YAML_FILE.test(entry.name)) continue;
        const path = dir ? `${dir}/${entry.name}` : entry.name;
        if (entry.mode === SYMLINK_MODE) {
          throw new ManifestFilesError(
            `${path} is a symbolic link; GitLab serves links as their target's path, so commit the file itself`,
          );
        }
        names.push(entry.name);
        if (names.length > this.#maxFiles) {
          throw new ManifestFilesError(`${dir || "."}: more than ${this.#maxFiles} YAML files at ${sha}`);
        }
      }

      const next = nextPage(answer.headers, own, page);
      if (next === null) return names;
      if (seen.has(next.toString())) throw new Error(`GitLab's pagination of ${what} loops`);
      query = next;
    }
  }

  async #readFile(project: Project, sha: string, path: string, token: string): Promise<Buffer> {
    const what = `${path} in ${describe(project)} at ${sha}`;
    const answer = await this.#get(this.#fileUrl(project, path, sha), what, token, this.#maxFileBytes);
    if (answer === "too large") {
      throw new ManifestFilesError(`${path}: larger than ${this.#maxFileBytes} bytes at ${sha}`);
    }
    this.#expectOk(answer, what, project, token);
    return answer.body;
  }

  #fileUrl(project: Project, path: string, sha: string): string {
    // A file path is one URL segment: `deploy/app.yaml` is `deploy%2Fapp.yaml`.
    return `${this.#api}/projects/${projectId(project)}/repository/files/${encodeURIComponent(path)}/raw?${new URLSearchParams({ ref: sha })}`;
  }

  async #readToken(): Promise<string> {
    const token = (await this.#token()).trim();
    if (!token) throw new ConfigError(`${ENV.GITLAB_API_TOKEN} is empty`);
    // Checked here because fetch's own error for a bad header value quotes the value.
    if (!/^[\x21-\x7e]+$/.test(token)) {
      throw new ConfigError(`${ENV.GITLAB_API_TOKEN} has characters that cannot be sent in an HTTP header`);
    }
    return token;
  }

  /**
   * Sends a GET until it gets an answer that will not change, or `maxAttempts` is spent. "too large"
   * when a 200's body is over `maxBytes`.
   */
  async #get(url: string, what: string, token: string, maxBytes: number): Promise<Answer | "too large"> {
    let last: Transient | undefined;
    for (let attempt = 1; attempt <= this.#maxAttempts; attempt++) {
      if (last) await this.#sleep(this.#delayBefore(attempt, last));
      const outcome = await this.#attempt(url, token, maxBytes).then(
        (answer) => ({ answer }),
        (error: unknown) => ({ error }),
      );
      if ("error" in outcome) {
        last = { reason: scrub(this.#describeFailure(outcome.error), token) };
        continue;
      }
      const { answer } = outcome;
      if (answer !== "too large" && (answer.status === 429 || answer.status >= 500)) {
        last = {
          reason: `HTTP ${answer.status}`,
          retryAfterMs: retryAfterMs(answer.headers.get("retry-after")),
        };
        continue;
      }
      return answer;
    }
    throw new UnavailableError(
      `GitLab at ${this.#api} did not serve ${what} after ${this.#maxAttempts} attempt(s); last problem: ${last?.reason}`,
    );
  }

  /** One try, bounded by `timeoutMs` from the request to the body's last byte. */
  async #attempt(url: string, token: string, maxBytes: number): Promise<Answer | "too large"> {
    const controller = new AbortController();
    const timer = setTimeout(() => controller.abort(new AttemptTimeoutError()), this.#timeoutMs);
    // Also bounds a `fetch` (an injected one) that ignores its signal.
    const timedOut = new Promise<never>((_, reject) => {
      controller.signal.addEventListener("abort", () => reject(controller.signal.reason), { once: true });
    });
    const send = async (): Promise<Answer | "too large"> => {
      const response = await this.#fetch(url, {
        headers: { "PRIVATE-TOKEN": token },
        // A redirect may lead to another host, and fetch forwards custom headers such as PRIVATE-TOKEN.
        redirect: "manual",
        signal: controller.signal,
      });
      const limit = response.status === 200 ? maxBytes : MAX_ERROR_BYTES;
      if (response.status === 429 || response.status >= 500) {
        await response.body?.cancel().catch(() => {});
        return { status: response.status, headers: response.headers, body: Buffer.alloc(0) };
      }
      const body = await readBody(response, limit, response.status !== 200);
      if (body === null) return "too large";
      return { status: response.status, headers: response.headers, body };
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

  #describeFailure(error: unknown): string {
    if (error instanceof AttemptTimeoutError) return `no answer within ${this.#timeoutMs} ms`;
    const code = networkCode(error);
    if (code) return code;
    return error instanceof Error ? error.message : String(error);
  }

  /**
   * Throws unless a 404 is GitLab's "this file / tree / commit is not there". GitLab answers 404 for a
   * project the token cannot see as for one that does not exist: that is a token without access, not a
   * project without kubler.yaml, and must not quietly skip every deploy. A 404 without GitLab's JSON
   * message is not the API answering at all (a `GITLAB_URL` without its relative root, say).
   */
  #expectAbsent(answer: Answer, what: string, project: Project, token: string): void {
    const message = gitlabMessage(answer.body);
    if (/^404 project not found/i.test(message)) {
      throw new ConfigError(
        `GitLab found no ${describe(project)} that ${ENV.GITLAB_API_TOKEN} can see (${scrub(message, token)}) reading ${what}: ` +
          "give the token's user at least the Reporter role in the project",
      );
    }
    if (!/^404 .*not found/i.test(message) || /^404 not found$/i.test(message)) {
      throw new ConfigError(
        `${this.#api} answered 404 ${message ? `(${scrub(message, token)}) ` : ""}reading ${what}, not as the ` +
          `GitLab API would: is ${ENV.GITLAB_URL} the instance's address, relative root included?`,
      );
    }
  }

  #expectOk(answer: Answer, what: string, project: Project, token: string): void {
    const { status } = answer;
    if (status === 200) return;
    if (status === 401) {
      throw new ConfigError(
        `GitLab refused ${ENV.GITLAB_API_TOKEN} (HTTP 401) reading ${what}: the token is missing, expired or revoked`,
      );
    }
    if (status === 403) {
      throw new ConfigError(
        `${ENV.GITLAB_API_TOKEN} may not read the repository of ${describe(project)} (HTTP 403) reading ${what}: ` +
          "it needs the read_repository (or read_api) scope and at least the Reporter role in the project",
      );
    }
    if (status >= 300 && status < 400) {
      const location = answer.headers.get("location");
      const to = location ? ` to ${originOf(location, this.#api)}` : "";
      throw new ConfigError(
        `GitLab redirected (HTTP ${status}) reading ${what}${to}; set ${ENV.GITLAB_URL} to the address the API is served at`,
      );
    }
    const message = gitlabMessage(answer.body);
    throw new Error(
      `GitLab answered HTTP ${status} reading ${what}${message ? `: ${scrub(message, token)}` : ""}`,
    );
  }
}

/** `https://host/gitlab/` → `https://host/gitlab`; credentials, queries and fragments are refused. */
function apiRoot(baseUrl: string): string {
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
  return `${url.origin}${url.pathname.replace(/\/+$/, "")}`;
}

/**
 * `deploy/`, `./deploy` → `deploy`; `.` or `` → `` (the root). `..` and absolute paths are refused:
 * the directory comes from the project's own kubler.yaml.
 */
function repositoryDirectory(directory: string): string {
  const segments = directory.split("/");
  if (directory.startsWith("/") || segments.includes("..")) {
    throw new ManifestFilesError(
      `${JSON.stringify(directory)} is not a directory inside the repository (no "..", no leading "/")`,
    );
  }
  return segments.filter((segment) => segment !== "" && segment !== ".").join("/");
}

function projectId(project: Project): number {
  if (!Number.isSafeInteger(project.projectId) || project.projectId <= 0) {
    throw new Error(`${describe(project)}: the project id must be a positive integer`);
  }
  return project.projectId;
}

function describe(project: Project): string {
  return `project ${project.projectId} (${project.projectPath})`;
}

/**
 * The query of the page after `page`: GitLab's offset pagination (`x-next-page`, built on our own
 * query) or keyset pagination (`Link: <…>; rel="next"`, of which only the query is used, so the token
 * never follows a link to another host). Null on the last page.
 * https://docs.gitlab.com/api/rest/#pagination
 */
function nextPage(headers: Headers, own: URLSearchParams, page: number): URLSearchParams | null {
  const offset = headers.get("x-next-page")?.trim();
  if (offset) {
    if (!/^\d+$/.test(offset) || Number(offset) <= page) {
      throw new Error(`GitLab's x-next-page ${JSON.stringify(offset)} does not follow page ${page}`);
    }
    const next = new URLSearchParams(own);
    next.set("page", offset);
    return next;
  }
  const link = nextLink(headers.get("link"));
  if (!link) return null;
  let linked: URLSearchParams;
  try {
    linked = new URL(link, "http://gitlab.invalid").searchParams;
  } catch {
    throw new Error(`GitLab's Link rel="next" is not a URL`);
  }
  for (const [key, value] of own) linked.set(key, value);
  return linked;
}

/** RFC 8288: `<url>; rel="next", <url>; rel="first"`. */
function nextLink(header: string | null): string | null {
  for (const part of header?.split(",") ?? []) {
    const [target, ...params] = part.split(";");
    const url = /^\s*<([^>]*)>\s*$/.exec(target ?? "")?.[1];
    const rel = params
      .map((param) => /^\s*rel\s*=\s*"?([^"]*)"?\s*$/i.exec(param)?.[1])
      .find((value) => value !== undefined);
    if (url !== undefined && rel?.split(/\s+/).includes("next")) return url;
  }
  return null;
}

function treeEntries(body: Buffer, what: string): TreeEntry[] {
  let parsed: unknown;
  try {
    parsed = JSON.parse(body.toString("utf8"));
  } catch {
    throw new Error(`GitLab's answer for ${what} is not JSON`);
  }
  if (!Array.isArray(parsed)) throw new Error(`GitLab's answer for ${what} is not a list of tree entries`);
  return parsed.flatMap((item: unknown) => {
    const entry = item as Partial<Record<keyof TreeEntry, unknown>> | null;
    // A name with a slash is not directly under the directory, whatever the API says.
    const { name, type, mode } = entry ?? {};
    if (typeof name !== "string" || typeof type !== "string" || name.includes("/")) return [];
    return [{ name, type, mode: typeof mode === "string" ? mode : undefined }];
  });
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
function gitlabMessage(body: Buffer): string {
  const text = body.toString("utf8");
  try {
    const parsed = JSON.parse(text) as { message?: unknown; error?: unknown };
    const message = parsed.message ?? parsed.error;
    if (typeof message === "string") return message.slice(0, 200);
    if (message !== undefined) return JSON.stringify(message).slice(0, 200);
  } catch {
    // Not JSON (a proxy's page): say nothing rather than quote HTML.
  }
  return "";
}

function originOf(location: string, base: string): string {
  try {
    return new URL(location, base).origin;
  } catch {
    return "an unparseable address";
  }
}

/** Whatever a server or a network error says, the token is never repeated. */
function scrub(text: string, token: string): string {
  return text.split(token).join("[GITLAB_API_TOKEN]");
}

class AttemptTimeoutError extends Error {
  override readonly name = "AttemptTimeoutError";
}
