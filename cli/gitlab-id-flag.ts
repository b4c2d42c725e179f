import { UsageError } from "./usage-error.js";

/**
 * A GitLab id given as a flag (`--project-id`, `--pipeline`, `--mr`): a whole number from 1, exact
 * as a JSON number. `/^\d+$/` alone let 0 through, and 99999999999999999999 became 1e20.
 *
 * @example
 * gitlabIdFlag("--pipeline", "1234"); // 1234
 */
export function gitlabIdFlag(flag: string, text: string): number {
  const id = /^\d+$/.test(text) ? Number(text) : Number.NaN;
  if (!Number.isSafeInteger(id) || id < 1) {
    throw new UsageError(
      `${flag} must be a whole number from 1 to ${Number.MAX_SAFE_INTEGER} (a GitLab id), got ${JSON.stringify(text)}`,
    );
  }
  return id;
}
