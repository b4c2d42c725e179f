/**
 * The shipped JSON Schema for kubler.yaml (schema/kubler.schema.json) says yes and no exactly where
 * Kubler's own validator does: on hand-picked files and on generated ones. The schema is checked by
 * a small validator of the keywords it uses (no dependency); an unknown keyword fails the test, so
 * the schema cannot grow a rule this validator silently skips.
 */
import { readFileSync } from "node:fs";
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import {
  MAX_ROLLOUT_TIMEOUT_SECONDS,
  ManifestError,
  parseKublerManifest,
} from "../../shared/domain/kubler-manifest.js";

type Schema = Record<string, unknown>;
const SCHEMA = JSON.parse(
  readFileSync(new URL("../../schema/kubler.schema.json", import.meta.url), "utf8"),
) as Schema;

const ANNOTATIONS = new Set(["$schema", "$id", "$defs", "title", "description", "default", "examples"]);
const patterns = new Map<string, RegExp>();

/** Draft 2020-12 for the keywords kubler.schema.json uses; true when `value` is valid. */
function validates(schema: Schema, value: unknown, root: Schema = schema): boolean {
  for (const [keyword, arg] of Object.entries(schema)) {
    if (ANNOTATIONS.has(keyword) || keyword === "then") continue;
    if (!checkKeyword(keyword, arg, schema, value, root)) return false;
  }
  return true;
}

