/**
 * The objects, keyed by kind and namespace/name, with etcd's one cluster-wide revision counter as
 * every object's resourceVersion. Lists come back in a stable order (namespace, then name), which is
 * what makes `limit` + `continue` pagination possible.
 */
import { badRequestError } from "./errors.js";
import { cloneJson, type JsonObject } from "./json.js";
import { apiVersionOf, type ResourceType } from "./resources.js";
import { type Selectable, selectableOf } from "./selectors.js";
import type { KubeObject } from "./types.js";

/** A stored object and each apply manager's last applied configuration, as copies safe to change. */
export interface StoredEntry {
  object: KubeObject;
  /** Server-side apply's memory of who applied what, so fields a manager stops applying are removed. */
  applied: Map<string, JsonObject>;
}

/**
 * One stored object, serialized once when written: a reader parses its own copy and a list reuses the
 * text, so nothing a caller does to what it got can change what is stored.
 */
export class StoredObject {
  readonly #head: string;

  constructor(
    /** `{"apiVersion":…,"kind":…`: the same for every object of the type. */
    head: string,
    /** The object's JSON without apiVersion and kind, as a list's items carry it. */
    readonly body: string,
    readonly selectable: Selectable,
  ) {
    this.#head = head;
  }

  /** The whole object's JSON. */
  get text(): string {
    return wholeJson(this.#head, this.body);
  }

  /** A copy, safe to change. */
  parse(): KubeObject {
    return JSON.parse(this.text) as KubeObject;
  }
}

function wholeJson(head: string, body: string): string {
  return body === "{}" ? `${head}}` : `${head},${body.slice(1)}`;
}

interface Row {
  stored: StoredObject;
  applied: Map<string, JsonObject>;
}

interface Table {
  head: string;
  rows: Map<string, Row>;
  /** Keys in list order, kept sorted as keys come and go (updates keep the order). */
  sorted: string[];
}

export interface PageRequest {
  namespace?: string;
  /** Absent when no selector filters the list: then the page counts what is left, like the API server. */
  matches?: (object: Selectable) => boolean;
  /** 0 or absent: everything. */
  limit?: number;
  continueToken?: string | null;
}

export interface Page {
  items: StoredObject[];
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

  /** The stored object, read-only: `parse()` it for a copy to change. */
  find(type: ResourceType, namespace: string | undefined, name: string): StoredObject | undefined {
    return this.#table(type).rows.get(keyOf(namespace, name))?.stored;
  }

  /** A copy of the stored entry, safe to change. */
  read(type: ResourceType, namespace: string | undefined, name: string): StoredEntry | undefined {
    const row = this.#table(type).rows.get(keyOf(namespace, name));
    if (!row) return undefined;
    const applied = row.applied.size === 0 ? new Map() : new Map(cloneJson([...row.applied]));
    return { object: row.stored.parse(), applied };
  }

  /** Stores the object under a new resourceVersion; returns a copy of what is stored. */
  write(type: ResourceType, object: KubeObject, applied?: Map<string, JsonObject>): KubeObject {
    const table = this.#table(type);
    const key = keyOf(object.metadata.namespace, object.metadata.name);
    const previous = table.rows.get(key);
    const { apiVersion: _apiVersion, kind: _kind, ...rest } = object;
    const resourceVersion = String(++this.#revision);
    const body = JSON.stringify({ ...rest, metadata: { ...object.metadata, resourceVersion } });
    // Parsed from the text, so the copy returned and what selectors match are exactly what is stored.
    const copy = JSON.parse(wholeJson(table.head, body)) as KubeObject;
    const stored = new StoredObject(table.head, body, selectableOf(type.kind, copy));
    table.rows.set(key, { stored, applied: applied ?? previous?.applied ?? new Map() });
    if (!previous) table.sorted.splice(lowerBound(table.sorted, key), 0, key);
    return copy;
  }

  /** Keeps an apply manager's configuration without touching the object (a no-op apply). */
  remember(
    type: ResourceType,
    namespace: string | undefined,
    name: string,
    applied: Map<string, JsonObject>,
  ) {
    const row = this.#table(type).rows.get(keyOf(namespace, name));
    if (row) row.applied = applied;
  }

  remove(type: ResourceType, namespace: string | undefined, name: string): boolean {
    const table = this.#table(type);
    const key = keyOf(namespace, name);
    if (!table.rows.delete(key)) return false;
    table.sorted.splice(lowerBound(table.sorted, key), 1);
    // A deletion is a write in etcd: lists taken after it see a newer revision.
    this.#revision++;
    return true;
  }

  /** Copies of every object of the type (in one namespace when given), in list order. */
  all(type: ResourceType, namespace?: string): KubeObject[] {
    return this.page(type, namespace === undefined ? {} : { namespace }).items.map((item) => item.parse());
  }

  page(type: ResourceType, request: PageRequest): Page {
    const table = this.#table(type);
    const keys = table.sorted;
    const cursor = request.continueToken ? decodeContinue(request.continueToken) : undefined;
    const prefix = request.namespace === undefined ? "" : keyOf(request.namespace, "");
    // "ns\u0001" sorts after every "ns\u0000name" and before any other namespace's keys.
    const end =
      request.namespace === undefined ? keys.length : lowerBound(keys, `${request.namespace}\u0001`);
    let index = cursor ? upperBound(keys, cursor.after) : lowerBound(keys, prefix);
    const limit = request.limit && request.limit > 0 ? request.limit : Number.POSITIVE_INFINITY;
    const { matches } = request;
    const items: StoredObject[] = [];
    let last: string | undefined;
    for (; index < end; index++) {
      const key = keys[index] as string;
      const stored = (table.rows.get(key) as Row).stored;
      if (matches && !matches(stored.selectable)) continue;
      if (items.length === limit) {
        // One more match exists: this page is full and another follows.
        const resourceVersion = cursor?.resourceVersion ?? this.revision;
        return {
          items,
          resourceVersion,
          continueToken: encodeContinue({ resourceVersion, after: last as string }),
          // Without a selector everything left matches; with one the API server does not count.
          ...(matches ? {} : { remainingItemCount: end - index }),
        };
      }
      items.push(stored);
      last = key;
    }
    return { items, resourceVersion: cursor?.resourceVersion ?? this.revision };
  }

  #table(type: ResourceType): Table {
    let table = this.#tables.get(type);
    if (!table) {
      const head = `{"apiVersion":${JSON.stringify(apiVersionOf(type))},"kind":${JSON.stringify(type.kind)}`;
      table = { head, rows: new Map(), sorted: [] };
      this.#tables.set(type, table);
    }
    return table;
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
