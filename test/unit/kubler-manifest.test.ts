import { describe, expect, it } from "vitest";
import { FUNCTION_SPECS } from "../../infra/function-specs.js";
import {
  DEFAULT_ROLLOUT_TIMEOUT_SECONDS,
  DEPLOY_FUNCTION_TIMEOUT_SECONDS,
  fillTemplate,
  findEnvironmentRule,
  MAX_ROLLOUT_TIMEOUT_SECONDS,
  ManifestError,
  parseKublerManifest,
} from "../../shared/domain/kubler-manifest.js";
import { expiryOf, parseTtl } from "../../shared/domain/ttl.js";
import { DESIGN_KUBLER_YAML } from "../fixtures/design-examples.js";

const DESIGN_EXAMPLE = DESIGN_KUBLER_YAML;

describe("parseKublerManifest", () => {
  it("accepts the example of DESIGN §7", () => {
    const manifest = parseKublerManifest(DESIGN_EXAMPLE);
    expect(manifest.image).toEqual({
      name: "registry.example.com/group/app",
      context: ".",
      dockerfile: "Dockerfile",
      buildArgs: { NODE_ENV: "production" },
    });
    expect(manifest.environments.map((e) => e.on)).toEqual([
      "merge_request",
      { branch: "main" },
      { tag: "v*" },
    ]);
  });

  // plan-steps reads kubler.yaml for every push: yaml's own check of repeated keys compares each key
  // with every earlier one, and a 1 MiB file of short keys held it for about a minute. How long such
  // a file takes is a figure of `npm run bench` (test/bench/manifest-parse.ts), not a timeout here.
  it("reads a kubler.yaml of the largest size with a key on every line", () => {
    const args = Array.from({ length: 75_000 }, (_, i) => `    A${i}: v\n`).join("");
    const text = `version: 1\nimage:\n  name: registry.example.com/group/app\n  buildArgs:\n${args}deploy: { manifests: deploy/ }\nenvironments: [{ name: x, on: merge_request }]\n`;
    expect(text.length).toBeLessThan(1024 * 1024);
    expect(Object.keys(parseKublerManifest(text).image?.buildArgs ?? {})).toHaveLength(75_000);
  });

  // yaml's pretty errors copy the error's whole line into each message: a line of 256 Ki "}" is as many
  // errors, each copying the line (over a minute; 1 MiB ~15 min). Not a timeout here: a figure for bench.
  it("refuses a kubler.yaml of one long line of YAML errors, naming the first", () => {
    expect(() => parseKublerManifest(`version: 1\n${"}".repeat(256 * 1024)}`)).toThrow(
      'kubler.yaml:2:1: not valid YAML: Unexpected flow-map-end token in YAML stream: "}"',
    );
  });

  it("fills in the defaults", () => {
    const manifest = parseKublerManifest(
      "version: 1\ndeploy: { manifests: k8s }\nenvironments: [{ name: staging, on: { branch: main } }]",
    );
    expect(manifest.deploy.rolloutTimeoutSeconds).toBe(300);
    expect(manifest.deploy.prune).toBe(false);
    expect(manifest.image).toBeUndefined();
  });

  it("takes deploy.prune: true", () => {
    const manifest = parseKublerManifest(
      "version: 1\ndeploy: { manifests: k8s, prune: true }\nenvironments: [{ name: staging, on: { branch: main } }]",
    );
    expect(manifest.deploy.prune).toBe(true);
  });

  it("accepts an image name of 255 characters, registry included, the longest a registry takes", () => {
    const name = `registry.example.com/group/${"a".repeat(228)}`;
    expect(name).toHaveLength(255);
    expect(parseKublerManifest(minimal({ image: `image: { name: ${name} }` })).image?.name).toBe(name);
  });

  it.each([
    "https://{environment_slug}.apps.example.com",
    "http://localhost:8080/{ref}",
    "HTTPS://Apps.Example.com/{sha}",
    "https://user@apps.example.com",
    " https://{environment}-{ref}.apps.example.com ",
    `https://apps.example.com/${"a".repeat(230)}`, // 255 characters
  ])("accepts deploy.url %j", (url) => {
    const manifest = parseKublerManifest(minimal({ deploy: `{ manifests: k8s, url: '${url}' }` }));
    expect(manifest.deploy.url).toBe(url.trim());
  });

  it("accepts the longest rollout timeout whose wait and rollback wait both fit in the deploy function", () => {
    const manifest = parseKublerManifest(
      `version: 1\ndeploy: { manifests: k8s, rolloutTimeoutSeconds: ${MAX_ROLLOUT_TIMEOUT_SECONDS} }\nenvironments: [{ name: staging, on: { branch: main } }]`,
    );
    expect(manifest.deploy.rolloutTimeoutSeconds).toBe(MAX_ROLLOUT_TIMEOUT_SECONDS);
    // The rollout, then the rollback's rollout, then at least two minutes for everything else.
    expect(2 * MAX_ROLLOUT_TIMEOUT_SECONDS + 120).toBeLessThanOrEqual(DEPLOY_FUNCTION_TIMEOUT_SECONDS);
    expect(DEPLOY_FUNCTION_TIMEOUT_SECONDS).toBeLessThanOrEqual(900); // Lambda's own limit
    expect(FUNCTION_SPECS["deploy-environment"].timeout.toSeconds()).toBe(DEPLOY_FUNCTION_TIMEOUT_SECONDS);
    expect(MAX_ROLLOUT_TIMEOUT_SECONDS).toBeGreaterThanOrEqual(DEFAULT_ROLLOUT_TIMEOUT_SECONDS);
  });

  it.each([
    [
      "version: 2\ndeploy: { manifests: k8s }\nenvironments: [{ name: s, on: merge_request }]",
      "version: expected 1, found 2",
    ],
    [
      "version: 1\ndeploy: { manifests: k8s }\nenvironments: [{ name: s, on: push }]",
      'environments.0.on: expected merge_request, { branch: <glob> } or { tag: <glob> }, found "push"',
    ],
    [
      "version: 1\ndeploy: { manifests: k8s }\nenvironments: [{ name: s, on: merge_request, ttl: 3 days }]",
      'environments.0.ttl: expected a duration like 30m, 72h, 7d, 2w or "never", found "3 days"',
    ],
    [
      "version: 1\ndeploy: { manifests: k8s }\nenvironments: []",
      "environments: expected at least one environment",
    ],
    [
      "version: 1\nenvironments: [{ name: s, on: merge_request }]",
      "deploy: expected a value (required), found nothing",
    ],
    [
      "version: 1\ndeploy: { manifests: ../../etc }\nenvironments: [{ name: s, on: merge_request }]",
      "deploy.manifests: expected a directory inside the repository",
    ],
    [
      "version: 1\ndeploy: { manifests: k8s, url: 'https://{user}.example.com' }\nenvironments: [{ name: s, on: merge_request }]",
      "deploy.url: expected a URL template with only the placeholders",
    ],
    [
      "version: 1\ndeploy: { manifests: k8s, replicas: 3 }\nenvironments: [{ name: s, on: merge_request }]",
      "deploy.replicas: expected no such key",
    ],
    ["version: 1\ndeploy: [oops\n", "kubler.yaml:3:1: not valid YAML: Flow sequence"],
    [
      "version: 1\ndeploy: { manifests: k8s, image: app }\nenvironments: [{ name: s, on: merge_request }]",
      "deploy.image: expected no value when there is no image to build",
    ],
  ])("refuses %j naming the path, what was expected and what was found", (text, message) => {
    expect(() => parseKublerManifest(text)).toThrow(ManifestError);
    expect(() => parseKublerManifest(text)).toThrow(message);
  });
});

