/**
 * Safe field readers for GitLab webhook payloads. A payload is `unknown` JSON from the network: these
 * read only named own properties (never inherited ones, so `__proto__` / `constructor` keys in a body
 * cannot leak in), narrow each value, and fail with a `BadRequestError` that names the event and the
 * field, never with a TypeError.
 */
import { BadRequestError } from "../errors.js";

/** One dot path (`object_attributes.last_commit.id`) or several tried in order (old/new GitLab shapes). */
export type FieldPath = string | readonly string[];

const HEX_SHA = /^[0-9a-f]{7,64}$/i;
const DECIMAL_ID = /^\d{1,16}$/;

export function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

/** The value at a dot path through own properties only; `undefined` as soon as a step is missing. */
export function pick(root: unknown, path: string): unknown {
  let value: unknown = root;
  for (const key of path.split(".")) {
    if (!isRecord(value) || !Object.hasOwn(value, key)) return undefined;
    value = value[key];
  }
  return value;
}

/** The origin (`scheme://host[:port]`) of an http(s) URL, or null when the value is not one. */
export function readOrigin(value: unknown): string | null {
  const url = parseHttpUrl(value);
  return url ? url.origin : null;
}

/**
 * A project path (`group/sub/app`) from a project's web URL, for old payloads that carry no
 * `path_with_namespace`. Wrong on instances under a relative URL root (`https://host/gitlab/...`),
 * which is why it is only ever a fallback.
 */
export function readProjectPathFromUrl(value: unknown): string | null {
  const url = parseHttpUrl(value);
  if (!url) return null;
  const path = url.pathname.replace(/^\/+|\/+$/g, "").replace(/\.git$/, "");
  return /^[\w.-]+(\/[\w.-]+)+$/.test(path) ? path : null;
}

function parseHttpUrl(value: unknown): URL | null {
  if (typeof value !== "string" || !URL.canParse(value)) return null;
  const url = new URL(value);
  return url.protocol === "http:" || url.protocol === "https:" ? url : null;
}

/**
 * Reads typed fields from one payload; every failure is a `BadRequestError` like
 * `Push Hook payload: "after" must be a commit SHA`. Required readers treat `null` as missing;
 * optional ones return `null` for absent, `null` or empty values but still reject a wrong type.
 * A class, not a closure bag: it is built once per webhook, on the hot path.
 *
 * @example
 * const read = createPayloadReader("Push Hook", payload);
 * read.sha("after"); // "da1560886d4f094c3e6c9ef40349f7d38b5d27d7"
 * read.optionalId(["project.id", "project_id"]); // 15
 */
export class PayloadReader {
  constructor(
    /** The event the payload belongs to, as error messages name it. */
    readonly label: string,
    private readonly root: unknown,
  ) {}

  fail(path: string, problem: string): never {
    throw new BadRequestError(`${this.label} payload: ${JSON.stringify(path)} ${problem}`);
  }

  /** The raw value at a path (own properties only), for the rare field that needs custom handling. */
  get(path: string): unknown {
    return pick(this.root, path);
  }

  /** A nested object that must be there, e.g. a Merge Request Hook's `object_attributes`. */
  object(path: string): Record<string, unknown> {
    const value = pick(this.root, path);
    if (value === undefined || value === null) return this.fail(path, "is missing");
    return isRecord(value) ? value : this.fail(path, "must be an object");
  }

  id(paths: FieldPath): number {
    return this.#required(paths, this.#toId);
  }
  optionalId(paths: FieldPath): number | null {
    return this.#optional(paths, this.#toId);
  }
  string(paths: FieldPath): string {
    return this.#required(
      paths,
      (path, value) => this.#toText(path, value) || this.fail(path, "must not be empty"),
    );
  }
  optionalString(paths: FieldPath): string | null {
    return this.#optional(paths, this.#toText);
  }
  boolean(paths: FieldPath): boolean {
    return this.#required(paths, (path, value) =>
      typeof value === "boolean" ? value : this.fail(path, "must be a boolean"),
    );
  }
  sha(paths: FieldPath): string {
    return this.#required(paths, this.#toSha);
  }
  optionalSha(paths: FieldPath): string | null {
    return this.#optional(paths, this.#toSha);
  }

  /** The first path with a non-null value, or null when none has one. */
  #first(paths: FieldPath): { path: string; value: unknown } | null {
    for (const path of typeof paths === "string" ? [paths] : paths) {
      const value = pick(this.root, path);
      if (value !== undefined && value !== null) return { path, value };
    }
    return null;
  }
  #required<T>(paths: FieldPath, convert: (path: string, value: unknown) => T): T {
    const found = this.#first(paths);
    return found
      ? convert.call(this, found.path, found.value)
      : this.fail(typeof paths === "string" ? paths : (paths[0] ?? ""), "is missing");
  }
  #optional<T>(paths: FieldPath, convert: (path: string, value: unknown) => T): T | null {
    const found = this.#first(paths);
    return found && found.value !== "" ? convert.call(this, found.path, found.value) : null;
  }

  #toId(path: string, value: unknown): number {
    // Some proxies and old exports send ids as numeric strings; anything else is not an id.
    const n = typeof value === "string" && DECIMAL_ID.test(value) ? Number(value) : value;
    if (typeof n !== "number" || !Number.isSafeInteger(n) || n < 0) return this.fail(path, "must be an id");
    return n;
  }
  #toText(path: string, value: unknown): string {
    return typeof value === "string" ? value : this.fail(path, "must be a string");
  }
  #toSha(path: string, value: unknown): string {
    return typeof value === "string" && HEX_SHA.test(value)
      ? value.toLowerCase()
      : this.fail(path, "must be a commit SHA");
  }
}

export function createPayloadReader(label: string, root: unknown): PayloadReader {
  return new PayloadReader(label, root);
}
