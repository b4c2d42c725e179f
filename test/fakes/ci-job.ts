/**
 * A CI job of an environment as Kubler's tests play it on the embedded API: a real identity (a
 * TokenRequest token of `kubler-deployer`) bound to the Role Kubler wrote, acting over HTTP.
 *
 * @example
 * const job = await ciJobClient(k8s, deps.cluster, namespace);
 * expect(allows(deployerRoleRules(k8s, namespace), "patch", "", "configmaps", "kubler-last-good")).toBe(true);
 */
import * as k8s from "@kubernetes/client-node";
import { DEPLOYER_NAME, type RoleRule } from "../../shared/domain/deploy-manifests.js";
import type { MemoryKubernetes } from "../../shared/local/memory-kubernetes/index.js";
import type { DeployCluster } from "../../shared/services/deploy-environment.js";

/** The CI job's client: a token of the environment's deployer account, bound to Kubler's Role. */
export async function ciJobClient(
  api: MemoryKubernetes,
  cluster: DeployCluster,
  namespace: string,
): Promise<k8s.CoreV1Api> {
  const { token } = await cluster.createToken(
    { namespace, serviceAccount: DEPLOYER_NAME },
    { audiences: [], expirationSeconds: 600 },
  );
  const kc = new k8s.KubeConfig();
  kc.loadFromString(api.kubeconfig);
  const admin = kc.getCurrentUser();
  kc.users = kc.users.map((user) => (user === admin ? { name: user.name, token } : user));
  return kc.makeApiClient(k8s.CoreV1Api);
}

/** The rules of the Role Kubler wrote for the environment, as the API server holds them. */
export function deployerRoleRules(api: MemoryKubernetes, namespace: string): RoleRule[] {
  const role = api.store.get("rbac.authorization.k8s.io/v1", "Role", namespace, DEPLOYER_NAME);
  return (role?.rules ?? []) as RoleRule[];
}
