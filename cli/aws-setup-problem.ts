/**
 * The AWS SDK's refusals before it sends anything (no credentials, no region: the usual first run on
 * a laptop), said as what to set rather than as a service refusing a request it never received.
 * Shared by the commands that call AWS from an operator's shell (`kubler audit`, `kubler stop --aws`).
 */
import { shellWord } from "../shared/domain/credentials-output.js";

/**
 * An endpoint that takes the connection and never answers (a proxy, a VPC endpoint's security group)
 * left the command waiting silently for ever: the SDK sets no time limit. Wider than the functions'
 * (AWS_REQUEST_LIMITS) for a laptop on a VPN far from the region; each call ends within 2 × 5 s.
 */
export const OPERATOR_REQUEST_LIMITS = {
  connectionTimeout: 3_000,
  requestTimeout: 5_000,
  throwOnRequestTimeout: true,
} as const;
export const OPERATOR_CLIENT_LIMITS = { maxAttempts: 2, requestHandler: OPERATOR_REQUEST_LIMITS } as const;

/**
 * What to set, or null when the error is not one of these.
 *
 * @example
 * awsSetupProblem(new Error("Region is missing"), " for CloudWatch Logs", process.env);
 * // "no AWS region for CloudWatch Logs (Region is missing): set AWS_REGION to the stack's region"
 */
export function awsSetupProblem(
  { name, message }: Error,
  service: string,
  /** The shell's variables, to name the AWS_PROFILE it set. */
  env: Readonly<Record<string, string | undefined>>,
): string | null {
  if (name === "CredentialsProviderError") {
    // "Set AWS_PROFILE" to an operator who has: the profile named is the one to look at.
    const profile = env.AWS_PROFILE?.trim();
    if (profile) {
      return `no AWS credentials${service} from AWS_PROFILE ${JSON.stringify(profile)} (${message}): check that profile exists (aws configure list-profiles), or log in again (aws sso login --profile ${shellWord(profile)})`;
    }
    return `no AWS credentials${service} (${message}): set AWS_PROFILE, or AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY`;
  }
  // The TimeoutError of OPERATOR_REQUEST_LIMITS.
  if (name === "TimeoutError") {
    return `AWS did not answer${service} (${message}): check this machine reaches the region's endpoints (a VPN, a proxy, AWS_ENDPOINT_URL_* or AWS_ENDPOINT_URL if set)`;
  }
  // Unset, or set empty (`Region not accepted: region="" is not a valid hostname component`).
  if (/region is missing|region not accepted/i.test(message)) {
    return `no AWS region${service} (${message}): set AWS_REGION to the stack's region`;
  }
  return null;
}
