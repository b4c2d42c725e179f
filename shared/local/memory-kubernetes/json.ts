/** JSON value helpers shared by the store, patches and admission. Objects here are plain JSON trees. */

export type JsonObject = Record<string, unknown>;

export function isPlainObject(value: unknown): value is JsonObject {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

/** Structural equality of JSON values; key order does not matter, array order does. */
export function deepEqual(a: unknown, b: unknown): boolean {
  if (a === b) return true;
  if (Array.isArray(a)) {
    return Array.isArray(b) && a.length === b.length && a.every((item, i) => deepEqual(item, b[i]));
  }
  if (!isPlainObject(a) || !isPlainObject(b)) return false;
  const keys = Object.keys(a);
  if (keys.length !== Object.keys(b).length) return false;
  return keys.every((key) => Object.hasOwn(b, key) && deepEqual(a[key], b[key]));
}

/**
 * JSON already serialized, answered as is: a stored object's text is written once and sent as often as
 * it is read. `JSON.stringify` of it gives the same value, so it can sit anywhere a JSON value can.
 */
export class JsonText {
  constructor(readonly text: string) {}

  toJSON(): unknown {
    return JSON.parse(this.text);
  }
}

/** A deep copy that is also JSON-clean: `undefined` members dropped, as they would be on the wire. */
export function cloneJson<T>(value: T): T {
  return value === undefined ? value : (JSON.parse(JSON.stringify(value)) as T);
}

/** The object at `path`, created (as `{}`) where missing or not an object. */
export function objectAt(root: JsonObject, ...path: string[]): JsonObject {
  let node = root;
  for (const key of path) {
    const next = node[key];
    if (isPlainObject(next)) node = next;
    else {
      const created: JsonObject = {};
      node[key] = created;
      node = created;
    }
  }
  return node;
}

/** The value at `path`, or undefined when any step is missing. */
export function valueAt(root: unknown, ...path: string[]): unknown {
  let node = root;
  for (const key of path) {
    if (!isPlainObject(node)) return undefined;
    node = node[key];
  }
  return node;
}

/** A string-to-string map (labels, annotations, matchLabels), or an empty one when absent or malformed. */
export function stringMap(value: unknown): Record<string, string> {
  if (!isPlainObject(value)) return {};
  const map: Record<string, string> = {};
  for (const [key, item] of Object.entries(value)) if (typeof item === "string") map[key] = item;
  return map;
}
