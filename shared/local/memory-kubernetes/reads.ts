/** get and list, with label/field selectors and `limit` + `continue` pagination. */
import type { ApiContext } from "./admission.js";
import { badRequestError, methodNotAllowedError, notFoundError } from "./errors.js";
import { stringMap } from "./json.js";
import { apiVersionOf, type ResourceType } from "./resources.js";
import type { ResourceRoute } from "./routes.js";
import { matchesFields, matchesSelector, parseFieldSelector, parseLabelSelector } from "./selectors.js";
import type { KubeObject } from "./types.js";
import type { ApiAnswer } from "./writes.js";

export function get(context: ApiContext, route: ResourceRoute): ApiAnswer {
  const name = route.name as string;
  const entry = context.store.read(route.type, route.namespace, name);
  if (!entry) throw notFoundError(route.type, name);
  return { status: 200, body: entry.object };
}

/** The list's filter from `labelSelector` and `fieldSelector` (400 when either does not parse). */
export function listMatcher(type: ResourceType, query: URLSearchParams): (object: KubeObject) => boolean {
  const labels = parseLabelSelector(query.get("labelSelector"));
  const fields = parseFieldSelector(query.get("fieldSelector"), type.kind);
  return (object) =>
    matchesSelector(labels, stringMap(object.metadata.labels)) && matchesFields(fields, object);
}

function parseLimit(query: URLSearchParams): number | undefined {
  const raw = query.get("limit");
  if (raw === null || raw === "") return undefined;
  const limit = Number(raw);
  if (!Number.isInteger(limit) || limit < 0) throw badRequestError(`invalid limit: ${raw}`);
  return limit;
}

export function list(context: ApiContext, route: ResourceRoute, query: URLSearchParams): ApiAnswer {
  const { type } = route;
  if (query.get("watch") === "true" || query.get("watch") === "1") {
    throw methodNotAllowedError("watch is not supported by the in-memory Kubernetes API");
  }
  const filtered = Boolean(query.get("labelSelector") || query.get("fieldSelector"));
  const limit = parseLimit(query);
  const page = context.store.page(type, {
    ...(route.namespace === undefined ? {} : { namespace: route.namespace }),
    matches: listMatcher(type, query),
    ...(limit === undefined ? {} : { limit }),
    continueToken: query.get("continue"),
  });
  return {
    status: 200,
    body: {
      kind: `${type.kind}List`,
      apiVersion: apiVersionOf(type),
      metadata: {
        resourceVersion: page.resourceVersion,
        ...(page.continueToken ? { continue: page.continueToken } : {}),
        // The API server only counts what is left when no selector filters it.
        ...(page.remainingItemCount !== undefined && !filtered
          ? { remainingItemCount: page.remainingItemCount }
          : {}),
      },
      // Items of a real list carry no apiVersion/kind: code must not rely on them.
      items: page.items.map(({ apiVersion: _apiVersion, kind: _kind, ...item }) => item),
    },
  };
}
