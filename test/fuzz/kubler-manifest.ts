/**
 * Fuzzing of the `kubler.yaml` parser (DESIGN §7: a bad manifest is a precise error, never a
 * crash): valid manifests mutated as documents and as lines of text, YAML's own hazards (alias
 * bombs, tags, merge keys, directives, deep nesting), and random text. The only exception allowed
 * out of `parseKublerManifest` is `ManifestError`.
 */
import fc from "fast-check";
import { parse as parseYaml } from "yaml";
import { ManifestError, parseKublerManifest } from "../../shared/domain/kubler-manifest.js";
import { DESIGN_KUBLER_YAML } from "../fixtures/design-examples.js";
import { type Mutation, mutate, mutation, toJsonText } from "./hostile-json.js";

/** DESIGN §7's example, every key used, and the sample project's (no image). */
export const VALID_MANIFESTS = [
  DESIGN_KUBLER_YAML,
  `version: 1
deploy:
  manifests: deploy/
  url: https://{environment_slug}.apps.example.com
  rolloutTimeoutSeconds: 120
  prune: true
environments:
  - name: review/{branch}
    on: merge_request
    ttl: 72h
  - name: staging
    on: { branch: main }
    ttl: never
`,
];

/** Snippets YAML parsers have choked on, or that mean something surprising. */
const YAML_HAZARDS = [
  // Alias expansion ("billion laughs"): must be refused, not expanded.
  'a: &a ["x","x","x","x","x","x","x","x","x"]\nb: &b [*a,*a,*a,*a,*a,*a,*a,*a,*a]\nc: &c [*b,*b,*b,*b,*b,*b,*b,*b,*b]\nd: &d [*c,*c,*c,*c,*c,*c,*c,*c,*c]\ne: [*d,*d,*d,*d,*d,*d,*d,*d,*d]',
  "x: *undefined_alias",
  "a: &a { b: *a }",
  "<<: { version: 1 }",
  "deploy: { <<: [*x] }",
  "version: !!js/function 'function(){ return 1 }'",
  "version: !!binary aGVsbG8=",
  "version: !custom 1",
  "version: !!timestamp 2001-12-14t21:59:43.10-05:00",
  "version: 0o1",
  "version: 0x1",
  "version: 1.0",
  "version: .inf",
  "version: .nan",
  "version: 1e999",
  "version: 123456789012345678901234567890",
  "version: ~",
  "%YAML 2.0\n---\nversion: 1",
  "%TAG ! tag:example.com,2000:\n---\nversion: !x 1",
  "version: 1\n---\nversion: 2",
  "version: 1\nversion: 1",
  "? [complex, key]\n: value",
  '"unterminated',
  "'unterminated",
  "\tversion: 1",
  "﻿version: 1",
  "version: 1\u0000",
  "__proto__: { polluted: true }",
  "constructor: { prototype: { polluted: true } }",
  "deploy: { manifests: ../../etc }",
  "deploy: { manifests: /etc }",
  "environments: [ { name: '{evil}', on: merge_request } ]",
  "...",
  "---",
  "- - - -",
  "{",
  "[",
  "? ",
  "|",
  ">-\n  x",
  "&a",
  "*a",
];

type TextEdit =
  | { kind: "delete-line"; at: number }
  | { kind: "duplicate-line"; at: number }
  | { kind: "indent"; at: number; by: number }
  | { kind: "insert"; at: number; text: string }
  | { kind: "truncate"; at: number }
  | { kind: "replace-char"; at: number; char: string };

const textEdit: fc.Arbitrary<TextEdit> = fc.oneof(
  fc.record({ kind: fc.constant("delete-line" as const), at: fc.nat() }),
  fc.record({ kind: fc.constant("duplicate-line" as const), at: fc.nat() }),
  fc.record({ kind: fc.constant("indent" as const), at: fc.nat(), by: fc.integer({ min: -4, max: 4 }) }),
  fc.record({
    kind: fc.constant("insert" as const),
    at: fc.nat(),
    text: fc.oneof(fc.constantFrom(...YAML_HAZARDS), fc.string({ maxLength: 30 })),
  }),
  fc.record({ kind: fc.constant("truncate" as const), at: fc.nat() }),
  fc.record({
    kind: fc.constant("replace-char" as const),
    at: fc.nat(),
    char: fc.constantFrom(
      ":",
      "-",
      "{",
      "}",
      "[",
      "]",
      "&",
      "*",
      "!",
      "|",
      ">",
      "'",
      '"',
      "#",
      "\t",
      "\n",
      "%",
      "@",
      "`",
    ),
  }),
);

