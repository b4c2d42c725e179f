import fc from "fast-check";
import { describe, expect, it } from "vitest";
import {
  ANNOTATION,
  environmentNamespace,
  environmentSlug,
  fillEnvironmentUrl,
  isExpired,
  LABEL,
  namespaceFor,
  readEnvironment,
  staleDeployReason,
} from "../../shared/domain/environment.js";

const DNS_1123_LABEL = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/;
const LABEL_VALUE = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/;
const projectPath = fc.oneof(
  fc.string({ minLength: 1, maxLength: 300 }),
  fc
    .array(fc.stringMatching(/^[A-Za-z0-9_.-]{1,40}$/), { minLength: 1, maxLength: 8 })
    .map((p) => p.join("/")),
);
const environment = fc.oneof(
  fc.string({ minLength: 1, maxLength: 300 }),
  fc.stringMatching(/^(review|staging|production)\/[A-Za-z0-9_./-]{1,120}$/),
);

describe("namespaceFor", () => {
  it("reads as the project and environment, with a hash of the exact pair", () => {
    expect(namespaceFor("group/app", "review/feature-x")).toMatch(/^group-app-review-feature-x-[0-9a-f]{8}$/);
  });

  it("is a DNS-1123 label of at most 63 characters for any input", () => {
    fc.assert(
      fc.property(projectPath, environment, (path, env) => {
        const name = namespaceFor(path, env);
        expect(name.length).toBeLessThanOrEqual(63);
        expect(name).toMatch(DNS_1123_LABEL);
      }),
      { numRuns: 2000 },
    );
  });

  it("is deterministic", () => {
    fc.assert(
      fc.property(projectPath, environment, (path, env) => {
        expect(namespaceFor(path, env)).toBe(namespaceFor(path, env));
      }),
    );
  });

  it("gives distinct pairs distinct names, also when they read the same or are truncated alike", () => {
    expect(namespaceFor("a/b", "c")).not.toBe(namespaceFor("a", "b/c"));
    const long = "x".repeat(80);
    expect(namespaceFor("group/app", `${long}1`)).not.toBe(namespaceFor("group/app", `${long}2`));
    fc.assert(
      fc.property(
        fc.tuple(projectPath, environment),
        fc.tuple(projectPath, environment),
        ([p1, e1], [p2, e2]) => {
          fc.pre(p1 !== p2 || e1 !== e2);
          expect(namespaceFor(p1, e1)).not.toBe(namespaceFor(p2, e2));
        },
      ),
      { numRuns: 2000 },
    );
  });
});

describe("environmentSlug", () => {
  it("is a valid label value for any name, readable when short", () => {
    expect(environmentSlug("review/Feature_X")).toBe("review-feature-x");
    fc.assert(
      fc.property(environment, (env) => {
        const slug = environmentSlug(env);
        expect(slug.length).toBeLessThanOrEqual(63);
        expect(slug).toMatch(LABEL_VALUE);
      }),
      { numRuns: 1000 },
    );
  });

  it("keeps long names distinct with a hash", () => {
    const long = "review/".padEnd(90, "y");
    expect(environmentSlug(`${long}a`)).not.toBe(environmentSlug(`${long}b`));
  });
});

const state = {
  namespace: "group-app-review-x-12345678",
  gitlab: { instance: "https://gitlab.example.com", projectId: 15, projectPath: "group/app" },
  environment: "review/x",
  sha: "da1560886d4f094c3e6c9ef40349f7d38b5d27d7",
  ref: "x",
  pipelineId: 42,
  mrIid: 7,
  ttl: "72h",
  expiresAt: new Date("2026-11-24T10:00:00Z"),
  deployedAt: new Date("2026-11-21T10:00:05Z"),
  requestedAt: new Date("2026-11-21T10:00:00Z"),
  status: "succeeded" as const,
  rolloutDeadline: null,
  correlationId: "corr-1",
  url: "https://review-x.apps.example.com",
  lastGoodDigest: null,
};

