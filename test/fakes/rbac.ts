/**
 * RBAC's decision for one request, for tests of the Roles Kubler writes: the embedded Kubernetes
 * API's own rule matching (wildcards, subresources, a rule with resourceNames only for a named
 * request), so these tests and the API agree.
 *
 * @example
 * allows(role.rules, "patch", "apps", "deployments", "web"); // true
 */
import type { RoleRule } from "../../shared/domain/deploy-manifests.js";
import { ruleAllows } from "../../shared/local/memory-kubernetes/rbac.js";

export function allows(
  rules: readonly RoleRule[],
  verb: string,
  group: string,
  resource: string,
  name?: string,
): boolean {
  const [plural = "", subresource = ""] = resource.split("/");
  const request = { verb, apiGroup: group, resource: plural, subresource, namespace: "ns", name: name ?? "" };
  return rules.some((rule) => ruleAllows(rule, request));
}
