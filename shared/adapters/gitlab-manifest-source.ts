/**
 * A project's Kubler files at a commit, read through the GitLab REST API v4 (DESIGN §7) with `fetch`:
 * `kubler.yaml` at the repository root and the manifest files (YAML, JSON) directly under its manifests
 * directory; and
 * `kubler.yaml` on the default branch, where plan-steps takes the environment rules from.
 */
import { systemClock } from "../clock.js";
import { ENV } from "../config.js";
import {
  isManifestFileName,
  MANIFEST_FILE_NAMES,
  ManifestFilesError,
  utf8Text,
} from "../domain/deploy-manifests.js";
import { MANIFEST_FILE, ManifestError } from "../domain/kubler-manifest.js";
import { ConfigError } from "../errors.js";
import type { Clock, ManifestSource } from "../ports.js";
import { type GitlabAnswer, GitlabApi, type GitlabApiOptions, redirectRefusal } from "./gitlab-api.js";

/** One file's limit: a Kubernetes manifest this large is a mistake or hostile, and it is held in memory. */
export const DEFAULT_MAX_FILE_BYTES = 1024 * 1024;
/** Manifest files (YAML and JSON together) one manifests directory may hold. */
export const DEFAULT_MAX_FILES = 200;
/** All the files of one directory together, so 200 files of 1 MiB cannot exhaust a Lambda's memory. */
export const DEFAULT_MAX_TOTAL_BYTES = 8 * 1024 * 1024;

/**
 * How long the default branch's kubler.yaml is reused: GitLab sends a burst of events for one change
 * (a push, its merge request's two updates, its pipeline), each planned with the same rules. A rule
 * merged to the default branch takes effect within it (a push reads afresh: `fresh`).
 */
export const DEFAULT_BRANCH_CACHE_SECONDS = 60;
/** Projects whose default-branch kubler.yaml is kept, the one read longest ago dropped first. */
const MAX_CACHED_PROJECTS = 1_000;
/** GitLab resolves `HEAD` to the project's default branch: https://docs.gitlab.com/api/repository_files/ */
const DEFAULT_BRANCH_REF = "HEAD";

/** The largest page the tree API serves: https://docs.gitlab.com/api/rest/#pagination */
const TREE_PAGE_SIZE = 100;
/** Entries (manifests or not) one directory may list: 50 pages of 100. */
const MAX_TREE_PAGES = 50;
/** A page of 100 tree entries is ~20 KB of JSON. */
const MAX_TREE_PAGE_BYTES = 1024 * 1024;

/** A symbolic link's tree mode: its raw content is the link's target path, not the file it names. */
const SYMLINK_MODE = "120000";

export interface GitlabManifestSourceOptions extends GitlabApiOptions {
  /**
   * `GITLAB_API_TOKEN` (scope `read_repository` or `read_api`); read once per request, so it may
   * rotate, and asked again with the token GitLab `refused` after a 401 (`GitlabApiOptions`).
   */
  token: GitlabApiOptions["token"];
  /** Files of a directory fetched at once. Default 4. */
  concurrency?: number;
  maxFileBytes?: number;
  maxFiles?: number;
  maxTotalBytes?: number;
  /** How long `readDefaultBranchManifest` reuses what it read. Default `DEFAULT_BRANCH_CACHE_SECONDS`. */
  defaultBranchCacheSeconds?: number;
  clock?: Clock;
}

