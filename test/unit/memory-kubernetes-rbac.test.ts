/**
 * The embedded API's RBAC, decided as Kubernetes decides it: what a request is (verb, resource,
 * namespace, name), which rules match it, which bindings apply to a ServiceAccount, and the 403.
 */
import { describe, expect, it } from "vitest";
import type { KubeObject } from "../../shared/domain/kube-object.js";
import {
  confirmNoEscalation,
  isAllowed,
  type PolicyRule,
  type RbacObjects,
  type RequestAttributes,
  rbacForbiddenError,
  requestAttributes,
  ruleAllows,
  subjectMatches,
  uncoveredRules,
} from "../../shared/local/memory-kubernetes/rbac.js";
import {
  APPLY_CONTENT_TYPE,
  type ResourceRoute,
  route,
} from "../../shared/local/memory-kubernetes/routes.js";

const JOB = { namespace: "app-review", name: "kubler-ci-kubler-deployer" };

function attributesOf(method: string, path: string, query = "", contentType = "application/json") {
  return requestAttributes(route(method, path, contentType) as ResourceRoute, new URLSearchParams(query));
}

function request(overrides: Partial<RequestAttributes>): RequestAttributes {
  return {
    verb: "get",
    apiGroup: "apps",
    resource: "deployments",
    subresource: "",
    namespace: "app-review",
    name: "web",
    ...overrides,
  };
}

describe("requestAttributes: a request as RBAC sees it", () => {
  const deployments = "/apis/apps/v1/namespaces/ns/deployments";
  it.each([
    ["GET", `${deployments}/web`, "", "application/json", "get", "web"],
    ["GET", deployments, "", "application/json", "list", ""],
    ["GET", deployments, "watch=1", "application/json", "watch", ""],
    ["GET", deployments, "watch=true&resourceVersion=5", "application/json", "watch", ""],
    ["POST", deployments, "", "application/json", "create", ""],
    ["PUT", `${deployments}/web`, "", "application/json", "update", "web"],
    ["PATCH", `${deployments}/web`, "", "application/merge-patch+json", "patch", "web"],
    ["PATCH", `${deployments}/web`, "fieldManager=kubler", APPLY_CONTENT_TYPE, "patch", "web"],
    ["DELETE", `${deployments}/web`, "", "application/json", "delete", "web"],
    ["DELETE", deployments, "", "application/json", "deletecollection", ""],
  ])("%s %s?%s (%s) → %s", (method, path, query, contentType, verb, name) => {
    expect(attributesOf(method, path, query, contentType)).toEqual({
      verb,
      apiGroup: "apps",
      resource: "deployments",
      subresource: "",
      namespace: "ns",
      name,
    });
  });

  it("names subresources apart: serviceaccounts/token, deployments/status", () => {
    expect(attributesOf("POST", "/api/v1/namespaces/ns/serviceaccounts/ci/token")).toEqual({
      verb: "create",
      apiGroup: "",
      resource: "serviceaccounts",
      subresource: "token",
      namespace: "ns",
      name: "ci",
    });
    expect(attributesOf("GET", "/apis/apps/v1/namespaces/ns/deployments/web/status")).toMatchObject({
      verb: "get",
      resource: "deployments",
      subresource: "status",
    });
  });

  it("puts a Namespace's own requests in that namespace; its list and all-namespace lists are cluster-wide", () => {
    expect(attributesOf("GET", "/api/v1/namespaces/ns")).toMatchObject({
      resource: "namespaces",
      namespace: "ns",
      name: "ns",
    });
    expect(attributesOf("GET", "/api/v1/namespaces")).toMatchObject({ verb: "list", namespace: "" });
    expect(attributesOf("GET", "/api/v1/secrets")).toMatchObject({ verb: "list", namespace: "" });
  });

  it("takes a list's or watch's name from a metadata.name field selector, as RequestInfo does", () => {
    expect(
      attributesOf("GET", "/api/v1/namespaces/ns/secrets", "fieldSelector=metadata.name%3Ddb"),
    ).toMatchObject({ verb: "list", name: "db" });
    expect(
      attributesOf("GET", "/api/v1/namespaces/ns/secrets", "watch=1&fieldSelector=metadata.name%3D%3Ddb"),
    ).toMatchObject({ verb: "watch", name: "db" });
    expect(
      attributesOf("GET", "/api/v1/namespaces/ns/secrets", "fieldSelector=metadata.namespace%3Dns"),
    ).toMatchObject({ name: "" });
  });
});

