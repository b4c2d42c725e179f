/**
 * Configuration from environment variables: the same names in Lambda and locally (DESIGN §10).
 * Loaded once at start-up; anything missing or malformed throws `ConfigError` naming the variable.
 * The environment is passed in, never read from a module's top level.
 */
import { readFileSync } from "node:fs";
import {
  DEFAULT_POD_SECURITY,
  isPodSecurityLevel,
  POD_SECURITY_LEVELS,
  type PodSecurityLevel,
} from "./domain/environment.js";
import { imagesTemplateProblem } from "./domain/image-repository.js";
import { parseTtl } from "./domain/ttl.js";
import { createWebhookCredentials, type WebhookCredentials } from "./domain/webhook-auth.js";
import { ConfigError } from "./errors.js";

export const ENV = {
  PORT: "PORT",
  /** Local: the address `npm start` listens on (127.0.0.1; 0.0.0.0 lets a GitLab elsewhere reach it). */
  HOST: "KUBLER_HOST",
  DATA_DIR: "KUBLER_DATA_DIR",
  WEBHOOK_SECRET: "KUBLER_WEBHOOK_SECRET",
  WEBHOOK_SIGNING_KEY: "KUBLER_WEBHOOK_SIGNING_KEY",
  WEBHOOK_MAX_BODY_BYTES: "KUBLER_WEBHOOK_MAX_BODY_BYTES",
  EVENT_BUS_NAME: "KUBLER_EVENT_BUS_NAME",
  DEDUPE_TABLE: "KUBLER_DEDUPE_TABLE",
  AWS_REGION: "AWS_REGION",
  KUBECONFIG: "KUBECONFIG",
  DEFAULT_TTL: "KUBLER_DEFAULT_TTL",
  REGISTRY_AUTH_FILE: "KUBLER_REGISTRY_AUTH_FILE",
  /**
   * A Secrets Manager secret (ARN or name) holding the `.dockerconfigjson` of KUBLER_REGISTRY_AUTH_FILE,
   * read at run time instead of that file (the AWS stack sets it from `kubler:registryAuthSecretArn`).
   */
  REGISTRY_AUTH_SECRET: "KUBLER_REGISTRY_AUTH_SECRET",
  PROJECTS_DIR: "KUBLER_PROJECTS_DIR",
  EVENT_BUS_ARN: "KUBLER_EVENT_BUS_ARN",
  SCHEDULE_GROUP: "KUBLER_SCHEDULE_GROUP",
  SCHEDULER_ROLE_ARN: "KUBLER_SCHEDULER_ROLE_ARN",
  /** The SQS queue expiry schedules dead-letter to (Lambda: every schedule created names it). */
  SCHEDULE_DEAD_LETTER_QUEUE_ARN: "KUBLER_SCHEDULE_DEAD_LETTER_QUEUE_ARN",
  GITLAB_URL: "GITLAB_URL",
  GITLAB_API_TOKEN: "GITLAB_API_TOKEN",
  /** Job credentials: seconds between JWKS fetches caused by tokens naming an unknown key (default 30). */
  JWKS_REFETCH_SECONDS: "KUBLER_JWKS_REFETCH_SECONDS",
  POLICY_FILE: "KUBLER_POLICY_FILE",
  /** A Secrets Manager secret (ARN or name) holding the GitLab API token, instead of GITLAB_API_TOKEN. */
  GITLAB_API_TOKEN_SECRET: "GITLAB_API_TOKEN_SECRET",
  /** A Secrets Manager secret (ARN or name) holding the cluster's kubeconfig text, instead of KUBECONFIG. */
  KUBECONFIG_SECRET: "KUBLER_KUBECONFIG_SECRET",
  /**
   * A Secrets Manager secret (ARN or name) holding a JSON object with KUBLER_WEBHOOK_SECRET and/or
   * KUBLER_WEBHOOK_SIGNING_KEY, read instead of those variables (the stack generates it).
   */
  WEBHOOK_CREDENTIALS_SECRET: "KUBLER_WEBHOOK_CREDENTIALS_SECRET",
  BUILD_NAMESPACE: "KUBLER_BUILD_NAMESPACE",
  BUILD_GIT_SECRET: "KUBLER_BUILD_GIT_SECRET",
  BUILD_IMAGES: "KUBLER_BUILD_IMAGES",
  BUILD_REGISTRY_SECRET: "KUBLER_BUILD_REGISTRY_SECRET",
  /** The Pod Security level environment namespaces enforce: baseline (default), restricted or privileged. */
  POD_SECURITY: "KUBLER_POD_SECURITY",
  /** Set by Lambda: the process runs in AWS, where GitLab must be reached over https. */
  LAMBDA_FUNCTION_NAME: "AWS_LAMBDA_FUNCTION_NAME",
} as const;

