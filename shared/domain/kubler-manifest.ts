/**
 * `kubler.yaml` (DESIGN §7): a project opts in with it. Parsed and validated here, with errors that
 * name the file, the path, what was expected and what was found.
 */
import * as v from "valibot";
import { parseDocument } from "yaml";
import { IMAGE_REPOSITORY, MAX_IMAGE_REPOSITORY_LENGTH } from "./image-repository.js";
import { parseTtl } from "./ttl.js";
import { repeatedKey, yamlErrorPlace, yamlNestingProblem } from "./yaml-nesting.js";

export const MANIFEST_FILE = "kubler.yaml";
export const DEFAULT_ROLLOUT_TIMEOUT_SECONDS = 300;
/**
 * The deploy step's time limit: infra sets the deploy-environment Lambda's timeout from it (Lambda's
 * own maximum is 900 s), and the longest rollout timeout a kubler.yaml may ask for follows from it.
 */
export const DEPLOY_FUNCTION_TIMEOUT_SECONDS = 900;
/** What a deploy does besides waiting: read the manifests, apply, roll back, prune, publish, retries. */
const DEPLOY_MARGIN_SECONDS = 120;
/**
 * A failed rollout is waited for, then its rollback is waited for as long again: both waits and the
 * margin fit in the function's time, else the rollback is cut off and never reported.
 */
export const MAX_ROLLOUT_TIMEOUT_SECONDS = Math.floor(
  (DEPLOY_FUNCTION_TIMEOUT_SECONDS - DEPLOY_MARGIN_SECONDS) / 2,
);
/** Problems listed in one error; the rest are counted. */
const MAX_PROBLEMS = 5;

/** Placeholders a URL template may use; all are known when a deploy runs. */
export const URL_PLACEHOLDERS = [
  "environment_slug",
  "environment",
  "namespace",
  "sha",
  "mr_iid",
  "ref",
] as const;
/** Placeholders an environment name may use; filled in by the planner from the event. */
export const NAME_PLACEHOLDERS = ["branch", "mr_iid", "tag"] as const;

const Text = v.pipe(v.string("a non-empty string"), v.trim(), v.minLength(1, "a non-empty string"));
const Glob = Text;

/**
 * A YAML mapping with these keys. valibot's object schemas take arrays too (and then report their
 * indexes as unknown keys), so a list is refused first, with the same words.
 */
const mapping = <const E extends v.ObjectEntries>(entries: E, what: string) =>
  v.pipe(
    v.custom<unknown>((input) => !Array.isArray(input), what),
    v.strictObject(entries, what),
  );

const TTL_WORDS = 'a duration like 30m, 72h, 7d, 2w or "never"';
const Ttl = v.pipe(
  v.string(TTL_WORDS),
  v.regex(/^(never|[1-9]\d{0,5}[mhdw])$/, TTL_WORDS),
  v.check((ttl) => {
    try {
      parseTtl(ttl);
      return true;
    } catch {
      return false;
    }
  }, "a duration of at most 366 days"),
);

const placeholders = (allowed: readonly string[], what: string) =>
  v.check<string, string>(
    (text) => [...text.matchAll(/\{([^}]*)\}/g)].every((m) => allowed.includes(m[1] ?? "")),
    `${what} with only the placeholders ${allowed.map((p) => `{${p}}`).join(", ")}`,
  );

const On = v.union(
  [v.literal("merge_request"), v.strictObject({ branch: Glob }), v.strictObject({ tag: Glob })],
  "merge_request, { branch: <glob> } or { tag: <glob> }",
);

const Environment = mapping(
  {
    name: v.pipe(Text, placeholders(NAME_PLACEHOLDERS, "an environment name")),
    on: On,
    ttl: v.optional(Ttl),
  },
  "a mapping with name and on (and ttl)",
);

const IMAGE_NAME_WORDS = "an image repository (registry/path, no tag)";
const ImageName = v.pipe(
  v.string("a non-empty string"),
  // Counted as written, as the schema's maxLength counts: build-image refuses it too, but only after
  // the plan, and skopeo at the push, after the whole build.
  v.maxLength(
    MAX_IMAGE_REPOSITORY_LENGTH,
    `${IMAGE_NAME_WORDS} of at most ${MAX_IMAGE_REPOSITORY_LENGTH} characters, registry included`,
  ),
  v.trim(),
  v.minLength(1, "a non-empty string"),
  v.check(
    (name) => name === name.toLowerCase(),
    `${IMAGE_NAME_WORDS} in lowercase: registries refuse a repository name with capitals`,
  ),
  v.regex(IMAGE_REPOSITORY, IMAGE_NAME_WORDS),
);

