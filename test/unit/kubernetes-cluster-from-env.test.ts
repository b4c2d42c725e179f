import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { delimiter, join } from "node:path";
import { describe, expect, it } from "vitest";
import {
  hasKubernetesCluster,
  kubernetesClusterFromEnv,
  kubernetesClusterFromKubeconfigFiles,
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

  it("refuses a server URL with credentials, naming the secret or the file, never the URL", async () => {
    const server = "http://admin:s3cr3t-Pa55w0rd@127.0.0.1:1";
    const attempt = kubernetesClusterFromEnv({ [ENV.KUBECONFIG_SECRET]: ARN }, async () =>
      kubeconfig(server),
    );
    await expect(attempt).rejects.toBeInstanceOf(ConfigError);
    await expect(attempt).rejects.toThrow(
      `${ENV.KUBECONFIG_SECRET}: secret ${ARN}: cluster "c" has credentials (user:password@) in its server URL`,
    );
    await expect(attempt).rejects.not.toThrow(/s3cr3t/);
    const file = join(mkdtempSync(join(tmpdir(), "kubler-kc-")), "config");
    writeFileSync(file, kubeconfig(server));
    await expect(kubernetesClusterFromEnv({ KUBECONFIG: file }, async () => "")).rejects.toThrow(
      `KUBECONFIG file ${file}: cluster "c" has credentials`,
    );
  });

  it("knows whether any cluster is configured", () => {
    expect(hasKubernetesCluster({})).toBe(false);
    expect(hasKubernetesCluster({ [ENV.KUBECONFIG_SECRET]: ARN })).toBe(true);
    expect(hasKubernetesCluster({ KUBECONFIG: "/k" })).toBe(true);
  });
});

describe("kubernetesClusterFromKubeconfigFiles", () => {
  const dir = mkdtempSync(join(tmpdir(), "kubler-kc-"));
  const file = (name: string, text: string) => {
    writeFileSync(join(dir, name), text);
    return join(dir, name);
  };
  const refused = (KUBECONFIG: string) => {
    try {
      kubernetesClusterFromKubeconfigFiles({ KUBECONFIG });
    } catch (error) {
      expect(error).toBeInstanceOf(ConfigError);
      return (error as Error).message;
    }
    throw new Error("expected ConfigError");
  };

  it("loads a usable kubeconfig, merged across files", () => {
    const cluster = kubernetesClusterFromKubeconfigFiles({
      KUBECONFIG: [
        file("good", kubeconfig("https://good.example.com")),
        file("extra", "users: [{ name: v }]"),
      ].join(delimiter),
    });
    expect(cluster.describe()).toEqual({ server: "https://good.example.com", context: "ctx" });
  });

  it("checks the context kubectl would use: a later file's context, even a broken one, does not count", () => {
    const broken = [
      `clusters: [{ name: c2, cluster: { server: "https://b.example.com" } }]`,
      "contexts: [{ name: b, context: { cluster: missing, user: u } }]",
      "current-context: b",
    ].join("\n");
    const cluster = kubernetesClusterFromKubeconfigFiles({
      KUBECONFIG: [file("complete", kubeconfig("https://a.example.com")), file("later", broken)].join(
        delimiter,
      ),
    });
    expect(cluster.describe()).toEqual({ server: "https://a.example.com", context: "ctx" });
    // kubectl's split: one file holds only the choice of context.
    const chosen = kubernetesClusterFromKubeconfigFiles({
      KUBECONFIG: [
        file("choice", "current-context: ctx"),
        file("rest", kubeconfig("https://r.example.com")),
      ].join(delimiter),
    });
    expect(chosen.describe()).toEqual({ server: "https://r.example.com", context: "ctx" });
  });

  it("takes the current context of the first file that sets one, as kubectl does", () => {
    const other = [
      `clusters: [{ name: c2, cluster: { server: "https://other.example.com" } }]`,
      "users: [{ name: u2, user: { token: t0ken } }]",
      "contexts: [{ name: other, context: { cluster: c2, user: u2 } }]",
      "current-context: other",
    ].join("\n");
    const cluster = kubernetesClusterFromKubeconfigFiles({
      KUBECONFIG: [file("first", kubeconfig("https://first.example.com")), file("second", other)].join(
        delimiter,
      ),
    });
    expect(cluster.describe()).toEqual({ server: "https://first.example.com", context: "ctx" });
  });

  it("says in plain words what is wrong with a file, naming KUBECONFIG", () => {
    expect(refused(join(dir, "missing"))).toBe(`KUBECONFIG file ${join(dir, "missing")} does not exist`);
    expect(refused(file("empty", " \n"))).toBe(`KUBECONFIG file ${join(dir, "empty")} is empty`);
    expect(refused(file("scalar", "hello"))).toBe(
      `KUBECONFIG file ${join(dir, "scalar")} is not a kubeconfig: it has no clusters, contexts, users or current-context`,
    );
    expect(refused(file("no-server", "clusters: [{ name: c, cluster: {} }]"))).toBe(
      `KUBECONFIG file ${join(dir, "no-server")} is not a valid kubeconfig: clusters[0].cluster.server is missing`,
    );
    // js-yaml quotes the faulty lines, which may hold a token: not passed on.
    const broken = refused(file("broken", "users:\n  - name: u\n   token: s3cret: x"));
    expect(broken).toMatch(new RegExp(`^KUBECONFIG file ${join(dir, "broken")} is not YAML or JSON \\(`));
    expect(broken).not.toContain("s3cret");
    expect(broken).not.toContain("\n");
  });

  it("wants a current context naming a cluster that is defined", () => {
    const noContext = file(
      "no-context",
      kubeconfig("https://x.example.com").replace("current-context: ctx", ""),
    );
    expect(refused(noContext)).toBe(
      `KUBECONFIG file ${noContext} sets no current-context: choose one with \`kubectl config use-context <name>\``,
    );
    const unknown = file(
      "unknown",
      kubeconfig("https://x.example.com").replace("current-context: ctx", "current-context: gone"),
    );
    expect(refused(unknown)).toBe(
      `KUBECONFIG file ${unknown}: the current-context "gone" is not defined there`,
    );
    const orphan = file(
      "orphan",
      kubeconfig("https://x.example.com").replace("context: { cluster: c,", "context: { cluster: other,"),
    );
    expect(refused(orphan)).toBe(
      `KUBECONFIG file ${orphan}: context "ctx" names cluster "other", which is not defined there`,
    );
  });

  it("is what kubernetesClusterFromEnv uses when no secret is configured", async () => {
    await expect(
      kubernetesClusterFromEnv({ KUBECONFIG: file("empty-too", "") }, async () => "unused"),
    ).rejects.toThrow(`KUBECONFIG file ${join(dir, "empty-too")} is empty`);
  });
});

