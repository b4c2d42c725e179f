/**
 * The EKS token is checked against SigV4 recomputed here from the spec, independently of the
 * signer that made it: https://docs.aws.amazon.com/IAM/latest/UserGuide/create-signed-request.html
 */
import { createHash, createHmac } from "node:crypto";
import type { User } from "@kubernetes/client-node";
import { describe, expect, it } from "vitest";
import { eksGetTokenUser, eksToken } from "../../shared/adapters/eks-token.js";

const CREDENTIALS = {
  accessKeyId: "AKIDEXAMPLE",
  secretAccessKey: "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY",
  sessionToken: "session/token+with=odd&chars",
};
const NOW = new Date("2026-11-21T05:30:00.000Z");
const EMPTY_SHA256 = createHash("sha256").update("").digest("hex");

/** RFC 3986 encoding, as SigV4 wants it. */
const encode = (value: string) =>
  encodeURIComponent(value).replace(/[!'()*]/g, (c) => `%${c.charCodeAt(0).toString(16).toUpperCase()}`);

function expectedSignature(url: URL, clusterName: string): string {
  const params = [...url.searchParams].filter(([key]) => key !== "X-Amz-Signature");
  const canonicalQuery = params
    .map(([key, value]) => `${encode(key)}=${encode(value)}`)
    .sort()
    .join("&");
  const canonicalRequest = [
    "GET",
    "/",
    canonicalQuery,
    `host:${url.host}\nx-k8s-aws-id:${clusterName}\n`,
    "host;x-k8s-aws-id",
    EMPTY_SHA256,
  ].join("\n");
  const date = url.searchParams.get("X-Amz-Date") as string;
  const scope = `${date.slice(0, 8)}/eu-west-1/sts/aws4_request`;
  const stringToSign = [
    "AWS4-HMAC-SHA256",
    date,
    scope,
    createHash("sha256").update(canonicalRequest).digest("hex"),
  ].join("\n");
  const hmac = (key: string | Buffer, data: string) => createHmac("sha256", key).update(data).digest();
  let key = hmac(`AWS4${CREDENTIALS.secretAccessKey}`, date.slice(0, 8));
  for (const part of ["eu-west-1", "sts", "aws4_request"]) key = hmac(key, part);
  return createHmac("sha256", key).update(stringToSign).digest("hex");
}

describe("eksToken", () => {
  it("is a GetCallerIdentity URL presigned for 60 s with the cluster name signed in", async () => {
    const token = await eksToken({
      clusterName: "prod",
      region: "eu-west-1",
      credentials: CREDENTIALS,
      now: NOW,
    });
    expect(token.startsWith("k8s-aws-v1.")).toBe(true);
    expect(token).not.toMatch(/=/);
    const url = new URL(Buffer.from(token.slice("k8s-aws-v1.".length), "base64url").toString());
    expect(url.origin).toBe("https://sts.eu-west-1.amazonaws.com");
    expect(url.pathname).toBe("/");
    expect(Object.fromEntries(url.searchParams)).toMatchObject({
      Action: "GetCallerIdentity",
      Version: "2011-06-15",
      "X-Amz-Algorithm": "AWS4-HMAC-SHA256",
      "X-Amz-Credential": "AKIDEXAMPLE/20261121/eu-west-1/sts/aws4_request",
      "X-Amz-Date": "20261121T053000Z",
      "X-Amz-Expires": "60",
      "X-Amz-SignedHeaders": "host;x-k8s-aws-id",
      "X-Amz-Security-Token": CREDENTIALS.sessionToken,
    });
    expect(url.searchParams.get("X-Amz-Signature")).toBe(expectedSignature(url, "prod"));
  });

  it("signs another cluster's name differently: a token is good for one cluster", async () => {
    const a = await eksToken({
      clusterName: "prod",
      region: "eu-west-1",
      credentials: CREDENTIALS,
      now: NOW,
    });
    const b = await eksToken({ clusterName: "dev", region: "eu-west-1", credentials: CREDENTIALS, now: NOW });
    expect(a).not.toBe(b);
    const url = new URL(Buffer.from(b.slice("k8s-aws-v1.".length), "base64url").toString());
    expect(url.searchParams.get("X-Amz-Signature")).toBe(expectedSignature(url, "dev"));
  });
});

describe("eksGetTokenUser", () => {
  const user = (exec: unknown): User => ({ name: "u", exec }) as User;
  const aws = (...args: string[]) =>
    user({ apiVersion: "client.authentication.k8s.io/v1beta1", command: "aws", args });

  it("recognises what `aws eks update-kubeconfig` writes, the region from the args or the environment", () => {
    expect(
      eksGetTokenUser(
        aws("--region", "eu-west-1", "eks", "get-token", "--cluster-name", "prod", "--output", "json"),
        {},
      ),
    ).toEqual({ clusterName: "prod", region: "eu-west-1" });
    expect(
      eksGetTokenUser(aws("eks", "get-token", "--cluster-name", "prod"), { AWS_REGION: "us-east-2" }),
    ).toEqual({
      clusterName: "prod",
      region: "us-east-2",
    });
  });

  it("leaves every other user to the CLI: a profile, a role, other flags, another command, no region", () => {
    const env = { AWS_REGION: "eu-west-1" };
    const others = [
      user({
        command: "aws",
        args: ["eks", "get-token", "--cluster-name", "prod"],
        env: [{ name: "AWS_PROFILE", value: "x" }],
      }),
      aws("eks", "get-token", "--cluster-name", "prod", "--role-arn", "arn:aws:iam::1:role/r"),
      aws("--profile", "x", "eks", "get-token", "--cluster-name", "prod"),
      aws("eks", "get-token", "--cluster-name", "prod", "--output", "text"),
      aws("sts", "get-caller-identity"),
      user({ command: "aws-iam-authenticator", args: ["token", "-i", "prod"] }),
      user(undefined),
    ];
    for (const other of others) expect(eksGetTokenUser(other, env)).toBeNull();
    expect(eksGetTokenUser(aws("eks", "get-token", "--cluster-name", "prod"), {})).toBeNull();
  });
});
