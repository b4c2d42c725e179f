/** get and list, with label/field selectors and `limit` + `continue` pagination. */
import type { ApiContext } from "./admission.js";
import { badRequestError, methodNotAllowedError, notFoundError } from "./errors.js";
import { JsonText } from "./json.js";
import { apiVersionOf, type ResourceType } from "./resources.js";
import { isWatch, type ResourceRoute } from "./routes.js";
import {
  matchesFields,
  matchesSelector,
  parseFieldSelector,
  parseLabelSelector,
  type Selectable,
} from "./selectors.js";
import type { ApiAnswer } from "./writes.js";

export function get(context: ApiContext, route: ResourceRoute): ApiAnswer {
  const name = route.name as string;
  const stored = context.store.find(route.type, route.namespace, name);
  if (!stored) throw notFoundError(route.type, name);
  return { status: 200, body: new JsonText(stored.text) };
}

/**
 * The list's filter from `labelSelector` and `fieldSelector` (400 when either does not parse);
 * undefined when neither is given.
 */
export function listMatcher(
  type: ResourceType,
  query: URLSearchParams,
): ((object: Selectable) => boolean) | undefined {
  const labelSelector = query.get("labelSelector");
  const fieldSelector = query.get("fieldSelector");
  if (!labelSelector && !fieldSelector) return undefined;
  const labels = parseLabelSelector(labelSelector);
  const fields = parseFieldSelector(fieldSelector, type.kind);
  return (object) => matchesSelector(labels, object.labels) && matchesFields(fields, object.fields);
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
  if (isWatch(query)) {
    throw methodNotAllowedError("watch is not supported by the in-memory Kubernetes API");
  }
  const limit = parseLimit(query);
  const matches = listMatcher(type, query);
  const page = context.store.page(type, {
    ...(route.namespace === undefined ? {} : { namespace: route.namespace }),
    ...(matches ? { matches } : {}),
    ...(limit === undefined ? {} : { limit }),
    continueToken: query.get("continue"),
  });
  const head = JSON.stringify({
    kind: `${type.kind}List`,
    apiVersion: apiVersionOf(type),
    metadata: {
      resourceVersion: page.resourceVersion,
      ...(page.continueToken ? { continue: page.continueToken } : {}),
      // The store counts what is left only when no selector filters it, like the API server.
      ...(page.remainingItemCount !== undefined ? { remainingItemCount: page.remainingItemCount } : {}),
    },
  });
  // Items of a real list carry no apiVersion/kind (code must not rely on them): the stored text is
  // kept without them, so the page is its items' text joined.
  const items = page.items.map((item) => item.body).join(",");
  return { status: 200, body: new JsonText(`${head.slice(0, -1)},"items":[${items}]}`) };
}
