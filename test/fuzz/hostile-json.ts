/**
 * Hostile values and mutations for fuzzing anything that parses JSON-like input (webhook bodies,
 * kubler.yaml, JWT claims): huge and odd numbers, deep nesting, prototype-pollution keys, wrong
 * types, awkward strings, and byte-level damage to an encoded body. fast-check arbitraries only, so
 * failures shrink to a small case.
 */
import fc from "fast-check";

/** A value serialized verbatim (a number JSON.stringify cannot produce, nesting too deep to build). */
export interface Raw {
  readonly raw: string;
}
export type Hostile = Raw | null | boolean | number | string | Hostile[] | { [key: string]: Hostile };

const isRaw = (value: unknown): value is Raw =>
  typeof value === "object" && value !== null && Object.keys(value).length === 1 && "raw" in value;

/** Numbers a JSON parser may mishandle: beyond doubles, beyond safe integers, exponents, -0. */
export const hugeNumber: fc.Arbitrary<Raw> = fc
  .oneof(
    fc.constantFrom(
      "1e999",
      "-1e999",
      "1E+400",
      "-0",
      "0.0000000000000000000000000001",
      "9007199254740993",
      "18446744073709551616",
      "123456789012345678901234567890123456789012345678901234567890",
      "1.7976931348623157e308",
      "5e-324",
    ),
    fc.bigInt({ min: -(10n ** 40n), max: 10n ** 40n }).map(String),
  )
  .map((raw) => ({ raw }));

/** Arrays or objects nested up to 5,000 deep, as text (building them as objects would be slow). */
export const deepNesting: fc.Arbitrary<Raw> = fc
  .tuple(fc.integer({ min: 1, max: 5_000 }), fc.boolean())
  .map(([depth, arrays]) => ({
    raw: arrays
      ? `${"[".repeat(depth)}${"]".repeat(depth)}`
      : `${'{"a":'.repeat(depth)}1${"}".repeat(depth)}`,
  }));

/** Keys that change an object's prototype when copied naively (`Object.assign`, `merge`). */
export const PROTOTYPE_KEYS = ["__proto__", "constructor", "prototype", "__defineGetter__", "toString"];

const pollution = fc
  .constantFrom(...PROTOTYPE_KEYS)
  .map((key) => ({ raw: `{${JSON.stringify(key)}:{"polluted":true,"isAdmin":true}}` }));

/** Strings that are awkward to carry: control characters, lone surrogates, long, injection-shaped. */
export const awkwardString: fc.Arbitrary<string> = fc.oneof(
  fc.string({ unit: "binary", maxLength: 40 }),
  fc.constantFrom(
    "",
    "\u0000",
    "\ud800",
    "\udfff\ud800",
    "\u202e",
    "﻿",
    "../../etc/passwd",
    "$\u007bjndi:ldap://x}", // log4j-shaped, without a template placeholder
    "{{7*7}}",
    "<script>alert(1)</script>",
    "'; DROP TABLE x; --",
    "%00%0d%0a",
    "0000000000000000000000000000000000000000",
    "refs/heads/",
  ),
  fc.integer({ min: 1_000, max: 20_000 }).map((n) => "x".repeat(n)),
);

/** One hostile value: a wrong type, an awkward string, a huge number, deep nesting or pollution. */
export const hostileValue: fc.Arbitrary<Hostile> = fc.oneof(
  fc.constantFrom<Hostile>(null, true, false, 0, -1, 1.5, [], {}, [null], { "": "" }),
  awkwardString,
  hugeNumber,
  deepNesting,
  pollution,
  fc.jsonValue({ maxDepth: 3 }) as fc.Arbitrary<Hostile>,
);

/** Serializes with `Raw` values written verbatim. */
export function toJsonText(value: unknown): string {
  const raws: string[] = [];
  const text = JSON.stringify(value, (_key, v) => {
    if (!isRaw(v)) return v;
    raws.push(v.raw);
    return `\u0000RAW${raws.length - 1}\u0000`;
  });
  if (raws.length === 0) return text ?? "null";
  return (text ?? "null").replace(/"\\u0000RAW(\d+)\\u0000"/g, (_m, i: string) => raws[Number(i)] ?? "null");
}

/** What to do at one place in a document. */
export interface Mutation {
  /** Picks a child at each level (modulo the number of children); stops early at a leaf. */
  path: number[];
  op: "replace" | "delete" | "add-key" | "wrap-in-array";
  key: string;
  value: Hostile;
}

export const mutation: fc.Arbitrary<Mutation> = fc.record({
  path: fc.array(fc.nat(), { minLength: 0, maxLength: 6 }),
  op: fc.constantFrom("replace", "delete", "add-key", "wrap-in-array"),
  key: fc.oneof(fc.constantFrom(...PROTOTYPE_KEYS), fc.string({ maxLength: 12 })),
  value: hostileValue,
});