function applyEdit(text: string, edit: TextEdit): string {
  const lines = text.split("\n");
  const line = lines.length === 0 ? 0 : edit.at % lines.length;
  switch (edit.kind) {
    case "delete-line":
      lines.splice(line, 1);
      return lines.join("\n");
    case "duplicate-line":
      lines.splice(line, 0, lines[line] ?? "");
      return lines.join("\n");
    case "indent": {
      const current = lines[line] ?? "";
      lines[line] =
        edit.by >= 0
          ? `${" ".repeat(edit.by)}${current}`
          : current.replace(new RegExp(`^ {0,${-edit.by}}`), "");
      return lines.join("\n");
    }
    case "insert":
      lines.splice(line, 0, edit.text);
      return lines.join("\n");
    case "truncate":
      return text.slice(0, text.length === 0 ? 0 : edit.at % text.length);
    case "replace-char": {
      const at = text.length === 0 ? 0 : edit.at % text.length;
      return `${text.slice(0, at)}${edit.char}${text.slice(at + 1)}`;
    }
  }
}

type ManifestPlan =
  | { kind: "text-edits"; base: number; edits: TextEdit[] }
  | { kind: "document-mutations"; base: number; mutations: Mutation[] }
  | { kind: "hazard"; hazards: string[] }
  | { kind: "deep"; depth: number; style: "flow" | "block" | "compact" }
  | { kind: "random"; text: string };

function yamlPlan(bases: number): fc.Arbitrary<ManifestPlan> {
  const base = fc.nat({ max: bases - 1 });
  return fc.oneof(
    {
      weight: 4,
      arbitrary: fc.record({
        kind: fc.constant("text-edits" as const),
        base,
        edits: fc.array(textEdit, { minLength: 1, maxLength: 4 }),
      }),
    },
    {
      weight: 4,
      arbitrary: fc.record({
        kind: fc.constant("document-mutations" as const),
        base,
        mutations: fc.array(mutation, { minLength: 1, maxLength: 3 }),
      }),
    },
    {
      weight: 2,
      arbitrary: fc.record({
        kind: fc.constant("hazard" as const),
        hazards: fc.array(fc.constantFrom(...YAML_HAZARDS), { minLength: 1, maxLength: 3 }),
      }),
    },
    {
      weight: 1,
      arbitrary: fc.record({
        kind: fc.constant("deep" as const),
        depth: fc.integer({ min: 1, max: 5_000 }),
        style: fc.constantFrom("flow", "block", "compact"),
      }),
    },
    {
      weight: 1,
      arbitrary: fc.record({
        kind: fc.constant("random" as const),
        text: fc.string({ unit: "binary", maxLength: 200 }),
      }),
    },
  );
}

/**
 * YAML texts made from valid ones: their lines edited, their documents mutated, YAML's hazards,
 * deep nesting, random text. Shared by the kubler.yaml and the credentials policy fuzzers.
 *
 * @example
 * fc.sample(yamlTextFrom(["version: 1\n..."]), 10);
 */
export function yamlTextFrom(valid: readonly string[]): fc.Arbitrary<string> {
  const documents = valid.map((text) => parseYaml(text) as unknown);
  return yamlPlan(valid.length).map((plan) => textOf(plan, valid, documents));
}

/** One `kubler.yaml` text. */
export const manifestText: fc.Arbitrary<string> = yamlTextFrom(VALID_MANIFESTS);

function textOf(plan: ManifestPlan, valid: readonly string[], documents: readonly unknown[]): string {
  switch (plan.kind) {
    case "text-edits":
      return plan.edits.reduce(applyEdit, valid[plan.base] ?? "");
    case "document-mutations":
      // JSON is YAML: the raw huge numbers and deep nesting of the mutations stay verbatim.
      return toJsonText(mutate(documents[plan.base], plan.mutations));
    case "hazard":
      return plan.hazards.join("\n");
    case "deep":
      return deepText(plan.depth, plan.style);
    case "random":
      return plan.text;
  }
}

function deepText(depth: number, style: "flow" | "block" | "compact"): string {
  if (style === "flow") return `version: 1\ndeploy: ${"[".repeat(depth)}${"]".repeat(depth)}`;
  if (style === "compact") return `version: 1\ndeploy:\n${"- ".repeat(depth)}x`;
  const lines = Array.from({ length: Math.min(depth, 500) }, (_, i) => `${"  ".repeat(i)}k${i}:`);
  return `version: 1\n${lines.join("\n")} x`;
}

export interface ManifestFuzzCounts {
  inputs: number;
  accepted: number;
  refused: number;
}

/**
 * Parses one text; throws when anything but `ManifestError` escapes, or a refusal says nothing.
 *
 * @example
 * fc.assert(fc.property(manifestText, (text) => checkManifest(text, counts)));
 */
export function checkManifest(text: string, counts: ManifestFuzzCounts): void {
  counts.inputs++;
  try {
    parseKublerManifest(text);
    counts.accepted++;
  } catch (error) {
    if (!(error instanceof ManifestError)) {
      throw new Error(
        `parseKublerManifest threw ${(error as Error)?.name}: ${(error as Error)?.message} for ${JSON.stringify(text.slice(0, 300))}`,
      );
    }
    if (!error.message.startsWith("kubler.yaml"))
      throw new Error(`a ManifestError that names no file: ${error.message}`);
    counts.refused++;
  }
}