describe("the namespace contract", () => {
  it("writes the labels and annotations of DESIGN §6", () => {
    const namespace = environmentNamespace(state);
    expect(namespace.metadata.labels).toEqual({
      [LABEL.MANAGED_BY]: "kubler",
      [LABEL.PROJECT_ID]: "15",
      [LABEL.ENVIRONMENT]: "review-x",
    });
    expect(namespace.metadata.annotations).toMatchObject({
      "kubler.dev/project-id": "15",
      "kubler.dev/environment": "review-x",
      "kubler.dev/expires-at": "2026-11-24T10:00:00.000Z",
      "kubler.dev/ttl": "72h",
      "kubler.dev/sha": state.sha,
      "kubler.dev/pipeline-id": "42",
      "kubler.dev/mr-iid": "7",
      "kubler.dev/deployed-at": "2026-11-21T10:00:05.000Z",
    });
  });

  it("reads back what it wrote", () => {
    const read = readEnvironment(environmentNamespace(state));
    expect(read.kind).toBe("managed");
    if (read.kind !== "managed") return;
    expect(read.environment).toMatchObject({
      namespace: state.namespace,
      projectId: 15,
      projectPath: "group/app",
      instance: "https://gitlab.example.com",
      environment: "review/x",
      sha: state.sha,
      ref: "x",
      pipelineId: 42,
      mrIid: 7,
      expiresAt: state.expiresAt,
      deployedAt: state.deployedAt,
      rolloutDeadline: null,
      status: "succeeded",
      terminating: false,
    });
  });

  it("calls a namespace without the managed-by label unmanaged, whatever else it carries", () => {
    const namespace = environmentNamespace(state);
    delete namespace.metadata.labels?.[LABEL.MANAGED_BY];
    expect(readEnvironment(namespace).kind).toBe("unmanaged");
    namespace.metadata.labels = { ...namespace.metadata.labels, [LABEL.MANAGED_BY]: "helm" };
    expect(readEnvironment(namespace).kind).toBe("unmanaged");
  });

  it.each([
    ["an expiry that is not RFC 3339", { [ANNOTATION.EXPIRES_AT]: "tomorrow" }, "kubler.dev/expires-at"],
    ["no expiry and a TTL that is not never", { [ANNOTATION.EXPIRES_AT]: "" }, "is missing"],
    ["a garbage deployed-at", { [ANNOTATION.DEPLOYED_AT]: "2026-13-45" }, "kubler.dev/deployed-at"],
  ])("calls a managed namespace with %s malformed, naming the annotation", (_, annotations, named) => {
    const namespace = environmentNamespace(state);
    namespace.metadata.annotations = { ...namespace.metadata.annotations, ...annotations };
    const read = readEnvironment(namespace);
    expect(read.kind).toBe("malformed");
    if (read.kind === "malformed") expect(read.reason).toContain(named);
  });

  it("calls a project id label that is not a number malformed", () => {
    const namespace = environmentNamespace(state);
    namespace.metadata.labels = { ...namespace.metadata.labels, [LABEL.PROJECT_ID]: "fifteen" };
    expect(readEnvironment(namespace).kind).toBe("malformed");
  });

  it("accepts ttl never without an expiry, which never expires", () => {
    const read = readEnvironment(environmentNamespace({ ...state, ttl: "never", expiresAt: null }));
    expect(read.kind).toBe("managed");
    if (read.kind === "managed")
      expect(isExpired(read.environment, new Date("2100-01-01T00:00:00Z"))).toBe(false);
  });

  it("expires at the expiry, not before", () => {
    expect(isExpired({ expiresAt: state.expiresAt }, new Date("2026-11-24T09:59:59Z"))).toBe(false);
    expect(isExpired({ expiresAt: state.expiresAt }, new Date("2026-11-24T10:00:00Z"))).toBe(true);
  });
});

