/**
 * JSON merge patch (RFC 7386) and server-side apply.
 *
 * Server-side apply here keeps, per object, each field manager's last applied configuration instead of
 * the API server's managedFields. That is enough for the two behaviours callers rely on: a field a
 * manager stops applying is removed (unless another manager applies it too), and two managers applying
 * different values to one field conflict (409) unless the later one forces. Lists are atomic: an
 * applied list replaces the stored one whole (the real API merges lists such as `containers` by key,
 * which gives the same result when one manager owns them), except the set lists in `SET_LISTS`
 * (`x-kubernetes-list-type: set`): there each manager owns the items it applied (managedFields
 * `f:finalizers: {"v:\"name\"": {}}`), an apply adds its items after those already stored, keeps
 * the others' (added by apply or by a plain write), removes only its own it no longer applies
 * (unless another manager applies them too), and never conflicts, an item having no value.
 * https://kubernetes.io/docs/reference/using-api/server-side-apply/#merge-strategy
 */
import { conflictError, type GroupResource, type StatusCause } from "./errors.js";
import { cloneJson, deepEqual, isPlainObject, type JsonObject } from "./json.js";

/**
 * The set lists of the kinds served here, by path: ObjectMeta's finalizers (`listType=set` in the
 * OpenAPI). ownerReferences is a map keyed by uid, not a set, and is still atomic here.
 */
const SET_LISTS: readonly string[] = ["metadata.finalizers"];

function isSetList(path: readonly string[]): boolean {
  return SET_LISTS.includes(path.join("."));
}

function hasItem(list: unknown, item: unknown): boolean {
  return Array.isArray(list) && list.some((value) => deepEqual(value, item));
}

/** RFC 7386: objects merge recursively, `null` removes a member, anything else replaces. */
export function mergePatch(target: unknown, patch: unknown): unknown {
  if (!isPlainObject(patch)) return cloneJson(patch);
  const result: JsonObject = isPlainObject(target) ? cloneJson(target) : {};
  for (const [key, value] of Object.entries(patch)) {
    if (value === null) delete result[key];
    else result[key] = mergePatch(result[key], value);
  }
  return result;
}

export interface ApplyInput {
  /** The stored object, or undefined when apply creates it. */
  current: JsonObject | undefined;
  /** Every manager's last applied configuration for this object. */
  applied: ReadonlyMap<string, JsonObject>;
  manager: string;
  config: JsonObject;
  force: boolean;
  /** For the conflict message. */
  resource: GroupResource;
  name: string;
}

export interface ApplyResult {
  object: JsonObject;
  applied: Map<string, JsonObject>;
}

/**
 * @example
 * const { object, applied } = serverSideApply({ current, applied: entry.applied, manager: "kubler",
 *   config, force: true, resource: { group: "apps", plural: "deployments" }, name: "web" });
 */
export function serverSideApply(input: ApplyInput): ApplyResult {
  const { manager, config, force } = input;
  const others = new Map([...input.applied].filter(([name]) => name !== manager));
  const conflicts = findConflicts(config, others);
  if (conflicts.length > 0 && !force) throw applyConflictError(input, conflicts);
  for (const { manager: loser, path } of conflicts) {
    // Forcing takes the field over: the other manager no longer applies it, so never removes it later.
    const theirs = others.get(loser);
    if (theirs) others.set(loser, withoutPath(theirs, path));
  }
  const object = cloneJson(input.current ?? {});
  const previous = input.applied.get(manager);
  if (previous) pruneDropped(object, previous, config, [...others.values()], []);
  const merged = mergeApplied(object, config, []) as JsonObject;
  return { object: merged, applied: new Map([...others, [manager, cloneJson(config)]]) };
}

/**
 * Applied values merge into the object: maps recursively, set lists by item (the stored items in
 * their order, then the new ones in the applied order, as structured-merge-diff's list merge does),
 * everything else (other lists too) replaces.
 */
