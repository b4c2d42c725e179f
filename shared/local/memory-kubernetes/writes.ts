/** create, update (PUT), patch, apply, delete and deletecollection, with the API server's answers. */
import { parse as parseYaml } from "yaml";
import {
  type ApiContext,
  bodyAsObject,
  carryOverFromStored,
  checkNamespaceAccepts,
  checkPreconditions,
  commit,
  initializeForCreate,
  isTerminating,
  SERVER_METADATA,
} from "./admission.js";
import { mergePatch, serverSideApply } from "./apply.js";
import { badRequestError, conflictError, invalidError, KubeApiError, notFoundError } from "./errors.js";
import { finalizersOf, finalizerUpdateCauses, markedDeleting, releasedByWrite } from "./finalizers.js";
import { cloneJson, isPlainObject, type JsonObject } from "./json.js";
import { jsonPatch } from "./json-patch.js";
import { listMatcher } from "./reads.js";
import { apiVersionOf, type ResourceType, typeOfKind } from "./resources.js";
import { isDryRun, type ResourceRoute } from "./routes.js";
import type { StoredEntry } from "./store.js";
import { rfc3339 } from "./timestamps.js";
import type { KubeObject } from "./types.js";

export interface ApiAnswer {
  status: number;
  body: unknown;
}

export interface WriteRequest {
  route: ResourceRoute;
  query: URLSearchParams;
  /** Parsed JSON, or raw text for apply bodies (YAML or JSON). */
  body: unknown;
  contentType: string;
}

export function create(context: ApiContext, { route, query, body }: WriteRequest): ApiAnswer {
  const { type } = route;
  const object = bodyAsObject(body, { ...route, name: undefined });
  initializeForCreate(type, object);
  checkNamespaceAccepts(context.store, type, object);
  const dryRun = isDryRun(query);
  const created = commit(context, { type, next: object, dryRun });
  if (!dryRun) afterCreate(context, created);
  return { status: 201, body: created };
}

/**
 * The ServiceAccount controller gives every new namespace a `default` ServiceAccount; the Job
 * controller starts a new Job's pod.
 */
function afterCreate(context: ApiContext, created: KubeObject): void {
  if (created.kind === "Job") context.jobs.jobCreated(created);
  if (created.kind !== "Namespace") return;
  const type = typeOfKind("ServiceAccount");
  const account: KubeObject = {
    apiVersion: "v1",
    kind: "ServiceAccount",
    metadata: { name: "default", namespace: created.metadata.name },
  };
  initializeForCreate(type, account);
  commit(context, { type, next: account, dryRun: false });
}

function stored(context: ApiContext, route: ResourceRoute): StoredEntry {
  const entry = context.store.read(route.type, route.namespace, route.name as string);
  if (!entry) throw notFoundError(route.type, route.name as string);
  return entry;
}

export function update(context: ApiContext, { route, query, body }: WriteRequest): ApiAnswer {
  const { type } = route;
  const previous = stored(context, route).object;
  const object = bodyAsObject(body, route);
  checkPreconditions(type, object, previous);
  return { status: 200, body: writeOver(context, route, previous, object, isDryRun(query)) };
}

/** Stores `object` over `previous`: the whole object, or only its status through `/status`. */
function writeOver(
  context: ApiContext,
  route: ResourceRoute,
  previous: KubeObject,
  object: KubeObject,
  dryRun: boolean,
  applied?: Map<string, JsonObject>,
): KubeObject {
  const { type } = route;
  if (route.subresource === "status") {
    const next = cloneJson(previous);
    if (object.status === undefined) delete next.status;
    else next.status = cloneJson(object.status);
    return commit(context, {
      type,
      next,
      previous,
      dryRun,
      statusOnly: true,
      ...(applied ? { applied } : {}),
    });
  }
  carryOverFromStored(type, object, previous);
  const forbidden = type.kind === "Namespace" ? [] : finalizerUpdateCauses(previous, object);
  if (forbidden.length > 0) throw invalidError(type, object.metadata.name, forbidden);
  const written = commit(context, { type, next: object, previous, dryRun, ...(applied ? { applied } : {}) });
  // The write that empties a Terminating object's finalizers is the one that removes it.
  if (!dryRun && type.kind !== "Namespace" && releasedByWrite(written))
    removeNow(context, route.type, written);
  return written;
}

