/**
 * What every write goes through before it is stored, in the API server's order: the body must be the
 * kind the URL names, server-owned metadata is the server's, the namespace must exist and not be
 * terminating, then defaulting and validation.
 */
import { randomUUID } from "node:crypto";
import { type Controllers, hasRollout } from "./controllers.js";
import { applyDefaults } from "./defaults.js";
import {
  alreadyExistsError,
  badRequestError,
  conflictError,
  forbiddenError,
  invalidError,
  notFoundError,
  OBJECT_MODIFIED,
} from "./errors.js";
import type { JobController } from "./jobs.js";
import { cloneJson, deepEqual, isPlainObject, type JsonObject } from "./json.js";
import { apiVersionOf, type ResourceType, typeOfKind } from "./resources.js";
import type { ResourceRoute } from "./routes.js";
import type { ObjectStore } from "./store.js";
import { rfc3339 } from "./timestamps.js";
import type { KubeObject } from "./types.js";
import { validateObject, validateUpdate } from "./validation.js";

/** Metadata only the server writes; whatever a client sends there is replaced. */
export const SERVER_METADATA = [
  "uid",
  "creationTimestamp",
  "generation",
  "deletionTimestamp",
  "deletionGracePeriodSeconds",
  "managedFields",
  "selfLink",
];

export interface ApiContext {
  store: ObjectStore;
  controllers: Controllers;
  jobs: JobController;
}

/** The request body as an object of the route's kind, named and namespaced as the URL says (400 otherwise). */
export function bodyAsObject(body: unknown, route: ResourceRoute): KubeObject {
  const { type } = route;
  if (!isPlainObject(body)) throw badRequestError("the body of the request was in an unknown format");
  const expectedVersion = apiVersionOf(type);
  // Like the API server's decoder, a body without apiVersion/kind takes the endpoint's.
  const apiVersion = body.apiVersion ?? expectedVersion;
  const kind = body.kind ?? type.kind;
  if (apiVersion !== expectedVersion) {
    throw badRequestError(
      `the API version in the data (${String(apiVersion)}) does not match the expected API version (${expectedVersion})`,
    );
  }
  if (kind !== type.kind) {
    throw badRequestError(
      `the kind in the data (${String(kind)}) does not match the expected kind (${type.kind})`,
    );
  }
  const object = { ...cloneJson(body), apiVersion, kind } as KubeObject;
  if (!isPlainObject(object.metadata)) object.metadata = { name: "" };
  const metadata = object.metadata;
  if (type.namespaced) {
    if (
      metadata.namespace !== undefined &&
      metadata.namespace !== "" &&
      metadata.namespace !== route.namespace
    ) {
      throw badRequestError(
        "the namespace of the provided object does not match the namespace sent on the request",
      );
    }
    metadata.namespace = route.namespace;
  } else {
    delete metadata.namespace;
  }
  if (route.name !== undefined) {
    if (metadata.name && metadata.name !== route.name) {
      throw badRequestError(
        `the name of the object (${metadata.name}) does not match the name on the URL (${route.name})`,
      );
    }
    metadata.name = route.name;
  }
  return object;
}

/** 409 when the body's resourceVersion or uid (if it names them) is not the stored object's. */
export function checkPreconditions(type: ResourceType, body: KubeObject, previous: KubeObject): void {
  const { resourceVersion, uid } = body.metadata;
  if (resourceVersion && resourceVersion !== previous.metadata.resourceVersion) {
    throw conflictError(type, previous.metadata.name, OBJECT_MODIFIED);
  }
  if (uid && uid !== previous.metadata.uid) {
    throw conflictError(
      type,
      previous.metadata.name,
      `Precondition failed: UID in precondition: ${uid}, UID in object meta: ${previous.metadata.uid}`,
    );
  }
}

/** NamespaceLifecycle admission: content goes only into namespaces that exist and are not terminating. */
export function checkNamespaceAccepts(store: ObjectStore, type: ResourceType, object: KubeObject): void {
  const namespace = object.metadata.namespace;
  if (!type.namespaced || namespace === undefined) return;
  const namespaces = typeOfKind("Namespace");
  const found = store.find(namespaces, undefined, namespace)?.parse();
  if (!found) throw notFoundError(namespaces, namespace);
  if (isTerminating(found)) {
    throw forbiddenError(
      type,
      object.metadata.name,
      `unable to create new content in namespace ${namespace} because it is being terminated`,
    );
  }
}

export function isTerminating(namespace: KubeObject): boolean {
  return (
    Boolean(namespace.metadata.deletionTimestamp) ||
    (namespace.status as JsonObject | undefined)?.phase === "Terminating"
  );
}

