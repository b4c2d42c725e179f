/**
 * RBAC for the ServiceAccount tokens this server issued, decided as the API server's RBAC authorizer
 * decides (k8s.io/kubernetes/plugin/pkg/auth/authorizer/rbac, and k8s.io/apiserver's RequestInfo for
 * what a request is): a request is allowed when a RoleBinding in its namespace, or a
 * ClusterRoleBinding, binds the account (or one of its groups) to a Role or ClusterRole with a rule
 * that matches. Otherwise 403, worded as the API server words it. The admin token is not checked here.
 *
 * Deliberately like Kubernetes: `*` wildcards in verbs, apiGroups and resources (a resource of `*`, a
 * slash and a subresource matches that subresource of any resource), exact resourceNames only, which never match a request without a name
 * (create and deletecollection of a collection; list and watch unless a `metadata.name=` field selector
 * names one); a server-side apply that would create its object is also checked for `create`.
 */
import { KubeApiError } from "./errors.js";
import { isPlainObject } from "./json.js";
import { typeOfKind } from "./resources.js";
import { isWatch, type ResourceRoute } from "./routes.js";
import type { ObjectStore } from "./store.js";
import type { KubeObject } from "./types.js";

/** What RBAC looks at in a request; "" where the request has none (a cluster-scoped kind, a collection). */
export interface RequestAttributes {
  verb: string;
  apiGroup: string;
  resource: string;
  subresource: string;
  namespace: string;
  name: string;
}

/** A ServiceAccount a token was issued for. */
export interface ServiceAccountUser {
  namespace: string;
  name: string;
}

/** One `rules[]` entry of a Role or ClusterRole. */
export interface PolicyRule {
  verbs: readonly string[];
  apiGroups?: readonly string[];
  resources?: readonly string[];
  resourceNames?: readonly string[];
}

/** The RBAC objects a decision reads. */
export interface RbacObjects {
  roleBindings(namespace: string): readonly KubeObject[];
  clusterRoleBindings(): readonly KubeObject[];
  role(namespace: string, name: string): KubeObject | undefined;
  clusterRole(name: string): KubeObject | undefined;
}

const RBAC_GROUP = "rbac.authorization.k8s.io";

/** `system:serviceaccount:<namespace>:<name>`, the user name Kubernetes gives a ServiceAccount token. */
function userNameOf(user: ServiceAccountUser): string {
  return `system:serviceaccount:${user.namespace}:${user.name}`;
}

/** The groups Kubernetes puts a ServiceAccount token in. */
function groupsOf(user: ServiceAccountUser): string[] {
  return ["system:serviceaccounts", `system:serviceaccounts:${user.namespace}`, "system:authenticated"];
}

/**
 * The request as RBAC sees it: Kubernetes' verb (a PATCH, apply included, is `patch`; a collection
 * GET is `list`, or `watch`), the resource plural and subresource, and the namespace and name from
 * the URL. A Namespace's own requests are in that namespace, as in Kubernetes.
 *
 * @example
 * requestAttributes(route("GET", "/apis/apps/v1/namespaces/ns/deployments", ""), new URLSearchParams("watch=1"));
 * // { verb: "watch", apiGroup: "apps", resource: "deployments", subresource: "", namespace: "ns", name: "" }
 */
export function requestAttributes(route: ResourceRoute, query: URLSearchParams): RequestAttributes {
  let verb: string = route.verb === "apply" ? "patch" : route.verb;
  let name = route.name ?? "";
  if (verb === "list") {
    if (isWatch(query)) verb = "watch";
    name = nameFromFieldSelector(query.get("fieldSelector"));
  }
  const isNamespace = route.type.kind === "Namespace";
  return {
    verb,
    apiGroup: route.type.group,
    resource: route.type.plural,
    subresource: route.subresource ?? "",
    namespace: isNamespace ? (route.name ?? "") : (route.namespace ?? ""),
    name,
  };
}

/** A list or watch is by name when its field selector requires one `metadata.name` (RequestInfo does so). */
function nameFromFieldSelector(selector: string | null): string {
  for (const term of (selector ?? "").split(",")) {
    const match = /^\s*metadata\.name\s*(?:==|=)\s*(.*?)\s*$/.exec(term);
    if (match?.[1] && !/[/%]/.test(match[1]) && match[1] !== "." && match[1] !== "..") return match[1];
  }
  return "";
}

/**
 * Whether one rule allows the request (rbac/v1 helpers' VerbMatches, APIGroupMatches, ResourceMatches,
 * ResourceNameMatches).
 *
 * @example
 * ruleAllows({ verbs: ["get"], apiGroups: [""], resources: ["secrets"], resourceNames: ["db"] },
 *   { verb: "get", apiGroup: "", resource: "secrets", subresource: "", namespace: "ns", name: "db" }); // true
 */
export function ruleAllows(rule: PolicyRule, request: RequestAttributes): boolean {
  const matches = (values: readonly string[] | undefined, value: string) =>
    (values ?? []).some((candidate) => candidate === "*" || candidate === value);
  const resource = request.subresource ? `${request.resource}/${request.subresource}` : request.resource;
  const resourceMatches = (rule.resources ?? []).some(
    (candidate) =>
      candidate === "*" ||
      candidate === resource ||
      (request.subresource !== "" && candidate === `*/${request.subresource}`),
  );
  const names = rule.resourceNames ?? [];
  return (
    matches(rule.verbs, request.verb) &&
    matches(rule.apiGroups, request.apiGroup) &&
    resourceMatches &&
    (names.length === 0 || (request.name !== "" && names.includes(request.name)))
  );
}

