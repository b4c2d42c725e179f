/**
 * The cluster a Lambda entry point works on. In AWS the stack passes the ARN of a Secrets Manager
 * secret holding the kubeconfig (`KUBLER_KUBECONFIG_SECRET`), never the kubeconfig itself; anywhere
 * else the files of `KUBECONFIG`, like kubectl.
 */
import { existsSync, readFileSync } from "node:fs";
import { delimiter, join } from "node:path";
import { KubeConfig } from "@kubernetes/client-node";
import { ENV, fileProblem } from "../config.js";
import { ConfigError } from "../errors.js";
import { eksGetTokenUser } from "./eks-token.js";
import {
  createKubernetesCluster,
  KubeconfigServerCredentialsError,
  type KubernetesCluster,
  type KubernetesClusterOptions,
} from "./kubernetes-cluster.js";
import type { ReadSecret } from "./secret-reader.js";
import { readSecretOf } from "./secret-variables.js";

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
 * const cluster = await kubernetesClusterFromEnv(process.env, readSecret, { maxAttempts: 2, timeoutMs: 4_000 });
 */
export async function kubernetesClusterFromEnv(
  env: Env,
  readSecret: ReadSecret,
  limits: KubernetesClusterOptions = {},
): Promise<KubernetesCluster> {
  const secretId = env[ENV.KUBECONFIG_SECRET]?.trim();
  if (!secretId) return kubernetesClusterFromKubeconfigFiles(env, limits);
  const kubeconfig = await readSecretOf(ENV.KUBECONFIG_SECRET, secretId, readSecret);
  const source = `${ENV.KUBECONFIG_SECRET}: secret ${secretId}`;
  let cluster: KubernetesCluster;
  try {
    cluster = createKubernetesCluster({ ...limits, kubeconfig, env: { ...env }, source });
  } catch (error) {
    // Names the secret and the cluster, never the URL: safe to pass on as it is.
    if (error instanceof KubeconfigServerCredentialsError) throw error;
    // The parser's message quotes the offending text, which is the secret: leave it out.
    throw new ConfigError(
      `${ENV.KUBECONFIG_SECRET}: secret ${secretId} does not hold a valid kubeconfig (YAML or JSON)`,
    );
  }
  checkExecPlugin(kubeconfig, env, source);
  return cluster;
}

/**
 * An exec credential plugin that is not installed (a Lambda function has no `aws` CLI, no kubelogin)
 * would fail every call as if the cluster were down ("spawn aws ENOENT"): refused at cold start
 * instead. `aws eks get-token` users that Kubler runs in process (eksGetTokenUser) are fine.
 */
function checkExecPlugin(kubeconfig: string, env: Env, source: string): void {
  const parsed = new KubeConfig();
  parsed.loadFromString(kubeconfig);
  const user = parsed.getCurrentUser();
  const command = (user?.exec as { command?: unknown } | undefined)?.command;
  if (!user || typeof command !== "string" || eksGetTokenUser(user, env) || isInstalled(command, env)) return;
  throw new ConfigError(
    `${source}: user "${user.name}" runs the exec plugin "${command}", which is not installed here: ` +
      "give the kubeconfig a ServiceAccount token, or on EKS the user `aws eks update-kubeconfig` writes " +
      "without a profile or a role (no AWS_PROFILE, --profile or --role-arn), whose token Kubler makes in process",
  );
}

function isInstalled(command: string, env: Env): boolean {
  if (command.includes("/")) return existsSync(command);
  return (env.PATH ?? "").split(delimiter).some((dir) => dir !== "" && existsSync(join(dir, command)));
}

/**
 * The cluster of the `KUBECONFIG` files (merged as `createKubernetesCluster` merges them), checked
 * first: a file missing, empty or not a kubeconfig, or no current context with a cluster, is a
 * `ConfigError` naming `KUBECONFIG` in plain words. client-node's own messages are about its
 * internals ("Cannot read properties of undefined"), and a YAML error quotes the file, tokens included.
 *
 * @example
 * const cluster = kubernetesClusterFromKubeconfigFiles({ KUBECONFIG: "/home/me/.kube/config" });
 */
export function kubernetesClusterFromKubeconfigFiles(
  env: Env,
  limits: KubernetesClusterOptions = {},
): KubernetesCluster {
  checkKubeconfigFiles((env[ENV.KUBECONFIG] ?? "").split(delimiter).filter((file) => file !== ""));
  return createKubernetesCluster({ ...limits, env: { ...env } });
}

function checkKubeconfigFiles(files: readonly string[]): void {
  // Unset: createKubernetesCluster falls back to ~/.kube/config and says so when there is none.
  if (files.length === 0) return;
  const merged = new KubeConfig();
  files.forEach((file, index) => {
    const problem = (reason: string) => new ConfigError(`${ENV.KUBECONFIG} file ${file} ${reason}`);
    let text: string;
    try {
      text = readFileSync(file, "utf8");
    } catch (error) {
      throw problem(fileProblem(error));
    }
    if (text.trim() === "") throw problem("is empty");
    const loaded = index === 0 ? merged : new KubeConfig();
    try {
      loaded.loadFromString(text);
    } catch (error) {
      // js-yaml's message quotes the lines around the fault: only its first line, which does not.
      if ((error as Error).name === "YAMLException") {
        throw problem(`is not YAML or JSON (${(error as Error).message.split("\n")[0]})`);
      }
      // A TypeError: the document is not a mapping. Otherwise client-node names the entry at fault.
      throw problem(
        error instanceof TypeError
          ? "is not a kubeconfig"
          : `is not a valid kubeconfig: ${(error as Error).message}`,
      );
    }
    // A file may hold only current-context (kubectl's usual split of a config across files).
    if (
      loaded.clusters.length + loaded.contexts.length + loaded.users.length === 0 &&
      !loaded.getCurrentContext()
    ) {
      throw problem("is not a kubeconfig: it has no clusters, contexts, users or current-context");
    }
    if (index > 0) {
      try {
        // As createKubernetesCluster merges (and kubectl): the first file that sets a context wins.
        merged.mergeConfig(loaded, Boolean(merged.getCurrentContext()));
      } catch (error) {
        throw problem(`cannot be merged with the files before it: ${(error as Error).message}`);
      }
    }
  });
  const one = files.length === 1;
  const where = one ? `file ${files[0]}` : `files ${files.join(delimiter)}`;
  const name = merged.getCurrentContext();
  if (!name) {
    throw new ConfigError(
      `${ENV.KUBECONFIG} ${where} ${one ? "sets" : "set"} no current-context: choose one with \`kubectl config use-context <name>\``,
    );
  }
  const context = merged.getContextObject(name);
  if (!context) {
    throw new ConfigError(`${ENV.KUBECONFIG} ${where}: the current-context "${name}" is not defined there`);
  }
  if (!merged.getCluster(context.cluster)) {
    throw new ConfigError(
      `${ENV.KUBECONFIG} ${where}: context "${name}" names cluster "${context.cluster}", which is not defined there`,
    );
  }
}