/** Fresh system metadata and an empty status for an object about to be created. */
export function initializeForCreate(type: ResourceType, object: KubeObject): void {
  const metadata = object.metadata;
  if (metadata.resourceVersion)
    throw badRequestError("resourceVersion should not be set on objects to be created");
  if (!metadata.name && typeof metadata.generateName === "string" && metadata.generateName) {
    metadata.name = `${metadata.generateName}${randomUUID().replaceAll("-", "").slice(0, 5)}`;
  }
  for (const key of SERVER_METADATA) delete metadata[key];
  metadata.uid = randomUUID();
  metadata.creationTimestamp = rfc3339();
  if (type.tracksGeneration) metadata.generation = 1;
  if (type.hasStatus) object.status = initialStatus(type);
}

function initialStatus(type: ResourceType): JsonObject {
  switch (type.kind) {
    case "Namespace":
      return { phase: "Active" };
    case "Service":
      return { loadBalancer: {} };
    default:
      return {};
  }
}

/** The stored object's system metadata (and status, when it has its own endpoint) over the body's. */
export function carryOverFromStored(type: ResourceType, object: KubeObject, previous: KubeObject): void {
  for (const key of SERVER_METADATA) {
    if (previous.metadata[key] === undefined) delete object.metadata[key];
    else object.metadata[key] = previous.metadata[key];
  }
  if (type.hasStatus) {
    if (previous.status === undefined) delete object.status;
    else object.status = cloneJson(previous.status);
  }
}

export interface CommitRequest {
  type: ResourceType;
  next: KubeObject;
  previous?: KubeObject;
  dryRun: boolean;
  /** Server-side apply's per-manager configurations to keep with the object. */
  applied?: Map<string, JsonObject>;
  /** A status-only write: no admission, no controllers. */
  statusOnly?: boolean;
}

/**
 * Defaults, validates, bumps generation, runs controller hooks and stores (unless dry-run). A write
 * that changes nothing stores nothing: the resourceVersion stays, as with a real no-op update.
 */
export function commit(context: ApiContext, request: CommitRequest): KubeObject {
  const { type, next, previous, dryRun, applied, statusOnly } = request;
  if (!statusOnly) {
    checkDecodes(next);
    applyDefaults(next, previous);
    const causes = [...validateObject(next), ...(previous ? validateUpdate(previous, next) : [])];
    if (causes.length > 0) throw invalidError(type, next.metadata.name, causes);
  }
  const specChanged = !previous || !deepEqual(previous.spec, next.spec);
  if (type.tracksGeneration && previous && !statusOnly) {
    next.metadata.generation = Number(previous.metadata.generation ?? 1) + (specChanged ? 1 : 0);
  }
  const startsRollout = hasRollout(type.kind) && !statusOnly;
  if (startsRollout) context.controllers.prepareRollout(next, previous);
  // After validation, as in the API server: an invalid object is a 422 even when its name is taken.
  if (!previous && context.store.find(type, next.metadata.namespace, next.metadata.name)) {
    throw alreadyExistsError(type, next.metadata.name);
  }
  if (previous && sameObject(previous, next)) {
    if (applied && !dryRun)
      context.store.remember(type, previous.metadata.namespace, previous.metadata.name, applied);
    return previous;
  }
  if (dryRun) {
    if (previous) next.metadata.resourceVersion = previous.metadata.resourceVersion;
    else delete next.metadata.resourceVersion;
    return next;
  }
  const stored = context.store.write(type, next, applied);
  if (startsRollout && specChanged) context.controllers.scheduleRollout(stored);
  return stored;
}

/**
 * A Secret's `data` (and a ConfigMap's `binaryData`) are bytes, which the API server's decoder reads
 * as standard base64 (line breaks skipped): anything else is a 400 before admission.
 */
function checkDecodes(object: KubeObject): void {
  const field = object.kind === "Secret" ? "data" : object.kind === "ConfigMap" ? "binaryData" : undefined;
  const data = field ? object[field] : undefined;
  for (const value of Object.values(isPlainObject(data) ? data : {})) {
    const at = typeof value === "string" ? illegalBase64At(value) : 0;
    if (at !== undefined) {
      throw badRequestError(
        `${object.kind} in version "v1" cannot be handled as a ${object.kind}: illegal base64 data at input byte ${at}`,
      );
    }
  }
}

/** Where Go's base64.StdEncoding stops decoding `text`, or undefined when it decodes. */
function illegalBase64At(text: string): number | undefined {
  const bytes = text.replace(/[\r\n]/g, "");
  const bad = bytes.search(/[^A-Za-z0-9+/=]/);
  if (bad >= 0) return bad;
  const padding = bytes.indexOf("=");
  const body = padding < 0 ? bytes : bytes.slice(0, padding);
  const rest = padding < 0 ? "" : bytes.slice(padding);
  if (rest !== "" && (rest.length > 2 || /[^=]/.test(rest) || bytes.length % 4 !== 0)) return padding;
  if (rest === "" && body.length % 4 !== 0) return body.length - (body.length % 4);
  return undefined;
}

function sameObject(previous: KubeObject, next: KubeObject): boolean {
  const strip = (object: KubeObject) => ({
    ...object,
    metadata: { ...object.metadata, resourceVersion: undefined },
  });
  return deepEqual(cloneJson(strip(previous)), cloneJson(strip(next)));
}
