/**
 * JSON checked before `JSON.parse` builds it: the first problem, and its place, in words of our own.
 * V8's messages place only some errors ("Unexpected token 'x', "…" is not valid JSON" has no
 * position) and quote the text around them, which in a Secret's manifest is its value. Nesting is
 * bounded as yaml-nesting.ts bounds YAML's: `JSON.parse` takes any depth, but `structuredClone` and
 * `JSON.stringify` of the result recurse, and 500,000 `[` overflow the stack in both. A name repeated
 * in one object is refused, as the YAML path refuses a repeated key: JSON.parse keeps the last
 * without a word, and the field written first is lost unseen.
 */

const WHITESPACE = new Set([" ", "\t", "\n", "\r"]);
const NUMBER = /-?(?:0|[1-9]\d*)(?:\.\d+)?(?:[eE][+-]?\d+)?/y;
const ESCAPE = /\\(?:["\\/bfnrt]|u[0-9a-fA-F]{4})/y;
const LITERALS = ["true", "false", "null"];

/** What the scanner expects next. */
type Expecting = "value" | "value or ]" | "key" | "key or }" | ":" | "after value";

export interface JsonSyntaxProblem {
  /** Where the problem is, in UTF-16 code units (the text's length when it ends too early). */
  offset: number;
  problem: string;
}

/**
 * The first reason `text` is not exactly one JSON value (RFC 8259) nested at most `maxDepth` arrays
 * and objects deep, its objects' names unique, or null when `JSON.parse` will read it all.
 *
 * @example
 * jsonSyntaxProblem('{"a": 1,}', 64); // { offset: 8, problem: 'expected a property name in double quotes, found "}"' }
 * jsonSyntaxProblem('{"a": [1]}', 64); // null
 */
export function jsonSyntaxProblem(text: string, maxDepth: number): JsonSyntaxProblem | null {
  const closers: string[] = [];
  // The names of each open object, innermost last (RFC 8259: names SHOULD be unique).
  const names: Set<string>[] = [];
  let expecting: Expecting = "value";
  let at = 0;
  const fail = (expected: string): JsonSyntaxProblem =>
    at >= text.length
      ? { offset: at, problem: "the file ends before the JSON value does" }
      : { offset: at, problem: `${expected}, found ${JSON.stringify(text[at])}` };

  for (;;) {
    while (at < text.length && WHITESPACE.has(text[at] as string)) at++;
    const c = text[at];
    switch (expecting) {
      case "value":
      case "value or ]": {
        if (c === "]" && expecting === "value or ]") {
          closeOne(closers, names);
          at++;
          expecting = "after value";
        } else if (c === "[" || c === "{") {
          if (closers.length >= maxDepth) {
            return { offset: at, problem: `arrays and objects nested deeper than ${maxDepth} levels` };
          }
          closers.push(c === "[" ? "]" : "}");
          if (c === "{") names.push(new Set());
          at++;
          expecting = c === "[" ? "value or ]" : "key or }";
        } else if (c === '"') {
          const end = stringEnd(text, at);
          if (typeof end !== "number") return end;
          at = end;
          expecting = "after value";
        } else {
          const length = scalarLength(text, at);
          if (length === 0) return fail("expected a value");
          at += length;
          expecting = "after value";
        }
        break;
      }
      case "key":
      case "key or }": {
        if (c === "}" && expecting === "key or }") {
          closeOne(closers, names);
          at++;
          expecting = "after value";
        } else if (c === '"') {
          const end = stringEnd(text, at);
          if (typeof end !== "number") return end;
          const name = stringValue(text, at, end);
          const seen = names.at(-1) as Set<string>;
          if (seen.has(name)) {
            return {
              offset: at,
              problem: "a property name repeated in the same object (names must be unique)",
            };
          }
          seen.add(name);
          at = end;
          expecting = ":";
        } else return fail("expected a property name in double quotes");
        break;
      }
      case ":": {
        if (c !== ":") return fail("expected ':' after the property name");
        at++;
        expecting = "value";
        break;
      }
      case "after value": {
        const closer = closers.at(-1);
        if (closer === undefined) {
          if (at === text.length) return null;
          return {
            offset: at,
            problem: "more text after the JSON value: a file holds one object, or a List",
          };
        }
        if (c === ",") {
          at++;
          expecting = closer === "]" ? "value" : "key";
        } else if (c === closer) {
          closeOne(closers, names);
          at++;
        } else return fail(`expected ',' or '${closer}'`);
        break;
      }
    }
  }
}

function closeOne(closers: string[], names: Set<string>[]): void {
  if (closers.pop() === "}") names.pop();
}

/** The value of the valid string from `start` to `end`, compared as JSON.parse would keep it. */
function stringValue(text: string, start: number, end: number): string {
  const raw = text.slice(start + 1, end - 1);
  return raw.includes("\\") ? (JSON.parse(text.slice(start, end)) as string) : raw;
}

/** The offset just past the string starting at `start` (a `"`), or what is wrong inside it. */
function stringEnd(text: string, start: number): number | JsonSyntaxProblem {
  let at = start + 1;
  while (at < text.length) {
    const code = text.charCodeAt(at);
    if (code === 0x22) return at + 1;
    if (code === 0x5c) {
      ESCAPE.lastIndex = at;
      if (!ESCAPE.test(text)) {
        return {
          offset: at,
          problem:
            'an escape JSON does not have in a string (it has \\" \\\\ \\/ \\b \\f \\n \\r \\t \\uXXXX)',
        };
      }
      at = ESCAPE.lastIndex;
    } else if (code < 0x20) {
      return {
        offset: at,
        problem: "a line break or control character in a string: write it escaped (\\n, \\t)",
      };
    } else at++;
  }
  return { offset: at, problem: "the file ends inside a string" };
}

/** The length of the number or literal at `at`, 0 when there is none. */
function scalarLength(text: string, at: number): number {
  const literal = LITERALS.find((word) => text.startsWith(word, at));
  if (literal) return literal.length;
  NUMBER.lastIndex = at;
  return NUMBER.test(text) ? NUMBER.lastIndex - at : 0;
}