function checkKeyword(keyword: string, arg: unknown, schema: Schema, value: unknown, root: Schema): boolean {
  const isObject = typeof value === "object" && value !== null && !Array.isArray(value);
  const object = value as Record<string, unknown>;
  switch (keyword) {
    case "$ref": {
      const path = (arg as string).replace(/^#\//, "").split("/");
      const target = path.reduce<unknown>((node, key) => (node as Schema)[key], root);
      return validates(target as Schema, value, root);
    }
    case "type":
      return (
        {
          object: isObject,
          array: Array.isArray(value),
          string: typeof value === "string",
          boolean: typeof value === "boolean",
          integer: Number.isInteger(value),
          number: typeof value === "number" && Number.isFinite(value),
        } as Record<string, boolean>
      )[arg as string] as boolean;
    case "const":
      return JSON.stringify(value) === JSON.stringify(arg);
    case "pattern": {
      if (typeof value !== "string") return true;
      const regex = patterns.get(arg as string) ?? new RegExp(arg as string, "u");
      patterns.set(arg as string, regex);
      return regex.test(value);
    }
    case "maxLength":
      // Characters, as JSON Schema counts them: code points, not UTF-16 units.
      return typeof value !== "string" || [...value].length <= (arg as number);
    case "minimum":
      return typeof value !== "number" || value >= (arg as number);
    case "maximum":
      return typeof value !== "number" || value <= (arg as number);
    case "minItems":
      return !Array.isArray(value) || value.length >= (arg as number);
    case "items":
      return !Array.isArray(value) || value.every((item) => validates(arg as Schema, item, root));
    case "required":
      return !isObject || (arg as string[]).every((key) => Object.hasOwn(object, key));
    case "properties":
      return (
        !isObject ||
        Object.entries(arg as Record<string, Schema>).every(
          ([key, sub]) => !Object.hasOwn(object, key) || validates(sub, object[key], root),
        )
      );
    case "additionalProperties": {
      if (!isObject) return true;
      const known = Object.keys((schema.properties as object | undefined) ?? {});
      const extra = Object.keys(object).filter((key) => !known.includes(key));
      return arg === false
        ? extra.length === 0
        : extra.every((key) => validates(arg as Schema, object[key], root));
    }
    case "anyOf":
      return (arg as Schema[]).some((sub) => validates(sub, value, root));
    case "if":
      return !validates(arg as Schema, value, root) || validates(schema.then as Schema, value, root);
    default:
      throw new Error(`kubler.schema.json uses ${keyword}, which this test's validator does not know`);
  }
}

/** Kubler's verdict on the same data (JSON is YAML). */
function kublerAccepts(value: unknown): boolean {
  try {
    parseKublerManifest(JSON.stringify(value));
    return true;
  } catch (error) {
    if (!(error instanceof ManifestError)) throw error;
    return false;
  }
}

const VALID = {
  version: 1,
  image: {
    name: "registry.example.com/group/app",
    context: ".",
    dockerfile: "Dockerfile",
    buildArgs: { NODE_ENV: "production" },
  },
  deploy: {
    manifests: "deploy/",
    image: "app",
    url: "https://{environment_slug}.apps.example.com",
    rolloutTimeoutSeconds: 300,
  },
  environments: [
    { name: "review/{branch}", on: "merge_request", ttl: "72h" },
    { name: "staging", on: { branch: "main" }, ttl: "never" },
    { name: "production", on: { tag: "v*" } },
  ],
};

// biome-ignore lint/suspicious/noExplicitAny: each example edits a different corner of the manifest
function edit(change: (m: Record<string, any>) => void): unknown {
  // biome-ignore lint/suspicious/noExplicitAny: as above
  const copy = structuredClone(VALID) as Record<string, any>;
  change(copy);
  return copy;
}

describe("schema/kubler.schema.json", () => {
  it("declares draft 2020-12", () => {
    expect(SCHEMA.$schema).toBe("https://json-schema.org/draft/2020-12/schema");
  });

  it.each([
    ["DESIGN §7's example", VALID],
    ["the sample project", parseYamlFile("../../examples/projects/flightjs/flight-management/kubler.yaml")],
    [
      "the minimum",
      { version: 1, deploy: { manifests: "k8s" }, environments: [{ name: "s", on: { branch: "main" } }] },
    ],
    ["TTL at the limits", edit((m) => (m.environments[0].ttl = "366d"))],
    [
      "the longest rollout timeout",
      edit((m) => (m.deploy.rolloutTimeoutSeconds = MAX_ROLLOUT_TIMEOUT_SECONDS)),
    ],
    [
      "a URL with every placeholder",
      edit((m) => (m.deploy.url = "https://{environment}/{namespace}/{sha}/{mr_iid}/{ref}")),
    ],
    ["an unclosed brace", edit((m) => (m.deploy.url = "https://x/{"))],
    ["an http URL with a port", edit((m) => (m.deploy.url = "http://localhost:8080/{ref}"))],
    ["a URL scheme in capitals", edit((m) => (m.deploy.url = "HTTPS://apps.example.com"))],
    ["a URL of 255 characters", edit((m) => (m.deploy.url = `https://x/${"😀".repeat(245)}`))],
    ["prune on", edit((m) => (m.deploy.prune = true))],
    ["an image name of 255 characters", edit((m) => (m.image.name = `r.example.com/${"a".repeat(241)}`))],
  ])("accepts %s, as Kubler does", (_, manifest) => {
    expect(kublerAccepts(manifest)).toBe(true);
    expect(validates(SCHEMA, manifest)).toBe(true);
  });

  it.each([
    ["version 2", edit((m) => (m.version = 2))],
    ["an unknown key", edit((m) => (m.extra = true))],
    ["no deploy", edit((m) => delete m.deploy)],
    ["no environments", edit((m) => (m.environments = []))],
    ["an image with a tag-like uppercase name", edit((m) => (m.image.name = "Registry/App"))],
    ["a build arg that is a number", edit((m) => (m.image.buildArgs.N = 1))],
    ["build args as a list", edit((m) => (m.image.buildArgs = []))],
    ["an image name with a tag", edit((m) => (m.image.name = "registry.example.com/app:1.0"))],
    ["an image name of 256 characters", edit((m) => (m.image.name = `r.example.com/${"a".repeat(242)}`))],
    ["an absolute manifests directory", edit((m) => (m.deploy.manifests = "/etc"))],
    ["a manifests directory outside the repository", edit((m) => (m.deploy.manifests = "a/../../b"))],
    ["an unknown URL placeholder", edit((m) => (m.deploy.url = "https://{user}.example.com"))],
    ["a URL without a scheme", edit((m) => (m.deploy.url = "apps.example.com/{environment_slug}"))],
    ["an ftp URL", edit((m) => (m.deploy.url = "ftp://files.example.com/{ref}"))],
    ["a URL without a host", edit((m) => (m.deploy.url = "https:///{ref}"))],
    ["a URL with a space", edit((m) => (m.deploy.url = "https://x/{ref} y"))],
    ["a URL of 256 characters", edit((m) => (m.deploy.url = `https://x/${"a".repeat(246)}`))],
    ["a rollout timeout of 5 s", edit((m) => (m.deploy.rolloutTimeoutSeconds = 5))],
    [
      "a rollout timeout one second over what the deploy function can wait for twice",
      edit((m) => (m.deploy.rolloutTimeoutSeconds = MAX_ROLLOUT_TIMEOUT_SECONDS + 1)),
    ],
    ["a fractional rollout timeout", edit((m) => (m.deploy.rolloutTimeoutSeconds = 10.5))],
    ["prune as a string", edit((m) => (m.deploy.prune = "yes"))],
    ["an environment on push", edit((m) => (m.environments[0].on = "push"))],
    ["an environment on branch and tag", edit((m) => (m.environments[0].on = { branch: "a", tag: "b" }))],
    ["a name with {sha}", edit((m) => (m.environments[0].name = "review/{sha}"))],
    ["a blank name", edit((m) => (m.environments[0].name = "  "))],
    ["a TTL of 3 days in words", edit((m) => (m.environments[0].ttl = "3 days"))],
    ["a TTL over 366 days", edit((m) => (m.environments[0].ttl = "367d"))],
    ["deploy.image without an image", edit((m) => delete m.image)],
    ["a list", [VALID]],
    ["nothing", null],
  ])("refuses %s, as Kubler does", (_, manifest) => {
    expect(kublerAccepts(manifest)).toBe(false);
    expect(validates(SCHEMA, manifest)).toBe(false);
  });

  it("agrees with Kubler's validator on generated files", () => {
    const verdicts = { accepted: 0, refused: 0 };
    fc.assert(
      fc.property(manifestArbitrary, (manifest) => {
        const accepted = kublerAccepts(manifest);
        verdicts[accepted ? "accepted" : "refused"]++;
        expect(validates(SCHEMA, manifest)).toBe(accepted);
      }),
      { numRuns: 3_000 },
    );
    // Both sides reached often enough for the agreement to mean something.
    expect(verdicts.accepted).toBeGreaterThan(100);
    expect(verdicts.refused).toBeGreaterThan(100);
  });
});

function parseYamlFile(relative: string): unknown {
  const text = readFileSync(new URL(relative, import.meta.url), "utf8");
  return structuredClone(JSON.parse(JSON.stringify(parseKublerManifest(text))));
}

// Values near every boundary the two validators draw, plus some that are wrong in kind.
const text = fc.constantFrom(
  "",
  "  ",
  "x",
  " x ",
  "deploy/",
  "/abs",
  " /abs",
  "a/../b",
  "..",
  "a/..",
  ".. /x",
  "a..b",
  "{sha}",
  "{branch}",
  "review/{branch}",
  "mr-{mr_iid}",
  "{tag}",
  "{nope}",
  "{a{sha}",
  "{",
  "}",
  "https://{environment_slug}.x",
  "https://{environment}-{ref}",
  " http://x ",
  "HTTP://X",
  "apps.example.com/{environment_slug}",
  "ftp://x",
  "https://",
  "https:///x",
  "https://:80",
  "https://u@x",
  "https://@x",
  "https://x y",
  `https://x/${"a".repeat(245)}`,
  `https://x/${"a".repeat(246)}`,
  ` https://x/${"a".repeat(245)} `,
  "registry.example.com/group/app",
  " registry.example.com/app ",
  "Registry/App",
  "r/a:5000",
  "localhost:5000/app",
  "a__b/c-d",
  "r//a",
  "main",
  "v*",
);
const ttl = fc.constantFrom(
  "72h",
  "0h",
  "30m",
  "366d",
  "367d",
  "52w",
  "53w",
  "8784h",
  "8785h",
  "527040m",
  "527041m",
  "1000000m",
  "never",
  "Never",
  "1y",
  " 72h",
  "01h",
);
const scalar = fc.oneof(
  text,
  ttl,
  fc.constantFrom(0, 1, 2, 9, 10, 10.5, 300, 390, 391, 3600, 3601, -1, true, null),
);
const any: fc.Arbitrary<unknown> = fc.oneof(scalar, fc.constant([]), fc.constant({}));

/** Mostly good values, sometimes a tricky one from `text`/`ttl`, rarely one of the wrong kind. */
const field = (...good: unknown[]) =>
  fc.oneof(
    { weight: 12, arbitrary: fc.constantFrom(...good) },
    { weight: 3, arbitrary: fc.oneof(text, ttl) },
    { weight: 1, arbitrary: any },
  );

/** An object with its required keys (nearly always), some optional ones, rarely an unknown key. `freq`: one in `freq` is left out. */
function objectOf(
  required: Record<string, fc.Arbitrary<unknown>>,
  optional: Record<string, fc.Arbitrary<unknown>> = {},
): fc.Arbitrary<Record<string, unknown>> {
  const pick = (fields: Record<string, fc.Arbitrary<unknown>>, freq: number) =>
    Object.entries(fields).map(([key, value]) => fc.option(fc.tuple(fc.constant(key), value), { freq }));
  return fc
    .tuple(
      fc.tuple(...pick(required, 40), ...pick(optional, 2)),
      fc.oneof(
        { weight: 30, arbitrary: fc.constant(null) },
        { weight: 1, arbitrary: fc.tuple(fc.constantFrom("extra", "Version"), any) },
      ),
    )
    .map(([picked, extra]) =>
      Object.fromEntries([...picked, extra].filter((entry): entry is [string, unknown] => entry !== null)),
    );
}

const environment = objectOf(
  {
    name: field("review/{branch}", "staging", "mr-{mr_iid}", "release-{tag}"),
    on: fc.oneof(
      { weight: 4, arbitrary: fc.constant("merge_request") },
      { weight: 4, arbitrary: objectOf({ branch: field("main", "release/*") }) },
      { weight: 4, arbitrary: objectOf({ tag: field("v*") }) },
      { weight: 1, arbitrary: objectOf({ branch: field("main"), tag: field("v*") }) },
      { weight: 1, arbitrary: any },
    ),
  },
  { ttl: field("72h", "never", "366d", "52w", "30m") },
);
const manifestArbitrary = objectOf(
  {
    version: field(1),
    deploy: objectOf(
      { manifests: field("deploy/", "k8s", "a/b") },
      {
        image: field("app"),
        url: field("https://{environment_slug}.apps.example.com", "https://x/{sha}"),
        rolloutTimeoutSeconds: fc.constantFrom(9, 10, 10.5, 300, 390, 391, 3600, 3601, "300"),
        prune: fc.constantFrom(true, false, "true", "yes", 1, null),
      },
    ),
    environments: fc.oneof(
      { weight: 12, arbitrary: fc.array(environment, { minLength: 1, maxLength: 3 }) },
      { weight: 1, arbitrary: any },
    ),
  },
  {
    image: objectOf(
      { name: field("registry.example.com/group/app", "localhost:5000/a") },
      {
        context: field(".", "app"),
        dockerfile: field("Dockerfile"),
        buildArgs: fc.oneof(
          { weight: 6, arbitrary: fc.dictionary(fc.constantFrom("A", "B"), fc.oneof(text, fc.constant(1))) },
          { weight: 1, arbitrary: any },
        ),
      },
    ),
  },
);