const Image = mapping(
  {
    name: ImageName,
    context: v.optional(Text, "."),
    dockerfile: v.optional(Text, "Dockerfile"),
    buildArgs: v.optional(
      v.pipe(
        v.custom<unknown>((input) => !Array.isArray(input), "a mapping of names to strings"),
        v.record(
          v.string(),
          v.string("a string (quote numbers and true/false)"),
          "a mapping of names to strings",
        ),
      ),
      {},
    ),
  },
  "a mapping with name (and context, dockerfile, buildArgs)",
);

/**
 * GitLab refuses an environment or commit status URL that is not http(s) or is over 255 characters;
 * a template so shaped would only be dropped at every deploy. Placeholders can still make the filled
 * URL too long: fillEnvironmentUrl and the commit-status adapter leave that one out.
 */
const MAX_URL_CHARS = 255;
const URL_EXAMPLE = "https://{environment_slug}.apps.example.com";
// Scheme, optional user info, then a host's first character (a placeholder's brace counts): not
// `https://`, `https:///x` or `http://:8080`. No spaces anywhere: no URL has one.
const URL_SHAPE = /^https?:\/\/(?:[^\s/?#@]*@)?[^\s/?#@:]\S*$/i;
const Url = v.pipe(
  v.string("a non-empty string"),
  // Counted as written, in characters (code points), as the schema's maxLength and GitLab count.
  v.check(
    (url) => [...url].length <= MAX_URL_CHARS,
    `a URL template of at most ${MAX_URL_CHARS} characters (GitLab refuses a longer environment URL), like ${URL_EXAMPLE}`,
  ),
  v.trim(),
  v.minLength(1, "a non-empty string"),
  placeholders(URL_PLACEHOLDERS, "a URL template"),
  v.regex(URL_SHAPE, `an http(s) URL template with a host and no spaces, like ${URL_EXAMPLE}`),
);

const PRUNE_WORDS = "true or false (unquoted)";
const SECONDS = `a whole number of seconds from 10 to ${MAX_ROLLOUT_TIMEOUT_SECONDS} (a rollout and its rollback must both fit in the deploy's ${DEPLOY_FUNCTION_TIMEOUT_SECONDS} s)`;
const Deploy = mapping(
  {
    manifests: v.pipe(
      Text,
      v.check(
        (dir) => !dir.split("/").includes("..") && !dir.startsWith("/"),
        "a directory inside the repository",
      ),
    ),
    image: v.optional(Text),
    url: v.optional(Url),
    rolloutTimeoutSeconds: v.optional(
      v.pipe(
        v.number(SECONDS),
        v.integer(SECONDS),
        v.minValue(10, SECONDS),
        v.maxValue(MAX_ROLLOUT_TIMEOUT_SECONDS, SECONDS),
      ),
      DEFAULT_ROLLOUT_TIMEOUT_SECONDS,
    ),
    // Off unless asked for: a prune deletes what deploy/ no longer has, a PersistentVolumeClaim's data
    // with it. YAML 1.2 reads `yes` as a string, so `prune: yes` is refused, not taken for true.
    prune: v.optional(v.boolean(PRUNE_WORDS), false),
  },
  "a mapping with manifests (and image, url, rolloutTimeoutSeconds, prune)",
);

const Manifest = mapping(
  {
    version: v.literal(1, "1"),
    image: v.optional(Image),
    deploy: Deploy,
    environments: v.pipe(
      v.array(Environment, "a list of environments"),
      v.minLength(1, "at least one environment"),
    ),
  },
  "a mapping with version, deploy and environments",
);

export type KublerManifest = v.InferOutput<typeof Manifest>;
export type EnvironmentRule = KublerManifest["environments"][number];

/** A `kubler.yaml` that cannot be used; the message names the file, the path and the problem. */
export class ManifestError extends Error {
  override readonly name = "ManifestError";
}

/**
 * @example
 * const manifest = parseKublerManifest(text); // typed, defaults filled in, or throws ManifestError
 */
export function parseKublerManifest(text: string): KublerManifest {
  const tooDeep = yamlNestingProblem(text);
  if (tooDeep) throw new ManifestError(`${MANIFEST_FILE}: not accepted: ${tooDeep}`);
  // logLevel "error": a hostile file must not turn into process warnings (collection keys, ...).
  // Repeated keys are refused by repeatedKey: yaml's own check takes quadratic time.
  // The error reported is placed by yamlErrorPlace: yaml's pretty errors copy the line into each one.
  const document = parseDocument(text, { prettyErrors: false, uniqueKeys: false, logLevel: "error" });
  const [yamlError] = document.errors;
  const repeated = repeatedKey(document, text);
  if (repeated) {
    const { line, column } = repeated;
    throw new ManifestError(`${MANIFEST_FILE}:${line}:${column}: not valid YAML: Map keys must be unique`);
  }
  if (yamlError) {
    const place = yamlErrorPlace(yamlError, text);
    const message = yamlError.message.split("\n")[0] ?? "";
    const hint = message.startsWith("Alias cannot be an empty string") ? globHint("*") : "";
    throw new ManifestError(
      `${MANIFEST_FILE}${place ? `:${place.line}:${place.column}` : ""}: not valid YAML: ${message}${hint}`,
    );
  }
  // One problem per field: a 1.5 s timeout is "not a whole number", not also "under 10".
  const result = v.safeParse(Manifest, toPlainData(document), { abortPipeEarly: true });
  if (result.success) {
    if (result.output.deploy.image && !result.output.image) {
      // Harmless but a sign of confusion: deploy.image pins the *built* image, and nothing is built.
      throw new ManifestError(
        `${MANIFEST_FILE}: deploy.image: expected no value when there is no image to build (add image:), found ${JSON.stringify(result.output.deploy.image)}`,
      );
    }
    return result.output;
  }
  const problems = result.issues.slice(0, MAX_PROBLEMS).map((issue) => {
    const path = v.getDotPath(issue) ?? "(file)";
    // YAML's empty value (`ttl:`) is null: to the author, nothing was written there.
    const found =
      issue.input === undefined || issue.input === null
        ? "nothing"
        : JSON.stringify(issue.input)?.slice(0, 80);
    return `${path}: expected ${expectedOf(issue)}, found ${found}`;
  });
  const more = result.issues.length - problems.length;
  throw new ManifestError(
    `${MANIFEST_FILE}: ${problems.join("; ")}${more > 0 ? `; and ${more} more problem${more > 1 ? "s" : ""}` : ""}`,
  );
}

/**
 * The document as plain data. yaml reports an alias to no anchor, and an alias bomb, only here, as
 * a ReferenceError (found by fuzzing): a file problem like any other.
 */
function toPlainData(document: ReturnType<typeof parseDocument>): unknown {
  try {
    return document.toJS({ maxAliasCount: 50 });
  } catch (error) {
    const { message } = error as Error;
    const alias = /^Unresolved alias \(the anchor must be set before the alias\): (.*)$/.exec(message)?.[1];
    // `*defaults` is an alias whose anchor is missing; `*-rc` or `*.example` is a glob.
    const hint = alias === undefined || /^\w+$/.test(alias) ? "" : globHint(`*${alias}`);
    throw new ManifestError(`${MANIFEST_FILE}: not usable YAML: ${message}${hint}`);
  }
}

/**
 * `on: { branch: * }` is how one writes "every branch", and YAML reads `*…` as an alias: the fix is
 * quotes, which yaml's message does not say.
 */
function globHint(written: string): string {
  return ` (a value starting with * is a YAML alias: quote a glob that starts with *, like ${JSON.stringify(written)})`;
}

/** Our own wording where the schema has one; valibot's defaults start with "Invalid". */
function expectedOf(issue: v.BaseIssue<unknown>): string {
  const objectKey = issue.type === "object" || issue.type === "strict_object";
  if (objectKey && issue.input === undefined) return "a value (required)";
  if (objectKey && issue.expected === "never") return "no such key";
  return issue.message.startsWith("Invalid ") ? (issue.expected ?? issue.message) : issue.message;
}

/**
 * The rule an environment name was made from: exact names first, then templates in file order
 * (`review/{branch}` matches `review/feature-x`).
 *
 * @example
 * findEnvironmentRule(manifest, "review/feature-x")?.ttl; // "72h"
 */
export function findEnvironmentRule(manifest: KublerManifest, environment: string): EnvironmentRule | null {
  const exact = manifest.environments.find((rule) => rule.name === environment);
  if (exact) return exact;
  return manifest.environments.find((rule) => templatePattern(rule.name).test(environment)) ?? null;
}

function templatePattern(template: string): RegExp {
  const source = template
    .split(/\{[^}]*\}/)
    .map((part) => part.replace(/[.*+?^${}()|[\]\\]/g, "\\$&"))
    .join(".+");
  return new RegExp(`^${source}$`);
}

/**
 * Fills an environment rule's name template (`review/{branch}`); unknown placeholders cannot occur
 * (the validator refused them). deploy.url is filled by `fillEnvironmentUrl`, which keeps its host.
 *
 * @example
 * fillTemplate("review/{branch}", { branch: "feature-x" }); // "review/feature-x"
 */
export function fillTemplate(
  template: string,
  values: Partial<Record<string, string | number | null>>,
): string {
  return template.replace(/\{([^}]*)\}/g, (whole, key: string) => {
    const value = values[key];
    return value === undefined || value === null ? whole : String(value);
  });
}
