/**
 * A mistake in how a `kubler` command was called: a flag's value it cannot use, a flag it needs, an
 * argument missing or extra. `kubler` prints `kubler <command>: <message>` and the command's usage,
 * and exits 2, as it does for the flags `node:util` parseArgs refuses; what fails while a command
 * runs (nothing listening, a cluster or AWS refusing) exits 1. The message names the flag and the
 * form its value takes.
 *
 * @example
 * throw new UsageError(`--limit must be a whole number ≥ 1, got ${JSON.stringify(text)}`);
 */
export class UsageError extends Error {
  override readonly name = "UsageError";
}