export function patch(context: ApiContext, { route, query, body, contentType }: WriteRequest): ApiAnswer {
  if (query.get("force") !== null) {
    throw invalidError({ group: "meta.k8s.io", kind: "PatchOptions" }, "", [
      {
        reason: "FieldValueForbidden",
        message: "Forbidden: may not be specified for non-apply patch",
        field: "force",
      },
    ]);
  }
  const previous = stored(context, route).object;
  let patched: unknown;
  switch (contentType) {
    case "application/merge-patch+json":
    // Strategic merge patch without the per-field merge keys: lists are replaced, `$patch` is not understood.
    case "application/strategic-merge-patch+json":
      if (!isPlainObject(body)) throw badRequestError("a merge patch must be a JSON object");
      patched = mergePatch(previous, body);
      break;
    case "application/json-patch+json":
      patched = jsonPatch(previous, body);
      break;
    default:
      throw new KubeApiError(
        415,
        "UnsupportedMediaType",
        `the body of the request was in an unknown format - accepted media types include: application/json-patch+json, application/merge-patch+json, application/apply-patch+yaml`,
      );
  }
  const object = bodyAsObject(patched, route);
  checkPreconditions(route.type, object, previous);
  return { status: 200, body: writeOver(context, route, previous, object, isDryRun(query)) };
}

function parseApplyBody(body: unknown): unknown {
  if (typeof body !== "string") return body;
  try {
    return parseYaml(body);
  } catch (error) {
    throw badRequestError(`error decoding YAML: ${(error as Error).message}`);
  }
}

export function apply(context: ApiContext, { route, query, body }: WriteRequest): ApiAnswer {
  const { type } = route;
  const manager = query.get("fieldManager");
  if (!manager) {
    throw invalidError({ group: "meta.k8s.io", kind: "PatchOptions" }, "", [
      {
        reason: "FieldValueRequired",
        message: "Required value: is required for apply patch",
        field: "fieldManager",
      },
    ]);
  }
  const force = query.get("force") === "true";
  const dryRun = isDryRun(query);
  const config = bodyAsObject(parseApplyBody(body), route);
  const entry = context.store.read(type, route.namespace, route.name as string);
  // Preconditions and system fields are not part of what a manager applies.
  const preconditions = { metadata: { ...config.metadata } } as KubeObject;
  for (const key of [...SERVER_METADATA, "resourceVersion"]) delete config.metadata[key];
  const onStatus = route.subresource === "status";
  if (type.hasStatus && !onStatus) delete config.status;
  const applyInput = (current: KubeObject | undefined, applied: ReadonlyMap<string, JsonObject>) => ({
    current,
    applied,
    manager: onStatus ? `${manager}/status` : manager,
    config: onStatus ? statusConfig(config) : config,
    force,
    resource: type,
    name: config.metadata.name,
  });
  if (!entry) {
    if (onStatus) throw notFoundError(type, route.name as string);
    // A uid names the object the caller read, so this is a write over one deleted since, not a
    // create (the API server's patch.go applyPatch: before admission, dry run or not). A
    // resourceVersion alone creates: the store drops it (kubernetes/kubernetes#106745).
    const { uid } = preconditions.metadata;
    if (uid) {
      throw conflictError(
        type,
        route.name as string,
        `uid mismatch: the provided object specified uid ${uid}, and no existing object was found`,
      );
    }
    const result = serverSideApply(applyInput(undefined, new Map()));
    const object = result.object as KubeObject;
    initializeForCreate(type, object);
    checkNamespaceAccepts(context.store, type, object);
    const created = commit(context, { type, next: object, dryRun, applied: result.applied });
    if (!dryRun) afterCreate(context, created);
    return { status: 201, body: created };
  }
  checkPreconditions(type, preconditions, entry.object);
  const result = serverSideApply(applyInput(entry.object, entry.applied));
  const object = result.object as KubeObject;
  return { status: 200, body: writeOver(context, route, entry.object, object, dryRun, result.applied) };
}

function statusConfig(config: KubeObject): KubeObject {
  const { apiVersion, kind, metadata } = config;
  return {
    apiVersion,
    kind,
    metadata: { name: metadata.name, namespace: metadata.namespace },
    status: config.status,
  };
}

interface DeleteOptions {
  uid?: string;
  resourceVersion?: string;
}

