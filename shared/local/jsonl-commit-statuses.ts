/**
 * Commit statuses when no GitLab is configured (local mode): each status Kubler would have set is a
 * line of `commit-statuses.jsonl` in the data directory, marked as not sent, so the local flow shows
 * what an MR would display without pretending it reached GitLab.
 */
import type { CommitStatus, CommitStatuses, CommitStatusKey, LatestCommitStatus } from "../ports.js";
import type { JsonlFile } from "./jsonl-file.js";

export const COMMIT_STATUSES_FILE = "commit-statuses.jsonl";

/**
 * `latest` answers from what this process wrote (the file is append-only and never read back), so a
 * finished status is kept finished within a run, as GitLab keeps it; a restart starts with none. Its
 * time is the line's `at`, when the status was set, as GitLab's `finished_at` is.
 *
 * @example
 * const statuses = new JsonlCommitStatuses(new JsonlFile(join(dataDir, COMMIT_STATUSES_FILE)), systemClock);
 */
export class JsonlCommitStatuses implements CommitStatuses {
  readonly #latest = new Map<string, LatestCommitStatus>();

  constructor(
    private readonly file: JsonlFile,
    private readonly clock: { now(): Date },
  ) {}

  async set(status: CommitStatus): Promise<"set"> {
    const at = this.clock.now();
    this.file.append({
      local: "not sent: no GitLab API configured (set GITLAB_URL and GITLAB_API_TOKEN to send it)",
      at: at.toISOString(),
      ...status,
    });
    this.#latest.set(keyOf(status), { state: status.state, at });
    return "set";
  }

  async latest(key: CommitStatusKey): Promise<LatestCommitStatus | null> {
    return this.#latest.get(keyOf(key)) ?? null;
  }
}

/** Per pipeline when one is named, as GitLab moves or adds a status within the pipeline it is sent to. */
function keyOf(key: CommitStatusKey): string {
  return JSON.stringify([key.projectId, key.sha, key.name, key.ref, key.pipelineId ?? null]);
}
