/**
 * The AWS SDK's default credential chain, as Kubler's Lambda bundles ship it: the execution role's
 * credentials, which Lambda always sets as `AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY` and
 * `AWS_SESSION_TOKEN` (https://docs.aws.amazon.com/lambda/latest/dg/configuration-envvars.html).
 *
 * Never imported: the Lambda bundle substitutes this module for `@aws-sdk/credential-provider-node`
 * (`LAMBDA_CREDENTIAL_PROVIDER_ALIAS` in infra/lambda-bundle.ts). The full chain also carries SSO,
 * profiles, `credential_process`, web identity and their nested STS/SSO clients: ≈ 80 KB of every
 * bundle, parsed on every cold start, none of it reachable in Lambda. Tests and the local runtime
 * keep the full chain.
 */
import { fromEnv } from "@aws-sdk/credential-provider-env";

type AwsCredentialIdentityProvider = ReturnType<typeof fromEnv>;
type AwsCredentialIdentity = Awaited<ReturnType<AwsCredentialIdentityProvider>>;

/** The signature of the SDK's `defaultProvider`; the options it takes do not apply to env credentials. */
export const defaultProvider = (init: Parameters<typeof fromEnv>[0] = {}): AwsCredentialIdentityProvider =>
  fromEnv(init);

export const credentialsWillNeedRefresh = (credentials?: AwsCredentialIdentity): boolean =>
  credentials?.expiration !== undefined;

/** As the SDK's: credentials within 5 minutes of their expiry count as expired. */
export const credentialsTreatedAsExpired = (credentials?: AwsCredentialIdentity): boolean =>
  credentials?.expiration !== undefined && credentials.expiration.getTime() - Date.now() < 300_000;
