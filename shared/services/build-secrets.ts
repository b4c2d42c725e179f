/**
 * The two Secrets a build Job reads, looked for before the Job is made. Without one (or without the
 * key the Job takes from it) the pod never starts: the clone's secretKeyRef is a
 * CreateContainerConfigError, the push's volume never mounts. Kubernetes then fails the Job only at
 * its deadline (30 minutes), with a bare DeadlineExceeded and the cause nowhere in it.
 * Only whether each Secret and its key exist is read: the values the GET returns go nowhere. So is
 * the namespace's Pod Security level, which the build pod needs to be `privileged`.
 */
import { GIT_TOKEN_KEY, REGISTRY_AUTH_KEY } from "../domain/build-job.js";
import { KubernetesForbiddenError } from "../errors.js";
import type { BuildCluster } from "../ports.js";

export interface BuildSecretsSettings {
  namespace: string;
  gitSecret: string;
  registrySecret: string;
}

export type BuildSecretsCheck =
  | { kind: "present" }
  /** Kubler's role may not read Secrets there: not known, the Job is made as before the check. */
  | { kind: "unchecked"; reason: string }
  | { kind: "missing"; reason: string };

/**
 * @example
 * const check = await checkBuildSecrets(cluster, { namespace: "kubler-builds", gitSecret: "kubler-git-credentials", registrySecret: "kubler-registry-push" });
 * if (check.kind === "missing") return fail(check.reason); // names each Secret and the kubectl command
 */
export async function checkBuildSecrets(
  cluster: Pick<BuildCluster, "get">,
  settings: BuildSecretsSettings,
): Promise<BuildSecretsCheck> {
  const { namespace } = settings;
  const needed = [
    {
      name: settings.gitSecret,
      key: GIT_TOKEN_KEY,
      create: `kubectl -n ${namespace} create secret generic ${settings.gitSecret} --from-literal=${GIT_TOKEN_KEY}=<GitLab token with read_repository>`,
    },
    {
      name: settings.registrySecret,
      key: REGISTRY_AUTH_KEY,
      create: `kubectl -n ${namespace} create secret docker-registry ${settings.registrySecret} --docker-server=<registry> --docker-username=<user> --docker-password=<password>`,
    },
  ];
  const problems: { what: string; create: string }[] = [];
  for (const secret of needed) {
    let hasKey: boolean | null;
    try {
      hasKey = await secretHasKey(cluster, namespace, secret.name, secret.key);
    } catch (error) {
      if (!(error instanceof KubernetesForbiddenError)) throw error;
      return {
        kind: "unchecked",
        reason: `build Secrets not checked: Kubler may not get Secrets in ${namespace} (${error.message})`,
      };
    }
    if (hasKey === true) continue;
    problems.push({
      what:
        hasKey === null
          ? `Secret ${secret.name} does not exist`
          : `Secret ${secret.name} has no key ${secret.key}`,
      create: secret.create,
    });
  }
  if (problems.length === 0) return { kind: "present" };
  return {
    kind: "missing",
    reason: `cannot build: ${problems.map((p) => p.what).join(", ")} in namespace ${namespace} (a build pod cannot start without it, and would wait 30 minutes for its deadline). Create it as README's "Deploy to AWS" prerequisites say, then ask again (push, or reopen the merge request): ${problems.map((p) => p.create).join("; ")}`,
  };
}

/** The label Pod Security Admission enforces a namespace's level by: https://kubernetes.io/docs/concepts/security/pod-security-admission/ */
const POD_SECURITY_ENFORCE = "pod-security.kubernetes.io/enforce";

/**
 * Whether the builds namespace lets the build pod in: rootless BuildKit runs with seccomp and AppArmor
 * unconfined (build-job.ts), which Pod Security levels `baseline` and `restricted` forbid. Refused,
 * the Job controller never creates a pod, and Kubernetes fails the Job only at its 30-minute deadline
 * with a bare DeadlineExceeded. Read from the namespace's label only: a level the cluster enforces by
 * default (its admission configuration) is not visible here.
 *
 * @example
 * const check = await checkBuildPodSecurity(cluster, "kubler-builds");
 * if (check.kind === "missing") return fail(check.reason); // names the level and the kubectl label command
 */
export async function checkBuildPodSecurity(
  cluster: Pick<BuildCluster, "get">,
  namespace: string,
): Promise<BuildSecretsCheck> {
  let level: string | undefined;
  try {
    const found = await cluster.get({ apiVersion: "v1", kind: "Namespace", name: namespace });
    level = found?.metadata.labels?.[POD_SECURITY_ENFORCE];
  } catch (error) {
    if (!(error instanceof KubernetesForbiddenError)) throw error;
    return {
      kind: "unchecked",
      reason: `its Pod Security level not checked: Kubler may not get namespace ${namespace} (${error.message})`,
    };
  }
  if (level !== "baseline" && level !== "restricted") return { kind: "present" };
  return {
    kind: "missing",
    reason: `cannot build: namespace ${namespace} enforces Pod Security level ${level} (label ${POD_SECURITY_ENFORCE}), which refuses the build pod (rootless BuildKit runs with seccomp and AppArmor unconfined), so no pod would start and the Job would wait 30 minutes for its deadline. Let build pods run there, then ask again (push, or reopen the merge request): kubectl label namespace ${namespace} ${POD_SECURITY_ENFORCE}=privileged --overwrite`,
  };
}

/** True or false by the key; null when there is no such Secret (nor, then, its namespace). */
async function secretHasKey(
  cluster: Pick<BuildCluster, "get">,
  namespace: string,
  name: string,
  key: string,
): Promise<boolean | null> {
  const secret = await cluster.get({ apiVersion: "v1", kind: "Secret", name, namespace });
  if (!secret) return null;
  const data = (secret as { data?: unknown }).data;
  return typeof data === "object" && data !== null && Object.hasOwn(data, key);
}