export type Env = Readonly<Record<string, string | undefined>>;

/** GitLab caps webhook bodies well below this; larger is hostile or misconfigured. */
export const DEFAULT_MAX_BODY_BYTES = 5 * 1024 * 1024;

export interface WebhookSecrets {
  tokens: string[];
  signingKeys: string[];
}

export interface WebhookConfig {
  secrets: WebhookSecrets;
  credentials: WebhookCredentials;
  maxBodyBytes: number;
}

/**
 * The webhook's own settings. `requireSecret: false` (local mode only) allows starting with none, so
 * the local runtime can generate one.
 *
 * @example
 * const config = loadWebhookConfig(process.env, { requireSecret: true });
 */
export function loadWebhookConfig(env: Env, { requireSecret }: { requireSecret: boolean }): WebhookConfig {
  const secrets: WebhookSecrets = {
    tokens: list(env, ENV.WEBHOOK_SECRET),
    signingKeys: list(env, ENV.WEBHOOK_SIGNING_KEY),
  };
  if (requireSecret && secrets.tokens.length === 0 && secrets.signingKeys.length === 0) {
    throw new ConfigError(
      `set ${ENV.WEBHOOK_SECRET} or ${ENV.WEBHOOK_SIGNING_KEY}: webhooks cannot be verified`,
    );
  }
  return {
    secrets,
    credentials: webhookCredentials(secrets),
    maxBodyBytes: positiveInt(env, ENV.WEBHOOK_MAX_BODY_BYTES, DEFAULT_MAX_BODY_BYTES),
  };
}

/** Turns secrets into verifier credentials, reporting a bad one by its variable. */
export function webhookCredentials(secrets: WebhookSecrets): WebhookCredentials {
  try {
    return createWebhookCredentials(secrets);
  } catch (error) {
    // Tokens cannot fail here (empty items are dropped when the list is read): the key is the culprit.
    throw new ConfigError(`${ENV.WEBHOOK_SIGNING_KEY}: ${(error as Error).message}`);
  }
}

/** Settings only Lambda needs: where to publish and dedupe. */
export function loadAwsIngressConfig(env: Env): { busName: string; dedupeTable: string } {
  checkAwsEndpoints(env);
  return { busName: env[ENV.EVENT_BUS_NAME] || "kubler", dedupeTable: required(env, ENV.DEDUPE_TABLE) };
}

export interface EnvironmentsConfig {
  /** TTL of environments whose kubler.yaml rule sets none. */
  defaultTtl: string;
  /**
   * `KUBLER_REGISTRY_AUTH_FILE`: the `.dockerconfigjson` each environment's pull secret is made of
   * (`readRegistryAuth`), checked at start-up and read again for every deploy, since registry
   * credentials are refreshed under a running process (ECR's last 12 h). Null: images are public.
   */
  registryAuthFile: string | null;
  /**
   * `KUBLER_REGISTRY_AUTH_SECRET`: instead of the file, the Secrets Manager secret (ARN or name)
   * holding it (the AWS stack sets it), read for every deploy through the cached secret reader.
   */
  registryAuthSecret: string | null;
  /**
   * `KUBLER_POD_SECURITY`: the Pod Security Admission level each environment namespace enforces.
   * `privileged` lets any project run privileged pods on the nodes: an explicit choice, never a default.
   */
  podSecurity: PodSecurityLevel;
}

