/**
 * What a deploy leaves for job-credentials to find: the environment's managed Namespace (the
 * contract's labels and annotations, a succeeded deploy of one commit, expiring in an hour) and a
 * `kubler-deployer` Role for the job's RoleBinding to point at.
 *
 * @example
 * await seedManagedEnvironment(cluster, { namespace, gitlab, environment: "review/feature-x" });
 */

import type { RoleRule } from "../../shared/domain/deploy-manifests.js";
import { environmentNamespace } from "../../shared/domain/environment.js";
import type { KubeObject } from "../../shared/domain/kube-object.js";

export interface SeededEnvironment {
  namespace: string;
  gitlab: { instance: string; projectId: number; projectPath: string };
  environment: string;
  /** The deployer Role's rules; by default get and patch on Deployments. */
  rules?: RoleRule[];
}

export async function seedManagedEnvironment(
  cluster: { apply(object: KubeObject): Promise<unknown> },
  { namespace, gitlab, environment, rules }: SeededEnvironment,
): Promise<void> {
  await cluster.apply(
    environmentNamespace({
      namespace,
      gitlab,
      environment,
      sha: "1111111111111111111111111111111111111111",
      ref: "feature-x",
      pipelineId: 1,
      mrIid: null,
      ttl: "72h",
      expiresAt: new Date(Date.now() + 3_600_000),
      deployedAt: new Date(),
      requestedAt: new Date(),
      status: "succeeded",
      rolloutDeadline: null,
      correlationId: "c-1",
      url: null,
      lastGoodDigest: null,
    }),
  );
  await cluster.apply({
    apiVersion: "rbac.authorization.k8s.io/v1",
    kind: "Role",
    metadata: { name: "kubler-deployer", namespace },
    rules: rules ?? [{ apiGroups: ["apps"], resources: ["deployments"], verbs: ["get", "patch"] }],
  } as KubeObject);
}