describe("kubernetesClusterFromEnv with a kubeconfig whose user runs an exec plugin", () => {
  const execKubeconfig = (exec: string) =>
    [
      "apiVersion: v1",
      "kind: Config",
      'clusters: [{ name: c, cluster: { server: "https://eks.example.com" } }]',
      `users: [{ name: u, user: { exec: ${exec} } }]`,
      "contexts: [{ name: ctx, context: { cluster: c, user: u } }]",
      "current-context: ctx",
    ].join("\n");
  // A Lambda function's PATH: no aws CLI, no kubelogin.
  const lambdaEnv = { [ENV.KUBECONFIG_SECRET]: ARN, PATH: mkdtempSync(join(tmpdir(), "kubler-path-")) };

  it("refuses at cold start a plugin the function cannot run, naming the variable, the secret and the command", async () => {
    for (const [exec, command] of [
      [
        "{ apiVersion: client.authentication.k8s.io/v1beta1, command: kubelogin, args: [get-token] }",
        "kubelogin",
      ],
      // What `aws eks update-kubeconfig` writes when AWS_PROFILE is set: the CLI keeps running.
      [
        "{ apiVersion: client.authentication.k8s.io/v1beta1, command: aws, args: [--region, eu-west-1, eks, get-token, --cluster-name, prod, --output, json], env: [{ name: AWS_PROFILE, value: prod }] }",
        "aws",
      ],
    ] as const) {
      const attempt = kubernetesClusterFromEnv(lambdaEnv, async () => execKubeconfig(exec));
      await expect(attempt).rejects.toBeInstanceOf(ConfigError);
      await expect(attempt).rejects.toThrow(
        `${ENV.KUBECONFIG_SECRET}: secret ${ARN}: user "u" runs the exec plugin "${command}", which is not installed here`,
      );
    }
  });

  it("takes `aws eks get-token` as written by `aws eks update-kubeconfig`: the token is made in process", async () => {
    const cluster = await kubernetesClusterFromEnv(lambdaEnv, async () =>
      execKubeconfig(
        "{ apiVersion: client.authentication.k8s.io/v1beta1, command: aws, args: [--region, eu-west-1, eks, get-token, --cluster-name, prod, --output, json] }",
      ),
    );
    expect(cluster.describe().server).toBe("https://eks.example.com");
  });

  it("takes a plugin that is on the function's PATH", async () => {
    const bin = mkdtempSync(join(tmpdir(), "kubler-bin-"));
    writeFileSync(join(bin, "my-plugin"), "#!/bin/sh\n", { mode: 0o755 });
    const cluster = await kubernetesClusterFromEnv({ ...lambdaEnv, PATH: bin }, async () =>
      execKubeconfig("{ apiVersion: client.authentication.k8s.io/v1beta1, command: my-plugin }"),
    );
    expect(cluster.describe().server).toBe("https://eks.example.com");
  });
});