describe("ruleAllows", () => {
  const deployer: PolicyRule = {
    apiGroups: ["apps"],
    resources: ["deployments"],
    verbs: ["get", "list", "watch", "create", "patch"],
  };

  it("needs the verb, the group and the resource", () => {
    expect(ruleAllows(deployer, request({ verb: "patch" }))).toBe(true);
    expect(ruleAllows(deployer, request({ verb: "delete" }))).toBe(false);
    expect(ruleAllows(deployer, request({ apiGroup: "" }))).toBe(false);
    expect(ruleAllows(deployer, request({ resource: "statefulsets" }))).toBe(false);
  });

  it("reads * as any verb, group or resource", () => {
    const all: PolicyRule = { apiGroups: ["*"], resources: ["*"], verbs: ["*"] };
    expect(ruleAllows(all, request({ verb: "deletecollection", apiGroup: "batch", resource: "jobs" }))).toBe(
      true,
    );
    expect(ruleAllows(all, request({ subresource: "status" }))).toBe(true);
  });

  it("keeps subresources apart: deployments does not grant deployments/status; */status grants every status", () => {
    expect(ruleAllows(deployer, request({ subresource: "status" }))).toBe(false);
    const status: PolicyRule = { apiGroups: ["apps"], resources: ["deployments/status"], verbs: ["get"] };
    expect(ruleAllows(status, request({ subresource: "status" }))).toBe(true);
    expect(ruleAllows(status, request({}))).toBe(false);
    const anyStatus: PolicyRule = { apiGroups: ["*"], resources: ["*/status"], verbs: ["get"] };
    expect(ruleAllows(anyStatus, request({ subresource: "status" }))).toBe(true);
    expect(ruleAllows(anyStatus, request({ subresource: "token" }))).toBe(false);
    expect(ruleAllows(anyStatus, request({}))).toBe(false);
    const accounts: PolicyRule = { apiGroups: [""], resources: ["serviceaccounts"], verbs: ["create"] };
    const token = request({
      verb: "create",
      apiGroup: "",
      resource: "serviceaccounts",
      subresource: "token",
    });
    expect(ruleAllows(accounts, token)).toBe(false);
  });

  it("matches resourceNames exactly (no wildcard), and never a request without a name", () => {
    const secrets: PolicyRule = {
      apiGroups: [""],
      resources: ["secrets"],
      resourceNames: ["db"],
      verbs: ["get", "patch", "list", "watch", "create", "deletecollection"],
    };
    const secret = (overrides: Partial<RequestAttributes>) =>
      request({ apiGroup: "", resource: "secrets", name: "db", ...overrides });
    expect(ruleAllows(secrets, secret({ verb: "get" }))).toBe(true);
    expect(ruleAllows(secrets, secret({ verb: "patch" }))).toBe(true);
    expect(ruleAllows(secrets, secret({ verb: "get", name: "kubler-registry" }))).toBe(false);
    for (const verb of ["list", "watch", "create", "deletecollection"]) {
      expect(ruleAllows(secrets, secret({ verb, name: "" }))).toBe(false);
    }
    // A list narrowed to the name by a field selector is by name.
    expect(ruleAllows(secrets, secret({ verb: "list", name: "db" }))).toBe(true);
    expect(ruleAllows({ ...secrets, resourceNames: ["*"] }, secret({ verb: "get" }))).toBe(false);
  });
});

