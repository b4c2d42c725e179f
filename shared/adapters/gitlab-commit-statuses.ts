/**
 * Commit statuses through the GitLab REST API v4 with `fetch` (DESIGN §8):
 * `POST /projects/:id/statuses/:sha` (https://docs.gitlab.com/api/commits/#set-the-pipeline-status-of-a-commit)
 * and `GET /projects/:id/repository/commits/:sha/statuses` (https://docs.gitlab.com/api/commits/#list-the-statuses-of-a-commit).
 */
import { ENV } from "../config.js";
import { ConfigError, GoneError } from "../errors.js";
import type { CommitStatus, CommitStatuses, CommitStatusKey, LatestCommitStatus } from "../ports.js";
import { type GitlabAnswer, GitlabApi, type GitlabApiOptions, redirectRefusal } from "./gitlab-api.js";

/** GitLab stores descriptions as a string column; keep them short enough to read in the MR widget. */
const MAX_DESCRIPTION = 255;
/** GitLab refuses a longer `target_url` (GenericCommitStatus: `length: { maximum: 255 }`). */
const MAX_TARGET_URL = 255;
/** GitLab's largest page; statuses of one name on one commit rarely fill one. */
const PER_PAGE = 100;
/** A page of statuses of one name: far below this, and the whole body is needed to parse it. */
const MAX_LIST_BYTES = 1024 * 1024;

export interface GitlabCommitStatusesOptions extends GitlabApiOptions {
  /**
   * The token (scope `api`, Developer role or more); read once per request, so it may rotate, and
   * asked again with the token GitLab `refused` after a 401 (`GitlabApiOptions`).
   */
  token: GitlabApiOptions["token"];
  /**
   * Attempts and per-attempt limit of `latest`'s GET, when they should be shorter than the POST's:
   * the GET only guards the POST, which must keep enough of the function's time to be sent.
   */
  latest?: Pick<GitlabApiOptions, "maxAttempts" | "timeoutMs">;
}

/**
 * `CommitStatuses` over GitLab's API. 429, 5xx, a POST's 409, timeouts and dropped connections are
 * retried with full-jitter backoff (honouring `Retry-After`), then `UnavailableError`; 401/403 are a
 * `ConfigError` naming `GITLAB_API_TOKEN`; a 404 saying the commit or pipeline is gone is a
 * `GoneError`. GitLab refusing a transition of a pending or running status (the same state twice,
 * running back to pending) is "unchanged", not an error. GitLab does not refuse moving a
 * finished status back: it adds a new one, which is why callers ask `latest` first.
 *
 * @example
 * const statuses = new GitlabCommitStatuses({ baseUrl: "https://gitlab.example.com", token: async () => token });
 * await statuses.latest({ projectId: 15, projectPath: "group/app", sha, name: "kubler/staging", ref: "main" });
 * // { state: "success", at: 2026-11-21T10:00:00.412Z }
 * await statuses.set({ projectId: 15, projectPath: "group/app", sha, state: "success", name: "kubler/staging", ... });
 */
export class GitlabCommitStatuses implements CommitStatuses {
  readonly #api: GitlabApi;
  readonly #latestApi: GitlabApi;

  constructor(options: GitlabCommitStatusesOptions) {
    this.#api = new GitlabApi(options);
    this.#latestApi = options.latest ? new GitlabApi({ ...options, ...options.latest }) : this.#api;
  }

