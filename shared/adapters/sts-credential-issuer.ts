import {
  AssumeRoleCommand,
  type AssumeRoleCommandInput,
  type AssumeRoleCommandOutput,
  MalformedPolicyDocumentException,
  PackedPolicyTooLargeException,
  RegionDisabledException,
  type STSClient,
} from "@aws-sdk/client-sts";
import type { AssumeRoleRequest } from "../domain/sts-session.js";
import { ForbiddenError, UnavailableError, UnprocessableError } from "../errors.js";
import type { AwsCredentials, CredentialIssuer } from "../ports.js";

/** STS error codes that mean "slow down": the SDK has retried them already when they reach us. */
const THROTTLING = new Set([
  "Throttling",
  "ThrottlingException",
  "RequestLimitExceeded",
  "TooManyRequestsException",
]);

/**
 * `CredentialIssuer` with STS `AssumeRole`. The request is built and checked by the domain
 * (`buildAssumeRoleRequest`); this sends it and names what STS refused, with what to fix.
 *
 * @example
 * const issuer = new StsCredentialIssuer(new STSClient({})); // AWS_REGION, AWS_ENDPOINT_URL_STS honoured
 * const credentials = await issuer.assumeRole(request);
 */
export class StsCredentialIssuer implements CredentialIssuer {
  readonly kind = "sts" as const;

  constructor(private readonly client: STSClient) {}

  async assumeRole(request: AssumeRoleRequest): Promise<AwsCredentials> {
    const input: AssumeRoleCommandInput = {
      RoleArn: request.roleArn,
      RoleSessionName: request.roleSessionName,
      SourceIdentity: request.sourceIdentity,
      DurationSeconds: request.durationSeconds,
      Tags: request.tags.map((tag) => ({ Key: tag.key, Value: tag.value })),
      TransitiveTagKeys: request.transitiveTagKeys,
      ...(request.policy === null ? {} : { Policy: request.policy }),
    };
    let output: AssumeRoleCommandOutput;
    try {
      output = await this.client.send(new AssumeRoleCommand(input));
    } catch (error) {
      throw stsError(error, request);
    }
    const credentials = output.Credentials;
    if (
      !credentials?.AccessKeyId ||
      !credentials.SecretAccessKey ||
      !credentials.SessionToken ||
      !credentials.Expiration
    ) {
      throw new UnavailableError(`STS AssumeRole for ${request.roleArn} answered without credentials`);
    }
    return {
      accessKeyId: credentials.AccessKeyId,
      secretAccessKey: credentials.SecretAccessKey,
      sessionToken: credentials.SessionToken,
      expiresAt: new Date(credentials.Expiration),
      assumedRoleArn: output.AssumedRoleUser?.Arn ?? null,
    };
  }
}

/** STS's refusal as a named error whose message says what to fix; never the SDK's request details. */
function stsError(error: unknown, request: AssumeRoleRequest): Error {
  const role = request.roleArn;
  const name = (error as { name?: string }).name ?? "";
  const status = (error as { $metadata?: { httpStatusCode?: number } }).$metadata?.httpStatusCode;
  if (name === "AccessDenied" || name === "AccessDeniedException") {
    return new ForbiddenError(
      `AWS refused to let Kubler assume ${role} (AccessDenied): the role's trust policy must allow Kubler's role sts:AssumeRole, sts:TagSession and sts:SetSourceIdentity`,
    );
  }
  if (error instanceof PackedPolicyTooLargeException && request.policy === null) {
    // Tags count toward the packed size too: without a session policy, only the job's long claims can shrink it.
    return new UnprocessableError(
      `STS refused the session for ${role}: the session tags from the job's claims are too large once packed (PackedPolicyTooLarge; the rule has no session policy); a shorter ref, environment or project path fits`,
    );
  }
  if (error instanceof PackedPolicyTooLargeException) {
    return new UnprocessableError(
      `STS refused the session for ${role}: the session policy and tags are too large once packed (PackedPolicyTooLarge); shorten the rule's sessionPolicy`,
    );
  }
  if (error instanceof MalformedPolicyDocumentException) {
    return new UnprocessableError(
      `STS refused the rule's session policy for ${role} (MalformedPolicyDocument): ${(error as Error).message}`,
    );
  }
  if (error instanceof RegionDisabledException) {
    return new UnprocessableError(
      `STS is not activated in this account's region (RegionDisabled): activate it in IAM account settings, or set AWS_REGION to one where it is`,
    );
  }
  if (THROTTLING.has(name) || status === 429) {
    return new UnavailableError(`STS is throttling AssumeRole for ${role}`);
  }
  if (name === "ValidationError") {
    // e.g. "The requested DurationSeconds exceeds the MaxSessionDuration set for this role."
    return new UnprocessableError(
      `STS refused the AssumeRole request for ${role} (ValidationError): ${(error as Error).message}`,
    );
  }
  if (status === undefined || status >= 500) {
    return new UnavailableError(`STS could not be reached or failed for ${role}: ${name || "network error"}`);
  }
  return new UnprocessableError(`STS refused AssumeRole for ${role} (${name || `HTTP ${status}`})`);
}