describe("staleDeployReason", () => {
  const at = (s: string) => new Date(s);
  const [X, A, B, C] = ["0", "a", "b", "c"].map((c) => c.repeat(40)) as [string, string, string, string];
  /** What a namespace records of the last attempted deploy: nothing but its sha unless told. */
  const attempted = (overrides: Partial<Parameters<typeof staleDeployReason>[0]> = {}) => ({
    attemptedSha: B,
    attemptedPipelineId: null,
    previousSha: null,
    gitlabAt: null,
    factAt: null,
    requestedAt: at("2026-11-21T10:00:00Z"),
    ...overrides,
  });
  const request = (overrides: Partial<Parameters<typeof staleDeployReason>[1]> = {}) => ({
    sha: A,
    pipelineId: null,
    factAt: null,
    requestedAt: at("2026-11-21T10:00:00Z"),
    ...overrides,
  });

  it("compares pipeline ids when both have one", () => {
    const running = attempted({ attemptedPipelineId: 42 });
    expect(
      staleDeployReason(running, request({ pipelineId: 41, requestedAt: at("2026-11-21T11:00:00Z") })),
    ).toMatch(/^stale: pipeline 41 \(a{40}\) is older than the last attempted pipeline 42 \(b{40}\)$/);
    expect(
      staleDeployReason(running, request({ pipelineId: 42, requestedAt: at("2026-11-21T09:00:00Z") })),
    ).toBe(null);
    expect(
      staleDeployReason(running, request({ pipelineId: 43, requestedAt: at("2026-11-21T09:00:00Z") })),
    ).toBe(null);
  });

  it("compares the fact times, not when the deploys were requested (builds finish in any order)", () => {
    const running = attempted({
      factAt: at("2026-11-21T10:03:00Z"),
      requestedAt: at("2026-11-21T10:04:00Z"),
    });
    const older = request({ factAt: at("2026-11-21T10:01:00Z"), requestedAt: at("2026-11-21T10:06:00Z") });
    expect(staleDeployReason(running, older)).toMatch(/^stale: /);
    const newer = request({ factAt: at("2026-11-21T10:05:00Z"), requestedAt: at("2026-11-21T10:04:00Z") });
    expect(staleDeployReason(running, newer)).toBe(null);
  });

  it("falls back to when each was requested", () => {
    const running = attempted();
    expect(
      staleDeployReason(running, request({ pipelineId: 5, requestedAt: at("2026-11-21T09:59:59Z") })),
    ).toMatch(/^stale: /);
    expect(staleDeployReason(running, request({ requestedAt: at("2026-11-21T10:00:01Z") }))).toBe(null);
  });

  it("orders by GitLab's own times before the arrival, whichever reached Kubler first", () => {
    // B's update reached Kubler first (10:00:10), though GitLab made it after A's (10:00:05 vs 10:00:01).
    const running = attempted({ gitlabAt: at("2026-11-21T10:00:05Z"), factAt: at("2026-11-21T10:00:10Z") });
    const older = request({ gitlabAt: at("2026-11-21T10:00:01Z"), factAt: at("2026-11-21T10:00:11Z") });
    expect(staleDeployReason(running, older)).toBe(
      `stale: ${A} is from GitLab's change at 2026-11-21T10:00:01.000Z, before the one (2026-11-21T10:00:05.000Z) of ${B}, the last attempted asked for at 2026-11-21T10:00:10.000Z`,
    );
    const newer = request({ gitlabAt: at("2026-11-21T10:00:09Z"), factAt: at("2026-11-21T10:00:01Z") });
    expect(staleDeployReason(running, newer)).toBe(null);
  });

  it("does not find the attempted commit older than itself by GitLab's times (a late fact that led to it)", () => {
    // Attempted: B from a later change of GitLab's (10:00:09); asked for again by one of 10:00:01.
    const running = attempted({ gitlabAt: at("2026-11-21T10:00:09Z"), factAt: at("2026-11-21T10:00:10Z") });
    const late = request({
      sha: B,
      gitlabAt: at("2026-11-21T10:00:01Z"),
      factAt: at("2026-11-21T10:00:12Z"),
    });
    expect(staleDeployReason(running, late)).toBe(null);
    // Its arrival still orders it, as before GitLab's times were carried.
    expect(staleDeployReason(running, { ...late, factAt: at("2026-11-21T10:00:08Z") })).toMatch(
      /^stale: pipeline \?/,
    );
  });

  it("refuses the commit the attempted one was pushed on top of, whatever the fact times say", () => {
    const running = attempted({ previousSha: A, factAt: at("2026-11-21T10:00:10Z") });
    expect(staleDeployReason(running, request({ previousSha: X, factAt: at("2026-11-21T10:00:11Z") }))).toBe(
      `stale: ${B}, the last attempted, was pushed on top of ${A}, this one (${A}→${B} asked for at 2026-11-21T10:00:10.000Z)`,
    );
    // GitLab's times of the same second cannot tell (one-second precision): the chain does.
    const sameSecond = at("2026-11-21T10:00:05Z");
    expect(
      staleDeployReason(
        attempted({ previousSha: A, gitlabAt: sameSecond, factAt: at("2026-11-21T10:00:10Z") }),
        request({ gitlabAt: sameSecond, factAt: at("2026-11-21T10:00:11Z") }),
      ),
    ).toMatch(/was pushed on top of/);
  });

  it("deploys a commit pushed on top of the attempted one, though its fact reached Kubler first", () => {
    const running = attempted({ previousSha: X, factAt: at("2026-11-21T10:00:11Z") });
    expect(
      staleDeployReason(running, request({ sha: C, previousSha: B, factAt: at("2026-11-21T10:00:10Z") })),
    ).toBe(null);
  });

  it("deploys a force push back to an older commit: a new push, on top of what runs", () => {
    // A, then B on top of A, then a force push from B back to A (previous sha B).
    const running = attempted({ attemptedSha: B, previousSha: A, factAt: at("2026-11-21T10:00:10Z") });
    const forcedBack = request({ sha: A, previousSha: B, factAt: at("2026-11-21T10:00:20Z") });
    expect(staleDeployReason(running, forcedBack)).toBe(null);
    // The chain cannot tell A→B from B→A: the one GitLab says is later wins, else the later arrival.
    expect(staleDeployReason(running, { ...forcedBack, gitlabAt: at("2026-11-21T10:00:30Z") })).toBe(null);
    expect(
      staleDeployReason(
        { ...running, gitlabAt: at("2026-11-21T10:00:31Z") },
        { ...forcedBack, gitlabAt: at("2026-11-21T10:00:30Z") },
      ),
    ).toMatch(/^stale: .* is from GitLab's change at/);
    expect(staleDeployReason(running, { ...forcedBack, factAt: at("2026-11-21T10:00:05Z") })).toMatch(
      /^stale: pipeline \?/,
    );
  });

  it("orders unlinked commits by arrival, as before the chain", () => {
    const running = attempted({ attemptedSha: C, previousSha: B, factAt: at("2026-11-21T10:00:10Z") });
    expect(
      staleDeployReason(running, request({ sha: A, previousSha: X, factAt: at("2026-11-21T10:00:11Z") })),
    ).toBe(null);
    expect(
      staleDeployReason(running, request({ sha: A, previousSha: X, factAt: at("2026-11-21T10:00:09Z") })),
    ).toMatch(/^stale: /);
  });

  it("reads back the chain and GitLab's time it wrote on the namespace, and none from before them", () => {
    const written = environmentNamespace({
      ...state,
      previousSha: A,
      gitlabAt: at("2026-11-21T10:00:05Z"),
    });
    const read = readEnvironment(written);
    expect(read).toMatchObject({
      kind: "managed",
      environment: { previousSha: A, gitlabAt: at("2026-11-21T10:00:05Z") },
    });
    const before = environmentNamespace(state);
    expect(before.metadata.annotations?.[ANNOTATION.PREVIOUS_SHA]).toBe("");
    expect(readEnvironment(before)).toMatchObject({ environment: { previousSha: null, gitlabAt: null } });
  });
});

describe("fillEnvironmentUrl", () => {
  it("fills ordinary names as written", () => {
    expect(
      fillEnvironmentUrl("https://{environment_slug}.apps.example.com/{ref}?mr={mr_iid}", {
        environment_slug: "review-feature-x",
        ref: "feature/x",
        mr_iid: 16,
      }),
    ).toEqual({ url: "https://review-feature-x.apps.example.com/feature/x?mr=16" });
    expect(fillEnvironmentUrl("https://{ref}.apps.example.com", { ref: "v1.2.3" })).toEqual({
      url: "https://v1.2.3.apps.example.com",
    });
  });

  it("never lets a value move the host: refused in the host, percent-encoded elsewhere", () => {
    expect(fillEnvironmentUrl("https://{ref}.apps.example.com", { ref: "x@evil.com#" })).toEqual({
      problem: expect.stringMatching(/^\{ref\} is in deploy.url's host, and "x@evil.com#" is not/),
    });
    expect(fillEnvironmentUrl("https://apps.example.com/{ref}", { ref: "x@evil.com#?a" })).toEqual({
      url: "https://apps.example.com/x%40evil.com%23%3Fa",
    });
    // A template with one slash: the value's own would make it an authority.
    expect(fillEnvironmentUrl("https:/{ref}", { ref: "/evil.com" })).toEqual({
      problem: expect.stringContaining("whose host is not the template's"),
    });
  });

  it("keeps the template's host for any value (property)", () => {
    fc.assert(
      fc.property(
        fc.string({ maxLength: 60, unit: "binary" }),
        fc.string({ maxLength: 60 }),
        (ref, environment) => {
          const inPath = fillEnvironmentUrl("https://apps.example.com/{ref}?env={environment}#{ref}", {
            ref,
            environment,
          });
          expect("url" in inPath && new URL(inPath.url).host).toBe("apps.example.com");
          const inHost = fillEnvironmentUrl("https://{ref}.apps.example.com/", { ref });
          if ("url" in inHost) expect(new URL(inHost.url).host.endsWith(".apps.example.com")).toBe(true);
        },
      ),
      { numRuns: 2000 },
    );
  });
});