  async set(status: CommitStatus): Promise<"set" | "unchanged"> {
    checkKey(status);
    const what = `status ${status.name} (${status.state}) on ${status.projectPath}@${status.sha.slice(0, 12)}`;
    const ref = refSent(status);
    const body = JSON.stringify({
      state: status.state,
      name: status.name,
      ...(ref ? { ref } : {}),
      ...(status.pipelineId !== null ? { pipeline_id: status.pipelineId } : {}),
      ...(linkable(status.targetUrl) ? { target_url: status.targetUrl } : {}),
      description: describable(status.description),
    });
    const answer = await this.#api.request("POST", `/projects/${status.projectId}/statuses/${status.sha}`, {
      what,
      body,
      // "Another update to this commit status is in progress": GitLab holds a lock per project and
      // SHA while it writes one (two environments of one commit, another CI tool), and wrote nothing.
      retryOn: [409],
    });
    const { status: code, message } = answer;
    if (code === 200 || code === 201) return "set";
    // https://gitlab.com/gitlab-org/gitlab/-/blob/master/app/services/ci/create_commit_status_service.rb:
    // a pending or running status of that name that cannot make the move is a 400 with this message.
    if (code === 400 && /cannot transition status/i.test(message)) return "unchanged";
    throw refusal(answer, `setting ${what}`, status.projectPath, this.#api.root);
  }

  /**
   * `key` may carry the status's `pipelineId`: then the newest status of that pipeline, as GitLab
   * moves or adds a status within the pipeline it is sent to; another pipeline's status of the name
   * on the commit (an earlier deploy of it) says nothing about this one's.
   */
  async latest(key: CommitStatusKey): Promise<LatestCommitStatus | null> {
    checkKey(key);
    const what = `status ${key.name} on ${key.projectPath}@${key.sha.slice(0, 12)}`;
    // `all=false` leaves out statuses GitLab marked retried (an older one of the same name in the same
    // pipeline); a newer version sorts newest first, an older one ignores `sort`, so the highest id decides.
    const ref = refSent(key);
    const pipelineId = key.pipelineId ?? null;
    const query = new URLSearchParams({
      name: key.name,
      ...(ref ? { ref } : {}),
      ...(pipelineId !== null ? { pipeline_id: String(pipelineId) } : {}),
      all: "false",
      order_by: "id",
      sort: "desc",
      per_page: String(PER_PAGE),
    });
    const answer = await this.#latestApi.request(
      "GET",
      `/projects/${key.projectId}/repository/commits/${key.sha}/statuses?${query}`,
      { what, maxBytes: MAX_LIST_BYTES },
    );
    if (answer === "too large") throw new Error(`GitLab's list of ${what} is over ${MAX_LIST_BYTES} bytes`);
    if (answer.status !== 200)
      throw refusal(answer, `reading ${what}`, key.projectPath, this.#latestApi.root);
    let newest: { id: number; state: string; at: Date | null } | null = null;
    for (const item of parseList(answer.body, what)) {
      // The name filter is GitLab's; checked again so a GitLab that ignores it cannot mislead.
      if (item.name !== key.name) continue;
      // Likewise the pipeline: the `pipeline_id` filter is GitLab 17.8's, the list's `pipeline_id`
      // field 16.4's (gitlab-org/gitlab!127559). Older than 16.4, neither: every pipeline's, as before.
      if (pipelineId !== null && typeof item.pipelineId === "number" && item.pipelineId !== pipelineId)
        continue;
      if (!newest || item.id > newest.id) newest = item;
    }
    return newest ? { state: newest.state, at: newest.at } : null;
  }
}

/**
 * The ref to send, or null. With a pipeline id, none: GitLab finds the pipeline by id, SHA and the
 * ref if one is sent (404 "Pipeline for pipeline_id, sha and ref" when they do not match), and a
 * merge request pipeline's ref is `refs/merge-requests/<iid>/head` while its webhook, so the event,
 * names the source branch. Without a ref GitLab takes the pipeline's, and so does the status.
 */
function refSent(key: { ref: string | null; pipelineId?: number | null }): string | null {
  return key.pipelineId === undefined || key.pipelineId === null ? key.ref || null : null;
}

/**
 * A description GitLab can store: a NUL (from a Job's termination message, say) makes PostgreSQL
 * fail the whole status, so every control character becomes a space; cut at 255 characters, never
 * inside one (a lone surrogate is no UTF-8).
 */
function describable(text: string): string {
  const clean = text.replace(/\p{Cc}+/gu, " ").replace(/\p{Surrogate}/gu, "\uFFFD");
  return Array.from(clean).slice(0, MAX_DESCRIPTION).join("");
}