describe("subjectMatches", () => {
  it("a ServiceAccount by namespace and name; a RoleBinding's subject without a namespace is the binding's", () => {
    expect(
      subjectMatches({ kind: "ServiceAccount", name: JOB.name, namespace: JOB.namespace }, JOB, "x"),
    ).toBe(true);
    expect(subjectMatches({ kind: "ServiceAccount", name: JOB.name }, JOB, JOB.namespace)).toBe(true);
    expect(subjectMatches({ kind: "ServiceAccount", name: JOB.name }, JOB, "other")).toBe(false);
    expect(subjectMatches({ kind: "ServiceAccount", name: JOB.name }, JOB, "")).toBe(false);
    expect(
      subjectMatches({ kind: "ServiceAccount", name: "default", namespace: JOB.namespace }, JOB, ""),
    ).toBe(false);
  });

  it("a User by the account's user name; a Group by the account's groups", () => {
    const user = `system:serviceaccount:${JOB.namespace}:${JOB.name}`;
    expect(subjectMatches({ kind: "User", name: user }, JOB, "")).toBe(true);
    expect(subjectMatches({ kind: "User", name: JOB.name }, JOB, "")).toBe(false);
    for (const group of [
      "system:serviceaccounts",
      `system:serviceaccounts:${JOB.namespace}`,
      "system:authenticated",
    ])
      expect(subjectMatches({ kind: "Group", name: group }, JOB, "")).toBe(true);
    expect(subjectMatches({ kind: "Group", name: "system:serviceaccounts:other" }, JOB, "")).toBe(false);
    expect(subjectMatches({ kind: "Group", name: "system:masters" }, JOB, "")).toBe(false);
  });
});

describe("isAllowed", () => {
  const rbac = "rbac.authorization.k8s.io";
  const readDeployments = [{ apiGroups: ["apps"], resources: ["deployments"], verbs: ["get"] }];
  const binding = (
    kind: string,
    namespace: string | undefined,
    roleKind: string,
    role: string,
  ): KubeObject => ({
    apiVersion: `${rbac}/v1`,
    kind,
    metadata: { name: "b", ...(namespace ? { namespace } : {}) },
    roleRef: { apiGroup: rbac, kind: roleKind, name: role },
    subjects: [{ kind: "ServiceAccount", name: JOB.name, namespace: JOB.namespace }],
  });
  const objects = (setup: {
    roleBindings?: KubeObject[];
    clusterRoleBindings?: KubeObject[];
    roles?: KubeObject[];
    clusterRoles?: KubeObject[];
  }): RbacObjects => ({
    roleBindings: (namespace) => (setup.roleBindings ?? []).filter((b) => b.metadata.namespace === namespace),
    clusterRoleBindings: () => setup.clusterRoleBindings ?? [],
    role: (namespace, name) =>
      setup.roles?.find((r) => r.metadata.namespace === namespace && r.metadata.name === name),
    clusterRole: (name) => setup.clusterRoles?.find((r) => r.metadata.name === name),
  });
  const role = (namespace: string | undefined, name: string): KubeObject => ({
    apiVersion: `${rbac}/v1`,
    kind: namespace ? "Role" : "ClusterRole",
    metadata: { name, ...(namespace ? { namespace } : {}) },
    rules: readDeployments,
  });

  it("a RoleBinding grants its Role's rules in its own namespace only", () => {
    const setup = objects({
      roleBindings: [binding("RoleBinding", "app-review", "Role", "reader")],
      roles: [role("app-review", "reader"), role("app-staging", "reader")],
    });
    expect(isAllowed(setup, JOB, request({}))).toBe(true);
    expect(isAllowed(setup, JOB, request({ namespace: "app-staging" }))).toBe(false);
    expect(isAllowed(setup, JOB, request({ namespace: "" }))).toBe(false);
    expect(isAllowed(setup, { ...JOB, name: "default" }, request({}))).toBe(false);
  });

  it("a RoleBinding to a ClusterRole grants it in the binding's namespace; a ClusterRoleBinding everywhere", () => {
    const viaRoleBinding = objects({
      roleBindings: [binding("RoleBinding", "app-review", "ClusterRole", "reader")],
      clusterRoles: [role(undefined, "reader")],
    });
    expect(isAllowed(viaRoleBinding, JOB, request({}))).toBe(true);
    expect(isAllowed(viaRoleBinding, JOB, request({ namespace: "kube-system" }))).toBe(false);
    const clusterWide = objects({
      clusterRoleBindings: [binding("ClusterRoleBinding", undefined, "ClusterRole", "reader")],
      clusterRoles: [role(undefined, "reader")],
    });
    expect(isAllowed(clusterWide, JOB, request({ namespace: "kube-system" }))).toBe(true);
    expect(isAllowed(clusterWide, JOB, request({ namespace: "" }))).toBe(true);
  });

  it("grants nothing through a missing role, or a ClusterRoleBinding that names a Role", () => {
    expect(
      isAllowed(
        objects({ roleBindings: [binding("RoleBinding", "app-review", "Role", "gone")] }),
        JOB,
        request({}),
      ),
    ).toBe(false);
    const wrongRef = objects({
      clusterRoleBindings: [binding("ClusterRoleBinding", undefined, "Role", "reader")],
      roles: [role("app-review", "reader")],
    });
    expect(isAllowed(wrongRef, JOB, request({}))).toBe(false);
  });
});

