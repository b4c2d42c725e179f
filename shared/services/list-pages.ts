/**
 * Paginated Kubernetes lists that survive an expired continue token: the sweep and both reconciles
 * walk every managed object, and a list longer than etcd keeps its snapshot must start again rather
 * than end the run.
 */
import type { KubeObject } from "../domain/kube-object.js";
import { KubernetesError } from "../errors.js";
import type { ListPage } from "../ports.js";

/** Times a list starts again from its first page after its continue token expired. */
export const MAX_LIST_RESTARTS = 3;

/**
 * A continued list the API will not serve any more: 410 Gone, "the provided continue parameter is
 * too old", once etcd has compacted past the list's snapshot (minutes, on a slow or long list).
 * Only a list from the first page can go on: https://kubernetes.io/docs/reference/using-api/api-concepts/#retrieving-large-results-sets-in-chunks
 */
export function isExpiredContinue(error: unknown): boolean {
  return error instanceof KubernetesError && error.status === 410;
}

/**
 * Every object of a paginated list, each once, for loops that work through a page before asking for
 * the next: when a continue token expires, the list starts again from the first page (at most
 * `MAX_LIST_RESTARTS` times), skipping what was already yielded.
 *
 * @example
 * for await (const ns of eachListed((token) => cluster.list("v1", "Namespace", { limit: 500, ...(token ? { continue: token } : {}) }))) { ... }
 */
export async function* eachListed(
  list: (token: string | null) => Promise<ListPage>,
): AsyncGenerator<KubeObject, void, undefined> {
  const visited = new Set<string>();
  let restarts = 0;
  let token: string | null = null;
  for (;;) {
    let page: ListPage;
    try {
      page = await list(token);
    } catch (error) {
      if (token === null || !isExpiredContinue(error) || restarts >= MAX_LIST_RESTARTS) throw error;
      restarts++;
      token = null;
      continue;
    }
    for (const object of page.items) {
      if (firstVisit(visited, object)) yield object;
    }
    if (!page.continue) return;
    token = page.continue;
  }
}

/**
 * False for an object this run already handled: a list started again after its continue token
 * expired returns the objects of the pages already gone through, some of them since changed by this
 * very run (a namespace it deleted is now terminating). A new object of the same name has a new uid.
 */
export function firstVisit(visited: Set<string>, object: KubeObject): boolean {
  const key = object.metadata.uid ?? `${object.metadata.namespace ?? ""}/${object.metadata.name}`;
  if (visited.has(key)) return false;
  visited.add(key);
  return true;
}