/** Whether a binding's subject is this account, by kind: ServiceAccount, User (its user name) or Group. */
export function subjectMatches(
  subject: unknown,
  user: ServiceAccountUser,
  bindingNamespace: string,
): boolean {
  if (!isPlainObject(subject)) return false;
  const { kind, name } = subject;
  switch (kind) {
    case "ServiceAccount": {
      // A RoleBinding's subject without a namespace means the binding's own (RBAC's appliesToUser).
      const namespace =
        typeof subject.namespace === "string" && subject.namespace ? subject.namespace : bindingNamespace;
      return namespace !== "" && namespace === user.namespace && name === user.name;
    }
    case "User":
      return name === userNameOf(user);
    case "Group":
      return typeof name === "string" && groupsOf(user).includes(name);
    default:
      return false;
  }
}

/**
 * RBAC's decision: some binding that applies to the request's namespace (RoleBindings of that
 * namespace, every ClusterRoleBinding) names the account and refers to a role with a matching rule.
 * A binding whose role does not exist grants nothing.
 *
 * @example
 * isAllowed(storeRbacObjects(store), { namespace: "ns", name: "kubler-ci-kubler-deployer" }, attributes);
 */
export function isAllowed(
  objects: RbacObjects,
  user: ServiceAccountUser,
  request: RequestAttributes,
): boolean {
  const bindings = [
    ...objects.clusterRoleBindings().map((binding) => ({ binding, namespace: "" })),
    ...(request.namespace
      ? objects.roleBindings(request.namespace).map((binding) => ({ binding, namespace: request.namespace }))
      : []),
  ];
  return bindings.some(({ binding, namespace }) => {
    const subjects = Array.isArray(binding.subjects) ? binding.subjects : [];
    if (!subjects.some((subject) => subjectMatches(subject, user, namespace))) return false;
    return rulesOf(roleOf(objects, binding, namespace)).some((rule) => ruleAllows(rule, request));
  });
}

function roleOf(objects: RbacObjects, binding: KubeObject, namespace: string): KubeObject | undefined {
  const ref = isPlainObject(binding.roleRef) ? binding.roleRef : {};
  if (ref.apiGroup !== RBAC_GROUP || typeof ref.name !== "string") return undefined;
  if (ref.kind === "ClusterRole") return objects.clusterRole(ref.name);
  // A ClusterRoleBinding may refer to ClusterRoles only.
  if (ref.kind === "Role" && namespace) return objects.role(namespace, ref.name);
  return undefined;
}

function rulesOf(role: KubeObject | undefined): PolicyRule[] {
  const rules = Array.isArray(role?.rules) ? role.rules : [];
  const strings = (value: unknown) =>
    Array.isArray(value) ? value.filter((item): item is string => typeof item === "string") : [];
  return rules.filter(isPlainObject).map((rule) => ({
    verbs: strings(rule.verbs),
    apiGroups: strings(rule.apiGroups),
    resources: strings(rule.resources),
    resourceNames: strings(rule.resourceNames),
  }));
}

/** The RBAC objects of the server's store, read at decision time (a change applies to the next request). */
export function storeRbacObjects(store: ObjectStore): RbacObjects {
  const read = (kind: string, namespace: string | undefined, name: string) =>
    store.find(typeOfKind(kind), namespace, name)?.parse();
  return {
    roleBindings: (namespace) => store.all(typeOfKind("RoleBinding"), namespace),
    clusterRoleBindings: () => store.all(typeOfKind("ClusterRoleBinding")),
    role: (namespace, name) => read("Role", namespace, name),
    clusterRole: (name) => read("ClusterRole", undefined, name),
  };
}

/**
 * The API server's 403 (responsewriters.Forbidden): `deployments.apps "web" is forbidden: User
 * "system:serviceaccount:ns:sa" cannot delete resource "deployments" in API group "apps" in the
 * namespace "ns"`, details naming the resource and the name.
 */
export function rbacForbiddenError(user: ServiceAccountUser, request: RequestAttributes): KubeApiError {
  const resource = request.subresource ? `${request.resource}/${request.subresource}` : request.resource;
  const scope = request.namespace ? `in the namespace "${request.namespace}"` : "at the cluster scope";
  const why = `User "${userNameOf(user)}" cannot ${request.verb} resource "${resource}" in API group "${request.apiGroup}" ${scope}`;
  const qualified = request.apiGroup ? `${request.resource}.${request.apiGroup}` : request.resource;
  const subject = request.name ? `${qualified} "${request.name}"` : qualified;
  return new KubeApiError(403, "Forbidden", `${subject} is forbidden: ${why}`, {
    ...(request.name ? { name: request.name } : {}),
    ...(request.apiGroup ? { group: request.apiGroup } : {}),
    kind: request.resource,
  });
}

/**
 * Authorizes a ServiceAccount's request against the store's RBAC objects; throws the 403. A server-side
 * apply of an object that does not exist yet creates it, so Kubernetes checks `create` on its name
 * too (k8s.io/apiserver handlers/patch.go, withAuthorization): a Role with `patch` alone cannot apply
 * a new object.
 *
 * @example
 * authorizeRequest(store, { namespace: "ns", name: "kubler-ci-kubler-deployer" }, found, url.searchParams);
 */
export function authorizeRequest(
  store: ObjectStore,
  user: ServiceAccountUser,
  route: ResourceRoute,
  query: URLSearchParams,
): void {
  const objects = storeRbacObjects(store);
  const request = requestAttributes(route, query);
  if (!isAllowed(objects, user, request)) throw rbacForbiddenError(user, request);
  const creates =
    route.verb === "apply" &&
    route.subresource === undefined &&
    route.name !== undefined &&
    !store.find(route.type, route.namespace, route.name);
  if (creates) {
    const create = { ...request, verb: "create" };
    if (!isAllowed(objects, user, create)) throw rbacForbiddenError(user, create);
  }
}
