/** One request, routed, answered: discovery documents or an operation on a resource. */
import type { ApiContext } from "./admission.js";
import { KubeApiError } from "./errors.js";
import { get, list } from "./reads.js";
import { apiGroupDocument, apiGroupList, apiResourceList, apiVersions, VERSION_INFO } from "./resources.js";
import type { Route } from "./routes.js";
import { createToken, type IssuedTokens } from "./token-request.js";
import { type ApiAnswer, apply, create, patch, remove, removeCollection, update } from "./writes.js";

export interface ApiCall {
  route: Route;
  query: URLSearchParams;
  body: unknown;
  contentType: string;
}

const notFound = () => new KubeApiError(404, "NotFound", "the server could not find the requested resource");

export function answer(
  context: ApiContext,
  tokens: IssuedTokens,
  serverAddress: string,
  call: ApiCall,
): ApiAnswer {
  const { route, query, body, contentType } = call;
  if (route.kind === "discovery") {
    switch (route.document) {
      case "version":
        return { status: 200, body: VERSION_INFO };
      case "health":
        return { status: 200, body: "ok" };
      case "api":
        return { status: 200, body: apiVersions(serverAddress) };
      case "apis":
        return { status: 200, body: apiGroupList() };
      case "group": {
        const document = apiGroupDocument(route.group);
        if (!document) throw notFound();
        return { status: 200, body: document };
      }
      case "resources": {
        const document = apiResourceList(route.group, route.version);
        if (!document) throw notFound();
        return { status: 200, body: document };
      }
    }
  }
  const request = { route, query, body, contentType };
  switch (route.verb) {
    case "get":
      if (route.subresource === "log") {
        return {
          status: 200,
          body: context.jobs.log(route.namespace as string, route.name as string, query),
        };
      }
      return get(context, route);
    case "list":
      return list(context, route, query);
    case "create":
      return route.subresource === "token"
        ? createToken(context, tokens, route, query, body)
        : create(context, request);
    case "update":
      return update(context, request);
    case "patch":
      return patch(context, request);
    case "apply":
      return apply(context, request);
    case "delete":
      return remove(context, request);
    case "deletecollection":
      return removeCollection(context, request);
  }
}