/** Applies mutations to a deep copy of `document`; `__proto__` keys are added as own properties. */
export function mutate(document: unknown, mutations: readonly Mutation[]): unknown {
  const root = { value: structuredClone(document) as Hostile };
  for (const mutation of mutations) {
    // A copy per mutation: fast-check hands out the same constant object ({}, []) to several
    // mutations, and adding a key to one that is already in the tree could make the tree circular.
    const m = { ...mutation, value: structuredClone(mutation.value) };
    let parent: Record<string, Hostile> | Hostile[] = root as unknown as Record<string, Hostile>;
    let key: string | number = "value";
    for (const step of m.path) {
      const current: Hostile | undefined = (parent as Record<string, Hostile>)[key];
      if (current === null || typeof current !== "object" || isRaw(current)) break;
      const keys: (string | number)[] = Array.isArray(current)
        ? current.map((_, i) => i)
        : Object.keys(current);
      if (keys.length === 0) break;
      parent = current as Record<string, Hostile>;
      key = keys[step % keys.length] as string | number;
    }
    const target: Hostile | undefined = (parent as Record<string, Hostile>)[key];
    switch (m.op) {
      case "replace":
        define(parent, key, m.value);
        break;
      case "delete":
        if (Array.isArray(parent)) parent.splice(Number(key), 1);
        else delete parent[key];
        break;
      case "add-key":
        if (target !== null && typeof target === "object" && !Array.isArray(target) && !isRaw(target)) {
          define(target, m.key, m.value);
        } else {
          define(parent, key, { [m.key]: m.value });
        }
        break;
      case "wrap-in-array":
        define(parent, key, [target ?? null]);
        break;
    }
  }
  return root.value;
}

// defineProperty, not assignment: `o["__proto__"] = x` would change the prototype instead of adding a key.
function define(target: object, key: string | number, value: Hostile): void {
  Object.defineProperty(target, key, { value, enumerable: true, writable: true, configurable: true });
}

/** Damage to the encoded bytes: truncation, bit flips, invalid UTF-8, other encodings, a BOM. */
export type ByteDamage =
  | { kind: "none" }
  | { kind: "truncate"; at: number }
  | { kind: "flip"; at: number; bit: number }
  | { kind: "insert"; at: number; bytes: Uint8Array }
  | { kind: "encoding"; encoding: "utf16le" | "latin1" | "bom" | "nul-padded" };

export const byteDamage: fc.Arbitrary<ByteDamage> = fc.oneof(
  { weight: 3, arbitrary: fc.constant<ByteDamage>({ kind: "none" }) },
  fc.record({ kind: fc.constant("truncate" as const), at: fc.nat() }),
  fc.record({ kind: fc.constant("flip" as const), at: fc.nat(), bit: fc.integer({ min: 0, max: 7 }) }),
  fc.record({
    kind: fc.constant("insert" as const),
    at: fc.nat(),
    bytes: fc.oneof(
      fc.uint8Array({ minLength: 1, maxLength: 8 }),
      fc.constantFrom(
        Uint8Array.of(0xc0, 0xaf),
        Uint8Array.of(0xed, 0xa0, 0x80),
        Uint8Array.of(0xff, 0xfe),
        Uint8Array.of(0),
      ),
    ),
  }),
  fc.record({
    kind: fc.constant("encoding" as const),
    encoding: fc.constantFrom("utf16le", "latin1", "bom", "nul-padded"),
  }),
);

/** The text as bytes, damaged. */
export function encodeDamaged(text: string, damage: ByteDamage): Buffer {
  const bytes = Buffer.from(text, "utf8");
  const at = (n: number) => (bytes.length === 0 ? 0 : n % bytes.length);
  switch (damage.kind) {
    case "none":
      return bytes;
    case "truncate":
      return bytes.subarray(0, at(damage.at));
    case "flip": {
      const copy = Buffer.from(bytes);
      if (copy.length > 0) copy[at(damage.at)] = (copy[at(damage.at)] ?? 0) ^ (1 << damage.bit);
      return copy;
    }
    case "insert":
      return Buffer.concat([bytes.subarray(0, at(damage.at)), damage.bytes, bytes.subarray(at(damage.at))]);
    case "encoding":
      switch (damage.encoding) {
        case "utf16le":
          return Buffer.from(text, "utf16le");
        case "latin1":
          return Buffer.from(text, "latin1");
        case "bom":
          return Buffer.concat([Buffer.of(0xef, 0xbb, 0xbf), bytes]);
        case "nul-padded":
          return Buffer.concat([bytes, Buffer.alloc(64)]);
      }
  }
}

/** True when Object.prototype gained a property: a parse or copy somewhere was polluted. */
export function prototypePolluted(): boolean {
  const probe: Record<string, unknown> = {};
  return probe.polluted !== undefined || probe.isAdmin !== undefined;
}
