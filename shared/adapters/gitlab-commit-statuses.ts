/**
 * Commit statuses through the GitLab REST API v4 with `fetch` (DESIGN §8):
 * `POST /projects/:id/statuses/:sha` (https://docs.gitlab.com/api/commits/#set-the-pipeline-status-of-a-commit).
 */
import { ENV } from "../config.js";
import { ConfigError } from "../errors.js";
import type { CommitStatus, CommitStatuses } from "../ports.js";
import { GitlabApi, type GitlabApiOptions } from "./gitlab-api.js";

/** GitLab stores descriptions as a string column; keep them short enough to read in the MR widget. */
const MAX_DESCRIPTION = 255;

export interface GitlabCommitStatusesOptions extends GitlabApiOptions {
  /** The token (scope `api`, Developer role or more); read once per request, so it may rotate. */
  token: () => Promise<string>;
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
  readonly #api: GitlabApi;

  constructor(options: GitlabCommitStatusesOptions) {
    this.#api = new GitlabApi(options);
  }

  async set(status: CommitStatus): Promise<"set" | "unchanged"> {
    if (!Number.isSafeInteger(status.projectId) || !/^[0-9a-f]{7,64}$/.test(status.sha)) {
      throw new Error(`not a project id and commit SHA: ${status.projectId}, ${JSON.stringify(status.sha)}`);
    }
    const what = `status ${status.name} (${status.state}) on ${status.projectPath}@${status.sha.slice(0, 12)}`;
    const body = JSON.stringify({
      state: status.state,
      name: status.name,
      ...(status.ref ? { ref: status.ref } : {}),
      ...(status.pipelineId !== null ? { pipeline_id: status.pipelineId } : {}),
      ...(status.targetUrl ? { target_url: status.targetUrl } : {}),
      description: status.description.slice(0, MAX_DESCRIPTION),
    });
    const answer = await this.#api.request("POST", `/projects/${status.projectId}/statuses/${status.sha}`, {
      what,
      body,
    });
    const { status: code, message } = answer;
    if (code === 200 || code === 201) return "set";
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
    throw new Error(`GitLab answered HTTP ${code} setting ${what}${message ? `: ${message}` : ""}`);
  }
}