describe("rbacForbiddenError", () => {
  it("words the 403 as the API server does, with the name, the subresource and the scope", () => {
    const named = rbacForbiddenError(JOB, request({ verb: "delete" }));
    expect(named.code).toBe(403);
    expect(named.toStatus()).toEqual({
      kind: "Status",
      apiVersion: "v1",
      metadata: {},
      status: "Failure",
      message:
        'deployments.apps "web" is forbidden: User "system:serviceaccount:app-review:kubler-ci-kubler-deployer" cannot delete resource "deployments" in API group "apps" in the namespace "app-review"',
      reason: "Forbidden",
      details: { name: "web", group: "apps", kind: "deployments" },
      code: 403,
    });
    const list = rbacForbiddenError(
      JOB,
      request({ verb: "list", apiGroup: "", resource: "secrets", name: "" }),
    );
    expect(list.message).toBe(
      'secrets is forbidden: User "system:serviceaccount:app-review:kubler-ci-kubler-deployer" cannot list resource "secrets" in API group "" in the namespace "app-review"',
    );
    expect(list.details).toEqual({ kind: "secrets" });
    const token = rbacForbiddenError(
      JOB,
      request({ verb: "create", apiGroup: "", resource: "serviceaccounts", subresource: "token", name: "x" }),
    );
    expect(token.message).toContain('serviceaccounts "x" is forbidden: User');
    expect(token.message).toContain('cannot create resource "serviceaccounts/token" in API group ""');
    const cluster = rbacForbiddenError(
      JOB,
      request({ verb: "list", apiGroup: "", resource: "namespaces", namespace: "", name: "" }),
    );
    expect(cluster.message).toMatch(
      /cannot list resource "namespaces" in API group "" at the cluster scope$/,
    );
  });
});

