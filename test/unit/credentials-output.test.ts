import { execFileSync } from "node:child_process";
import { describe, expect, it } from "vitest";
import { parse } from "yaml";
import {
  formatCredentials,
  type IssuedCredentials,
  shellQuote,
} from "../../shared/domain/credentials-output.js";

const issued: IssuedCredentials = {
  rule: "review-apps",
  environment: "review/x",
  jobId: "302",
  expiresAt: "2026-11-21T10:15:00.000Z",
  aws: {
    issuer: "sts",
    roleArn: "arn:aws:iam::123456789012:role/kubler-review",
    assumedRoleArn: "arn:aws:sts::123456789012:assumed-role/kubler-review/gl-302",
    accessKeyId: "ASIAEXAMPLE",
    // Characters a shell would expand or split on, and a quote: eval must leave them as they are.
    secretAccessKey: 's3cr\'et $HOME `id` $(id) \\ "x"',
    sessionToken: "token+/=",
    expiresAt: "2026-11-21T10:15:00.000Z",
  },
  kubernetes: {
    server: "https://k8s.example.com:6443",
    certificateAuthorityData: "Q0EtREFUQQ==",
    insecureSkipTlsVerify: false,
    namespace: "group-app-review-x-1a2b3c4d",
    serviceAccount: "kubler-ci",
    token: "k8s-token",
    expiresAt: "2026-11-21T10:16:00.000Z",
  },
};

describe("formatCredentials", () => {
  it("json: the credentials as they are", () => {
    const { contentType, body } = formatCredentials(issued, "json");
    expect(contentType).toBe("application/json");
    expect(JSON.parse(body)).toEqual(issued);
  });

  it("kubeconfig: server, CA, namespace, token and the expiry", () => {
    const { contentType, body } = formatCredentials(issued, "kubeconfig");
    expect(contentType).toBe("application/yaml");
    expect(body.split("\n")[0]).toBe(
      "# Kubler: ServiceAccount group-app-review-x-1a2b3c4d/kubler-ci, token expires at 2026-11-21T10:16:00.000Z",
    );
    expect(parse(body)).toEqual({
      apiVersion: "v1",
      kind: "Config",
      clusters: [
        {
          name: "kubler",
          cluster: { server: "https://k8s.example.com:6443", "certificate-authority-data": "Q0EtREFUQQ==" },
        },
      ],
      users: [{ name: "gl-job-302", user: { token: "k8s-token" } }],
      contexts: [
        {
          name: "kubler",
          context: { cluster: "kubler", user: "gl-job-302", namespace: "group-app-review-x-1a2b3c4d" },
        },
      ],
      "current-context": "kubler",
    });
  });

  it("env: safe to eval in sh, every value arrives unchanged", () => {
    const { body } = formatCredentials(issued, "env");
    const script = `eval "$CREDS"; printf '%s\\n---\\n' "$AWS_ACCESS_KEY_ID" "$AWS_SECRET_ACCESS_KEY" "$AWS_SESSION_TOKEN" "$AWS_CREDENTIAL_EXPIRATION" "$KUBLER_NAMESPACE" "$KUBLER_KUBECONFIG_DATA"`;
    const out = execFileSync("sh", ["-c", script], {
      env: { CREDS: body, PATH: process.env.PATH },
      encoding: "utf8",
    });
    const values = out.split("\n---\n");
    expect(values.slice(0, 5)).toEqual([
      "ASIAEXAMPLE",
      issued.aws?.secretAccessKey,
      "token+/=",
      "2026-11-21T10:15:00.000Z",
      "group-app-review-x-1a2b3c4d",
    ]);
    expect(values[5]).toBe(formatCredentials(issued, "kubeconfig").body);
    expect(body).toContain(
      `# KUBECONFIG must name a file: printf '%s\\n' "$KUBLER_KUBECONFIG_DATA" > "$CI_PROJECT_DIR/.kubeconfig"`,
    );
  });

  it("env: local credentials say they are not valid for AWS", () => {
    const local = {
      ...issued,
      aws: { ...(issued.aws as NonNullable<IssuedCredentials["aws"]>), issuer: "local" as const },
    };
    expect(formatCredentials(local, "env").body).toContain(
      "# local issuer: these AWS credentials are NOT valid for AWS",
    );
  });

  it("shellQuote survives any text through sh", () => {
    for (const text of ["", "'", "''a'", "$(id)", "a\nb", "\\'"]) {
      const out = execFileSync(
        "sh",
        [
          "-c",
          `eval "X=${shellQuote(text).replaceAll('"', '\\"').replaceAll("$", "\\$").replaceAll("`", "\\`")}"; printf %s "$X"`,
        ],
        {
          encoding: "utf8",
        },
      );
      expect(out).toBe(text);
    }
  });
});
