/**
 * Holds a read a deploy waits on outside the cluster (GitLab's kubler.yaml and manifests) to the
 * deadline its Kubernetes calls share (`RequestDeadline`): a slow GitLab would otherwise run the
 * Lambda past its timeout, killed with nothing reported, where a read cut here fails the attempt
 * as any call past the deadline does: audited, and thrown back for the bus to retry.
 */
import { UnavailableError } from "../errors.js";
import type { RequestDeadline } from "../ports.js";

/**
 * `read()`, or an `UnavailableError` naming `what` once the deadline passes first. The read is not
 * cancelled (the port takes no signal): it ends on its own limits, its outcome ignored.
 *
 * @example
 * const text = await withinDeadline(deps.cluster, `kubler.yaml at ${sha}`, () => source.readManifest(project, sha));
 */
export async function withinDeadline<T>(
  deadline: Partial<RequestDeadline>,
  what: string,
  read: () => Promise<T>,
): Promise<T> {
  const left = deadline.remainingMs?.() ?? null;
  if (left === null) return read();
  const cut = () =>
    new UnavailableError(
      `reading ${what} from GitLab did not end within the deploy's deadline (${left} ms were left): the deploy is retried`,
    );
  if (left <= 0) throw cut();
  const reading = read();
  let timer: NodeJS.Timeout | undefined;
  const timedOut = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(cut()), left);
  });
  // Cut short, the read's own failure later must not surface as an unhandled rejection.
  reading.catch(() => {});
  try {
    return await Promise.race([reading, timedOut]);
  } finally {
    clearTimeout(timer);
  }
}
