/**
 * The AWS roles a credentials policy (DESIGN §5) names: the only ARNs job-credentials may assume.
 */
import { hasUrlCredentials, PLAIN_HTTP_RISK } from "../shared/credentials-config.js";
import { parseCredentialsPolicy } from "../shared/domain/credentials-policy.js";

/** An IAM role ARN without wildcards: a `*` would let a job assume roles nobody listed. */
const ROLE_ARN = /^arn:aws[a-z-]*:iam::\d{12}:role\/[\w+=,.@/-]{1,512}$/;

/**
 * Every distinct `rules[].aws.roleArn` of a policy, sorted; parsed with the same parser
 * job-credentials uses, so a policy the function would refuse fails `cdk synth` too.
 *
 * @example
 * roleArnsOfPolicy(readFileSync("policy.yaml", "utf8")); // ["arn:aws:iam::123456789012:role/kubler-review"]
 */
export function roleArnsOfPolicy(yamlText: string): string[] {
  const policy = parseCredentialsPolicy(yamlText);
  // Not quoted: the credential would be in the synth's output.
  if (policy.issuer && hasUrlCredentials(policy.issuer)) {
    throw new Error("issuer must be the instance's address only, without credentials (user:password@)");
  }
  // Checked after userinfo, so a credential is never quoted; the parser already wants http(s).
  if (policy.issuer && new URL(policy.issuer).protocol === "http:") {
    throw new Error(`issuer must be an https URL, got ${JSON.stringify(policy.issuer)}: ${PLAIN_HTTP_RISK}`);
  }
  const arns = new Set<string>();
  for (const rule of policy.rules) {
    if (!rule.aws) continue;
    if (!ROLE_ARN.test(rule.aws.roleArn)) {
      throw new Error(
        `rules[${rule.index}] (${rule.name}).aws.roleArn must be an IAM role ARN without wildcards, got ${JSON.stringify(rule.aws.roleArn)}`,
      );
    }
    arns.add(rule.aws.roleArn);
  }
  return [...arns].sort();
}