function mergeApplied(target: unknown, config: unknown, path: readonly string[]): unknown {
  if (isSetList(path) && Array.isArray(config)) {
    const stored = Array.isArray(target) ? target : [];
    const added = config.filter(
      (item, index) => !hasItem(stored, item) && !hasItem(config.slice(0, index), item),
    );
    return [...cloneJson(stored), ...cloneJson(added)];
  }
  if (!isPlainObject(config) || !isPlainObject(target)) return cloneJson(config);
  const result: JsonObject = { ...target };
  for (const [key, value] of Object.entries(config)) {
    // An explicit null in an applied configuration means "no opinion", not "delete".
    if (value === null) continue;
    const at = [...path, key];
    const merged = mergeApplied(result[key], value, at);
    // An empty set reads back absent from the API server (omitempty).
    if (isSetList(at) && Array.isArray(merged) && merged.length === 0) delete result[key];
    else result[key] = merged;
  }
  return result;
}

/** Removes from `object` what `previous` applied and `next` no longer does, unless `others` apply it. */
function pruneDropped(
  object: JsonObject,
  previous: JsonObject,
  next: unknown,
  others: readonly unknown[],
  path: readonly string[],
): void {
  for (const [key, was] of Object.entries(previous)) {
    const now = isPlainObject(next) ? next[key] : undefined;
    const theirs = others.map((other) => (isPlainObject(other) ? other[key] : undefined));
    const held = object[key];
    const at = [...path, key];
    if (isSetList(at) && Array.isArray(held)) {
      const dropped = (item: unknown) =>
        hasItem(was, item) && !hasItem(now, item) && !theirs.some((list) => hasItem(list, item));
      const kept = held.filter((item) => !dropped(item));
      // An emptied set goes with its last item, as the API server serializes it (omitempty).
      if (kept.length === 0) delete object[key];
      else object[key] = kept;
    } else if (isPlainObject(was) && isPlainObject(held) && (now === undefined || isPlainObject(now))) {
      pruneDropped(held, was, now, theirs, at);
      if (now === undefined && Object.keys(held).length === 0 && theirs.every((v) => v === undefined)) {
        delete object[key];
      }
    } else if (now === undefined && theirs.every((value) => value === undefined)) {
      delete object[key];
    }
  }
}

interface Conflict {
  manager: string;
  path: string[];
}

/** Leaves of `config` that another manager applies with a different value. */
function findConflicts(config: JsonObject, others: ReadonlyMap<string, JsonObject>): Conflict[] {
  const conflicts: Conflict[] = [];
  const walk = (mine: unknown, path: string[]) => {
    // A set's items carry no value to disagree on: two managers applying one item share it.
    if (isSetList(path)) return;
    if (isPlainObject(mine)) {
      for (const [key, value] of Object.entries(mine)) walk(value, [...path, key]);
      return;
    }
    for (const [manager, theirs] of others) {
      const value = valueAtPath(theirs, path);
      if (value !== undefined && !isPlainObject(value) && !deepEqual(value, mine)) {
        conflicts.push({ manager, path });
      }
    }
  };
  walk(config, []);
  return conflicts;
}

function valueAtPath(root: unknown, path: readonly string[]): unknown {
  let node = root;
  for (const key of path) node = isPlainObject(node) ? node[key] : undefined;
  return node;
}

function withoutPath(config: JsonObject, path: readonly string[]): JsonObject {
  const copy = cloneJson(config);
  let node: unknown = copy;
  for (const key of path.slice(0, -1)) node = isPlainObject(node) ? node[key] : undefined;
  const last = path.at(-1);
  if (isPlainObject(node) && last !== undefined) delete node[last];
  return copy;
}

function applyConflictError(input: ApplyInput, conflicts: readonly Conflict[]): Error {
  const causes: StatusCause[] = conflicts.map(({ manager, path }) => ({
    reason: "FieldManagerConflict",
    message: `conflict with "${manager}"`,
    field: `.${path.join(".")}`,
  }));
  const listed =
    causes.length === 1
      ? `${causes[0]?.message}: ${causes[0]?.field}`
      : causes.map((cause) => `\n- ${cause.message}: ${cause.field}`).join("");
  const plural = conflicts.length === 1 ? "conflict" : "conflicts";
  return conflictError(
    input.resource,
    input.name,
    `Apply failed with ${conflicts.length} ${plural}: ${listed}`,
    causes,
  );
}
