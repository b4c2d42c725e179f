/**
 * EKS authentication without the AWS CLI: the bearer token `aws eks get-token` prints, made in
 * process. A Lambda has no `aws` binary to exec, and a kubeconfig written by
 * `aws eks update-kubeconfig` holds no secret (the token is minted from the caller's IAM identity), so
 * this is how Kubler's functions reach an EKS cluster with nothing long-lived stored.
 *
 * The token is `k8s-aws-v1.` + base64url of an STS `GetCallerIdentity` URL presigned (SigV4, query
 * string, 60 s) with the cluster's name in the signed `x-k8s-aws-id` header; EKS calls STS with it to
 * learn who is asking: https://github.com/kubernetes-sigs/aws-iam-authenticator#how-does-it-work
 */

import { createHash, createHmac } from "node:crypto";
import type { defaultProvider } from "@aws-sdk/credential-provider-node";
import type { KubeConfig, User } from "@kubernetes/client-node";
import { SignatureV4 } from "@smithy/signature-v4";
import { messageOf } from "../errors.js";

/** EKS accepts a token for 15 minutes after it is signed; one is reused for 10 of them. */
const TOKEN_REUSE_MS = 10 * 60_000;
/** What `aws eks get-token` and aws-iam-authenticator presign with. */
const PRESIGN_SECONDS = 60;
const TOKEN_PREFIX = "k8s-aws-v1.";
/** The `authProvider` name a recognised `aws eks get-token` user is rewritten to. */
export const EKS_AUTH_PROVIDER = "kubler-aws-eks";

type Credentials = Awaited<ReturnType<ReturnType<typeof defaultProvider>>>;
export type CredentialsProvider = () => Promise<Credentials>;

export interface EksTokenRequest {
  clusterName: string;
  region: string;
  credentials: Credentials;
  now: Date;
}

/**
 * The token for `clusterName`, as `aws eks get-token --cluster-name <name> --region <region>` makes it.
 *
 * @example
 * const token = await eksToken({ clusterName: "prod", region: "eu-west-1", credentials, now: new Date() });
 * // "k8s-aws-v1.aHR0cHM6Ly9zdHMuZXUtd2VzdC0xLmFtYXpvbmF3cy5jb20vP0FjdGlvbj1HZXRDYWxsZXJJZGVudGl0eS…"
 */
export async function eksToken(request: EksTokenRequest): Promise<string> {
  const { clusterName, region, credentials, now } = request;
  // The regional endpoint: EKS verifies the URL against STS's own hosts, so no AWS_ENDPOINT_URL_STS.
  const hostname = `sts.${region}.amazonaws.com`;
  const signer = new SignatureV4({ service: "sts", region, credentials, sha256: NodeSha256 });
  const signed = await signer.presign(
    {
      method: "GET",
      protocol: "https:",
      hostname,
      path: "/",
      query: { Action: "GetCallerIdentity", Version: "2011-06-15" },
      headers: { host: hostname, "x-k8s-aws-id": clusterName },
    },
    { expiresIn: PRESIGN_SECONDS, signingDate: now },
  );
  const query = Object.entries(signed.query ?? {})
    .map(([key, value]) => `${encodeURIComponent(key)}=${encodeURIComponent(String(value))}`)
    .join("&");
  const url = `https://${hostname}/?${query}`;
  return TOKEN_PREFIX + Buffer.from(url).toString("base64url");
}

/** The cluster and region of a user that runs `aws eks get-token`, or null for any other user. */
export function eksGetTokenUser(user: User, env: Readonly<Record<string, string | undefined>>) {
  const exec = user.exec as { command?: unknown; args?: unknown; env?: unknown } | undefined;
  if (exec?.command !== "aws" || !Array.isArray(exec.args)) return null;
  // Env in the exec entry (AWS_PROFILE, ...) or any other flag (--role-arn, --profile) changes whose
  // token it is: such users keep running the CLI.
  if (Array.isArray(exec.env) && exec.env.length > 0) return null;
  const args = exec.args.map(String);
  const rest = [...args];
  const take = (flag: string): string | undefined => {
    const at = rest.indexOf(flag);
    if (at < 0) return undefined;
    const [, value] = rest.splice(at, 2);
    return value;
  };
  const clusterName = take("--cluster-name");
  const region = take("--region") ?? env.AWS_REGION ?? env.AWS_DEFAULT_REGION;
  const output = take("--output");
  const command = rest.join(" ");
  if (command !== "eks get-token" || !clusterName || !region) return null;
  if (output !== undefined && output !== "json") return null;
  return { clusterName, region };
}

