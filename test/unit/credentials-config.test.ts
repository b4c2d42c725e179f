import { mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { loadCredentialsConfig } from "../../shared/credentials-config.js";
import { ConfigError } from "../../shared/errors.js";

const dir = mkdtempSync(join(tmpdir(), "kubler-policy-"));
function file(name: string, text: string): string {
  const path = join(dir, name);
  writeFileSync(path, text);
  return path;
}
const GOOD = file(
  "good.yaml",
  "rules:\n  - name: r\n    match: { project_path: g/a }\n    aws: { roleArn: 'arn:aws:iam::123456789012:role/r' }\n",
);

function error(run: () => unknown): string {
  try {
    run();
  } catch (e) {
    expect(e).toBeInstanceOf(ConfigError);
    return (e as Error).message;
  }
  throw new Error("no ConfigError");
}

describe("loadCredentialsConfig", () => {
  it("reads and validates the policy; the issuer is the policy's, else GITLAB_URL", () => {
    const config = loadCredentialsConfig(
      { KUBLER_POLICY_FILE: GOOD, GITLAB_URL: "https://gitlab.example.com/" },
      { local: false },
    );
    expect(config).toMatchObject({
      policyFile: GOOD,
      issuer: "https://gitlab.example.com",
      jwksRefetchIntervalMs: 30_000,
      awsConfigured: false,
    });
    const pinned = file("pinned.yaml", `issuer: https://gitlab.internal\n${readFileSync(GOOD, "utf8")}`);
    expect(
      loadCredentialsConfig({ KUBLER_POLICY_FILE: pinned, GITLAB_URL: "https://other" }, { local: false })
        .issuer,
    ).toBe("https://gitlab.internal");
  });

  it("fails start-up naming the variable and every problem of the file", () => {
    expect(error(() => loadCredentialsConfig({}, { local: false }))).toBe("KUBLER_POLICY_FILE is required");
    expect(
      error(() => loadCredentialsConfig({ KUBLER_POLICY_FILE: join(dir, "none.yaml") }, { local: false })),
    ).toMatch(/^KUBLER_POLICY_FILE: cannot read .*none\.yaml: ENOENT/);
    const bad = file(
      "bad.yaml",
      "rules:\n  - name: prod\n    match: { project_path: g/a, ref_protected: 'yes' }\n",
    );
    expect(
      error(() =>
        loadCredentialsConfig({ KUBLER_POLICY_FILE: bad, GITLAB_URL: "https://g" }, { local: false }),
      ),
    ).toBe(
      `KUBLER_POLICY_FILE (${bad}) is not a valid policy:\n  policy.rules[0] (prod).match.ref_protected: expected boolean, found string\n  policy.rules[0] (prod): grants nothing: give it aws, kubernetes or both`,
    );
    expect(error(() => loadCredentialsConfig({ KUBLER_POLICY_FILE: GOOD }, { local: false }))).toBe(
      "set GITLAB_URL or the policy's issuer: ID tokens cannot be verified without one",
    );
    expect(
      error(() =>
        loadCredentialsConfig(
          { KUBLER_POLICY_FILE: GOOD, KUBLER_JWKS_REFETCH_SECONDS: "0" },
          { local: true },
        ),
      ),
    ).toMatch(/^KUBLER_JWKS_REFETCH_SECONDS must be a whole number/);
  });

  it("fails start-up on a rule whose maxDurationSeconds role chaining cannot give (over 3600 s)", () => {
    const long = file(
      "long.yaml",
      "rules:\n  - name: nightly\n    match: { project_path: g/a }\n    aws: { roleArn: 'arn:aws:iam::123456789012:role/r', maxDurationSeconds: 7200 }\n",
    );
    expect(
      error(() =>
        loadCredentialsConfig({ KUBLER_POLICY_FILE: long, GITLAB_URL: "https://g" }, { local: false }),
      ),
    ).toBe(
      `KUBLER_POLICY_FILE (${long}) is not a valid policy:\n  policy.rules[0] (nightly).aws.maxDurationSeconds: expected a whole number from 900 to 3600, found 7200: Kubler assumes the role with its own temporary credentials (role chaining), and STS refuses chained sessions longer than one hour`,
    );
  });

  it("refuses an issuer URL with credentials, naming where it is and never quoting it", () => {
    const secret = "glpat-Xq9vR2mT7wLp4sK8nB3c";
    for (const url of [
      `https://kubler:${secret}@gitlab.example.com`,
      `https://${secret}@gitlab.example.com/`,
      `gitlab.example.com:${secret}@host`,
    ]) {
      for (const local of [false, true]) {
        const message = error(() =>
          loadCredentialsConfig({ KUBLER_POLICY_FILE: GOOD, GITLAB_URL: url }, { local }),
        );
        expect(message).toBe(
          "GITLAB_URL must be the instance's address only, without credentials (user:password@)",
        );
      }
    }
    const pinned = file(
      "pinned-credentials.yaml",
      `issuer: https://kubler:${secret}@gitlab.internal\n${readFileSync(GOOD, "utf8")}`,
    );
    const message = error(() =>
      loadCredentialsConfig({ KUBLER_POLICY_FILE: pinned, GITLAB_URL: "https://g" }, { local: false }),
    );
    expect(message).toBe(
      `KUBLER_POLICY_FILE (${pinned}): the issuer must be the instance's address only, without credentials (user:password@)`,
    );
    expect(message).not.toContain(secret);
    // An "@" in the path is not userinfo.
    expect(
      loadCredentialsConfig(
        { KUBLER_POLICY_FILE: GOOD, GITLAB_URL: "https://g.example.com/@team" },
        { local: false },
      ).issuer,
    ).toBe("https://g.example.com/@team");
  });

  it("in AWS, refuses an http issuer (GITLAB_URL or the policy's) naming where it is: the JWKS would come in clear", () => {
    const why = "signing keys";
    const message = error(() =>
      loadCredentialsConfig(
        { KUBLER_POLICY_FILE: GOOD, GITLAB_URL: "http://gitlab.example.com" },
        { local: false },
      ),
    );
    expect(message).toMatch(/^GITLAB_URL must be an https URL/);
    expect(message).toContain(why);
    const pinned = file("pinned-http.yaml", `issuer: http://gitlab.internal\n${readFileSync(GOOD, "utf8")}`);
    const fromPolicy = error(() =>
      loadCredentialsConfig({ KUBLER_POLICY_FILE: pinned, GITLAB_URL: "https://g" }, { local: false }),
    );
    expect(fromPolicy).toMatch(
      new RegExp(`^KUBLER_POLICY_FILE \\(${pinned}\\): the issuer must be an https URL`),
    );
    expect(fromPolicy).toContain(why);
    // Loopback never leaves the host: nobody is on the path (the bundles' test serves GitLab there).
    for (const url of ["http://127.0.0.1:8929", "http://localhost:8929", "http://[::1]:8929"]) {
      expect(
        loadCredentialsConfig({ KUBLER_POLICY_FILE: GOOD, GITLAB_URL: url }, { local: false }).issuer,
      ).toBe(url);
    }
  });

  it("local mode keeps an http issuer (a GitLab on the same network, or a fake)", () => {
    const pinned = file(
      "pinned-http-local.yaml",
      `issuer: http://gitlab.internal\n${readFileSync(GOOD, "utf8")}`,
    );
    expect(loadCredentialsConfig({ KUBLER_POLICY_FILE: pinned }, { local: true }).issuer).toBe(
      "http://gitlab.internal",
    );
    expect(
      loadCredentialsConfig({ KUBLER_POLICY_FILE: GOOD, GITLAB_URL: "http://gitlab.lan" }, { local: true })
        .issuer,
    ).toBe("http://gitlab.lan");
  });

  it("local mode: examples/policy.yaml by default, the local issuer, STS only when AWS is configured", () => {
    expect(loadCredentialsConfig({}, { local: true })).toMatchObject({
      policyFile: "examples/policy.yaml",
      issuer: null,
      awsConfigured: false,
    });
    expect(
      loadCredentialsConfig({ AWS_ENDPOINT_URL_STS: "http://localhost:4566" }, { local: true }).awsConfigured,
    ).toBe(true);
    expect(loadCredentialsConfig({ AWS_PROFILE: "dev" }, { local: true }).awsConfigured).toBe(true);
  });
});
