/**
 * What a deploy leaves for job-credentials to find: the environment's managed Namespace (the
 * contract's labels and annotations, a succeeded deploy of one commit, expiring in an hour) and a
 * `kubler-deployer` Role for the job's RoleBinding to point at.
 *
 * @example
 * await seedManagedEnvironment(cluster, { namespace, gitlab, environment: "review/feature-x" });
 */

import type { RoleRule } from "../../shared/domain/deploy-manifests.js";
import { type EnvironmentState, environmentNamespace } from "../../shared/domain/environment.js";
import type { KubeObject } from "../../shared/domain/kube-object.js";

/**
 * A succeeded deploy's state of one commit, `ttl: never`, for `environmentNamespace`: the fields
 * a test does not look at, so each test names only those it does.
 *
 * @example
 * environmentNamespace(environmentState({ namespace, gitlab, environment: "production", ttl: "72h" }));
 */
export function environmentState(
  fields: Pick<EnvironmentState, "namespace" | "gitlab" | "environment"> & Partial<EnvironmentState>,
): EnvironmentState {
  return {
    sha: "1".repeat(40),
    ref: "main",
    pipelineId: 1,
    mrIid: null,
    ttl: "never",
    expiresAt: null,
    deployedAt: null,
    requestedAt: new Date("2026-11-21T10:00:00Z"),
    status: "succeeded",
    rolloutDeadline: null,
    correlationId: "c-1",
    url: null,
    lastGoodDigest: null,
    ...fields,
  };
}

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
    environmentNamespace(
      environmentState({
        namespace,
        gitlab,
        environment,
        ref: "feature-x",
        ttl: "72h",
        expiresAt: new Date(Date.now() + 3_600_000),
        deployedAt: new Date(),
        requestedAt: new Date(),
      }),
    ),
  );
  await cluster.apply({
    apiVersion: "rbac.authorization.k8s.io/v1",
    kind: "Role",
    metadata: { name: "kubler-deployer", namespace },
    rules: rules ?? [{ apiGroups: ["apps"], resources: ["deployments"], verbs: ["get", "patch"] }],
  } as KubeObject);
}