/**
 * Makes `kubeConfig` mint EKS tokens in process for its users that run `aws eks get-token` (as
 * `aws eks update-kubeconfig` writes them), with the SDK's credential chain (in Lambda: the function's
 * role). Other users are left alone.
 *
 * @example
 * useInProcessEksTokens(kubeConfig, process.env);
 */
export function useInProcessEksTokens(
  kubeConfig: KubeConfig,
  env: Readonly<Record<string, string | undefined>>,
): void {
  let rewritten = false;
  const users = kubeConfig.users.map((user) => {
    const eks = eksGetTokenUser(user, env);
    if (!eks) return user;
    rewritten = true;
    // Without `exec`: client-node tries its own exec authenticator before any added one.
    const { exec: _exec, ...rest } = user;
    return { ...rest, authProvider: { name: EKS_AUTH_PROVIDER, config: eks } };
  });
  if (!rewritten) return;
  kubeConfig.loadFromOptions({
    clusters: kubeConfig.clusters,
    users,
    contexts: kubeConfig.contexts,
    currentContext: kubeConfig.getCurrentContext(),
  });
  // The SDK's credential chain is loaded only here: ≈ 40 ms of import that a non-EKS process skips.
  let chain: CredentialsProvider | undefined;
  const credentials: CredentialsProvider = async () => {
    chain ??= (await import("@aws-sdk/credential-provider-node")).defaultProvider();
    return chain();
  };
  kubeConfig.addAuthenticator(new EksAuthenticator(credentials));
}

/** client-node's `Authenticator` (not exported from its index). */
type Authenticator = Parameters<KubeConfig["addAuthenticator"]>[0];

class EksAuthenticator implements Authenticator {
  readonly #tokens = new Map<string, { token: Promise<string>; until: number }>();

  constructor(private readonly credentials: CredentialsProvider) {}

  isAuthProvider(user: User): boolean {
    return (user.authProvider as { name?: unknown } | undefined)?.name === EKS_AUTH_PROVIDER;
  }

  async applyAuthentication(user: User, opts: { headers?: Record<string, unknown> }): Promise<void> {
    const { clusterName, region } = (user.authProvider as { config: { clusterName: string; region: string } })
      .config;
    const key = `${region}/${clusterName}`;
    const now = new Date();
    let cached = this.#tokens.get(key);
    if (!cached || cached.until <= now.getTime()) {
      const token = this.credentials().then(
        (credentials) => eksToken({ clusterName, region, credentials, now }),
        (error: unknown) => {
          throw new Error(`EKS token for cluster ${clusterName}: no AWS credentials (${messageOf(error)})`);
        },
      );
      const entry = { token, until: now.getTime() + TOKEN_REUSE_MS };
      cached = entry;
      this.#tokens.set(key, entry);
      // A failure is not kept: the next request asks again.
      token.catch(() => {
        if (this.#tokens.get(key) === entry) this.#tokens.delete(key);
      });
    }
    opts.headers = { ...opts.headers, Authorization: `Bearer ${await cached.token}` };
  }
}

/** SigV4's hash, from node:crypto (the SDK's own is not a dependency of ours). */
class NodeSha256 {
  readonly #secret: string | Uint8Array | undefined;
  #hash;

  constructor(secret?: SourceData) {
    this.#secret = secret === undefined ? undefined : bytesOf(secret);
    this.#hash = this.#fresh();
  }

  #fresh() {
    return this.#secret === undefined ? createHash("sha256") : createHmac("sha256", this.#secret);
  }

  update(data: SourceData): void {
    this.#hash.update(bytesOf(data));
  }

  async digest(): Promise<Uint8Array> {
    return new Uint8Array(this.#hash.digest());
  }

  reset(): void {
    this.#hash = this.#fresh();
  }
}

type SourceData = string | ArrayBuffer | ArrayBufferView;

function bytesOf(data: SourceData): string | Uint8Array {
  if (typeof data === "string") return data;
  return ArrayBuffer.isView(data)
    ? new Uint8Array(data.buffer, data.byteOffset, data.byteLength)
    : new Uint8Array(data);
}