function preconditionsOf(body: unknown): DeleteOptions {
  if (body === undefined || body === null || body === "") return {};
  if (!isPlainObject(body)) throw badRequestError("the body of the request was in an unknown format");
  const preconditions = isPlainObject(body.preconditions) ? body.preconditions : {};
  return {
    ...(typeof preconditions.uid === "string" ? { uid: preconditions.uid } : {}),
    ...(typeof preconditions.resourceVersion === "string"
      ? { resourceVersion: preconditions.resourceVersion }
      : {}),
  };
}

export function remove(context: ApiContext, { route, query, body }: WriteRequest): ApiAnswer {
  const { type } = route;
  const previous = stored(context, route).object;
  const { uid, resourceVersion } = preconditionsOf(body);
  const name = previous.metadata.name;
  if (uid && uid !== previous.metadata.uid) {
    throw conflictError(
      type,
      name,
      `Precondition failed: UID in precondition: ${uid}, UID in object meta: ${previous.metadata.uid}`,
    );
  }
  if (resourceVersion && resourceVersion !== previous.metadata.resourceVersion) {
    throw conflictError(
      type,
      name,
      `Precondition failed: ResourceVersion in precondition: ${resourceVersion}, ResourceVersion in object meta: ${previous.metadata.resourceVersion}`,
    );
  }
  const dryRun = isDryRun(query);
  if (type.kind === "Namespace") return { status: 200, body: terminate(context, previous, dryRun) };
  // Held by finalizers: marked (once) and kept, answered with the object, as the API server does.
  if (finalizersOf(previous).length > 0) {
    return {
      status: 200,
      body: dryRun ? markedDeleting(previous) : markForDeletion(context, type, previous),
    };
  }
  if (!dryRun) removeNow(context, type, previous);
  return {
    status: 200,
    body: {
      kind: "Status",
      apiVersion: "v1",
      metadata: {},
      status: "Success",
      details: {
        name,
        ...(type.group ? { group: type.group } : {}),
        kind: type.plural,
        uid: previous.metadata.uid,
      },
    },
  };
}

/** Gone from the store, with what the Job controller keeps of a Job. */
function removeNow(context: ApiContext, type: ResourceType, object: KubeObject): void {
  context.store.remove(type, object.metadata.namespace, object.metadata.name);
  if (type.kind === "Job") context.jobs.jobDeleted(object);
}

/** Sets deletionTimestamp on an object its finalizers hold; an object already marked stays as it is. */
function markForDeletion(context: ApiContext, type: ResourceType, object: KubeObject): KubeObject {
  const marked = markedDeleting(object);
  return marked === object ? object : context.store.write(type, marked);
}

/** Namespace deletion: Terminating now, gone (with its content) after the namespace controller's delay. */
function terminate(context: ApiContext, namespace: KubeObject, dryRun: boolean): KubeObject {
  const type = typeOfKind("Namespace");
  if (isTerminating(namespace)) {
    // What a real API server answers to deleting a namespace again while it is being emptied.
    throw conflictError(
      type,
      namespace.metadata.name,
      "The system is ensuring all content is removed from this namespace.  Upon completion, this namespace will automatically be purged by the system.",
    );
  }
  const next = cloneJson(namespace);
  next.metadata.deletionTimestamp = rfc3339();
  next.status = { ...(isPlainObject(next.status) ? next.status : {}), phase: "Terminating" };
  if (dryRun) return next;
  const stored = context.store.write(type, next);
  context.controllers.scheduleNamespaceFinalization(stored);
  return stored;
}

export function removeCollection(context: ApiContext, { route, query }: WriteRequest): ApiAnswer {
  const { type } = route;
  const matches = listMatcher(type, query);
  const page = context.store.page(type, {
    ...(route.namespace === undefined ? {} : { namespace: route.namespace }),
    ...(matches ? { matches } : {}),
  });
  const items = page.items.map((item) => item.parse());
  if (!isDryRun(query)) {
    for (const object of items) {
      if (finalizersOf(object).length > 0) markForDeletion(context, type, object);
      else removeNow(context, type, object);
    }
  }
  return {
    status: 200,
    body: {
      kind: `${type.kind}List`,
      apiVersion: apiVersionOf(type),
      metadata: { resourceVersion: context.store.revision },
      items,
    },
  };
}
