/**
 * The kinds this API serves, and the discovery documents built from them. Only what Kubler uses:
 * anything else answers 404 like a resource the cluster does not have.
 */

export interface ResourceType {
  group: string;
  version: string;
  plural: string;
  singular: string;
  kind: string;
  namespaced: boolean;
  shortNames: readonly string[];
  /** `status` has its own endpoint: writes to the main resource leave status alone, and vice versa. */
  hasStatus: boolean;
  /** metadata.generation is set and bumped on spec changes (workload controllers read it). */
  tracksGeneration: boolean;
}

const ALL_VERBS = ["create", "delete", "deletecollection", "get", "list", "patch", "update"] as const;

export const RESOURCE_TYPES: readonly ResourceType[] = [
  resource("", "v1", "namespaces", "Namespace", { namespaced: false, shortNames: ["ns"], hasStatus: true }),
  resource("", "v1", "serviceaccounts", "ServiceAccount", { shortNames: ["sa"] }),
  resource("", "v1", "secrets", "Secret"),
  resource("", "v1", "configmaps", "ConfigMap", { shortNames: ["cm"] }),
  resource("", "v1", "services", "Service", { shortNames: ["svc"], hasStatus: true }),
  resource("rbac.authorization.k8s.io", "v1", "roles", "Role"),
  resource("rbac.authorization.k8s.io", "v1", "rolebindings", "RoleBinding"),
  // Read by the RBAC authorizer (rbac.ts); Kubler itself writes none.
  resource("rbac.authorization.k8s.io", "v1", "clusterroles", "ClusterRole", { namespaced: false }),
  resource("rbac.authorization.k8s.io", "v1", "clusterrolebindings", "ClusterRoleBinding", {
    namespaced: false,
  }),
  resource("apps", "v1", "deployments", "Deployment", {
    shortNames: ["deploy"],
    hasStatus: true,
    tracksGeneration: true,
  }),
  resource("apps", "v1", "statefulsets", "StatefulSet", {
    shortNames: ["sts"],
    hasStatus: true,
    tracksGeneration: true,
  }),
  resource("apps", "v1", "daemonsets", "DaemonSet", {
    shortNames: ["ds"],
    hasStatus: true,
    tracksGeneration: true,
  }),
  resource("batch", "v1", "jobs", "Job", { hasStatus: true, tracksGeneration: true }),
  // Written by the simulated Job controller; clients read them (and their logs) to see how a Job ended.
  resource("", "v1", "pods", "Pod", { shortNames: ["po"], hasStatus: true }),
];

function resource(
  group: string,
  version: string,
  plural: string,
  kind: string,
  traits: Partial<Pick<ResourceType, "namespaced" | "shortNames" | "hasStatus" | "tracksGeneration">> = {},
): ResourceType {
  return {
    group,
    version,
    plural,
    singular: kind.toLowerCase(),
    kind,
    namespaced: true,
    shortNames: [],
    hasStatus: false,
    tracksGeneration: false,
    ...traits,
  };
}

/** `v1`, `apps/v1`. */
export function apiVersionOf(type: { group: string; version: string }): string {
  return type.group ? `${type.group}/${type.version}` : type.version;
}

export function findByPath(group: string, version: string, plural: string): ResourceType | undefined {
  return RESOURCE_TYPES.find(
    (type) => type.group === group && type.version === version && type.plural === plural,
  );
}

/** The served type of a kind this module itself creates or reads (a programming error if absent). */
export function typeOfKind(kind: string): ResourceType {
  const type = RESOURCE_TYPES.find((candidate) => candidate.kind === kind);
  if (!type) throw new Error(`memory-kubernetes does not serve ${kind}`);
  return type;
}

export function findByKind(apiVersion: string, kind: string): ResourceType | undefined {
  return RESOURCE_TYPES.find((type) => apiVersionOf(type) === apiVersion && type.kind === kind);
}

/** The group/versions served, core ("") first. */
export function servedGroupVersions(): { group: string; version: string }[] {
  const seen = new Map<string, { group: string; version: string }>();
  for (const { group, version } of RESOURCE_TYPES) seen.set(`${group}/${version}`, { group, version });
  return [...seen.values()];
}

/** `GET /api/v1`, `GET /apis/apps/v1`: the APIResourceList `KubernetesObjectApi` resolves kinds with. */
export function apiResourceList(group: string, version: string): Record<string, unknown> | undefined {
  const types = RESOURCE_TYPES.filter((type) => type.group === group && type.version === version);
  if (types.length === 0) return undefined;
  const resources: Record<string, unknown>[] = [];
  for (const type of types) {
    // The main resource must come before its subresources: clients take the first entry of a kind.
    resources.push({
      name: type.plural,
      singularName: type.singular,
      namespaced: type.namespaced,
      kind: type.kind,
      verbs: type.kind === "Namespace" ? ALL_VERBS.filter((verb) => verb !== "deletecollection") : ALL_VERBS,
      ...(type.shortNames.length > 0 ? { shortNames: type.shortNames } : {}),
    });
    if (type.hasStatus) {
      resources.push({
        name: `${type.plural}/status`,
        singularName: "",
        namespaced: type.namespaced,
        kind: type.kind,
        verbs: ["get", "patch", "update"],
      });
    }
    if (type.kind === "Pod") {
      resources.push({ name: "pods/log", singularName: "", namespaced: true, kind: "Pod", verbs: ["get"] });
    }
    if (type.kind === "ServiceAccount") {
      resources.push({
        name: "serviceaccounts/token",
        singularName: "",
        namespaced: true,
        group: "authentication.k8s.io",
        version: "v1",
        kind: "TokenRequest",
        verbs: ["create"],
      });
    }
  }
  return {
    kind: "APIResourceList",
    apiVersion: "v1",
    groupVersion: apiVersionOf({ group, version }),
    resources,
  };
}

function apiGroup(group: string): Record<string, unknown> {
  const versions = servedGroupVersions()
    .filter((served) => served.group === group)
    .map((served) => ({ groupVersion: apiVersionOf(served), version: served.version }));
  return { name: group, versions, preferredVersion: versions[0] };
}

/** `GET /apis`. */
export function apiGroupList(): Record<string, unknown> {
  const groups = [...new Set(servedGroupVersions().map(({ group }) => group))].filter(Boolean);
  return { kind: "APIGroupList", apiVersion: "v1", groups: groups.map(apiGroup) };
}

/** `GET /apis/<group>`, or undefined for a group not served. */
export function apiGroupDocument(group: string): Record<string, unknown> | undefined {
  if (!group || !RESOURCE_TYPES.some((type) => type.group === group)) return undefined;
  return { kind: "APIGroup", apiVersion: "v1", ...apiGroup(group) };
}

/** `GET /api`. */
export function apiVersions(serverAddress: string): Record<string, unknown> {
  return {
    kind: "APIVersions",
    versions: ["v1"],
    serverAddressByClientCIDRs: [{ clientCIDR: "0.0.0.0/0", serverAddress }],
  };
}

/** `GET /version`: a plausible recent server, marked as the in-memory one. */
export const VERSION_INFO = {
  major: "1",
  minor: "31",
  gitVersion: "v1.31.0+kubler-memory",
  gitCommit: "0000000000000000000000000000000000000000",
  gitTreeState: "clean",
  buildDate: "2026-01-01T00:00:00Z",
  goVersion: "none",
  compiler: "none",
  platform: "memory/node",
} as const;
