import { type Document, isScalar, visit } from "yaml";

/**
 * A bound on YAML nesting, checked on the text before a parser sees it. The yaml package parses
 * nesting recursively: a few thousand `[` cost ~0.5 s, and at ~4,000 levels Node can die outright
 * ("RegExpCompiler Allocation failed - process out of memory", found by fuzzing kubler.yaml), a
 * crash no try/catch can stop. Real Kubler files nest a handful of levels.
 */

/** Deeper flow collections (`[`, `{`) than this are refused. */
export const MAX_FLOW_DEPTH = 64;
/** Lines indented further than this are refused (block nesting, 2 spaces a level: ~100 levels). */
export const MAX_INDENT = 200;
const INDENTING = new Set([" ", "-", "?", ":"]);

/**
 * Why the text nests too deeply, or null when it does not. Brackets inside quotes and comments do
 * not count; an approximation of YAML's grammar that errs on the side of letting the parser decide.
 *
 * @example
 * yamlNestingProblem("a: [[[1]]]"); // null
 * yamlNestingProblem("a: " + "[".repeat(5000)); // "flow collections nested deeper than 64 levels at line 1"
 */
export function yamlNestingProblem(text: string): string | null {
  let depth = 0;
  let line = 1;
  let column = 0;
  let quote: "'" | '"' | null = null;
  let comment = false;
  for (let i = 0; i < text.length; i++) {
    const c = text[i];
    if (c === "\n") {
      line++;
      column = 0;
      comment = false;
      continue;
    }
    column++;
    if (column === 1) {
      // "- - - x" and "? ? ? x" nest like indentation does, without any.
      const indent = indentation(text, i);
      if (indent > MAX_INDENT) return `lines indented more than ${MAX_INDENT} columns at line ${line}`;
    }
    if (comment) continue;
    if (quote) {
      if (c === "\\" && quote === '"') i++;
      else if (c === quote) quote = null;
      continue;
    }
    if (c === "'" || c === '"') quote = c;
    else if (c === "#" && (i === 0 || /\s/.test(text[i - 1] ?? ""))) comment = true;
    else if (c === "[" || c === "{") {
      if (++depth > MAX_FLOW_DEPTH) {
        return `flow collections nested deeper than ${MAX_FLOW_DEPTH} levels at line ${line}`;
      }
    } else if ((c === "]" || c === "}") && depth > 0) depth--;
  }
  return null;
}

/**
 * A line's nesting from `start`, in columns: spaces and indicators count one each, and so does an
 * anchor or tag a node's content follows, whatever its length ("? &x ? &x ? x" nests as "? ? x" does,
 * and 300 of them held yaml ~6 s): a block scalar's line of minified code (`!function(e){…`) is one.
 */
function indentation(text: string, start: number): number {
  let columns = 0;
  for (let at = start; at < text.length; columns++) {
    const c = text[at] as string;
    if (INDENTING.has(c)) at++;
    else if (c === "&" || c === "!") {
      while (at < text.length && !/\s/.test(text[at] as string)) at++;
    } else break;
  }
  return columns;
}

/**
 * Where a mapping of `document` (parsed from `text` with `uniqueKeys: false`) first repeats a key,
 * 1-based as yaml's messages count, or null: none, or the document's first YAML error comes before
 * it (that error is the one to report). yaml's own check (`uniqueKeys`) compares each key with every
 * earlier key of its mapping: a 1 MiB file of short keys took it over a minute. This is the same
 * check (scalar keys equal by value, `1` not `"1"`) with a set per mapping.
 *
 * @example
 * repeatedKey(parseDocument("a: 1\na: 2\n", { uniqueKeys: false }), "a: 1\na: 2\n"); // { line: 2, column: 1 }
 */
export function repeatedKey(document: Document, text: string): { line: number; column: number } | null {
  const offset = repeatedKeyOffset(document);
  const [error] = document.errors;
  if (offset === null || (error && error.pos[0] <= offset)) return null;
  return lineAndColumn(text, offset);
}

function repeatedKeyOffset(document: Document): number | null {
  let first: number | null = null;
  visit(document, {
    Map(_, map) {
      const seen = new Set<unknown>();
      for (const { key } of map.items) {
        if (!isScalar(key)) continue;
        const offset = key.range?.[0];
        if (seen.has(key.value) && offset !== undefined && (first === null || offset < first)) first = offset;
        seen.add(key.value);
      }
    },
  });
  return first;
}

/**
 * Where yaml's error is, 1-based as its messages count, or null when it has no place. Parse with
 * `prettyErrors: false` and ask this of the one error reported: yaml's pretty errors copy the error's
 * whole line into every error's message, and a 1 MiB line of "]" (a million errors) took ~15 minutes.
 *
 * @example
 * yamlErrorPlace(document.errors[0], text); // { line: 3, column: 1 }
 */
export function yamlErrorPlace(
  error: { pos: [number, number] },
  text: string,
): { line: number; column: number } | null {
  return error.pos[0] < 0 ? null : lineAndColumn(text, error.pos[0]);
}

function lineAndColumn(text: string, offset: number): { line: number; column: number } {
  const before = text.slice(0, offset);
  const lineStart = before.lastIndexOf("\n") + 1;
  return { line: before.split("\n").length, column: offset - lineStart + 1 };
}