describe("uncoveredRules: what of a role the account does not hold (Covers)", () => {
  const held: PolicyRule[] = [
    { apiGroups: ["apps"], resources: ["deployments", "statefulsets"], verbs: ["get", "list", "patch"] },
    { apiGroups: [""], resources: ["secrets"], resourceNames: ["db"], verbs: ["get"] },
    { apiGroups: [""], resources: ["*/log"], verbs: ["get"] },
    { nonResourceURLs: ["/apis/*"], verbs: ["get"] },
  ];

  it("breaks the wanted rules down to one verb, group, resource and name each, and keeps what no held rule covers", () => {
    expect(
      uncoveredRules(held, [
        { apiGroups: ["apps"], resources: ["deployments", "daemonsets"], verbs: ["get", "watch"] },
      ]),
    ).toEqual([
      { apiGroups: ["apps"], resources: ["deployments"], verbs: ["watch"] },
      { apiGroups: ["apps"], resources: ["daemonsets"], verbs: ["get"] },
      { apiGroups: ["apps"], resources: ["daemonsets"], verbs: ["watch"] },
    ]);
    expect(
      uncoveredRules(held, [{ apiGroups: ["apps"], resources: ["statefulsets"], verbs: ["list"] }]),
    ).toEqual([]);
  });

  it("a rule held by name covers only those names, never the whole kind; one without names covers every name", () => {
    expect(
      uncoveredRules(held, [
        { apiGroups: [""], resources: ["secrets"], resourceNames: ["db"], verbs: ["get"] },
      ]),
    ).toEqual([]);
    expect(uncoveredRules(held, [{ apiGroups: [""], resources: ["secrets"], verbs: ["get"] }])).toHaveLength(
      1,
    );
    expect(
      uncoveredRules(held, [
        { apiGroups: [""], resources: ["secrets"], resourceNames: ["api"], verbs: ["get"] },
      ]),
    ).toHaveLength(1);
    expect(
      uncoveredRules(held, [
        { apiGroups: ["apps"], resources: ["deployments"], resourceNames: ["web"], verbs: ["get"] },
      ]),
    ).toEqual([]);
  });

  it("wildcards: `*` verbs, groups and resources, `*/sub` for a subresource, a trailing `*` in a URL", () => {
    const all: PolicyRule[] = [{ apiGroups: ["*"], resources: ["*"], verbs: ["*"] }];
    expect(uncoveredRules(all, [{ apiGroups: ["batch"], resources: ["jobs"], verbs: ["escalate"] }])).toEqual(
      [],
    );
    expect(uncoveredRules(held, [{ apiGroups: [""], resources: ["pods/log"], verbs: ["get"] }])).toEqual([]);
    expect(uncoveredRules(held, [{ apiGroups: [""], resources: ["pods"], verbs: ["get"] }])).toHaveLength(1);
    expect(uncoveredRules(held, [{ nonResourceURLs: ["/apis/apps/v1"], verbs: ["get"] }])).toEqual([]);
    expect(uncoveredRules(held, [{ nonResourceURLs: ["/healthz"], verbs: ["get"] }])).toHaveLength(1);
  });
});