/** The environment steps' settings (deploy, cleanup, reconcile). */
export function loadEnvironmentsConfig(env: Env): EnvironmentsConfig {
  const defaultTtl = env[ENV.DEFAULT_TTL]?.trim() || "72h";
  try {
    parseTtl(defaultTtl);
  } catch (error) {
    throw new ConfigError(`${ENV.DEFAULT_TTL}: ${(error as Error).message}`);
  }
  const registryAuthFile = env[ENV.REGISTRY_AUTH_FILE]?.trim() || null;
  const registryAuthSecret = env[ENV.REGISTRY_AUTH_SECRET]?.trim() || null;
  if (registryAuthFile && registryAuthSecret) {
    throw new ConfigError(
      `set ${ENV.REGISTRY_AUTH_FILE} or ${ENV.REGISTRY_AUTH_SECRET}, not both: which one is meant is unclear`,
    );
  }
  return { defaultTtl, registryAuthFile, registryAuthSecret, podSecurity: podSecurityLevel(env) };
}

function podSecurityLevel(env: Env): PodSecurityLevel {
  const raw = env[ENV.POD_SECURITY]?.trim();
  if (!raw) return DEFAULT_POD_SECURITY;
  if (!isPodSecurityLevel(raw)) {
    throw new ConfigError(
      `${ENV.POD_SECURITY} must be one of ${POD_SECURITY_LEVELS.join(", ")} (the Pod Security Standards' levels environments enforce), got ${JSON.stringify(raw)}`,
    );
  }
  return raw;
}

/**
 * The registry auth file's text, once it is known to be a `.dockerconfigjson`; else a ConfigError
 * naming the variable (unchecked, a missing file failed deploys with a bare ENOENT and a malformed
 * one became the pull secret). The content holds credentials: never quoted in an error.
 *
 * @example
 * const pullSecret = readRegistryAuth("/etc/kubler/registry.json"); // '{"auths":{…}}'
 */
export function readRegistryAuth(file: string): string {
  const problem = (reason: string) => new ConfigError(`${ENV.REGISTRY_AUTH_FILE} ${file} ${reason}`);
  let text: string;
  try {
    text = readFileSync(file, "utf8");
  } catch (error) {
    throw problem(fileProblem(error));
  }
  const reason = dockerConfigProblem(text);
  if (reason) throw problem(reason);
  return text;
}

/** Why a text is not a `.dockerconfigjson`, in words that never quote it (it holds credentials). */
function dockerConfigProblem(text: string): string | null {
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch {
    return "is not JSON";
  }
  const auths = isObject(parsed) ? parsed.auths : undefined;
  if (!isObject(auths)) {
    return 'is not a .dockerconfigjson: it needs an "auths" object, like {"auths": {"registry.example.com": {"auth": "…"}}}';
  }
  return null;
}

/**
 * Where each environment's pull secret comes from: `KUBLER_REGISTRY_AUTH_FILE` (checked now, at
 * start-up, and read again for every deploy) or the Secrets Manager secret `KUBLER_REGISTRY_AUTH_SECRET`
 * names, read through `readSecret` for every deploy, so its cache decides when a rotation lands
 * (as for the GitLab token). Neither: no pull secret. A value that is not a `.dockerconfigjson` is a
 * ConfigError naming the variable and the file or secret, never the content.
 *
 * @example
 * const pullSecret = registryPullSecret(loadEnvironmentsConfig(process.env), createRedactingSecretReader(audit));
 * await pullSecret(); // '{"auths":{…}}', or null
 */
