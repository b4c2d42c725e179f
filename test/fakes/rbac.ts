/**
 * RBAC's decision for one request, for tests of the Roles Kubler writes (the in-memory Kubernetes API
 * does not authorize): a rule with resourceNames must name the object, and a request without a name
 * (create, list, watch of a collection) only passes a rule without them.
 *
 * @example
 * allows(role.rules, "patch", "apps", "deployments", "web"); // true
 */
import type { RoleRule } from "../../shared/domain/deploy-manifests.js";

export function allows(
  rules: readonly RoleRule[],
  verb: string,
  group: string,
  resource: string,
  name?: string,
): boolean {
  return rules.some(
    (rule) =>
      rule.verbs.includes(verb) &&
      rule.apiGroups.includes(group) &&
      rule.resources.includes(resource) &&
      (rule.resourceNames === undefined || (name !== undefined && rule.resourceNames.includes(name))),
  );
}
