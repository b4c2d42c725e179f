/**
 * JSON Patch (RFC 6902), the content type `@kubernetes/client-node`'s typed `patch*` methods send by
 * default (`application/json-patch+json`). A failing operation is the API server's 422.
 */
import { badRequestError, KubeApiError } from "./errors.js";
import { cloneJson, deepEqual, isPlainObject } from "./json.js";

type Container = Record<string, unknown> | unknown[];

function invalid(message: string): KubeApiError {
  return new KubeApiError(
    422,
    "Invalid",
    `the server rejected our request due to an error in our request: ${message}`,
  );
}

/** RFC 6901: "/a/b~1c" → ["a", "b/c"]. */
function parsePointer(pointer: unknown): string[] {
  if (typeof pointer !== "string" || (pointer !== "" && !pointer.startsWith("/"))) {
    throw badRequestError(`invalid JSON pointer: ${JSON.stringify(pointer)}`);
  }
  return pointer === ""
    ? []
    : pointer
        .slice(1)
        .split("/")
        .map((token) => token.replaceAll("~1", "/").replaceAll("~0", "~"));
}

function parentOf(root: unknown, path: readonly string[]): { parent: Container; key: string } {
  let node = root;
  for (const token of path.slice(0, -1)) {
    node = Array.isArray(node) ? node[Number(token)] : isPlainObject(node) ? node[token] : undefined;
    if (node === undefined) throw invalid(`path "/${path.join("/")}" does not exist`);
  }
  if (!Array.isArray(node) && !isPlainObject(node)) throw invalid(`path "/${path.join("/")}" does not exist`);
  return { parent: node, key: path.at(-1) as string };
}

function arrayIndex(array: unknown[], key: string, forInsert: boolean): number {
  if (forInsert && key === "-") return array.length;
  const index = Number(key);
  const max = forInsert ? array.length : array.length - 1;
  if (!/^(0|[1-9][0-9]*)$/.test(key) || index > max) throw invalid(`index ${key} out of bounds`);
  return index;
}

function get(root: unknown, path: readonly string[]): unknown {
  if (path.length === 0) return root;
  const { parent, key } = parentOf(root, path);
  const value = Array.isArray(parent) ? parent[arrayIndex(parent, key, false)] : parent[key];
  if (value === undefined) throw invalid(`path "/${path.join("/")}" does not exist`);
  return value;
}

function remove(root: unknown, path: readonly string[]): unknown {
  const value = get(root, path);
  const { parent, key } = parentOf(root, path);
  if (Array.isArray(parent)) parent.splice(arrayIndex(parent, key, false), 1);
  else delete parent[key];
  return value;
}

function add(root: unknown, path: readonly string[], value: unknown): unknown {
  if (path.length === 0) return cloneJson(value);
  const { parent, key } = parentOf(root, path);
  if (Array.isArray(parent)) parent.splice(arrayIndex(parent, key, true), 0, cloneJson(value));
  else parent[key] = cloneJson(value);
  return root;
}

/**
 * @example
 * jsonPatch({ spec: { replicas: 1 } }, [{ op: "replace", path: "/spec/replicas", value: 3 }]);
 */
export function jsonPatch(target: unknown, operations: unknown): unknown {
  if (!Array.isArray(operations)) throw badRequestError("a JSON patch must be an array of operations");
  let document = cloneJson(target);
  for (const operation of operations) {
    if (!isPlainObject(operation)) throw badRequestError("a JSON patch operation must be an object");
    const path = parsePointer(operation.path);
    switch (operation.op) {
      case "add":
        document = add(document, path, operation.value);
        break;
      case "remove":
        remove(document, path);
        break;
      case "replace":
        if (path.length === 0) {
          document = cloneJson(operation.value);
        } else {
          remove(document, path);
          document = add(document, path, operation.value);
        }
        break;
      case "move": {
        const value = remove(document, parsePointer(operation.from));
        document = add(document, path, value);
        break;
      }
      case "copy":
        document = add(document, path, get(document, parsePointer(operation.from)));
        break;
      case "test":
        if (!deepEqual(get(document, path), operation.value)) {
          throw invalid(`testing value /${path.join("/")} failed`);
        }
        break;
      default:
        throw badRequestError(`unexpected JSON patch operation ${JSON.stringify(operation.op)}`);
    }
  }
  return document;
}
