/** The `store` handle of a running server: seed and inspect objects without HTTP. */
import { randomUUID } from "node:crypto";
import { findByKind, type ResourceType } from "./resources.js";
import type { ObjectStore } from "./store.js";
import { rfc3339 } from "./timestamps.js";
import type { KubeObject, MemoryKubernetesStore } from "./types.js";

function typeOf(apiVersion: string, kind: string): ResourceType {
  const type = findByKind(apiVersion, kind);
  if (!type) throw new Error(`memory-kubernetes does not serve ${apiVersion} ${kind}`);
  return type;
}

export function createDirectStore(store: ObjectStore): MemoryKubernetesStore {
  return {
    put(obj) {
      const type = typeOf(obj.apiVersion, obj.kind);
      if (type.namespaced && !obj.metadata.namespace)
        throw new Error(`${obj.kind} ${obj.metadata.name} needs a namespace`);
      const object: KubeObject = { ...obj, metadata: { ...obj.metadata } };
      if (!type.namespaced) delete object.metadata.namespace;
      object.metadata.uid ??= randomUUID();
      object.metadata.creationTimestamp ??= rfc3339();
      if (type.tracksGeneration) object.metadata.generation ??= 1;
      return store.write(type, object);
    },
    get(apiVersion, kind, namespace, name) {
      const type = typeOf(apiVersion, kind);
      return store.find(type, type.namespaced ? namespace : undefined, name)?.parse();
    },
    list(apiVersion, kind, namespace) {
      return store.all(typeOf(apiVersion, kind), namespace);
    },
  };
}
