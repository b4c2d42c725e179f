import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import {
  loadAwsIngressConfig,
  loadAwsStepsConfig,
  loadBuildConfig,
  loadEnvironmentsConfig,
  loadGitlabApiConfig,
  loadLocalConfig,
  loadWebhookConfig,
  readRegistryAuth,
} from "../../shared/config.js";
import { ConfigError } from "../../shared/errors.js";

const KEY = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";

function configError(fn: () => unknown): string {
  try {
    fn();
  } catch (error) {
    expect(error).toBeInstanceOf(ConfigError);
    return (error as Error).message;
  }
  throw new Error("expected ConfigError");
}

describe("configuration", () => {
  it("reads comma-separated secrets for rotation, dropping blanks", () => {
    const config = loadWebhookConfig(
      { KUBLER_WEBHOOK_SECRET: " a, b ,,", KUBLER_WEBHOOK_SIGNING_KEY: KEY },
      { requireSecret: true },
    );
    expect(config.secrets).toEqual({ tokens: ["a", "b"], signingKeys: [KEY] });
    expect(config.credentials.tokenDigests).toHaveLength(2);
    expect(config.credentials.signingKeys).toHaveLength(1);
    expect(config.maxBodyBytes).toBe(5 * 1024 * 1024);
  });

  it("refuses to start without any secret where one is required, naming both variables", () => {
    expect(configError(() => loadWebhookConfig({}, { requireSecret: true }))).toMatch(
      /KUBLER_WEBHOOK_SECRET or KUBLER_WEBHOOK_SIGNING_KEY/,
    );
    expect(loadWebhookConfig({}, { requireSecret: false }).secrets).toEqual({ tokens: [], signingKeys: [] });
  });

  it("names the variable of a malformed signing key, without echoing it", () => {
    const message = configError(() =>
      loadWebhookConfig({ KUBLER_WEBHOOK_SIGNING_KEY: `${KEY},not-a-key-s3cret` }, { requireSecret: true }),
    );
    expect(message).toMatch(/^KUBLER_WEBHOOK_SIGNING_KEY: signing key #2 must start with "whsec_"/);
    expect(message).not.toContain("s3cret");
  });

  it("names a malformed number", () => {
    for (const bad of ["0", "-1", "1.5", "lots"]) {
      expect(
        configError(() =>
          loadWebhookConfig(
            { KUBLER_WEBHOOK_SECRET: "t", KUBLER_WEBHOOK_MAX_BODY_BYTES: bad },
            { requireSecret: true },
          ),
        ),
      ).toMatch(/^KUBLER_WEBHOOK_MAX_BODY_BYTES must be a whole number/);
    }
    expect(configError(() => loadLocalConfig({ PORT: "70000" }))).toMatch(
      /^PORT must be a whole number from 0 to 65535 \(0: any free port\)/,
    );
  });

  it("takes decimal digits only: Number() would read 0x7A00 as 31232", () => {
    for (const bad of ["0x7A00", "1e3", "0b1", "0o17", "+80", "80.0", " 8 0 "]) {
      expect(configError(() => loadLocalConfig({ PORT: bad }))).toBe(
        `PORT must be a whole number from 0 to 65535 (0: any free port), got ${JSON.stringify(bad.trim())}`,
      );
      expect(
        configError(() =>
          loadWebhookConfig({ KUBLER_WEBHOOK_MAX_BODY_BYTES: bad }, { requireSecret: false }),
        ),
      ).toMatch(/^KUBLER_WEBHOOK_MAX_BODY_BYTES must be a whole number/);
    }
    expect(loadLocalConfig({ PORT: " 8081 " }).port).toBe(8081);
  });

  it("wants every AWS endpoint variable set to be an http(s) URL, naming it", () => {
    for (const [name, bad] of [
      ["AWS_ENDPOINT_URL_STS", "notaurl"],
      ["AWS_ENDPOINT_URL", "localhost:4566"],
      ["AWS_ENDPOINT_URL_SECRETS_MANAGER", "ftp://files.example.com"],
    ] as const) {
      const expected = `${name} must be an http(s) URL, got ${JSON.stringify(bad)}`;
      expect(configError(() => loadLocalConfig({ [name]: bad }))).toBe(expected);
      expect(configError(() => loadAwsIngressConfig({ KUBLER_DEDUPE_TABLE: "t", [name]: bad }))).toBe(
        expected,
      );
    }
    expect(
      loadLocalConfig({
        AWS_ENDPOINT_URL: "http://localhost:4566",
        AWS_ENDPOINT_URL_STS: "https://sts.eu-west-1.amazonaws.com",
        AWS_ENDPOINT_URL_DYNAMODB: " ",
        AWS_ENDPOINT_URLS: "not an endpoint variable",
      }).port,
    ).toBe(8080);
  });

  it("local defaults, and PORT=0 for any free port", () => {
    expect(loadLocalConfig({})).toMatchObject({
      port: 8080,
      host: "127.0.0.1",
      dataDir: ".kubler",
      region: "local",
    });
    expect(loadLocalConfig({ KUBLER_HOST: " 0.0.0.0 " }).host).toBe("0.0.0.0");
    expect(loadLocalConfig({ PORT: "0", KUBLER_DATA_DIR: "/tmp/k", AWS_REGION: "eu-west-1" })).toMatchObject({
      port: 0,
      dataDir: "/tmp/k",
      region: "eu-west-1",
    });
  });

  it("Lambda needs the dedupe table; the bus defaults to kubler", () => {
    expect(configError(() => loadAwsIngressConfig({}))).toBe("KUBLER_DEDUPE_TABLE is required");
    expect(loadAwsIngressConfig({ KUBLER_DEDUPE_TABLE: "t" })).toEqual({
      busName: "kubler",
      dedupeTable: "t",
    });
  });

  it("reads the environments' settings, refusing a TTL that is not one", () => {
    expect(loadEnvironmentsConfig({})).toEqual({
      defaultTtl: "72h",
      registryAuthFile: null,
      registryAuthSecret: null,
      podSecurity: "baseline",
    });
    expect(
      loadEnvironmentsConfig({
        KUBLER_DEFAULT_TTL: "never",
        KUBLER_REGISTRY_AUTH_SECRET: " kubler/registry ",
      }),
    ).toEqual({
      defaultTtl: "never",
      registryAuthFile: null,
      registryAuthSecret: "kubler/registry",
      podSecurity: "baseline",
    });
    expect(configError(() => loadEnvironmentsConfig({ KUBLER_DEFAULT_TTL: "3 days" }))).toMatch(
      /^KUBLER_DEFAULT_TTL: ttl "3 days"/,
    );
  });

  it("reads the Pod Security level environments enforce, refusing one that is not a level", () => {
    expect(loadEnvironmentsConfig({ KUBLER_POD_SECURITY: " " }).podSecurity).toBe("baseline");
    for (const level of ["baseline", "restricted", "privileged"]) {
      expect(loadEnvironmentsConfig({ KUBLER_POD_SECURITY: ` ${level} ` }).podSecurity).toBe(level);
    }
    for (const bad of ["Baseline", "none", "restricted,baseline"]) {
      expect(configError(() => loadEnvironmentsConfig({ KUBLER_POD_SECURITY: bad }))).toBe(
        `KUBLER_POD_SECURITY must be one of baseline, restricted, privileged (the Pod Security Standards' levels environments enforce), got ${JSON.stringify(bad)}`,
      );
    }
  });

  it("reads KUBLER_REGISTRY_AUTH_FILE afresh each time, refusing one that is missing or not a .dockerconfigjson", () => {
    const dir = mkdtempSync(join(tmpdir(), "kubler-registry-auth-"));
    const file = (name: string, text: string) => {
      writeFileSync(join(dir, name), text);
      return join(dir, name);
    };
    const good = '{"auths":{"registry.example.com":{"auth":"dTpwYXNz"}}}\n';
    const { registryAuthFile } = loadEnvironmentsConfig({
      KUBLER_REGISTRY_AUTH_FILE: ` ${file("good.json", good)} `,
    });
    expect(registryAuthFile).toBe(join(dir, "good.json"));
    expect(readRegistryAuth(join(dir, "good.json"))).toBe(good);
    // Credentials refreshed under a running process (ECR's last 12 h) are what the next deploy gets.
    const refreshed = '{"auths":{"registry.example.com":{"auth":"bmV3OnBhc3M="}}}\n';
    file("good.json", refreshed);
    expect(readRegistryAuth(join(dir, "good.json"))).toBe(refreshed);
    const refused = (path: string) => configError(() => readRegistryAuth(path));
    expect(refused(join(dir, "missing.json"))).toBe(
      `KUBLER_REGISTRY_AUTH_FILE ${join(dir, "missing.json")} does not exist`,
    );
    expect(refused(dir)).toBe(`KUBLER_REGISTRY_AUTH_FILE ${dir} is a directory, not a file`);
    const secret = file("bad.json", "{not json s3cret");
    expect(refused(secret)).toBe(`KUBLER_REGISTRY_AUTH_FILE ${secret} is not JSON`);
    for (const [name, text] of [
      ["array.json", "[]"],
      ["no-auths.json", '{"credHelpers":{}}'],
      ["auths-list.json", '{"auths":["registry.example.com"]}'],
    ] as const) {
      expect(refused(file(name, text))).toMatch(
        new RegExp(
          `^KUBLER_REGISTRY_AUTH_FILE ${join(dir, name)} is not a \\.dockerconfigjson: it needs an "auths" object`,
        ),
      );
    }
    expect(refused(secret)).not.toContain("s3cret");
    // Loading the configuration does not read it: `kubler send` works in a shell without the file;
    // `npm start` and the deploy Lambda check it when they start.
    expect(loadLocalConfig({ KUBLER_REGISTRY_AUTH_FILE: secret }).environments.registryAuthFile).toBe(secret);
  });

  it("names each missing AWS steps variable", () => {
    const full = {
      KUBLER_EVENT_BUS_ARN: "arn:aws:events:eu-west-1:123456789012:event-bus/kubler",
      KUBLER_SCHEDULE_GROUP: "kubler-environments",
      KUBLER_SCHEDULER_ROLE_ARN: "arn:aws:iam::123456789012:role/kubler-scheduler",
      KUBLER_SCHEDULE_DEAD_LETTER_QUEUE_ARN: "arn:aws:sqs:eu-west-1:123456789012:kubler-expiry-dead-letters",
    };
    expect(loadAwsStepsConfig(full)).toEqual({
      busName: "kubler",
      busArn: full.KUBLER_EVENT_BUS_ARN,
      scheduleGroup: "kubler-environments",
      schedulerRoleArn: full.KUBLER_SCHEDULER_ROLE_ARN,
      scheduleDeadLetterArn: full.KUBLER_SCHEDULE_DEAD_LETTER_QUEUE_ARN,
    });
    for (const name of Object.keys(full)) {
      expect(configError(() => loadAwsStepsConfig({ ...full, [name]: "" }))).toBe(`${name} is required`);
      const { [name as keyof typeof full]: _, ...without } = full;
      expect(configError(() => loadAwsStepsConfig(without))).toBe(`${name} is required`);
    }
  });

  it("wants GITLAB_URL to be an http(s) URL, and never echoes the token", () => {
    expect(loadGitlabApiConfig({ GITLAB_URL: "https://gitlab.example.com", GITLAB_API_TOKEN: "t" }).url).toBe(
      "https://gitlab.example.com",
    );
    expect(
      configError(() => loadGitlabApiConfig({ GITLAB_URL: "gitlab", GITLAB_API_TOKEN: "secret-1" })),
    ).not.toContain("secret-1");
    // A scheme typo in a URL that carries credentials: the message shows the URL without them.
    for (const url of ["htps://oauth2:glpat-secret-2@gitlab.example.com", "gitlab:glpat-secret-2@host"]) {
      const message = configError(() => loadGitlabApiConfig({ GITLAB_URL: url, GITLAB_API_TOKEN: "t" }));
      expect(message).toMatch(/^GITLAB_URL must be an http\(s\) URL, got /);
      expect(message).not.toContain("secret-2");
    }
    expect(
      configError(() => loadLocalConfig({ AWS_ENDPOINT_URL_STS: "htp://key:secret-3@localhost:4566" })),
    ).toBe('AWS_ENDPOINT_URL_STS must be an http(s) URL, got "htp://<credentials>@localhost:4566"');
    expect(configError(() => loadGitlabApiConfig({ GITLAB_URL: "https://g" }))).toBe(
      "GITLAB_API_TOKEN is required (or GITLAB_API_TOKEN_SECRET)",
    );
  });

  it("never echoes the credentials of a mistyped URL, whatever the slashes after its scheme or the characters of its password", () => {
    // One slash or three (a typo as likely as "htps"), a password with "/" or a space: each still
    // failed URL parsing as http(s), and was quoted whole with its token.
    for (const url of [
      "htps:/oauth2:glpat-secret-4@gitlab.example.com",
      "htps:///oauth2:glpat-secret-4@gitlab.example.com",
      "https://oauth2:pass/secret-4@gitlab.example.com",
      "htps://oauth2:pass secret-4@gitlab.example.com",
    ]) {
      const message = configError(() => loadGitlabApiConfig({ GITLAB_URL: url, GITLAB_API_TOKEN: "t" }));
      expect(message).toMatch(
        /^GITLAB_URL must be an http\(s\) URL, got .*<credentials>@gitlab\.example\.com"$/,
      );
      expect(message).not.toContain("secret-4");
    }
    expect(
      configError(() => loadLocalConfig({ AWS_ENDPOINT_URL_STS: "htp:/key:secret-5@localhost:4566" })),
    ).toBe('AWS_ENDPOINT_URL_STS must be an http(s) URL, got "htp:/<credentials>@localhost:4566"');
  });

  it("in Lambda, refuses an http GITLAB_URL: the API token, kubler.yaml and manifests would cross in clear", () => {
    const lambda = { AWS_LAMBDA_FUNCTION_NAME: "kubler-deploy-environment", GITLAB_API_TOKEN: "secret-3" };
    const message = configError(() =>
      loadGitlabApiConfig({ ...lambda, GITLAB_URL: "http://gitlab.example.com" }),
    );
    expect(message).toMatch(/^GITLAB_URL must be an https URL in AWS/);
    expect(message).not.toContain("secret-3");
    expect(loadGitlabApiConfig({ ...lambda, GITLAB_URL: "http://127.0.0.1:8929" }).url).toBe(
      "http://127.0.0.1:8929",
    );
    // The local runtime (no AWS_LAMBDA_FUNCTION_NAME) may talk to a GitLab on its network.
    expect(loadGitlabApiConfig({ GITLAB_URL: "http://gitlab.lan", GITLAB_API_TOKEN: "t" }).url).toBe(
      "http://gitlab.lan",
    );
  });

  it("takes the GitLab token from the environment or names the Secrets Manager secret holding it", () => {
    const url = "https://gitlab.example.com";
    expect(loadGitlabApiConfig({ GITLAB_URL: url, GITLAB_API_TOKEN: " t " })).toEqual({
      url,
      token: "t",
      tokenSecret: null,
    });
    expect(loadGitlabApiConfig({ GITLAB_URL: url, GITLAB_API_TOKEN_SECRET: "kubler/gitlab" })).toEqual({
      url,
      token: null,
      tokenSecret: "kubler/gitlab",
    });
    const both = configError(() =>
      loadGitlabApiConfig({ GITLAB_URL: url, GITLAB_API_TOKEN: "secret-2", GITLAB_API_TOKEN_SECRET: "s" }),
    );
    expect(both).toBe(
      "set GITLAB_API_TOKEN or GITLAB_API_TOKEN_SECRET, not both: which one is meant is unclear",
    );
  });

  it("names the builds namespace and the build Secrets, with defaults", () => {
    expect(loadBuildConfig({})).toEqual({
      namespace: "kubler-builds",
      gitSecret: "kubler-git-credentials",
      registrySecret: "kubler-registry-push",
      images: null,
    });
    expect(
      loadBuildConfig({ KUBLER_BUILD_NAMESPACE: "ci-builds", KUBLER_BUILD_REGISTRY_SECRET: "ecr.push" }),
    ).toMatchObject({
      namespace: "ci-builds",
      registrySecret: "ecr.push",
    });
    expect(configError(() => loadBuildConfig({ KUBLER_BUILD_NAMESPACE: "Builds_1" }))).toBe(
      'KUBLER_BUILD_NAMESPACE must be a namespace name (DNS-1123 label), got "Builds_1"',
    );
  });

  it("takes the repositories projects may push to as a template with {project_path} once", () => {
    const images = (value: string) => loadBuildConfig({ KUBLER_BUILD_IMAGES: value }).images;
    expect(images("registry.gitlab.example.com/{project_path}")).toBe(
      "registry.gitlab.example.com/{project_path}",
    );
    expect(images("123456789012.dkr.ecr.eu-west-1.amazonaws.com/apps/{project_path}")).toBe(
      "123456789012.dkr.ecr.eu-west-1.amazonaws.com/apps/{project_path}",
    );
    expect(images("  ")).toBeNull();
    for (const bad of [
      "registry.example.com/apps",
      "r.example.com/{project_path}/{project_path}",
      "Registry/{project_path}",
    ]) {
      expect(configError(() => loadBuildConfig({ KUBLER_BUILD_IMAGES: bad }))).toBe(
        `KUBLER_BUILD_IMAGES must be an image repository with {project_path} in it once, like registry.gitlab.example.com/{project_path}, got ${JSON.stringify(bad)}`,
      );
    }
  });
});
