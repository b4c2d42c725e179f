import { describe, expect, it } from "vitest";
import {
  fillTemplate,
  findEnvironmentRule,
  ManifestError,
  parseKublerManifest,
} from "../../shared/domain/kubler-manifest.js";
import { expiryOf, parseTtl } from "../../shared/domain/ttl.js";

/** DESIGN §7's example, as a project would write it. */
const DESIGN_EXAMPLE = `
version: 1
image:
  name: registry.example.com/group/app
  context: .
  dockerfile: Dockerfile
  buildArgs: { NODE_ENV: production }
deploy:
  manifests: deploy/
  image: app
  url: https://{environment_slug}.apps.example.com
  rolloutTimeoutSeconds: 300
environments:
  - name: review/{branch}
    on: merge_request
    ttl: 72h
  - name: staging
    on: { branch: main }
    ttl: never
  - name: production
    on: { tag: "v*" }
`;

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

  it("fills in the defaults", () => {
    const manifest = parseKublerManifest(
      "version: 1\ndeploy: { manifests: k8s }\nenvironments: [{ name: staging, on: { branch: main } }]",
    );
    expect(manifest.deploy.rolloutTimeoutSeconds).toBe(300);
    expect(manifest.image).toBeUndefined();
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
