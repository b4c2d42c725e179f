/**
 * The AWS SDK's refusals before it sends anything (no credentials, no region: the usual first run on
 * a laptop), said as what to set rather than as a service refusing a request it never received.
 * Shared by the commands that call AWS from an operator's shell (`kubler audit`, `kubler stop --aws`).
 */

/**
 * What to set, or null when the error is not one of these.
 *
 * @example
 * awsSetupProblem(new Error("Region is missing"), " for CloudWatch Logs");
 * // "no AWS region for CloudWatch Logs (Region is missing): set AWS_REGION to the stack's region"
 */
export function awsSetupProblem(
  { name, message }: Error,
  service = "",
  /** The shell's variables, to name the AWS_PROFILE it set; without them, the advice is generic. */
  env: Readonly<Record<string, string | undefined>> = {},
): string | null {
  if (name === "CredentialsProviderError") {
    // "Set AWS_PROFILE" to an operator who has: the profile named is the one to look at.
    const profile = env.AWS_PROFILE?.trim();
    if (profile) {
      return `no AWS credentials${service} from AWS_PROFILE ${JSON.stringify(profile)} (${message}): check that profile exists (aws configure list-profiles), or log in again (aws sso login --profile ${profile})`;
    }
    return `no AWS credentials${service} (${message}): set AWS_PROFILE, or AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY`;
  }
  // Unset, or set empty (`Region not accepted: region="" is not a valid hostname component`).
  if (/region is missing|region not accepted/i.test(message)) {
    return `no AWS region${service} (${message}): set AWS_REGION to the stack's region`;
  }
  return null;
}
