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
 *
 * And its escalation check (k8s.io/kubernetes/pkg/registry/rbac: the Role, ClusterRole, RoleBinding
 * and ClusterRoleBinding storages, validation.ConfirmNoEscalation): an account may write a role only
 * with rules it holds itself in that namespace, unless it may `escalate` that role, and a binding only
 * to a role whose rules it holds, unless it may `bind` that role.
 */
import { KubeApiError, notFoundError } from "./errors.js";
import { deepEqual, isPlainObject } from "./json.js";
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
  nonResourceURLs?: readonly string[];
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
  return bindingsFor(objects, user, request.namespace).some(({ binding, namespace }) =>
    rulesOf(roleOf(objects, binding, namespace)).some((rule) => ruleAllows(rule, request)),
  );
}

/** The bindings that name the account: every ClusterRoleBinding, and the RoleBindings of `namespace`. */
function bindingsFor(
  objects: RbacObjects,
  user: ServiceAccountUser,
  namespace: string,
): { binding: KubeObject; namespace: string }[] {
  const bindings = [
    ...objects.clusterRoleBindings().map((binding) => ({ binding, namespace: "" })),
    ...(namespace ? objects.roleBindings(namespace).map((binding) => ({ binding, namespace })) : []),
  ];
  return bindings.filter(({ binding, namespace: at }) => {
    const subjects = Array.isArray(binding.subjects) ? binding.subjects : [];
    return subjects.some((subject) => subjectMatches(subject, user, at));
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
    nonResourceURLs: strings(rule.nonResourceURLs),
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

/**
 * The rules RBAC grants the account in `namespace` (validation.DefaultRuleResolver.RulesFor): those
 * of the roles of every binding that names it. A role that does not exist adds nothing.
 */
function rulesFor(objects: RbacObjects, user: ServiceAccountUser, namespace: string): PolicyRule[] {
  return bindingsFor(objects, user, namespace).flatMap(({ binding, namespace: at }) =>
    rulesOf(roleOf(objects, binding, at)),
  );
}

/** A rule with one verb, one group and resource (or one non-resource URL), and at most one name. */
function breakdownRule(rule: PolicyRule): PolicyRule[] {
  const atoms: PolicyRule[] = [];
  for (const group of rule.apiGroups ?? [])
    for (const resource of rule.resources ?? [])
      for (const verb of rule.verbs) {
        const names = rule.resourceNames ?? [];
        if (names.length === 0) atoms.push({ verbs: [verb], apiGroups: [group], resources: [resource] });
        for (const name of names)
          atoms.push({ verbs: [verb], apiGroups: [group], resources: [resource], resourceNames: [name] });
      }
  for (const url of rule.nonResourceURLs ?? [])
    for (const verb of rule.verbs) atoms.push({ verbs: [verb], nonResourceURLs: [url] });
  return atoms;
}

const hasAll = (set: readonly string[] | undefined, wanted: readonly string[] | undefined) =>
  (wanted ?? []).every((value) => (set ?? []).includes(value));

/** A resource of `*`, the resource itself, or for a subresource `*\/<subresource>` (resourceCoversAll). */
function resourcesCover(
  owner: readonly string[] | undefined,
  wanted: readonly string[] | undefined,
): boolean {
  const held = owner ?? [];
  if (held.includes("*")) return true;
  return (wanted ?? []).every((resource) => {
    if (held.includes(resource)) return true;
    const slash = resource.indexOf("/");
    return slash !== -1 && held.includes(`*/${resource.slice(slash + 1)}`);
  });
}

/** `/apis/*` covers every path under `/apis/` (nonResourceURLCovers). */
function urlsCover(owner: readonly string[] | undefined, wanted: readonly string[] | undefined): boolean {
  return (wanted ?? []).every((path) =>
    (owner ?? []).some(
      (held) => held === path || (held.endsWith("*") && path.startsWith(held.replace(/\*+$/, ""))),
    ),
  );
}

/** ruleCovers: whether one rule of the account holds one broken-down rule. */
function ruleCovers(owner: PolicyRule, atom: PolicyRule): boolean {
  const ownerNames = owner.resourceNames ?? [];
  const atomNames = atom.resourceNames ?? [];
  return (
    (owner.verbs.includes("*") || hasAll(owner.verbs, atom.verbs)) &&
    ((owner.apiGroups ?? []).includes("*") || hasAll(owner.apiGroups, atom.apiGroups)) &&
    resourcesCover(owner.resources, atom.resources) &&
    urlsCover(owner.nonResourceURLs, atom.nonResourceURLs) &&
    (ownerNames.length === 0 || (atomNames.length > 0 && hasAll(ownerNames, atomNames)))
  );
}

/**
 * What of `wanted` the `held` rules do not cover, broken down to one verb, resource and name each
 * (k8s.io/component-helpers/auth/rbac/validation.Covers); empty when they cover it all.
 *
 * @example
 * uncoveredRules([{ verbs: ["get"], apiGroups: [""], resources: ["secrets"] }],
 *   [{ verbs: ["get", "list"], apiGroups: [""], resources: ["secrets"] }]);
 * // [{ verbs: ["list"], apiGroups: [""], resources: ["secrets"] }]
 */
export function uncoveredRules(held: readonly PolicyRule[], wanted: readonly PolicyRule[]): PolicyRule[] {
  return wanted.flatMap(breakdownRule).filter((atom) => !held.some((rule) => ruleCovers(rule, atom)));
}

/**
 * The missing rules as the API server lists them: verbs of the same group, resource and name merged
 * (CompactRules), each as rbacv1helpers.CompactString prints it, sorted.
 */
function describeMissing(missing: readonly PolicyRule[]): string {
  const merged = new Map<string, PolicyRule & { verbs: string[] }>();
  for (const rule of missing) {
    const key = JSON.stringify([rule.apiGroups, rule.resources, rule.resourceNames, rule.nonResourceURLs]);
    const found = merged.get(key);
    if (found) found.verbs.push(...rule.verbs.filter((verb) => !found.verbs.includes(verb)));
    else merged.set(key, { ...rule, verbs: [...rule.verbs] });
  }
  const quoted = (values: readonly string[]) => `[${values.map((value) => JSON.stringify(value)).join(" ")}]`;
  const field = (name: string, values: readonly string[] | undefined) =>
    values && values.length > 0 ? [`${name}:${quoted(values)}`] : [];
  return [...merged.values()]
    .map(
      (rule) =>
        `{${[
          ...field("APIGroups", rule.apiGroups),
          ...field("Resources", rule.resources),
          ...field("NonResourceURLs", rule.nonResourceURLs),
          ...field("ResourceNames", rule.resourceNames),
          ...field("Verbs", rule.verbs),
        ].join(", ")}}`,
    )
    .sort()
    .join("\n");
}

const ROLE_KINDS: Readonly<Record<string, string>> = { Role: "roles", ClusterRole: "clusterroles" };
const BINDING_KINDS = ["RoleBinding", "ClusterRoleBinding"];

/**
 * Only what the garbage collector writes changes (IsOnlyMutatingGCFields: owner references and
 * finalizers), or nothing: such an update is not checked. The server's own bookkeeping of the write
 * (resourceVersion, managed fields) is left out of the comparison.
 */
function onlyGcFieldsChange(next: KubeObject, previous: KubeObject): boolean {
  const comparable = (object: KubeObject) => {
    const {
      ownerReferences: _owners,
      finalizers: _finalizers,
      selfLink: _selfLink,
      managedFields: _fields,
      resourceVersion: _version,
      ...metadata
    } = object.metadata;
    return { ...object, metadata };
  };
  return deepEqual(comparable(next), comparable(previous));
}

/**
 * Kubernetes' escalation check of a write of a Role, ClusterRole, RoleBinding or ClusterRoleBinding by
 * a ServiceAccount, on the object as the write would leave it (`next`; `previous` what is stored):
 * - a role: allowed with `escalate` on it (RoleEscalationAuthorized: the request's name, none on a
 *   create), else every rule must be one the account holds in the role's namespace (cluster-wide for
 *   a ClusterRole): ConfirmNoEscalation's 403 lists the rules it does not hold;
 * - a binding: allowed with `bind` on the role it refers to (BindingAuthorized: that role's name, in
 *   the binding's namespace), else the role must exist (404) and the account must hold its rules.
 * An update that changes only owner references or finalizers is not checked. No-op for other kinds.
 * Not modelled: a ClusterRole with an aggregationRule, which Kubernetes lets only a writer holding
 * every right (`*` on everything) set or change; Kubler writes no ClusterRole.
 *
 * @example
 * confirmNoEscalation(storeRbacObjects(store), user, route, dryRunResult, store.find(...)?.parse());
 */
export function confirmNoEscalation(
  objects: RbacObjects,
  user: ServiceAccountUser,
  route: ResourceRoute,
  next: KubeObject,
  previous: KubeObject | undefined,
): void {
  const { kind } = route.type;
  const isRole = kind in ROLE_KINDS;
  if (!isRole && !BINDING_KINDS.includes(kind)) return;
  if (previous && onlyGcFieldsChange(next, previous)) return;
  const namespace = route.namespace ?? "";
  const may = (verb: string, resource: string, name: string) =>
    isAllowed(objects, user, { verb, apiGroup: RBAC_GROUP, resource, subresource: "", namespace, name });
  let wanted: PolicyRule[];
  if (isRole) {
    if (may("escalate", route.type.plural, route.name ?? "")) return;
    wanted = rulesOf(next);
  } else {
    const ref = isPlainObject(next.roleRef) ? next.roleRef : {};
    const resource = ROLE_KINDS[String(ref.kind)];
    const name = typeof ref.name === "string" ? ref.name : "";
    if (resource && ref.apiGroup === RBAC_GROUP && may("bind", resource, name)) return;
    const role = roleOf(objects, next, namespace);
    if (!role) throw notFoundError({ group: RBAC_GROUP, plural: resource ?? "roles" }, name);
    wanted = rulesOf(role);
  }
  const missing = uncoveredRules(rulesFor(objects, user, namespace), wanted);
  if (missing.length === 0) return;
  const groups = groupsOf(user)
    .map((group) => JSON.stringify(group))
    .join(" ");
  const why = `user "${userNameOf(user)}" (groups=[${groups}]) is attempting to grant RBAC permissions not currently held:\n${describeMissing(missing)}`;
  const name = next.metadata.name;
  throw new KubeApiError(
    403,
    "Forbidden",
    `${route.type.plural}.${RBAC_GROUP} "${name}" is forbidden: ${why}`,
    { name, group: RBAC_GROUP, kind: route.type.plural },
  );
}

/** Writes the escalation check looks at: a role or binding created, updated, patched or applied. */
export function writesRbac(route: ResourceRoute): boolean {
  const { kind } = route.type;
  return (
    (kind in ROLE_KINDS || BINDING_KINDS.includes(kind)) &&
    route.subresource === undefined &&
    ["create", "update", "patch", "apply"].includes(route.verb)
  );
}
