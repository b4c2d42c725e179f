/**
 * Configuration variables kept in a Secrets Manager secret instead of the function's environment,
 * where anyone who can read the function's configuration would see them. The stack stores a JSON
 * object of variable names to values and passes only the secret's ARN.
 */
import type { Env } from "../config.js";
import { ConfigError } from "../errors.js";
import type { ReadSecret } from "./secret-reader.js";

/**
 * `env` with the variables of the secret named by `env[secretVariable]` added (they win over the
 * environment); `env` unchanged when that variable is unset, as locally. Only the `allowed` names may
 * be in the secret. A secret that cannot be read or is not such an object is a `ConfigError` naming
 * the variable and the secret, never a value.
 *
 * @example
 * const env = await withSecretVariables(process.env, "KUBLER_WEBHOOK_CREDENTIALS_SECRET",
 *   ["KUBLER_WEBHOOK_SECRET", "KUBLER_WEBHOOK_SIGNING_KEY"], readSecret);
 */
export async function withSecretVariables(
  env: Env,
  secretVariable: string,
  allowed: readonly string[],
  readSecret: ReadSecret,
): Promise<Env> {
  const secretId = env[secretVariable]?.trim();
  if (!secretId) return env;
  const text = await readSecretOf(secretVariable, secretId, readSecret);
  const problem = (what: string) => new ConfigError(`${secretVariable}: secret ${secretId} ${what}`);
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch {
    // JSON.parse's message quotes the text, which is the secret: leave it out.
    throw problem(`is not a JSON object of ${allowed.join(", ")}`);
  }
  if (typeof value !== "object" || value === null || Array.isArray(value)) {
    throw problem(`is not a JSON object of ${allowed.join(", ")}`);
  }
  const entries = Object.entries(value);
  const unknown = entries.map(([name]) => name).filter((name) => !allowed.includes(name));
  if (unknown.length > 0) {
    throw problem(`holds ${unknown.join(", ")}; only ${allowed.join(", ")} may be kept there`);
  }
  const notText = entries.filter(([, v]) => typeof v !== "string").map(([name]) => name);
  if (notText.length > 0) throw problem(`must hold strings, not for ${notText.join(", ")}`);
  return { ...env, ...(Object.fromEntries(entries) as Record<string, string>) };
}

/**
 * Reads the secret the variable `variable` names: a `ConfigError` (the secret missing, not readable by
 * the role, empty) then names the variable first, so a cold start's failure says what to look at.
 *
 * @example
 * const kubeconfig = await readSecretOf(ENV.KUBECONFIG_SECRET, secretArn, readSecret);
 */
export async function readSecretOf(
  variable: string,
  secretId: string,
  readSecret: ReadSecret,
): Promise<string> {
  try {
    return await readSecret(secretId);
  } catch (error) {
    if (error instanceof ConfigError) throw new ConfigError(`${variable}: ${error.message}`);
    throw error;
  }
}