/** The smallest valid file, with `line` put in place of (or after) its lines. */
const minimal = (extra: { image?: string; deploy?: string; environments?: string; top?: string } = {}) =>
  [
    "version: 1",
    extra.image,
    `deploy: ${extra.deploy ?? "{ manifests: k8s }"}`,
    `environments: ${extra.environments ?? "[{ name: s, on: merge_request }]"}`,
    extra.top,
  ]
    .filter((line) => line !== undefined)
    .join("\n");

const URL_SHAPE =
  "an http(s) URL template with a host and no spaces, like https://{environment_slug}.apps.example.com";

function messageOf(text: string): string {
  try {
    parseKublerManifest(text);
  } catch (error) {
    expect(error).toBeInstanceOf(ManifestError);
    return (error as Error).message;
  }
  throw new Error("accepted");
}

describe("parseKublerManifest: every error path, with its exact message", () => {
  it.each([
    // The file as a whole
    [
      "an empty file",
      "",
      "kubler.yaml: (file): expected a mapping with version, deploy and environments, found nothing",
    ],
    [
      "a list",
      "- version: 1",
      'kubler.yaml: (file): expected a mapping with version, deploy and environments, found [{"version":1}]',
    ],
    [
      "a scalar",
      "kubler",
      'kubler.yaml: (file): expected a mapping with version, deploy and environments, found "kubler"',
    ],
    [
      "broken YAML",
      "version: 1\ndeploy: [oops\n",
      "kubler.yaml:3:1: not valid YAML: Flow sequence in block collection must be sufficiently indented and end with a ]",
    ],
    [
      "a repeated key",
      "version: 1\nversion: 1\n",
      "kubler.yaml:2:1: not valid YAML: Map keys must be unique",
    ],
    [
      "two documents",
      "version: 1\n---\nversion: 1\n",
      "kubler.yaml:2:1: not valid YAML: Source contains multiple documents; please use YAML.parseAllDocuments()",
    ],
    [
      "an unknown top-level key",
      minimal({ top: "replicas: 3" }),
      'kubler.yaml: replicas: expected no such key, found "replicas"',
    ],
    [
      "flow collections nested too deep",
      `a: ${"[".repeat(100)}`,
      "kubler.yaml: not accepted: flow collections nested deeper than 64 levels at line 1",
    ],
    [
      "lines indented too far",
      `a:\n${" ".repeat(250)}b: 1`,
      "kubler.yaml: not accepted: lines indented more than 200 columns at line 2",
    ],
    [
      "an alias to no anchor",
      "a: *nope",
      "kubler.yaml: not usable YAML: Unresolved alias (the anchor must be set before the alias): nope",
    ],
    [
      "an alias bomb",
      `a: &a [1]\nb: [${Array(60).fill("*a").join(",")}]`,
      "kubler.yaml: not usable YAML: Excessive alias count indicates a resource exhaustion attack",
    ],
    // version
    ["version 2", minimal().replace("version: 1", "version: 2"), "kubler.yaml: version: expected 1, found 2"],
    [
      "no version",
      minimal().replace("version: 1\n", ""),
      "kubler.yaml: version: expected a value (required), found nothing",
    ],
    // image
    [
      "image as a string",
      minimal({ image: "image: registry.example.com/app" }),
      'kubler.yaml: image: expected a mapping with name (and context, dockerfile, buildArgs), found "registry.example.com/app"',
    ],
    [
      "image without a name",
      minimal({ image: "image: { context: . }" }),
      "kubler.yaml: image.name: expected a value (required), found nothing",
    ],
    [
      "an image name with a tag",
      minimal({ image: "image: { name: 'registry.example.com/app:1.0' }" }),
      'kubler.yaml: image.name: expected an image repository (registry/path, no tag), found "registry.example.com/app:1.0"',
    ],
    [
      "an image name in capitals",
      minimal({ image: "image: { name: Registry/App }" }),
      'kubler.yaml: image.name: expected an image repository (registry/path, no tag) in lowercase: registries refuse a repository name with capitals, found "Registry/App"',
    ],
    [
      // distribution's NameTotalLengthMax: skopeo refuses it at the push, after the whole build.
      "an image name of 256 characters",
      minimal({ image: `image: { name: registry.example.com/group/${"a".repeat(232)} }` }),
      `kubler.yaml: image.name: expected an image repository (registry/path, no tag) of at most 255 characters, registry included, found "registry.example.com/group/${"a".repeat(52)}`,
    ],
    [
      "an empty context",
      minimal({ image: "image: { name: r/a, context: '' }" }),
      'kubler.yaml: image.context: expected a non-empty string, found ""',
    ],
    [
      "a numeric dockerfile",
      minimal({ image: "image: { name: r/a, dockerfile: 1 }" }),
      "kubler.yaml: image.dockerfile: expected a non-empty string, found 1",
    ],
    [
      "a build arg that is a number",
      minimal({ image: "image: { name: r/a, buildArgs: { WORKERS: 4 } }" }),
      "kubler.yaml: image.buildArgs.WORKERS: expected a string (quote numbers and true/false), found 4",
    ],
    [
      "build args as a list",
      minimal({ image: "image: { name: r/a, buildArgs: [A=1] }" }),
      'kubler.yaml: image.buildArgs: expected a mapping of names to strings, found ["A=1"]',
    ],
    [
      "an unknown image key",
      minimal({ image: "image: { name: r/a, tag: latest }" }),
      'kubler.yaml: image.tag: expected no such key, found "tag"',
    ],
    // deploy
    [
      "no deploy",
      "version: 1\nenvironments: [{ name: s, on: merge_request }]",
      "kubler.yaml: deploy: expected a value (required), found nothing",
    ],
    [
      "deploy as a list",
      minimal({ deploy: "[k8s]" }),
      'kubler.yaml: deploy: expected a mapping with manifests (and image, url, rolloutTimeoutSeconds, prune), found ["k8s"]',
    ],
    [
      "no manifests directory",
      minimal({ deploy: "{ url: 'https://x' }" }),
      "kubler.yaml: deploy.manifests: expected a value (required), found nothing",
    ],
    [
      "a blank manifests directory",
      minimal({ deploy: "{ manifests: '  ' }" }),
      'kubler.yaml: deploy.manifests: expected a non-empty string, found ""',
    ],
    [
      "a manifests directory above the repository",
      minimal({ deploy: "{ manifests: ../../etc }" }),
      'kubler.yaml: deploy.manifests: expected a directory inside the repository, found "../../etc"',
    ],
    [
      "an absolute manifests directory",
      minimal({ deploy: "{ manifests: /etc/kubernetes }" }),
      'kubler.yaml: deploy.manifests: expected a directory inside the repository, found "/etc/kubernetes"',
    ],
    [
      "an unknown URL placeholder",
      minimal({ deploy: "{ manifests: k8s, url: 'https://{user}.example.com' }" }),
      'kubler.yaml: deploy.url: expected a URL template with only the placeholders {environment_slug}, {environment}, {namespace}, {sha}, {mr_iid}, {ref}, found "https://{user}.example.com"',
    ],
    // deploy.url's own shape: GitLab refuses an environment or status URL that is not http(s) or
    // is over 255 characters, so such a template would only be dropped at every deploy.
    [
      "a URL without a scheme",
      minimal({ deploy: "{ manifests: k8s, url: 'apps.example.com/{environment_slug}' }" }),
      `kubler.yaml: deploy.url: expected ${URL_SHAPE}, found "apps.example.com/{environment_slug}"`,
    ],
    [
      "an ftp URL",
      minimal({ deploy: "{ manifests: k8s, url: 'ftp://files.example.com/{ref}' }" }),
      `kubler.yaml: deploy.url: expected ${URL_SHAPE}, found "ftp://files.example.com/{ref}"`,
    ],
    [
      "a URL without a host",
      minimal({ deploy: "{ manifests: k8s, url: 'https:///{environment_slug}' }" }),
      `kubler.yaml: deploy.url: expected ${URL_SHAPE}, found "https:///{environment_slug}"`,
    ],
    [
      "a URL with only a port for a host",
      minimal({ deploy: "{ manifests: k8s, url: 'http://:8080/{ref}' }" }),
      `kubler.yaml: deploy.url: expected ${URL_SHAPE}, found "http://:8080/{ref}"`,
    ],
    [
      "a URL with a space",
      minimal({ deploy: "{ manifests: k8s, url: 'https://apps.example.com/{ref} x' }" }),
      `kubler.yaml: deploy.url: expected ${URL_SHAPE}, found "https://apps.example.com/{ref} x"`,
    ],
    [
      "a URL of 256 characters",
      minimal({ deploy: `{ manifests: k8s, url: 'https://apps.example.com/${"a".repeat(231)}' }` }),
      `kubler.yaml: deploy.url: expected a URL template of at most 255 characters (GitLab refuses a longer environment URL), like https://{environment_slug}.apps.example.com, found "https://apps.example.com/${"a".repeat(54)}`,
    ],
    [
      "a rollout timeout in words",
      minimal({ deploy: "{ manifests: k8s, rolloutTimeoutSeconds: 5m }" }),
      `kubler.yaml: deploy.rolloutTimeoutSeconds: expected a whole number of seconds from 10 to 390 (a rollout and its rollback must both fit in the deploy's 900 s), found "5m"`,
    ],
    [
      "a fractional rollout timeout",
      minimal({ deploy: "{ manifests: k8s, rolloutTimeoutSeconds: 10.5 }" }),
      "kubler.yaml: deploy.rolloutTimeoutSeconds: expected a whole number of seconds from 10 to 390 (a rollout and its rollback must both fit in the deploy's 900 s), found 10.5",
    ],
    [
      "a rollout timeout under 10 s",
      minimal({ deploy: "{ manifests: k8s, rolloutTimeoutSeconds: 5 }" }),
      "kubler.yaml: deploy.rolloutTimeoutSeconds: expected a whole number of seconds from 10 to 390 (a rollout and its rollback must both fit in the deploy's 900 s), found 5",
    ],
    [
      "a rollout timeout the deploy function could not wait for twice",
      minimal({ deploy: "{ manifests: k8s, rolloutTimeoutSeconds: 391 }" }),
      "kubler.yaml: deploy.rolloutTimeoutSeconds: expected a whole number of seconds from 10 to 390 (a rollout and its rollback must both fit in the deploy's 900 s), found 391",
    ],
    [
      "a rollout timeout over an hour",
      minimal({ deploy: "{ manifests: k8s, rolloutTimeoutSeconds: 7200 }" }),
      "kubler.yaml: deploy.rolloutTimeoutSeconds: expected a whole number of seconds from 10 to 390 (a rollout and its rollback must both fit in the deploy's 900 s), found 7200",
    ],
    [
      "prune as a quoted word",
      minimal({ deploy: '{ manifests: k8s, prune: "yes" }' }),
      'kubler.yaml: deploy.prune: expected true or false (unquoted), found "yes"',
    ],
    [
      "prune as YAML 1.1's yes, which YAML 1.2 reads as a string",
      minimal({ deploy: "{ manifests: k8s, prune: yes }" }),
      'kubler.yaml: deploy.prune: expected true or false (unquoted), found "yes"',
    ],
    [
      "an unknown deploy key",
      minimal({ deploy: "{ manifests: k8s, replicas: 3 }" }),
      'kubler.yaml: deploy.replicas: expected no such key, found "replicas"',
    ],
    [
      "deploy.image with nothing to build",
      minimal({ deploy: "{ manifests: k8s, image: app }" }),
      'kubler.yaml: deploy.image: expected no value when there is no image to build (add image:), found "app"',
    ],
    // environments
    [
      "no environments",
      "version: 1\ndeploy: { manifests: k8s }",
      "kubler.yaml: environments: expected a value (required), found nothing",
    ],
    [
      "an empty list of environments",
      minimal({ environments: "[]" }),
      "kubler.yaml: environments: expected at least one environment, found []",
    ],
    [
      "environments as a mapping",
      minimal({ environments: "{ name: s, on: merge_request }" }),
      'kubler.yaml: environments: expected a list of environments, found {"name":"s","on":"merge_request"}',
    ],
    [
      "an environment that is a string",
      minimal({ environments: "[staging]" }),
      'kubler.yaml: environments.0: expected a mapping with name and on (and ttl), found "staging"',
    ],
    [
      "an environment without a name",
      minimal({ environments: "[{ on: merge_request }]" }),
      "kubler.yaml: environments.0.name: expected a value (required), found nothing",
    ],
    [
      "an environment name with {sha}",
      minimal({ environments: "[{ name: 'review/{sha}', on: merge_request }]" }),
      'kubler.yaml: environments.0.name: expected an environment name with only the placeholders {branch}, {mr_iid}, {tag}, found "review/{sha}"',
    ],
    [
      "an environment without on",
      minimal({ environments: "[{ name: s }]" }),
      "kubler.yaml: environments.0.on: expected a value (required), found nothing",
    ],
    [
      "an environment on push",
      minimal({ environments: "[{ name: s, on: push }]" }),
      'kubler.yaml: environments.0.on: expected merge_request, { branch: <glob> } or { tag: <glob> }, found "push"',
    ],
    [
      "an environment on a branch and a tag",
      minimal({ environments: "[{ name: s, on: { branch: main, tag: v1 } }]" }),
      'kubler.yaml: environments.0.on: expected merge_request, { branch: <glob> } or { tag: <glob> }, found {"branch":"main","tag":"v1"}',
    ],
    [
      "an empty branch glob",
      minimal({ environments: "[{ name: s, on: { branch: '' } }]" }),
      'kubler.yaml: environments.0.on.branch: expected a non-empty string, found ""',
    ],
    [
      "a TTL in words",
      minimal({ environments: "[{ name: s, on: merge_request, ttl: 3 days }]" }),
      'kubler.yaml: environments.0.ttl: expected a duration like 30m, 72h, 7d, 2w or "never", found "3 days"',
    ],
    [
      "a TTL without a unit",
      minimal({ environments: "[{ name: s, on: merge_request, ttl: 72 }]" }),
      'kubler.yaml: environments.0.ttl: expected a duration like 30m, 72h, 7d, 2w or "never", found 72',
    ],
    [
      "a TTL over a year",
      minimal({ environments: "[{ name: s, on: merge_request, ttl: 400d }]" }),
      'kubler.yaml: environments.0.ttl: expected a duration of at most 366 days, found "400d"',
    ],
    [
      "an empty TTL",
      minimal({ environments: "[{ name: s, on: merge_request, ttl: }]" }),
      'kubler.yaml: environments.0.ttl: expected a duration like 30m, 72h, 7d, 2w or "never", found nothing',
    ],
    [
      "an unknown environment key",
      minimal({ environments: "[{ name: s, on: merge_request, namespace: x }]" }),
      'kubler.yaml: environments.0.namespace: expected no such key, found "namespace"',
    ],
    // Several problems at once: the first five, and a count of the rest.
    [
      "seven problems",
      "version: 2\nimage: {}\ndeploy: { manifests: '', url: '{x}', rolloutTimeoutSeconds: 1 }\nenvironments: [{ name: '', on: push, ttl: 1y }]",
      `kubler.yaml: version: expected 1, found 2; image.name: expected a value (required), found nothing; deploy.manifests: expected a non-empty string, found ""; deploy.url: expected a URL template with only the placeholders {environment_slug}, {environment}, {namespace}, {sha}, {mr_iid}, {ref}, found "{x}"; deploy.rolloutTimeoutSeconds: expected a whole number of seconds from 10 to 390 (a rollout and its rollback must both fit in the deploy's 900 s), found 1; and 3 more problems`,
    ],
  ])("%s", (_, text, message) => {
    expect(messageOf(text)).toBe(message);
  });
});

