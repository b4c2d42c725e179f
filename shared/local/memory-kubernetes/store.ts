/**
 * The objects, keyed by kind and namespace/name, with etcd's one cluster-wide revision counter as
 * every object's resourceVersion. Lists come back in a stable order (namespace, then name), which is
 * what makes `limit` + `continue` pagination possible.
 */
import { badRequestError } from "./errors.js";
import { cloneJson, type JsonObject } from "./json.js";
import type { ResourceType } from "./resources.js";
import type { KubeObject } from "./types.js";

/** What is kept per object: the object, and each apply manager's last applied configuration. */
export interface StoredEntry {
  object: KubeObject;
  /** Server-side apply's memory of who applied what, so fields a manager stops applying are removed. */
  applied: Map<string, JsonObject>;
}

interface Table {
  entries: Map<string, StoredEntry>;
  /** Keys in list order, rebuilt lazily after an insert or removal (updates keep the order). */
  sorted: string[] | null;
}

export interface PageRequest {
  namespace?: string;
  matches: (object: KubeObject) => boolean;
  /** 0 or absent: everything. */
  limit?: number;
  continueToken?: string | null;
}

export interface Page {
  items: KubeObject[];
  resourceVersion: string;
  continueToken?: string;
  /** Set only when no selector filters the list, like the API server. */
  remainingItemCount?: number;
}

// NUL cannot appear in a namespace, so "a" sorts before "a-b" as namespaces should.
const keyOf = (namespace: string | undefined, name: string) => `${namespace ?? ""}\u0000${name}`;

export class ObjectStore {
  #revision = 0;
  readonly #tables = new Map<ResourceType, Table>();

  /** The revision of the last write. */
  get revision(): string {
    return String(this.#revision);
  }

  /** A copy of the stored entry, safe to change. */
  read(type: ResourceType, namespace: string | undefined, name: string): StoredEntry | undefined {
    const entry = this.#table(type).entries.get(keyOf(namespace, name));
    return entry && { object: cloneJson(entry.object), applied: new Map(cloneJson([...entry.applied])) };
  }

  /** Stores the object under a new resourceVersion; returns a copy of what is stored. */
  write(type: ResourceType, object: KubeObject, applied?: Map<string, JsonObject>): KubeObject {
    const table = this.#table(type);
    const key = keyOf(object.metadata.namespace, object.metadata.name);
    const previous = table.entries.get(key);
    const stored = cloneJson(object);
    stored.metadata.resourceVersion = String(++this.#revision);
    table.entries.set(key, { object: stored, applied: applied ?? previous?.applied ?? new Map() });
    if (!previous) table.sorted = null;
    return cloneJson(stored);
  }

  /** Keeps an apply manager's configuration without touching the object (a no-op apply). */
  remember(
    type: ResourceType,
    namespace: string | undefined,
    name: string,
    applied: Map<string, JsonObject>,
  ) {
    const entry = this.#table(type).entries.get(keyOf(namespace, name));
    if (entry) entry.applied = applied;
  }

  remove(type: ResourceType, namespace: string | undefined, name: string): boolean {
    const table = this.#table(type);
    const removed = table.entries.delete(keyOf(namespace, name));
    if (removed) {
      table.sorted = null;
      // A deletion is a write in etcd: lists taken after it see a newer revision.
      this.#revision++;
    }
    return removed;
  }

  /** Copies of every object of the type (in one namespace when given), in list order. */
  all(type: ResourceType, namespace?: string): KubeObject[] {
    return this.page(type, { ...(namespace === undefined ? {} : { namespace }), matches: () => true }).items;
  }

  page(type: ResourceType, request: PageRequest): Page {
    const table = this.#table(type);
    const keys = this.#sortedKeys(table);
    const cursor = request.continueToken ? decodeContinue(request.continueToken) : undefined;
    const prefix = request.namespace === undefined ? "" : keyOf(request.namespace, "");
    let index = cursor ? upperBound(keys, cursor.after) : lowerBound(keys, prefix);
    const limit = request.limit && request.limit > 0 ? request.limit : Number.POSITIVE_INFINITY;
    const items: KubeObject[] = [];
    let last: string | undefined;
    for (; index < keys.length; index++) {
      const key = keys[index] as string;
      if (!key.startsWith(prefix)) break;
      const object = (table.entries.get(key) as StoredEntry).object;
      if (!request.matches(object)) continue;
      if (items.length === limit) {
        // One more match exists: this page is full and another follows.
        const resourceVersion = cursor?.resourceVersion ?? this.revision;
        return {
          items,
          resourceVersion,
          continueToken: encodeContinue({ resourceVersion, after: last as string }),
          remainingItemCount: this.#countFrom(table, keys, index, prefix, request.matches),
        };
      }
      items.push(cloneJson(object));
      last = key;
    }
    return { items, resourceVersion: cursor?.resourceVersion ?? this.revision };
  }

  #countFrom(
    table: Table,
    keys: string[],
    from: number,
    prefix: string,
    matches: (object: KubeObject) => boolean,
  ): number {
    let count = 0;
    for (let index = from; index < keys.length; index++) {
      const key = keys[index] as string;
      if (!key.startsWith(prefix)) break;
      if (matches((table.entries.get(key) as StoredEntry).object)) count++;
    }
    return count;
  }

  #table(type: ResourceType): Table {
    let table = this.#tables.get(type);
    if (!table) {
      table = { entries: new Map(), sorted: null };
      this.#tables.set(type, table);
    }
    return table;
  }

  #sortedKeys(table: Table): string[] {
    table.sorted ??= [...table.entries.keys()].sort();
    return table.sorted;
  }
}

interface ContinueState {
  resourceVersion: string;
  after: string;
}

function encodeContinue(state: ContinueState): string {
  return Buffer.from(
    JSON.stringify({ v: "memory/1", rv: state.resourceVersion, after: state.after }),
  ).toString("base64url");
}

function decodeContinue(token: string): ContinueState {
  try {
    const state = JSON.parse(Buffer.from(token, "base64url").toString("utf8")) as Record<string, unknown>;
    if (state.v === "memory/1" && typeof state.rv === "string" && typeof state.after === "string") {
      return { resourceVersion: state.rv, after: state.after };
    }
  } catch {
    // Falls through to the API server's answer for a token it did not issue.
  }
  throw badRequestError(
    "continue key is not valid: incorrect encoded start resourceVersion (version meta.k8s.io/v1)",
  );
}

/** First index whose key is >= `key`. */
function lowerBound(keys: readonly string[], key: string): number {
  let low = 0;
  let high = keys.length;
  while (low < high) {
    const middle = (low + high) >>> 1;
    if ((keys[middle] as string) < key) low = middle + 1;
    else high = middle;
  }
  return low;
}

/** First index whose key is > `key`. */
function upperBound(keys: readonly string[], key: string): number {
  let low = 0;
  let high = keys.length;
  while (low < high) {
    const middle = (low + high) >>> 1;
    if ((keys[middle] as string) <= key) low = middle + 1;
    else high = middle;
  }
  return low;
}