describe("confirmNoEscalation: Kubernetes' check of a role or binding written by an account", () => {
  const rbac = "rbac.authorization.k8s.io";
  const NS = JOB.namespace;
  const readDeployments = { apiGroups: ["apps"], resources: ["deployments"], verbs: ["get", "list"] };
  const clusterRole = (name: string, rules: PolicyRule[]): KubeObject => ({
    apiVersion: `${rbac}/v1`,
    kind: "ClusterRole",
    metadata: { name },
    rules,
  });
  /** The account holds `rules` everywhere, through a ClusterRoleBinding to ClusterRole `writer`. */
  const holding = (rules: PolicyRule[], extra: KubeObject[] = []): RbacObjects => {
    const roles = [clusterRole("writer", rules), ...extra];
    return {
      roleBindings: () => [],
      clusterRoleBindings: () => [
        {
          apiVersion: `${rbac}/v1`,
          kind: "ClusterRoleBinding",
          metadata: { name: "writer" },
          roleRef: { apiGroup: rbac, kind: "ClusterRole", name: "writer" },
          subjects: [{ kind: "ServiceAccount", name: JOB.name, namespace: JOB.namespace }],
        },
      ],
      role: (namespace, name) =>
        roles.find(
          (r) => r.kind === "Role" && r.metadata.namespace === namespace && r.metadata.name === name,
        ),
      clusterRole: (name) => roles.find((r) => r.kind === "ClusterRole" && r.metadata.name === name),
    };
  };
  const writeRoles: PolicyRule = {
    apiGroups: [rbac],
    resources: ["roles", "rolebindings"],
    verbs: ["create", "patch"],
  };
  const role = (rules: PolicyRule[]): KubeObject => ({
    apiVersion: `${rbac}/v1`,
    kind: "Role",
    metadata: { name: "deployer", namespace: NS },
    rules,
  });
  const binding = (roleKind: string, name: string): KubeObject => ({
    apiVersion: `${rbac}/v1`,
    kind: "RoleBinding",
    metadata: { name: "ci", namespace: NS },
    roleRef: { apiGroup: rbac, kind: roleKind, name },
    subjects: [{ kind: "ServiceAccount", name: "ci", namespace: NS }],
  });
  const createRole = route(
    "POST",
    `/apis/${rbac}/v1/namespaces/${NS}/roles`,
    "application/json",
  ) as ResourceRoute;
  const applyRole = route(
    "PATCH",
    `/apis/${rbac}/v1/namespaces/${NS}/roles/deployer`,
    APPLY_CONTENT_TYPE,
  ) as ResourceRoute;
  const createBinding = route(
    "POST",
    `/apis/${rbac}/v1/namespaces/${NS}/rolebindings`,
    "application/json",
  ) as ResourceRoute;
  const refusal = (run: () => void) => {
    try {
      run();
    } catch (error) {
      return error as { code: number; message: string; details: unknown };
    }
    throw new Error("expected a refusal");
  };

  it("a Role with only rules the account holds is written; one more verb is the API server's 403, listing it", () => {
    const objects = holding([writeRoles, readDeployments]);
    expect(() =>
      confirmNoEscalation(objects, JOB, createRole, role([readDeployments]), undefined),
    ).not.toThrow();
    const wider = role([
      { apiGroups: ["apps"], resources: ["deployments"], verbs: ["get", "watch", "delete"] },
    ]);
    const refused = refusal(() => confirmNoEscalation(objects, JOB, createRole, wider, undefined));
    expect(refused.code).toBe(403);
    expect(refused.message).toBe(
      `roles.${rbac} "deployer" is forbidden: user "system:serviceaccount:${NS}:${JOB.name}" (groups=["system:serviceaccounts" "system:serviceaccounts:${NS}" "system:authenticated"]) is attempting to grant RBAC permissions not currently held:\n{APIGroups:["apps"], Resources:["deployments"], Verbs:["watch" "delete"]}`,
    );
    expect(refused.details).toEqual({ name: "deployer", group: rbac, kind: "roles" });
  });

  it("checks an update's every rule, not only the new ones; an update of owner references or finalizers alone is not checked", () => {
    const before = role([{ apiGroups: [""], resources: ["secrets"], verbs: ["get"] }]);
    const objects = holding([writeRoles, readDeployments]);
    const relabelled = { ...before, metadata: { ...before.metadata, labels: { a: "b" } } };
    expect(refusal(() => confirmNoEscalation(objects, JOB, applyRole, relabelled, before)).code).toBe(403);
    const finalized = {
      ...before,
      metadata: { ...before.metadata, finalizers: ["x/y"], resourceVersion: "9" },
    };
    expect(() => confirmNoEscalation(objects, JOB, applyRole, finalized, before)).not.toThrow();
  });

  it("`escalate` on the Role lets any rules through: by name on an update, and only unnamed on a create", () => {
    const everything = role([{ apiGroups: ["*"], resources: ["*"], verbs: ["*"] }]);
    const byName = holding([
      writeRoles,
      { apiGroups: [rbac], resources: ["roles"], resourceNames: ["deployer"], verbs: ["escalate"] },
    ]);
    expect(() => confirmNoEscalation(byName, JOB, applyRole, everything, undefined)).not.toThrow();
    // A create (POST) carries no name for RBAC to match resourceNames against.
    expect(refusal(() => confirmNoEscalation(byName, JOB, createRole, everything, undefined)).code).toBe(403);
    const anyRole = holding([writeRoles, { apiGroups: [rbac], resources: ["roles"], verbs: ["escalate"] }]);
    expect(() => confirmNoEscalation(anyRole, JOB, createRole, everything, undefined)).not.toThrow();
  });

  it("a binding to a role whose rules the account holds is written; to a wider one, 403; to a missing one, 404", () => {
    const admin = clusterRole("admin", [{ apiGroups: ["*"], resources: ["*"], verbs: ["*"] }]);
    const reader = clusterRole("reader", [readDeployments]);
    const objects = holding([writeRoles, readDeployments], [admin, reader]);
    expect(() =>
      confirmNoEscalation(objects, JOB, createBinding, binding("ClusterRole", "reader"), undefined),
    ).not.toThrow();
    const refused = refusal(() =>
      confirmNoEscalation(objects, JOB, createBinding, binding("ClusterRole", "admin"), undefined),
    );
    expect(refused.code).toBe(403);
    expect(refused.message).toMatch(
      new RegExp(
        `^rolebindings\\.${rbac.replace(/\./g, "\\.")} "ci" is forbidden: user .* is attempting to grant RBAC permissions not currently held:\n\\{APIGroups:\\["\\*"\\], Resources:\\["\\*"\\], Verbs:\\["\\*"\\]\\}$`,
      ),
    );
    const missing = refusal(() =>
      confirmNoEscalation(objects, JOB, createBinding, binding("Role", "gone"), undefined),
    );
    expect(missing.code).toBe(404);
    expect(missing.message).toBe(`roles.${rbac} "gone" not found`);
  });

  it("`bind` on the role, in the binding's namespace, lets a binding to a wider role through", () => {
    const admin = clusterRole("admin", [{ apiGroups: ["*"], resources: ["*"], verbs: ["*"] }]);
    const bindAdmin = {
      apiGroups: [rbac],
      resources: ["clusterroles"],
      resourceNames: ["admin"],
      verbs: ["bind"],
    };
    const objects = holding([writeRoles, bindAdmin], [admin]);
    expect(() =>
      confirmNoEscalation(objects, JOB, createBinding, binding("ClusterRole", "admin"), undefined),
    ).not.toThrow();
    // `bind` on roles (not clusterroles) of that name is another right.
    const wrongResource = holding([writeRoles, { ...bindAdmin, resources: ["roles"] }], [admin]);
    expect(
      refusal(() =>
        confirmNoEscalation(wrongResource, JOB, createBinding, binding("ClusterRole", "admin"), undefined),
      ).code,
    ).toBe(403);
  });

  it("rules held through a RoleBinding (to a ClusterRole) count in the binding's namespace only: a role or binding written there, not elsewhere nor cluster-wide", () => {
    const reader = clusterRole("reader", [readDeployments]);
    const objects: RbacObjects = {
      roleBindings: (namespace) =>
        namespace === NS
          ? [
              {
                apiVersion: `${rbac}/v1`,
                kind: "RoleBinding",
                metadata: { name: "writer", namespace: NS },
                roleRef: { apiGroup: rbac, kind: "ClusterRole", name: "writer" },
                subjects: [{ kind: "ServiceAccount", name: JOB.name, namespace: JOB.namespace }],
              },
            ]
          : [],
      clusterRoleBindings: () => [],
      role: () => undefined,
      clusterRole: (name) =>
        name === "writer"
          ? clusterRole("writer", [
              {
                apiGroups: [rbac],
                resources: ["roles", "rolebindings", "clusterrolebindings"],
                verbs: ["create"],
              },
              readDeployments,
            ])
          : name === "reader"
            ? reader
            : undefined,
    };
    expect(() =>
      confirmNoEscalation(objects, JOB, createRole, role([readDeployments]), undefined),
    ).not.toThrow();
    expect(() =>
      confirmNoEscalation(objects, JOB, createBinding, binding("ClusterRole", "reader"), undefined),
    ).not.toThrow();

    const inOther = route(
      "POST",
      `/apis/${rbac}/v1/namespaces/other/roles`,
      "application/json",
    ) as ResourceRoute;
    const otherRole = { ...role([readDeployments]), metadata: { name: "deployer", namespace: "other" } };
    expect(refusal(() => confirmNoEscalation(objects, JOB, inOther, otherRole, undefined)).code).toBe(403);
    const clusterWide = route(
      "POST",
      `/apis/${rbac}/v1/clusterrolebindings`,
      "application/json",
    ) as ResourceRoute;
    const clusterBinding = {
      ...binding("ClusterRole", "reader"),
      kind: "ClusterRoleBinding",
      metadata: { name: "ci" },
    };
    expect(
      refusal(() => confirmNoEscalation(objects, JOB, clusterWide, clusterBinding, undefined)).code,
    ).toBe(403);
  });

  it("leaves every other kind alone", () => {
    const configMaps = route(
      "POST",
      `/api/v1/namespaces/${NS}/configmaps`,
      "application/json",
    ) as ResourceRoute;
    const object = { apiVersion: "v1", kind: "ConfigMap", metadata: { name: "x", namespace: NS } };
    expect(() => confirmNoEscalation(holding([]), JOB, configMaps, object, undefined)).not.toThrow();
  });
});
