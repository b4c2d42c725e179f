/**
 * Secrets read at run time from AWS Secrets Manager (the GitLab API token, and anything else a
 * handler should not carry in its configuration, such as a kubeconfig), cached for a while so a
 * warm Lambda does not call Secrets Manager per event, and re-read after that so a rotation lands.
 */
import {
  GetSecretValueCommand,
  SecretsManagerClient,
  SecretsManagerServiceException,
} from "@aws-sdk/client-secrets-manager";
import type { GitlabApiConfig } from "../config.js";
import { ENV } from "../config.js";
import { ConfigError, UnavailableError } from "../errors.js";
import type { AuditLog } from "../ports.js";

/**
 * Reads a secret's current value by ARN or name. `check` throws for a value the caller cannot use:
 * the read then fails and, like any failed read, is not cached, so a value put right is read next time.
 * `refused` is a value the service it is for has just refused (a revoked token): the secret is then
 * read past the cache, unless a read since already gave another value or is under way.
 */
export type ReadSecret = (
  secretId: string,
  check?: (value: string) => void,
  refused?: string,
) => Promise<string>;

export interface SecretReaderOptions {
  client: SecretsManagerClient;
  /** How long a value is used before it is read again. Default 5 minutes. */
  ttlMs?: number;
  /** Milliseconds now; injected for tests. */
  now?: () => number;
  /** Told each value read, so what logs redacts it (`audit.redactAlso`): a secret is never logged. */
  onSecret?: (value: string) => void;
}

interface CacheEntry {
  value: Promise<string>;
  until: number;
  /** The value once it arrived: a refused read asks again only while it is still the refused one. */
  read?: string;
}

/** The error names Secrets Manager answers when the secret or the permission is wrong, not the service. */
const MISCONFIGURED = new Set([
  "ResourceNotFoundException",
  "AccessDeniedException",
  "DecryptionFailure",
  "InvalidRequestException",
  "InvalidParameterException",
]);

/**
 * A `ReadSecret` over Secrets Manager with a per-secret TTL cache. Concurrent reads of one secret
 * share one request; a failed read is not cached. A read told the cached value was `refused` skips
 * the cache once, and concurrent such reads share that one request: an operator who rotated a token
 * and updated the secret is not refused for the rest of the TTL. A missing secret or a denied read
 * is a `ConfigError` naming the secret (never its value); throttling or an outage is `UnavailableError`.
 *
 * @example
 * const readSecret = createSecretReader({ client: new SecretsManagerClient({}) });
 * const token = await readSecret("arn:aws:secretsmanager:eu-west-1:123456789012:secret:kubler/gitlab-AbCdEf");
 * const renewed = await readSecret(arn, undefined, token); // after GitLab answered 401 to `token`
 */
export function createSecretReader(options: SecretReaderOptions): ReadSecret {
  const ttlMs = options.ttlMs ?? 5 * 60_000;
  const now = options.now ?? Date.now;
  const cache = new Map<string, CacheEntry>();
  return (secretId, check, refused) => {
    const cached = cache.get(secretId);
    if (cached && cached.until > now() && (refused === undefined || cached.read !== refused)) {
      // With `refused`, a read under way (`read` unset) or one that gave another value is the renewal.
      return cached.value;
    }
    const value = fetchSecret(options.client, secretId).then((secret) => {
      // Redacted even when unusable: a value of the wrong shape may still be a credential.
      options.onSecret?.(secret);
      check?.(secret);
      entry.read = secret;
      return secret;
    });
    const entry: CacheEntry = { value, until: now() + ttlMs };
    cache.set(secretId, entry);
    value.catch(() => {
      if (cache.get(secretId)?.value === value) cache.delete(secretId);
    });
    return value;
  };
}

/**
 * Secrets Manager as the entry points read it (region and endpoint from the environment): cached,
 * and every value read is redacted from `audit`'s later lines, whatever its shape. `clientConfig`
 * carries a function's time limits (its `limits.ts`).
 *
 * @example
 * const readSecret = createRedactingSecretReader(audit, LIMITS.aws);
 */
export function createRedactingSecretReader(
  audit: AuditLog,
  clientConfig: ConstructorParameters<typeof SecretsManagerClient>[0] = {},
): ReadSecret {
  return createSecretReader({
    client: new SecretsManagerClient(clientConfig),
    onSecret: (value) => audit.redactAlso?.(value),
  });
}

async function fetchSecret(client: SecretsManagerClient, secretId: string): Promise<string> {
  let answer: { SecretString?: string; SecretBinary?: Uint8Array };
  try {
    answer = await client.send(new GetSecretValueCommand({ SecretId: secretId }));
  } catch (error) {
    const name = error instanceof Error ? error.name : "";
    if (MISCONFIGURED.has(name)) {
      throw new ConfigError(`Secrets Manager cannot give secret ${secretId}: ${name}`);
    }
    const detail = error instanceof SecretsManagerServiceException ? `${name}` : describe(error);
    throw new UnavailableError(`Secrets Manager did not answer for secret ${secretId}: ${detail}`);
  }
  const value =
    answer.SecretString ?? (answer.SecretBinary ? Buffer.from(answer.SecretBinary).toString("utf8") : "");
  if (value.trim() === "") throw new ConfigError(`secret ${secretId} is empty`);
  return value.trim();
}

function describe(error: unknown): string {
  return error instanceof Error ? `${error.name}: ${error.message}` : String(error);
}

/**
 * The GitLab API token as the GitLab adapters take it: `GITLAB_API_TOKEN`, or the secret
 * `GITLAB_API_TOKEN_SECRET` names, read (and cached) through `readSecret`, and read again past the
 * cache when `GitlabApi` says GitLab refused the token it gave (`refused`, after a 401).
 *
 * @example
 * const token = gitlabApiToken(loadGitlabApiConfig(process.env), readSecret);
 * new GitlabManifestSource({ baseUrl: config.url, token });
 */
export function gitlabApiToken(
  config: GitlabApiConfig,
  readSecret: ReadSecret | null,
): (refused?: string) => Promise<string> {
  const { token, tokenSecret } = config;
  // Refused or not, the configured token is all there is: `GitlabApi` then keeps GitLab's 401.
  if (token) return async () => token;
  if (!tokenSecret || !readSecret) {
    throw new ConfigError(`${ENV.GITLAB_API_TOKEN} is required (or ${ENV.GITLAB_API_TOKEN_SECRET})`);
  }
  return (refused) => readSecret(tokenSecret, undefined, refused);
}
