/**
 * Job credentials' configuration (DESIGN §5), apart from `config.ts` because it parses the policy
 * YAML: the webhook bundle loads `config.ts` and must not carry a YAML parser (112 KB).
 */
import { readFileSync } from "node:fs";
import { ENV, type Env, isPlainHttpOffHost, positiveInt, required } from "./config.js";
import { type CredentialsPolicy, PolicyError, parseCredentialsPolicy } from "./domain/credentials-policy.js";
import { ConfigError } from "./errors.js";

/** The local runtime's policy when `KUBLER_POLICY_FILE` is not set: works with `kubler credentials`. */
export const LOCAL_POLICY_FILE = "examples/policy.yaml";

export interface CredentialsConfig {
  policyFile: string;
  policy: CredentialsPolicy;
  /** ID tokens' `iss`: the policy's `issuer`, else `GITLAB_URL`; null in local mode means the local issuer. */
  issuer: string | null;
  /** At most one JWKS fetch per this interval for tokens naming a key not in the cache. */
  jwksRefetchIntervalMs: number;
  /** AWS credentials or an STS endpoint are configured: the STS issuer, else (local mode) the local one. */
  awsConfigured: boolean;
}

/**
 * Job credentials' settings (DESIGN §5): the policy file read and validated now, so a bad policy fails
 * start-up with every problem listed, not a job later.
 *
 * @example
 * const config = loadCredentialsConfig(process.env, { local: false }); // ConfigError: KUBLER_POLICY_FILE ...
 */
export function loadCredentialsConfig(env: Env, { local }: { local: boolean }): CredentialsConfig {
  const policyFile = local
    ? env[ENV.POLICY_FILE]?.trim() || LOCAL_POLICY_FILE
    : required(env, ENV.POLICY_FILE);
  let text: string;
  try {
    text = readFileSync(policyFile, "utf8");
  } catch (error) {
    throw new ConfigError(`${ENV.POLICY_FILE}: cannot read ${policyFile}: ${(error as Error).message}`);
  }
  let policy: CredentialsPolicy;
  try {
    policy = parseCredentialsPolicy(text);
  } catch (error) {
    if (!(error instanceof PolicyError)) throw error;
    throw new ConfigError(
      `${ENV.POLICY_FILE} (${policyFile}) is not a valid policy:\n  ${error.problems.join("\n  ")}`,
    );
  }
  const gitlabUrl = env[ENV.GITLAB_URL]?.trim().replace(/\/+$/, "") || null;
  // Checked before the URL is quoted in any message: the credentials would be in it. The issuer's
  // URL becomes the JWKS URL, which an outage's error names (gitlab-api's instanceRoot refuses them too).
  if (gitlabUrl && hasUrlCredentials(gitlabUrl)) {
    throw new ConfigError(
      `${ENV.GITLAB_URL} must be the instance's address only, without credentials (user:password@)`,
    );
  }
  if (policy.issuer && hasUrlCredentials(policy.issuer)) {
    throw new ConfigError(
      `${ENV.POLICY_FILE} (${policyFile}): the issuer must be the instance's address only, without credentials (user:password@)`,
    );
  }
  if (gitlabUrl && (!URL.canParse(gitlabUrl) || !/^https?:$/.test(new URL(gitlabUrl).protocol))) {
    throw new ConfigError(`${ENV.GITLAB_URL} must be an http(s) URL, got ${JSON.stringify(gitlabUrl)}`);
  }
  // In AWS (the functions pass local: false) the JWKS is read from the issuer. Locally, a GitLab
  // fake or one on the same network may be http.
  if (!local && gitlabUrl && isPlainHttpOffHost(gitlabUrl)) {
    throw new ConfigError(`${ENV.GITLAB_URL} must be an https URL in AWS: ${PLAIN_HTTP_RISK}`);
  }
  if (!local && policy.issuer && isPlainHttpOffHost(policy.issuer)) {
    throw new ConfigError(
      `${ENV.POLICY_FILE} (${policyFile}): the issuer must be an https URL in AWS: ${PLAIN_HTTP_RISK}`,
    );
  }
  const issuer = policy.issuer ?? gitlabUrl;
  if (!issuer && !local) {
    throw new ConfigError(
      `set ${ENV.GITLAB_URL} or the policy's issuer: ID tokens cannot be verified without one`,
    );
  }
  const awsVariables = [
    "AWS_ACCESS_KEY_ID",
    "AWS_PROFILE",
    "AWS_ENDPOINT_URL_STS",
    "AWS_ENDPOINT_URL",
    "AWS_WEB_IDENTITY_TOKEN_FILE",
    "AWS_CONTAINER_CREDENTIALS_FULL_URI",
    "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI",
  ];
  return {
    policyFile,
    policy,
    issuer,
    jwksRefetchIntervalMs: positiveInt(env, ENV.JWKS_REFETCH_SECONDS, 30, 86_400) * 1000,
    awsConfigured: awsVariables.some((name) => Boolean(env[name]?.trim())),
  };
}

/**
 * Why GitLab (the policy's issuer, or GITLAB_URL) must be reached over https: job-credentials
 * trusts whatever keys its JWKS serves. The synth says the same (infra/config.ts, infra/policy-roles.ts).
 */
export const PLAIN_HTTP_RISK =
  "job-credentials reads GitLab's ID-token signing keys (<issuer>/oauth/discovery/keys) from it, and over http anyone on the path could replace them and mint any job's credentials";

/**
 * True when `url` carries userinfo (`user:password@`) before its host, parsed or not: `gitlab:tok@host`
 * without `//` counts too, as it is one slip from being sent. The synth refuses the same
 * (infra/config.ts, infra/policy-roles.ts). (gitlab-api.ts has the same check; it cannot import this
 * module, which carries the YAML parser the webhook bundle must not.)
 *
 * @example
 * hasUrlCredentials("https://kubler:glpat-…@gitlab.example.com"); // true
 */
export function hasUrlCredentials(url: string): boolean {
  if (URL.canParse(url)) {
    const parsed = new URL(url);
    if (parsed.username || parsed.password) return true;
  }
  return /^[a-z][a-z0-9+.-]*:(?:[/\\]{2})?[^/\\?#]*@/i.test(url);
}