export function registryPullSecret(
  {
    registryAuthFile: file,
    registryAuthSecret: secretId,
  }: Pick<EnvironmentsConfig, "registryAuthFile" | "registryAuthSecret">,
  readSecret: (secretId: string, check?: (value: string) => void) => Promise<string>,
): () => Promise<string | null> {
  if (file) {
    readRegistryAuth(file);
    return async () => readRegistryAuth(file);
  }
  if (!secretId) return async () => null;
  const check = (text: string) => {
    const reason = dockerConfigProblem(text);
    if (reason) throw new ConfigError(`${ENV.REGISTRY_AUTH_SECRET}: secret ${secretId} ${reason}`);
  };
  // Checked inside the read too, so the reader does not cache a wrong value for its TTL: the bus
  // retries a failed deploy within minutes, and a secret put right by then must be read again.
  return async () => {
    const text = await readSecret(secretId, check);
    check(text);
    return text;
  };
}

function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

/** Why a file could not be read, in an operator's words rather than a syscall's. */
export function fileProblem(error: unknown): string {
  switch ((error as { code?: unknown } | null)?.code) {
    case "ENOENT":
      return "does not exist";
    case "EACCES":
    case "EPERM":
      return "cannot be read: permission denied";
    case "EISDIR":
      return "is a directory, not a file";
    case "ENOTDIR":
      return "does not exist (a part of its path is a file)";
    default:
      return `cannot be read: ${(error as Error).message}`;
  }
}

/** What the step functions need in AWS: the bus to publish on and where expiry schedules go. */
export interface AwsStepsConfig {
  busName: string;
  busArn: string;
  scheduleGroup: string;
  schedulerRoleArn: string;
  /** The SQS queue ARN every expiry schedule dead-letters to. */
  scheduleDeadLetterArn: string;
}

export function loadAwsStepsConfig(env: Env): AwsStepsConfig {
  checkAwsEndpoints(env);
  return {
    busName: env[ENV.EVENT_BUS_NAME] || "kubler",
    busArn: required(env, ENV.EVENT_BUS_ARN),
    scheduleGroup: required(env, ENV.SCHEDULE_GROUP),
    schedulerRoleArn: required(env, ENV.SCHEDULER_ROLE_ARN),
    scheduleDeadLetterArn: required(env, ENV.SCHEDULE_DEAD_LETTER_QUEUE_ARN),
  };
}

/**
 * The GitLab API the step functions read projects from (and report to). The token is
 * `GITLAB_API_TOKEN` itself, or read at run time from the Secrets Manager secret
 * `GITLAB_API_TOKEN_SECRET` names (the token then never sits in the function's configuration).
 */
export interface GitlabApiConfig {
  url: string;
  /** Null when the token comes from `tokenSecret`. */
  token: string | null;
  /** A secret's ARN or name; null when the token is given directly. */
  tokenSecret: string | null;
}

export function loadGitlabApiConfig(env: Env): GitlabApiConfig {
  const url = required(env, ENV.GITLAB_URL);
  if (!URL.canParse(url) || !/^https?:$/.test(new URL(url).protocol)) {
    throw new ConfigError(`${ENV.GITLAB_URL} must be an http(s) URL, got ${quoteUrl(url)}`);
  }
  // Not quoted: gitlab-api.ts refuses userinfo only when it connects, after this.
  if (env[ENV.LAMBDA_FUNCTION_NAME]?.trim() && isPlainHttpOffHost(url)) {
    throw new ConfigError(
      `${ENV.GITLAB_URL} must be an https URL in AWS: over http the API token, and the kubler.yaml and manifests deployed, cross the network in clear for anyone on the path to read or replace`,
    );
  }
  const token = env[ENV.GITLAB_API_TOKEN]?.trim() || null;
  const tokenSecret = env[ENV.GITLAB_API_TOKEN_SECRET]?.trim() || null;
  if (!token && !tokenSecret) {
    throw new ConfigError(`${ENV.GITLAB_API_TOKEN} is required (or ${ENV.GITLAB_API_TOKEN_SECRET})`);
  }
  if (token && tokenSecret) {
    throw new ConfigError(
      `set ${ENV.GITLAB_API_TOKEN} or ${ENV.GITLAB_API_TOKEN_SECRET}, not both: which one is meant is unclear`,
    );
  }
  return { url, token, tokenSecret };
}

