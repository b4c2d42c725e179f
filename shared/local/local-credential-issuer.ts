import { randomBytes } from "node:crypto";
import type { AssumeRoleRequest } from "../domain/sts-session.js";
import type { AwsCredentials, Clock, CredentialIssuer } from "../ports.js";

/** Every local access key starts with this, so nobody mistakes one for AWS's (which start `ASIA`). */
export const LOCAL_ACCESS_KEY_PREFIX = "LOCALKUBLER";

/**
 * The local runtime's `CredentialIssuer` when AWS is not configured (DESIGN §10): it answers like
 * STS (same request, the duration honoured) with credentials that are NOT valid for AWS and say so.
 * The request was built and checked by the same domain code as in AWS, so what the policy decides
 * locally is what it decides there.
 *
 * @example
 * const issuer = new LocalCredentialIssuer(systemClock);
 * (await issuer.assumeRole(request)).accessKeyId; // "LOCALKUBLER…"
 */
export class LocalCredentialIssuer implements CredentialIssuer {
  readonly kind = "local" as const;

  constructor(private readonly clock: Clock) {}

  async assumeRole(request: AssumeRoleRequest): Promise<AwsCredentials> {
    const now = this.clock.now();
    const role = request.roleArn.split("/").at(-1) ?? "role";
    const account = request.roleArn.split(":")[4] ?? "000000000000";
    return {
      accessKeyId: `${LOCAL_ACCESS_KEY_PREFIX}${randomBytes(5).toString("hex").toUpperCase()}`,
      secretAccessKey: `local-not-valid-for-aws-${randomBytes(15).toString("base64url")}`,
      sessionToken: `local-kubler-session-not-valid-for-aws-${randomBytes(24).toString("base64url")}`,
      expiresAt: new Date(now.getTime() + request.durationSeconds * 1000),
      assumedRoleArn: `arn:aws:sts::${account}:assumed-role/${role}/${request.roleSessionName}`,
    };
  }
}