/**
 * Whether GitLab takes the URL as `target_url`: http(s) and at most 255 characters, or it refuses the
 * whole status with a 400 (GenericCommitStatus's `addressable_url` and length checks). The status
 * matters more than its link, so a URL it would refuse (deploy.url filled with a long ref, or
 * written without a scheme) is left out.
 */
function linkable(url: string | null): url is string {
  if (!url || url.length > MAX_TARGET_URL || /\s/.test(url)) return false;
  try {
    const { protocol } = new URL(url);
    return protocol === "https:" || protocol === "http:";
  } catch {
    return false;
  }
}

function checkKey(key: CommitStatusKey): void {
  if (!Number.isSafeInteger(key.projectId) || !/^[0-9a-f]{7,64}$/.test(key.sha)) {
    throw new Error(`not a project id and commit SHA: ${key.projectId}, ${JSON.stringify(key.sha)}`);
  }
}

function parseList(
  body: Buffer,
  what: string,
): { id: number; name: unknown; pipelineId: unknown; state: string; at: Date | null }[] {
  let parsed: unknown;
  try {
    parsed = JSON.parse(body.toString("utf8"));
  } catch {
    throw new Error(`GitLab's list of ${what} is not JSON`);
  }
  if (!Array.isArray(parsed)) throw new Error(`GitLab's list of ${what} is not a list`);
  return parsed.flatMap((item: Record<string, unknown> | null) =>
    typeof item?.id === "number" && typeof item.status === "string"
      ? [
          {
            id: item.id,
            name: item.name,
            pipelineId: item.pipeline_id,
            state: item.status,
            at: lastMoved(item),
          },
        ]
      : [],
  );
}

/**
 * The latest of the status's times: `finished_at` once it finished (GitLab sets it on the move to
 * success, failed or canceled), `started_at` or `created_at` before. Null when none parses.
 */
function lastMoved(item: Record<string, unknown>): Date | null {
  const times = [item.created_at, item.started_at, item.finished_at]
    .map((value) => (typeof value === "string" ? Date.parse(value) : Number.NaN))
    .filter((ms) => Number.isFinite(ms));
  return times.length > 0 ? new Date(Math.max(...times)) : null;
}

function refusal(answer: GitlabAnswer, doing: string, projectPath: string, root: string): Error {
  const { status: code, message } = answer;
  if (code === 401) {
    return new ConfigError(
      `GitLab refused ${ENV.GITLAB_API_TOKEN} (HTTP 401) ${doing}: the token is missing, expired or revoked`,
    );
  }
  if (code === 403) {
    return new ConfigError(
      `${ENV.GITLAB_API_TOKEN} may not set commit statuses in ${projectPath} (HTTP 403): ` +
        "it needs the api scope and at least the Developer role in the project" +
        // GitLab checks update_pipeline on the status's pipeline: a protected ref's needs push or merge rights.
        (doing.startsWith("setting")
          ? "; a protected branch or tag also needs the Maintainer role, or the right to push or merge to it"
          : ""),
    );
  }
  const redirected = redirectRefusal(answer, doing, root);
  if (redirected) return redirected;
  const text = `GitLab answered HTTP ${code} ${doing}${message ? `: ${message}` : ""}`;
  if (code === 404 && GONE.test(message)) return new GoneError(text);
  if (code === 404 && message === "404 Project Not Found") {
    return new Error(
      `${text}; the project was deleted, or ${ENV.GITLAB_API_TOKEN}'s user is not a member of it ` +
        "(GitLab hides a project the token cannot see)",
    );
  }
  return new Error(text);
}

/**
 * The 404s that say what the status was for is gone, not that Kubler asked wrongly
 * (app/services/ci/create_commit_status_service.rb, `validate`, and the list's `not_found!('Commit')`):
 * the commit, the pipeline of `pipeline_id` (deleted, by hand or by GitLab's pipeline expiry), or,
 * with neither a ref sent nor a pipeline left, any branch holding the commit. Not "404 Project Not
 * Found" (a deleted project, but also a token that cannot see it) nor a bare "404 Not Found" (a path
 * GitLab has no route for): those may be a mistake someone must fix.
 */
const GONE = /^404 (Commit|Pipeline for pipeline_id, sha and ref|References for commit) Not Found$/;
