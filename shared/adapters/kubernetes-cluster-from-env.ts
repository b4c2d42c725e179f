/**
 * The cluster a Lambda entry point works on. In AWS the stack passes the ARN of a Secrets Manager
 * secret holding the kubeconfig (`KUBLER_KUBECONFIG_SECRET`), never the kubeconfig itself; anywhere
 * else the files of `KUBECONFIG`, like kubectl.
 */
import { ENV } from "../config.js";
import { ConfigError } from "../errors.js";
import { createKubernetesCluster, type KubernetesCluster } from "./kubernetes-cluster.js";
import type { ReadSecret } from "./secret-reader.js";

type Env = Readonly<Record<string, string | undefined>>;

/** Whether a cluster is configured at all (job-credentials works without one, AWS only). */
export function hasKubernetesCluster(env: Env): boolean {
  return Boolean(env[ENV.KUBECONFIG_SECRET]?.trim() || env[ENV.KUBECONFIG]?.trim());
}

/**
 * Reads the kubeconfig secret once (at cold start) when `KUBLER_KUBECONFIG_SECRET` is set, else
 * loads `KUBECONFIG`. A secret that cannot be read or is not a kubeconfig is a `ConfigError` naming
 * the variable and the secret, never its content.
 *
 * @example
 * const readSecret = createSecretReader({ client: new SecretsManagerClient({}) });
 * const cluster = await kubernetesClusterFromEnv(process.env, readSecret);
 */
export async function kubernetesClusterFromEnv(env: Env, readSecret: ReadSecret): Promise<KubernetesCluster> {
  const secretId = env[ENV.KUBECONFIG_SECRET]?.trim();
  if (!secretId) return createKubernetesCluster({ env: { ...env } });
  const kubeconfig = await readSecret(secretId);
  try {
    return createKubernetesCluster({ kubeconfig, env: { ...env } });
  } catch {
    // The parser's message quotes the offending text, which is the secret: leave it out.
    throw new ConfigError(
      `${ENV.KUBECONFIG_SECRET}: secret ${secretId} does not hold a valid kubeconfig (YAML or JSON)`,
    );
  }
}
