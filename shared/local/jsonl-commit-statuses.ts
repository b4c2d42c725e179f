/**
 * Commit statuses when no GitLab is configured (local mode): each status Kubler would have set is a
 * line of `commit-statuses.jsonl` in the data directory, marked as not sent, so the local flow shows
 * what an MR would display without pretending it reached GitLab.
 */
import type { CommitStatus, CommitStatuses } from "../ports.js";
import type { JsonlFile } from "./jsonl-file.js";

export const COMMIT_STATUSES_FILE = "commit-statuses.jsonl";

/**
 * @example
 * const statuses = new JsonlCommitStatuses(new JsonlFile(join(dataDir, COMMIT_STATUSES_FILE)), systemClock);
 */
export class JsonlCommitStatuses implements CommitStatuses {
  constructor(
    private readonly file: JsonlFile,
    private readonly clock: { now(): Date },
  ) {}

  async set(status: CommitStatus): Promise<"set"> {
    this.file.append({
      local: "not sent: no GitLab API configured (set GITLAB_URL and GITLAB_API_TOKEN to send it)",
      at: this.clock.now().toISOString(),
      ...status,
    });
    return "set";
  }
}