type Project = { projectId: number; projectPath: string };

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
  readonly #api: GitlabApi;
  readonly #concurrency: number;
  readonly #maxFileBytes: number;
  readonly #maxFiles: number;
  readonly #maxTotalBytes: number;
  readonly #cacheMs: number;
  readonly #clock: Clock;
  /** Project id → the default branch's kubler.yaml (a read under way included, so a burst shares it). */
  readonly #defaultBranch = new Map<number, { readAt: number; text: Promise<string | null> }>();

  constructor(options: GitlabManifestSourceOptions) {
    this.#api = new GitlabApi(options);
    this.#concurrency = Math.max(1, Math.floor(options.concurrency ?? 4));
    this.#maxFileBytes = Math.max(1, options.maxFileBytes ?? DEFAULT_MAX_FILE_BYTES);
    this.#maxFiles = Math.max(1, options.maxFiles ?? DEFAULT_MAX_FILES);
    this.#maxTotalBytes = Math.max(1, options.maxTotalBytes ?? DEFAULT_MAX_TOTAL_BYTES);
    this.#cacheMs = Math.max(0, options.defaultBranchCacheSeconds ?? DEFAULT_BRANCH_CACHE_SECONDS) * 1000;
    this.#clock = options.clock ?? systemClock;
  }

  async readManifest(project: Project, sha: string): Promise<string | null> {
    return this.#readManifestAt(project, sha, sha);
  }

  /**
   * `kubler.yaml` at `ref=HEAD`, which GitLab resolves to the default branch, or null when it has
   * none; reused for `DEFAULT_BRANCH_CACHE_SECONDS` unless `fresh`. A failure is not kept.
   */
  readDefaultBranchManifest(project: Project, options: { fresh?: boolean } = {}): Promise<string | null> {
    const id = projectId(project);
    const now = this.#clock.now().getTime();
    const cached = this.#defaultBranch.get(id);
    if (!options.fresh && cached && now - cached.readAt < this.#cacheMs) return cached.text;
    const entry = {
      readAt: now,
      text: this.#readManifestAt(project, DEFAULT_BRANCH_REF, "the default branch (HEAD)"),
    };
    this.#defaultBranch.delete(id); // Set again below: the Map's order is then oldest read first.
    this.#defaultBranch.set(id, entry);
    if (this.#defaultBranch.size > MAX_CACHED_PROJECTS) {
      const oldest = this.#defaultBranch.keys().next().value;
      if (oldest !== undefined) this.#defaultBranch.delete(oldest);
    }
    entry.text.catch(() => {
      if (this.#defaultBranch.get(id) === entry) this.#defaultBranch.delete(id);
    });
    return entry.text;
  }

  /** `kubler.yaml` at `ref` (a SHA, or HEAD), described as at `where`. */
  async #readManifestAt(project: Project, ref: string, where: string): Promise<string | null> {
    const what = `${MANIFEST_FILE} of ${describe(project)} at ${where}`;
    const answer = await this.#api.request("GET", filePath(project, MANIFEST_FILE, ref), {
      what,
      maxBytes: this.#maxFileBytes,
    });
    if (answer === "too large") {
      throw new ManifestError(`${MANIFEST_FILE}: larger than ${this.#maxFileBytes} bytes at ${where}`);
    }
    if (answer.status === 404) {
      this.#expectAbsent(answer, what, project);
      return null; // No kubler.yaml there: not opted in (a commit), no environment rules (HEAD).
    }
    this.#expectOk(answer, what, project);
    const decoded = utf8Text(answer.body);
    if ("line" in decoded) throw new ManifestError(notUtf8(MANIFEST_FILE, where, decoded.line));
    return decoded.text;
  }

  async readDirectory(
    project: Project,
    sha: string,
    directory: string,
  ): Promise<ReadonlyMap<string, string>> {
    const dir = repositoryDirectory(directory);
    const names = await this.#listManifestFiles(project, sha, dir);
    const paths = names.map((name) => (dir ? `${dir}/${name}` : name)).sort();

    const texts = new Map<string, string>();
    let totalBytes = 0;
    let next = 0;
    let failed = false;
    const worker = async () => {
      while (!failed && next < paths.length) {
        const path = paths[next++] as string;
        try {
          const body = await this.#readFile(project, sha, path);
          totalBytes += body.length;
          if (totalBytes > this.#maxTotalBytes) {
            throw new ManifestFilesError(
              `${dir || "."}: the manifest files total more than ${this.#maxTotalBytes} bytes at ${sha}`,
            );
          }
          const decoded = utf8Text(body);
          if ("line" in decoded) throw new ManifestFilesError(notUtf8(path, sha, decoded.line));
          texts.set(path, decoded.text);
        } catch (error) {
          failed = true; // The other workers finish their current file and stop.
          throw error;
        }
      }
    };
    await Promise.all(Array.from({ length: Math.min(this.#concurrency, paths.length) }, worker));
    return new Map(paths.map((path) => [path, texts.get(path) as string]));
  }

  /** The names of the manifest blobs directly under `dir`, every page of the tree followed. */
  async #listManifestFiles(project: Project, sha: string, dir: string): Promise<string[]> {
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
      const path = `/projects/${projectId(project)}/repository/tree?${query}`;
      const answer = await this.#api.request("GET", path, { what, maxBytes: MAX_TREE_PAGE_BYTES });
      if (answer === "too large") {
        throw new Error(`GitLab's page ${page} of ${what} is over ${MAX_TREE_PAGE_BYTES} bytes`);
      }
      if (answer.status === 404 && page === 1) {
        // GitLab 17.7+ answers 404 for a missing path; older versions an empty 200.
        this.#expectAbsent(answer, what, project);
        return [];
      }
      this.#expectOk(answer, what, project);

      for (const entry of treeEntries(answer.body, what)) {
        if (entry.type !== "blob" || !isManifestFileName(entry.name)) continue;
        const path = dir ? `${dir}/${entry.name}` : entry.name;
        if (entry.mode === SYMLINK_MODE) {
          throw new ManifestFilesError(
            `${path} is a symbolic link; GitLab serves links as their target's path, so commit the file itself`,
          );
        }
        names.push(entry.name);
        if (names.length > this.#maxFiles) {
          throw new ManifestFilesError(
            `${dir || "."}: more than ${this.#maxFiles} manifest files (${MANIFEST_FILE_NAMES}) at ${sha}`,
          );
        }
      }

      const next = nextPage(answer.headers, own, page);
      if (next === null) return names;
      if (seen.has(next.toString())) throw new Error(`GitLab's pagination of ${what} loops`);
      query = next;
    }
  }

  async #readFile(project: Project, sha: string, path: string): Promise<Buffer> {
    const what = `${path} in ${describe(project)} at ${sha}`;
    const answer = await this.#api.request("GET", filePath(project, path, sha), {
      what,
      maxBytes: this.#maxFileBytes,
    });
    if (answer === "too large") {
      throw new ManifestFilesError(`${path}: larger than ${this.#maxFileBytes} bytes at ${sha}`);
    }
    this.#expectOk(answer, what, project);
    return answer.body;
  }

  /**
   * Throws unless a 404 is GitLab's "this file / tree / commit is not there". GitLab answers 404 for a
   * project the token cannot see as for one that does not exist: that is a token without access, not a
   * project without kubler.yaml, and must not quietly skip every deploy. A 404 without GitLab's JSON
   * message is not the API answering at all (a `GITLAB_URL` without its relative root, say).
   */
  #expectAbsent(answer: GitlabAnswer, what: string, project: Project): void {
    const { message } = answer;
    if (/^404 project not found/i.test(message)) {
      throw new ConfigError(
        `GitLab found no ${describe(project)} that ${ENV.GITLAB_API_TOKEN} can see (${message}) reading ${what}: ` +
          "give the token's user at least the Reporter role in the project",
      );
    }
    if (!/^404 .*not found/i.test(message) || /^404 not found$/i.test(message)) {
      throw new ConfigError(
        `${this.#api.root} answered 404 ${message ? `(${message}) ` : ""}reading ${what}, not as the ` +
          `GitLab API would: is ${ENV.GITLAB_URL} the instance's address, relative root included?`,
      );
    }
  }

  #expectOk(answer: GitlabAnswer, what: string, project: Project): void {
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
    const redirected = redirectRefusal(answer, `reading ${what}`, this.#api.root);
    if (redirected) throw redirected;
    const { message } = answer;
    throw new Error(`GitLab answered HTTP ${status} reading ${what}${message ? `: ${message}` : ""}`);
  }
}

function notUtf8(path: string, sha: string, line: number): string {
  return `${path}: not UTF-8 text at ${sha} (line ${line}): save the file as UTF-8`;
}

function filePath(project: Project, path: string, sha: string): string {
  // A file path is one URL segment: `deploy/app.yaml` is `deploy%2Fapp.yaml`.
  return `/projects/${projectId(project)}/repository/files/${encodeURIComponent(path)}/raw?${new URLSearchParams({ ref: sha })}`;
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
