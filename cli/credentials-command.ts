/**
 * `kubler credentials`: what a CI job does, without GitLab. Mints an ID token with GitLab's
 * documented claims, signed by the running local runtime's OIDC key (from the data dir), and posts
 * it to `POST /v1/credentials`, printing the answer.
 */
import {
  gitlabIdTokenClaims,
  LOCAL_ISSUER_PATH,
  LocalOidcIssuer,
} from "../shared/local/local-oidc-issuer.js";

export interface CredentialsCommandOptions {
  url: string;
  dataDir: string;
  environment?: string | undefined;
  format?: string | undefined;
  /** Claims to change in the token: project, environment, ref and so on. */
  claims?: Record<string, unknown>;
  audience?: string;
  print: (text: string) => void;
  /**
   * Where a refusal goes: stderr in the CLI, so a script reading stdout (`eval "$(… --format env)"`,
   * `| jq`) never takes `403 {…}` for credentials. Default: print.
   */
  printError?: (text: string) => void;
}

/**
 * @example
 * await credentialsCommand({ url: "http://127.0.0.1:8080", dataDir: ".kubler", format: "env", print: console.log });
 */
export async function credentialsCommand(options: CredentialsCommandOptions): Promise<number> {
  // `--url http://127.0.0.1:8080/` named `//v1/credentials` (404) and an issuer the runtime is not.
  const url = options.url.replace(/\/+$/, "");
  const key = LocalOidcIssuer.read(options.dataDir);
  if (!key) {
    throw new Error(`no local OIDC key in ${options.dataDir}: start the server first (npm start)`);
  }
  // A job's token names its environment; asking for one without it is what --environment models.
  const claims = gitlabIdTokenClaims(
    { iss: `${url}${LOCAL_ISSUER_PATH}`, aud: options.audience ?? "kubler", now: new Date() },
    { ...(options.environment ? { environment: options.environment } : {}), ...options.claims },
  );
  const body: Record<string, string> = {};
  if (options.format) body.format = options.format;
  const response = await fetch(`${url}/v1/credentials`, {
    method: "POST",
    headers: { authorization: `Bearer ${key.sign(claims)}`, "content-type": "application/json" },
    body: JSON.stringify(body),
  }).catch((error: Error) => {
    throw new Error(`could not reach ${url} (${error.cause ?? error.message}): is \`npm start\` running?`);
  });
  const text = await response.text();
  if (response.ok) {
    options.print(text.endsWith("\n") ? text.slice(0, -1) : text);
    return 0;
  }
  (options.printError ?? options.print)(`${response.status} ${text}`);
  return 1;
}