// `on: { branch: * }` is the obvious way to write "every branch", and YAML reads it as an alias: the
// message named an alias, an anchor, or nothing at all, and never the quotes that fix it.
describe("parseKublerManifest: an unquoted glob starting with *", () => {
  it.each([
    [
      "a lone *",
      "version: 1\ndeploy: { manifests: k8s }\nenvironments:\n  - name: s\n    on: { branch: * }\n",
      'kubler.yaml:5:19: not valid YAML: Alias cannot be an empty string (a value starting with * is a YAML alias: quote a glob that starts with *, like "*")',
    ],
    [
      "a * prefix",
      "version: 1\ndeploy: { manifests: k8s }\nenvironments:\n  - name: s\n    on:\n      tag: *-rc\n",
      'kubler.yaml: not usable YAML: Unresolved alias (the anchor must be set before the alias): -rc (a value starting with * is a YAML alias: quote a glob that starts with *, like "*-rc")',
    ],
  ])("%s is refused with the quotes that fix it", (_, text, message) => {
    expect(messageOf(text)).toBe(message);
  });
});

describe("findEnvironmentRule", () => {
  const manifest = parseKublerManifest(DESIGN_EXAMPLE);
  it("finds exact names first, then templates", () => {
    expect(findEnvironmentRule(manifest, "staging")?.ttl).toBe("never");
    expect(findEnvironmentRule(manifest, "review/feature-x")?.ttl).toBe("72h");
    expect(findEnvironmentRule(manifest, "review/")).toBeNull();
    expect(findEnvironmentRule(manifest, "qa")).toBeNull();
  });
  it("fills URL templates", () => {
    expect(
      fillTemplate("https://{environment_slug}.apps.example.com", { environment_slug: "review-x" }),
    ).toBe("https://review-x.apps.example.com");
  });
});

describe("TTL", () => {
  it("parses minutes, hours, days, weeks and never", () => {
    expect(parseTtl("30m")).toBe(1_800_000);
    expect(parseTtl("72h")).toBe(259_200_000);
    expect(parseTtl("7d")).toBe(604_800_000);
    expect(parseTtl("2w")).toBe(1_209_600_000);
    expect(parseTtl("never")).toBeNull();
    expect(expiryOf("1h", new Date("2026-11-21T10:00:00Z"))).toEqual(new Date("2026-11-21T11:00:00Z"));
    expect(expiryOf("never", new Date())).toBeNull();
  });
  it.each(["", "0h", "72", "1y", "-1d", "720d", "1.5h"])("refuses %j", (ttl) => {
    expect(() => parseTtl(ttl)).toThrow(/ttl/);
  });
});