/**
 * Whether `url` is plain http to a host other than this machine's loopback: in AWS, what GitLab
 * sends over it (signing keys, kubler.yaml) can be replaced on the way. Loopback never leaves the
 * host, so a GitLab fake there (the bundles' test) stays allowed.
 *
 * @example
 * isPlainHttpOffHost("http://gitlab.example.com"); // true
 * isPlainHttpOffHost("http://127.0.0.1:8929"); // false
 */
export function isPlainHttpOffHost(url: string): boolean {
  if (!URL.canParse(url)) return false;
  const { protocol, hostname } = new URL(url);
  if (protocol !== "http:") return false;
  return !(hostname === "localhost" || hostname === "[::1]" || /^127(\.\d{1,3}){3}$/.test(hostname));
}

/** Where build Jobs run and the Secrets they read (DESIGN §7); only the Secrets' names are configured. */
export interface BuildConfig {
  namespace: string;
  /** Secret with key `token`: a GitLab token with `read_repository`, for the clone. */
  gitSecret: string;
  /** `kubernetes.io/dockerconfigjson` Secret with push access to the images' registry. */
  registrySecret: string;
  /**
   * The repositories a project may push to, as a prefix with `{project_path}` in it
   * (`registry.gitlab.example.com/{project_path}`); null: any its kubler.yaml names.
   */
  images: string | null;
}

