/**
 * `labelSelector` and `fieldSelector` query parameters, parsed as the API server parses them
 * (k8s.io/apimachinery/pkg/labels): equality (`a=b`, `a==b`, `a!=b`), sets (`a in (x,y)`,
 * `a notin (x)`), existence (`a`, `!a`); a comma means AND. A malformed selector is a 400.
 */
import { badRequestError } from "./errors.js";
import { stringMap } from "./json.js";
import type { KubeObject } from "./types.js";
import { labelKeyProblem, labelValueProblem } from "./validation-rules.js";

type Operator = "=" | "!=" | "in" | "notin" | "exists" | "!exists";

export interface Requirement {
  key: string;
  operator: Operator;
  values: readonly string[];
}

/** A parsed selector: every requirement must hold. */
export type Selector = readonly Requirement[];

export function matchesSelector(selector: Selector, labels: Record<string, string>): boolean {
  return selector.every(({ key, operator, values }) => {
    const has = Object.hasOwn(labels, key);
    const value = labels[key];
    switch (operator) {
      case "=":
      case "in":
        return has && value !== undefined && values.includes(value);
      case "!=":
      case "notin":
        return !has || value === undefined || !values.includes(value);
      case "exists":
        return has;
      case "!exists":
        return !has;
      default:
        return false;
    }
  });
}

/** Splits into keys/values, operators and parentheses; whitespace only separates. */
function tokenize(text: string): string[] {
  const tokens: string[] = [];
  const pattern = /\s*(==|!=|=|!|\(|\)|,|[^\s=!(),]+)\s*/y;
  while (pattern.lastIndex < text.length) {
    const match = pattern.exec(text);
    if (!match?.[1]) throw parseError(text, "unexpected character");
    tokens.push(match[1]);
  }
  return tokens;
}

function parseError(selector: string, why: string): Error {
  return badRequestError(`unable to parse requirement: found '${selector}', ${why}`);
}

const SYMBOLS = new Set(["==", "!=", "=", "!", "(", ")", ","]);

export function parseLabelSelector(text: string | null): Selector {
  if (text === null || text.trim() === "") return [];
  const tokens = tokenize(text);
  const requirements: Requirement[] = [];
  let at = 0;
  const peek = () => tokens[at];
  const next = () => tokens[at++];
  const identifier = (what: string): string => {
    const token = next();
    if (token === undefined || SYMBOLS.has(token)) throw parseError(text, `expected ${what}`);
    return token;
  };
  const checkedKey = (key: string): string => {
    const problem = labelKeyProblem(key);
    if (problem) throw badRequestError(`unable to parse requirement: invalid label key "${key}": ${problem}`);
    return key;
  };
  const checkedValue = (value: string): string => {
    const problem = labelValueProblem(value);
    if (problem)
      throw badRequestError(`unable to parse requirement: invalid label value: "${value}": ${problem}`);
    return value;
  };
  for (;;) {
    if (peek() === "!") {
      next();
      requirements.push({ key: checkedKey(identifier("a key after '!'")), operator: "!exists", values: [] });
    } else {
      const key = checkedKey(identifier("a key"));
      const operator = peek();
      if (operator === undefined || operator === ",") {
        requirements.push({ key, operator: "exists", values: [] });
      } else if (operator === "=" || operator === "==" || operator === "!=") {
        next();
        const value = peek() === undefined || peek() === "," ? "" : identifier("a value");
        requirements.push({ key, operator: operator === "!=" ? "!=" : "=", values: [checkedValue(value)] });
      } else if (operator === "in" || operator === "notin") {
        next();
        if (next() !== "(") throw parseError(text, "expected '(' after the set operator");
        const values: string[] = [];
        while (peek() !== ")") {
          if (peek() === ",") next();
          const token = peek();
          if (token === undefined) throw parseError(text, "expected ')'");
          // `a in (x,)` and `a in ()` hold an empty value, as in the real parser.
          values.push(token === "," || token === ")" ? "" : checkedValue(identifier("a value")));
        }
        next();
        requirements.push({ key, operator, values });
      } else {
        throw parseError(text, `unknown operator '${operator}'`);
      }
    }
    const separator = next();
    if (separator === undefined) return requirements;
    if (separator !== ",") throw parseError(text, "expected ','");
  }
}

/** One `field=value` / `field!=value` term of a fieldSelector. */
export interface FieldRequirement {
  field: string;
  negated: boolean;
  value: string;
}

/** The fields a selector may name, per kind, as the API server allows them. */
const SELECTABLE_FIELDS: Record<string, readonly string[]> = {
  "*": ["metadata.name", "metadata.namespace"],
  Namespace: ["status.phase"],
  Secret: ["type"],
  Job: ["status.successful"],
  Pod: ["status.phase", "spec.nodeName"],
};

export function parseFieldSelector(text: string | null, kind: string): readonly FieldRequirement[] {
  if (text === null || text.trim() === "") return [];
  const allowed = selectableFields(kind);
  return text.split(",").map((term) => {
    const match = /^\s*([^=!\s]+)\s*(==|=|!=)\s*(.*?)\s*$/.exec(term);
    if (!match) throw badRequestError(`invalid selector: '${text}'; can't understand '${term}'`);
    const [, field = "", operator, value = ""] = match;
    if (!allowed.includes(field)) throw badRequestError(`field label not supported: ${field}`);
    return { field, negated: operator === "!=", value };
  });
}

/** What a list's selectors look at: the labels and every field a selector may name for the kind. */
export interface Selectable {
  labels: Readonly<Record<string, string>>;
  fields: Readonly<Record<string, string>>;
}

/** Reads what selectors match once per write, so a list does not walk every object's labels again. */
export function selectableOf(kind: string, object: KubeObject): Selectable {
  const fields: Record<string, string> = {};
  for (const field of selectableFields(kind)) fields[field] = fieldValue(object, field);
  return { labels: stringMap(object.metadata.labels), fields };
}

function selectableFields(kind: string): readonly string[] {
  return [...(SELECTABLE_FIELDS["*"] ?? []), ...(SELECTABLE_FIELDS[kind] ?? [])];
}

function fieldValue(object: KubeObject, field: string): string {
  let node: unknown = object;
  for (const key of field.split(".")) node = (node as Record<string, unknown> | undefined)?.[key];
  return node === undefined || node === null ? "" : String(node);
}

export function matchesFields(
  requirements: readonly FieldRequirement[],
  fields: Readonly<Record<string, string>>,
): boolean {
  return requirements.every(({ field, negated, value }) => (fields[field] === value) !== negated);
}
