/**
 * A kubeconfig as `aws eks update-kubeconfig` writes it (the user runs `aws eks get-token`) works
 * with no `aws` binary: the adapter mints the token in process from the SDK's credentials. The API
 * server here is the in-memory one behind a proxy that, like EKS, reads the bearer token (it cannot
 * ask STS, so it checks the token's shape and the cluster it is signed for) and lets the call through.
 */
import { createServer, request } from "node:http";
import type { AddressInfo } from "node:net";
import { afterAll, beforeAll, describe, expect, it, vi } from "vitest";
import { createKubernetesCluster } from "../../shared/adapters/kubernetes-cluster.js";
import {
  MEMORY_TOKEN,
  type MemoryKubernetes,
  startMemoryKubernetes,
} from "../../shared/local/memory-kubernetes/index.js";

let api: MemoryKubernetes;
let proxyUrl: string;
const seen: string[] = [];
const proxy = createServer((incoming, outgoing) => {
  const authorization = incoming.headers.authorization ?? "";
  seen.push(authorization);
  const token = /^Bearer k8s-aws-v1\.([A-Za-z0-9_-]+)$/.exec(authorization)?.[1];
  const url = token ? new URL(Buffer.from(token, "base64url").toString()) : null;
  if (url?.searchParams.get("Action") !== "GetCallerIdentity" || !url.searchParams.get("X-Amz-Signature")) {
    outgoing.writeHead(401, { "content-type": "application/json" }).end('{"kind":"Status","code":401}');
    return;
  }
  const target = new URL(api.url);
  const forwarded = request(
    {
      host: target.hostname,
      port: target.port,
      path: incoming.url,
      method: incoming.method,
      headers: { ...incoming.headers, authorization: `Bearer ${MEMORY_TOKEN}` },
    },
    (answer) => {
      outgoing.writeHead(answer.statusCode ?? 502, answer.headers);
      answer.pipe(outgoing);
    },
  );
  incoming.pipe(forwarded);
});

beforeAll(async () => {
  api = await startMemoryKubernetes();
  await new Promise<void>((resolve) => proxy.listen(0, "127.0.0.1", resolve));
  proxyUrl = `http://127.0.0.1:${(proxy.address() as AddressInfo).port}`;
});
afterAll(async () => {
  proxy.close();
  await api.close();
});

function eksKubeconfig(extraUser = ""): string {
  return [
    "apiVersion: v1",
    "kind: Config",
    "clusters:",
    "  - name: arn:aws:eks:eu-west-1:111122223333:cluster/prod",
    `    cluster: { server: "${proxyUrl}", insecure-skip-tls-verify: true }`,
    "users:",
    "  - name: arn:aws:eks:eu-west-1:111122223333:cluster/prod",
    "    user:",
    "      exec:",
    "        apiVersion: client.authentication.k8s.io/v1beta1",
    "        command: aws",
    "        args: [--region, eu-west-1, eks, get-token, --cluster-name, prod, --output, json]",
    extraUser,
    "contexts:",
    "  - name: prod",
    "    context: { cluster: arn:aws:eks:eu-west-1:111122223333:cluster/prod, user: arn:aws:eks:eu-west-1:111122223333:cluster/prod }",
    "current-context: prod",
    "",
  ].join("\n");
}

describe("EKS authentication in process", () => {
  it("calls the cluster with an EKS token made from the SDK's credentials, without running aws", async () => {
    vi.stubEnv("AWS_ACCESS_KEY_ID", "AKIDEXAMPLE");
    vi.stubEnv("AWS_SECRET_ACCESS_KEY", "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY");
    vi.stubEnv("AWS_SESSION_TOKEN", "");
    vi.stubEnv("PATH", "/nonexistent"); // no aws binary could run even if it were tried
    try {
      seen.length = 0;
      const cluster = createKubernetesCluster({ kubeconfig: eksKubeconfig(), maxAttempts: 1 });
      const name = `eks-${process.pid}`;
      await cluster.apply({ apiVersion: "v1", kind: "Namespace", metadata: { name } });
      expect((await cluster.get({ apiVersion: "v1", kind: "Namespace", name }))?.metadata.name).toBe(name);
      expect(seen.length).toBeGreaterThanOrEqual(2);
      expect(seen.every((header) => header.startsWith("Bearer k8s-aws-v1."))).toBe(true);
      // One token serves every call until it is 10 minutes old.
      expect(new Set(seen).size).toBe(1);
      const url = new URL(
        Buffer.from((seen[0] as string).slice("Bearer k8s-aws-v1.".length), "base64url").toString(),
      );
      expect(url.host).toBe("sts.eu-west-1.amazonaws.com");
      expect(url.searchParams.get("X-Amz-Credential")).toMatch(
        /^AKIDEXAMPLE\/\d{8}\/eu-west-1\/sts\/aws4_request$/,
      );
      expect(url.searchParams.get("X-Amz-SignedHeaders")).toBe("host;x-k8s-aws-id");
    } finally {
      vi.unstubAllEnvs();
    }
  });

  it("fails a call with a clear error when there are no AWS credentials, and tries again on the next", async () => {
    vi.stubEnv("AWS_ACCESS_KEY_ID", "");
    vi.stubEnv("AWS_SECRET_ACCESS_KEY", "");
    vi.stubEnv("AWS_PROFILE", "kubler-test-no-such-profile");
    vi.stubEnv("AWS_CONFIG_FILE", "/nonexistent");
    vi.stubEnv("AWS_SHARED_CREDENTIALS_FILE", "/nonexistent");
    vi.stubEnv("AWS_EC2_METADATA_DISABLED", "true");
    try {
      const cluster = createKubernetesCluster({ kubeconfig: eksKubeconfig(), maxAttempts: 1 });
      await expect(cluster.get({ apiVersion: "v1", kind: "Namespace", name: "default" })).rejects.toThrow(
        /EKS token for cluster prod: no AWS credentials/,
      );
      vi.stubEnv("AWS_PROFILE", "");
      vi.stubEnv("AWS_ACCESS_KEY_ID", "AKIDEXAMPLE");
      vi.stubEnv("AWS_SECRET_ACCESS_KEY", "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY");
      expect(
        (await cluster.get({ apiVersion: "v1", kind: "Namespace", name: "default" }))?.metadata.name,
      ).toBe("default");
    } finally {
      vi.unstubAllEnvs();
    }
  });
});