export function loadBuildConfig(env: Env): BuildConfig {
  const name = (variable: string, fallback: string, pattern: RegExp, what: string) => {
    const value = env[variable]?.trim() || fallback;
    if (!pattern.test(value)) {
      throw new ConfigError(`${variable} must be ${what}, got ${JSON.stringify(value)}`);
    }
    return value;
  };
  const label = /^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$/;
  const subdomain = /^[a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?$/;
  return {
    namespace: name(ENV.BUILD_NAMESPACE, "kubler-builds", label, "a namespace name (DNS-1123 label)"),
    gitSecret: name(ENV.BUILD_GIT_SECRET, "kubler-git-credentials", subdomain, "a Secret name"),
    registrySecret: name(ENV.BUILD_REGISTRY_SECRET, "kubler-registry-push", subdomain, "a Secret name"),
    images: imagesTemplate(env[ENV.BUILD_IMAGES]?.trim() || null),
  };
}

function imagesTemplate(template: string | null): string | null {
  const problem = template === null ? null : imagesTemplateProblem(template);
  if (problem) throw new ConfigError(`${ENV.BUILD_IMAGES} ${problem}`);
  return template;
}

export interface LocalConfig {
  port: number;
  /** The address to listen on: loopback unless KUBLER_HOST says otherwise. */
  host: string;
  dataDir: string;
  region: string;
  webhook: WebhookConfig;
  environments: EnvironmentsConfig;
  /** `<dir>/<project path>/kubler.yaml` stands in for each repository. */
  projectsDir: string;
  /** Null: the embedded in-memory cluster. */
  kubeconfig: string | null;
  /** Where build Jobs run and the Secrets they name. */
  builds: BuildConfig;
  /** Null when no GitLab API is configured: commit statuses go to a local file instead. */
  gitlabApi: GitlabApiConfig | null;
}

/** The local runtime's settings (`npm start`). */
export function loadLocalConfig(env: Env): LocalConfig {
  checkAwsEndpoints(env);
  return {
    // 0 asks the OS for a free port (tests).
    port: readPort(env),
    host: env[ENV.HOST]?.trim() || "127.0.0.1",
    dataDir: env[ENV.DATA_DIR] || ".kubler",
    region: env[ENV.AWS_REGION] || "local",
    webhook: loadWebhookConfig(env, { requireSecret: false }),
    environments: loadEnvironmentsConfig(env),
    projectsDir: env[ENV.PROJECTS_DIR]?.trim() || "examples/projects",
    kubeconfig: env[ENV.KUBECONFIG]?.trim() || null,
    builds: loadBuildConfig(env),
    // GITLAB_URL alone may be there for ID tokens; the API needs a token too.
    gitlabApi:
      env[ENV.GITLAB_URL]?.trim() &&
      (env[ENV.GITLAB_API_TOKEN]?.trim() || env[ENV.GITLAB_API_TOKEN_SECRET]?.trim())
        ? loadGitlabApiConfig(env)
        : null,
  };
}

function list(env: Env, name: string): string[] {
  return (env[name] ?? "")
    .split(",")
    .map((item) => item.trim())
    .filter((item) => item.length > 0);
}

export function required(env: Env, name: string): string {
  const value = env[name]?.trim();
  if (!value) throw new ConfigError(`${name} is required`);
  return value;
}

/** Decimal digits only: `Number()` would also take `0x7A00`, `1e3` or `0b1`. */
export function positiveInt(env: Env, name: string, fallback: number, max = Number.MAX_SAFE_INTEGER): number {
  const raw = env[name]?.trim();
  if (!raw) return fallback;
  const value = /^\d+$/.test(raw) ? Number(raw) : Number.NaN;
  if (!Number.isInteger(value) || value <= 0 || value > max) {
    throw new ConfigError(`${name} must be a whole number from 1 to ${max}, got ${JSON.stringify(raw)}`);
  }
  return value;
}

/** `PORT`: 8080 when unset; 0 asks the system for any free port (tests, several runtimes at once). */
function readPort(env: Env): number {
  const raw = env[ENV.PORT]?.trim();
  if (!raw) return 8080;
  const value = /^\d{1,5}$/.test(raw) ? Number(raw) : Number.NaN;
  if (!(value <= 65_535)) {
    throw new ConfigError(
      `${ENV.PORT} must be a whole number from 0 to 65535 (0: any free port), got ${JSON.stringify(raw)}`,
    );
  }
  return value;
}

/** `AWS_ENDPOINT_URL` and every `AWS_ENDPOINT_URL_<SERVICE>`: the standard names the AWS SDK reads. */
const AWS_ENDPOINT_VARIABLE = /^AWS_ENDPOINT_URL(_[A-Z0-9_]+)?$/;

/**
 * Every AWS endpoint variable set must be an http(s) URL: the SDK takes any text and only fails at
 * the first call, far from the cause (a job asking for credentials got a 503).
 *
 * @example
 * checkAwsEndpoints({ AWS_ENDPOINT_URL_STS: "notaurl" }); // ConfigError naming AWS_ENDPOINT_URL_STS
 */
export function checkAwsEndpoints(env: Env): void {
  for (const [name, raw] of Object.entries(env)) {
    const value = raw?.trim();
    if (!value || !AWS_ENDPOINT_VARIABLE.test(name)) continue;
    if (!URL.canParse(value) || !/^https?:$/.test(new URL(value).protocol)) {
      throw new ConfigError(`${name} must be an http(s) URL, got ${quoteUrl(value)}`);
    }
  }
}

/**
 * A URL for an error message, without the credentials a mistyped one may carry (`htps://user:token@…`
 * is no URL this code would connect to, but its token would reach the Lambda's start-up log). Up to
 * the last `@`, after any slashes: a mistyped URL may have one or three (`htps:/user:token@…`), and
 * its password a `/`, `#` or space, which is what made it unparsable. An `@` in a path is masked too:
 * that costs a readable message, never a token.
 */
function quoteUrl(value: string): string {
  return JSON.stringify(value.replace(/^([a-z][a-z0-9+.-]*:[/\\]+)?[\s\S]*@/i, "$1<credentials>@"));
}
