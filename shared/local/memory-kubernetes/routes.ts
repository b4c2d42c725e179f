/**
 * Request paths to what they address, following the API server's URL layout:
 * `/api/v1[/namespaces/{ns}]/{resource}[/{name}[/{subresource}]]` for the core group and
 * `/apis/{group}/{version}/...` for the others.
 */
import { badRequestError, KubeApiError, methodNotAllowedError } from "./errors.js";
import { findByPath, type ResourceType } from "./resources.js";

export type Verb = "get" | "list" | "create" | "update" | "patch" | "apply" | "delete" | "deletecollection";

export const APPLY_CONTENT_TYPE = "application/apply-patch+yaml";

export interface ResourceRoute {
  kind: "resource";
  verb: Verb;
  type: ResourceType;
  /** The namespace in the path; undefined for cluster-scoped kinds and all-namespace lists. */
  namespace?: string;
  name?: string;
  subresource?: "status" | "token" | "log";
}

export type DiscoveryRoute =
  | { kind: "discovery"; document: "api" | "apis" | "version" | "health" }
  | { kind: "discovery"; document: "group"; group: string }
  | { kind: "discovery"; document: "resources"; group: string; version: string };

export type Route = ResourceRoute | DiscoveryRoute;

const NOT_FOUND = () => new KubeApiError(404, "NotFound", "the server could not find the requested resource");

function decodeSegment(segment: string): string {
  try {
    return decodeURIComponent(segment);
  } catch {
    // A malformed escape names nothing this server has.
    throw NOT_FOUND();
  }
}

/** Resolves a request; throws the API server's 404/405 for paths or methods it does not serve. */
export function route(method: string, pathname: string, contentType: string): Route {
  const segments = pathname.split("/").filter(Boolean).map(decodeSegment);
  const [root, ...rest] = segments;
  if (root === "version" && rest.length === 0) return { kind: "discovery", document: "version" };
  if ((root === "healthz" || root === "readyz" || root === "livez") && rest.length === 0) {
    return { kind: "discovery", document: "health" };
  }
  if (root === "api") {
    if (rest.length === 0) return discovery(method, { kind: "discovery", document: "api" });
    const [version, ...path] = rest;
    if (path.length === 0)
      return discovery(method, {
        kind: "discovery",
        document: "resources",
        group: "",
        version: version as string,
      });
    return resourceRoute(method, "", version as string, path, contentType);
  }
  if (root === "apis") {
    const [group, version, ...path] = rest;
    if (group === undefined) return discovery(method, { kind: "discovery", document: "apis" });
    if (version === undefined) return discovery(method, { kind: "discovery", document: "group", group });
    if (path.length === 0)
      return discovery(method, { kind: "discovery", document: "resources", group, version });
    return resourceRoute(method, group, version, path, contentType);
  }
  throw NOT_FOUND();
}

function discovery(method: string, found: DiscoveryRoute): DiscoveryRoute {
  if (method !== "GET")
    throw methodNotAllowedError(`the server does not allow this method on the requested resource`);
  return found;
}

/** `path` is what follows `/api/v1` or `/apis/{group}/{version}`. */
function resourceRoute(
  method: string,
  group: string,
  version: string,
  path: string[],
  contentType: string,
): ResourceRoute {
  let namespace: string | undefined;
  let rest = path;
  // `/namespaces/{ns}/{resource}...` is namespaced content; `/namespaces[/{name}[/status]]` is the Namespace kind.
  if (path[0] === "namespaces" && path.length >= 3 && path[2] !== "status" && path[2] !== "finalize") {
    namespace = path[1];
    rest = path.slice(2);
  }
  const [plural, name, subresource, ...extra] = rest;
  const type = plural === undefined ? undefined : findByPath(group, version, plural);
  if (!type || extra.length > 0) throw NOT_FOUND();
  if (namespace !== undefined && !type.namespaced) throw NOT_FOUND();
  if (subresource !== undefined && !isServedSubresource(type, subresource)) throw NOT_FOUND();
  const found = {
    type,
    ...(namespace === undefined ? {} : { namespace }),
    ...(name === undefined ? {} : { name }),
  };
  const sub = subresource as ResourceRoute["subresource"];
  if (type.namespaced && namespace === undefined && name !== undefined) throw NOT_FOUND();
  if (name === undefined) {
    switch (method) {
      case "GET":
        return { kind: "resource", verb: "list", ...found };
      case "POST":
        if (type.namespaced && namespace === undefined)
          throw methodNotAllowedError("create needs a namespace in the path");
        return { kind: "resource", verb: "create", ...found };
      case "DELETE":
        if (type.kind === "Namespace")
          throw methodNotAllowedError("the server does not allow this method on the requested resource");
        return { kind: "resource", verb: "deletecollection", ...found };
    }
  } else if (sub === "token") {
    if (method === "POST") return { kind: "resource", verb: "create", ...found, subresource: sub };
  } else if (sub === "log") {
    if (method === "GET") return { kind: "resource", verb: "get", ...found, subresource: sub };
  } else {
    const withSub = sub === undefined ? found : { ...found, subresource: sub };
    switch (method) {
      case "GET":
        return { kind: "resource", verb: "get", ...withSub };
      case "PUT":
        return { kind: "resource", verb: "update", ...withSub };
      case "PATCH":
        return { kind: "resource", verb: contentType === APPLY_CONTENT_TYPE ? "apply" : "patch", ...withSub };
      case "DELETE":
        if (sub !== undefined) break;
        return { kind: "resource", verb: "delete", ...withSub };
    }
  }
  throw methodNotAllowedError("the server does not allow this method on the requested resource");
}

function isServedSubresource(type: ResourceType, subresource: string): boolean {
  return (
    (subresource === "status" && type.hasStatus) ||
    (subresource === "token" && type.kind === "ServiceAccount") ||
    (subresource === "log" && type.kind === "Pod")
  );
}

/** A list that asks to watch instead (`?watch=true` or `1`). */
export function isWatch(query: URLSearchParams): boolean {
  return query.get("watch") === "true" || query.get("watch") === "1";
}

/** The `dryRun` query parameter: only `All` exists. */
export function isDryRun(query: URLSearchParams): boolean {
  const values = query.getAll("dryRun");
  for (const value of values) {
    if (value !== "All") throw badRequestError(`Invalid dry run value: "${value}" (supported: "All")`);
  }
  return values.length > 0;
}
