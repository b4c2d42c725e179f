import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import {
  hasKubernetesCluster,
  kubernetesClusterFromEnv,
} from "../../shared/adapters/kubernetes-cluster-from-env.js";
import { ENV } from "../../shared/config.js";
import { ConfigError } from "../../shared/errors.js";

const kubeconfig = (server: string) =>
  [
    "apiVersion: v1",
    "kind: Config",
    `clusters: [{ name: c, cluster: { server: "${server}" } }]`,
    "users: [{ name: u, user: { token: t0ken } }]",
    "contexts: [{ name: ctx, context: { cluster: c, user: u } }]",
    "current-context: ctx",
  ].join("\n");

const ARN = "arn:aws:secretsmanager:eu-west-1:123456789012:secret:kubler/kubeconfig-AbCdEf";

describe("kubernetesClusterFromEnv", () => {
  it("uses the kubeconfig held by the secret KUBLER_KUBECONFIG_SECRET names, over KUBECONFIG", async () => {
    const read: string[] = [];
    const cluster = await kubernetesClusterFromEnv(
      { [ENV.KUBECONFIG_SECRET]: ARN, KUBECONFIG: "/nonexistent" },
      async (id) => {
        read.push(id);
        return kubeconfig("https://eks.example.com");
      },
    );
    expect(read).toEqual([ARN]);
    expect(cluster.describe().server).toBe("https://eks.example.com");
  });

  it("falls back to the KUBECONFIG files without reading a secret", async () => {
    const file = join(mkdtempSync(join(tmpdir(), "kubler-kc-")), "config");
    writeFileSync(file, kubeconfig("https://local.example.com:6443"));
    const cluster = await kubernetesClusterFromEnv({ KUBECONFIG: file }, async () => {
      throw new Error("no secret should be read");
    });
    expect(cluster.describe().server).toBe("https://local.example.com:6443");
  });

  it("names the variable and the secret, not its content, when the secret is no kubeconfig", async () => {
    const attempt = kubernetesClusterFromEnv(
      { [ENV.KUBECONFIG_SECRET]: ARN },
      async () => "glpat-not-a: [kubeconfig",
    );
    await expect(attempt).rejects.toBeInstanceOf(ConfigError);
    await expect(attempt).rejects.toThrow(`${ENV.KUBECONFIG_SECRET}: secret ${ARN}`);
    await expect(attempt).rejects.not.toThrow(/glpat/);
  });

  it("knows whether any cluster is configured", () => {
    expect(hasKubernetesCluster({})).toBe(false);
    expect(hasKubernetesCluster({ [ENV.KUBECONFIG_SECRET]: ARN })).toBe(true);
    expect(hasKubernetesCluster({ KUBECONFIG: "/k" })).toBe(true);
  });
});
