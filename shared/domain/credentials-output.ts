/**
 * The answer to a job (DESIGN §5 step 5), in the format it asked for: `json`, `env` lines a shell
 * can `eval`, or a kubeconfig. Pure: the credentials in, text out.
 */
import { stringify } from "yaml";

export const CREDENTIALS_FORMATS = ["json", "env", "kubeconfig"] as const;
export type CredentialsFormat = (typeof CREDENTIALS_FORMATS)[number];

export interface IssuedCredentials {
  rule: string;
  environment: string | null;
  jobId: string;
  /** The earliest expiry of what is below (RFC 3339). */
  expiresAt: string;
  aws: {
    /** "local": made by the local runtime, not valid for AWS. */
    issuer: "sts" | "local";
    roleArn: string;
    assumedRoleArn: string | null;
    accessKeyId: string;
    secretAccessKey: string;
    sessionToken: string;
    expiresAt: string;
  } | null;
  kubernetes: {
    server: string;
    certificateAuthorityData: string | null;
    insecureSkipTlsVerify: boolean;
    namespace: string;
    serviceAccount: string;
    token: string;
    expiresAt: string;
  } | null;
}

/** The name of the env-format variable holding the kubeconfig's text (KUBECONFIG itself must be a path). */
export const KUBECONFIG_DATA_VARIABLE = "KUBLER_KUBECONFIG_DATA";

/**
 * @example
 * const { contentType, body } = formatCredentials(issued, "env");
 * // export AWS_ACCESS_KEY_ID='ASIA…' …
 */
export function formatCredentials(
  issued: IssuedCredentials,
  format: CredentialsFormat,
): { contentType: string; body: string } {
  switch (format) {
    case "json":
      return { contentType: "application/json", body: JSON.stringify(issued) };
    case "kubeconfig":
      return { contentType: "application/yaml", body: kubeconfigYaml(issued) };
    case "env":
      return { contentType: "text/plain; charset=utf-8", body: envLines(issued) };
  }
}

/**
 * A kubeconfig for the job's ServiceAccount token: one cluster, one user, one context in the
 * namespace. Null when the rule grants no Kubernetes access.
 *
 * @example
 * kubeconfigYaml(issued); // "# expires-at: …\napiVersion: v1\nkind: Config\n…"
 */
export function kubeconfigYaml(issued: IssuedCredentials): string {
  const k = issued.kubernetes;
  if (!k) throw new Error("no Kubernetes credentials to put in a kubeconfig");
  const user = `gl-job-${issued.jobId}`;
  const config = {
    apiVersion: "v1",
    kind: "Config",
    clusters: [
      {
        name: "kubler",
        cluster: {
          server: k.server,
          ...(k.certificateAuthorityData ? { "certificate-authority-data": k.certificateAuthorityData } : {}),
          ...(k.insecureSkipTlsVerify ? { "insecure-skip-tls-verify": true } : {}),
        },
      },
    ],
    users: [{ name: user, user: { token: k.token } }],
    contexts: [{ name: "kubler", context: { cluster: "kubler", user, namespace: k.namespace } }],
    "current-context": "kubler",
  };
  // kubeconfig has no field for a token's expiry: a comment keeps it visible to whoever reads the file.
  return `# Kubler: ServiceAccount ${k.namespace}/${k.serviceAccount}, token expires at ${k.expiresAt}\n${stringify(config)}`;
}

function envLines(issued: IssuedCredentials): string {
  const lines = [
    `# Kubler credentials for job ${issued.jobId} (rule "${oneLine(issued.rule)}"), expire at ${issued.expiresAt}`,
  ];
  const exp = (name: string, value: string) => lines.push(`export ${name}=${shellQuote(value)}`);
  if (issued.aws) {
    if (issued.aws.issuer === "local")
      lines.push("# local issuer: these AWS credentials are NOT valid for AWS");
    exp("AWS_ACCESS_KEY_ID", issued.aws.accessKeyId);
    exp("AWS_SECRET_ACCESS_KEY", issued.aws.secretAccessKey);
    exp("AWS_SESSION_TOKEN", issued.aws.sessionToken);
    exp("AWS_CREDENTIAL_EXPIRATION", issued.aws.expiresAt);
  }
  if (issued.kubernetes) {
    exp("KUBLER_NAMESPACE", issued.kubernetes.namespace);
    exp(KUBECONFIG_DATA_VARIABLE, kubeconfigYaml(issued));
    lines.push(
      `# KUBECONFIG must name a file: printf '%s\\n' "$${KUBECONFIG_DATA_VARIABLE}" > "$CI_PROJECT_DIR/.kubeconfig" && export KUBECONFIG="$CI_PROJECT_DIR/.kubeconfig"`,
    );
  }
  return `${lines.join("\n")}\n`;
}

/**
 * One POSIX single-quoted word: nothing inside is expanded by `eval`, a `'` is closed, escaped and
 * reopened.
 *
 * @example
 * shellQuote("it's $HOME"); // 'it'\''s $HOME'
 */
export function shellQuote(value: string): string {
  return `'${value.replaceAll("'", "'\\''")}'`;
}

/**
 * A command line's word, to paste: quoted only when it needs to be (GitLab's environment names may
 * hold spaces, `$`, `{` and `}`; an AWS profile name anything).
 *
 * @example
 * shellWord("review/x"); // review/x
 * shellWord("a b"); // 'a b'
 */
export function shellWord(text: string): string {
  return /^[\w./-]+$/.test(text) ? text : shellQuote(text);
}

/** A comment line must stay one line, whatever a rule is named. */
function oneLine(text: string): string {
  return text.replace(/[\r\n]+/g, " ");
}
