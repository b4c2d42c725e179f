/**
 * A project's Kubernetes manifests, made ready for its environment: parsed, checked to be kinds Kubler
 * may deploy into one namespace, forced into that namespace, labelled, the app image pinned; and the
 * least-privilege Role that is exactly enough to apply them.
 */
import { parseAllDocuments } from "yaml";
import type { KubeObject } from "./kube-object.js";
import { yamlNestingProblem } from "./yaml-nesting.js";

/**
 * The namespaced kinds a project may ship, and the API resource each one is. Cluster-scoped kinds and
 * RBAC are refused: an environment gets one namespace, and its Role is Kubler's to write.
 */
export const DEPLOYABLE_KINDS: Readonly<Record<string, { group: string; resource: string }>> = {
  ConfigMap: { group: "", resource: "configmaps" },
  Secret: { group: "", resource: "secrets" },
  Service: { group: "", resource: "services" },
  ServiceAccount: { group: "", resource: "serviceaccounts" },
  PersistentVolumeClaim: { group: "", resource: "persistentvolumeclaims" },
  Deployment: { group: "apps", resource: "deployments" },
  StatefulSet: { group: "apps", resource: "statefulsets" },
  DaemonSet: { group: "apps", resource: "daemonsets" },
  Job: { group: "batch", resource: "jobs" },
  CronJob: { group: "batch", resource: "cronjobs" },
  Ingress: { group: "networking.k8s.io", resource: "ingresses" },
  NetworkPolicy: { group: "networking.k8s.io", resource: "networkpolicies" },
  HorizontalPodAutoscaler: { group: "autoscaling", resource: "horizontalpodautoscalers" },
  PodDisruptionBudget: { group: "policy", resource: "poddisruptionbudgets" },
};

/** What applying a manifest takes: read it, create it, server-side apply it (a patch). No delete. */
export const DEPLOYER_VERBS = ["get", "list", "watch", "create", "patch"] as const;

/** The environment's deployer identity (DESIGN §5's `role: kubler-deployer`). */
export const DEPLOYER_NAME = "kubler-deployer";
/** The registry pull secret Kubler writes into each environment. */
export const PULL_SECRET_NAME = "kubler-registry";

export class ManifestFilesError extends Error {
  override readonly name = "ManifestFilesError";
}

/**
 * Every object in the YAML files, in path order (so applies are deterministic). Errors name the file
 * and the document.
 *
 * @example
 * parseManifestFiles(new Map([["deploy/app.yaml", "kind: Deployment\n..."]]));
 */
export function parseManifestFiles(files: ReadonlyMap<string, string>): KubeObject[] {
  const objects: KubeObject[] = [];
  for (const path of [...files.keys()].sort()) {
    const text = files.get(path) ?? "";
    // Nesting deep enough to crash Node inside yaml is refused first (see yaml-nesting.ts).
    const tooDeep = yamlNestingProblem(text);
    if (tooDeep) throw new ManifestFilesError(`${path}: not accepted: ${tooDeep}`);
    parseAllDocuments(text, { logLevel: "error" }).forEach((document, index) => {
      const where = `${path} (document ${index + 1})`;
      const [error] = document.errors;
      if (error) throw new ManifestFilesError(`${where}: not valid YAML: ${error.message.split("\n")[0]}`);
      const value = toJs(document, where);
      if (value === null || value === undefined) return;
      objects.push(checkObject(value, where));
    });
  }
  if (objects.length === 0) throw new ManifestFilesError("the manifests directory has no Kubernetes objects");
  const seen = new Set<string>();
  for (const object of objects) {
    const key = `${object.kind}/${object.metadata.name}`;
    if (seen.has(key)) throw new ManifestFilesError(`${key} is defined twice`);
    seen.add(key);
  }
  return objects;
}

// An alias without its anchor, or an alias bomb, throws from toJS: a bad file, not a crash.
function toJs(document: { toJS(options: { maxAliasCount: number }): unknown }, where: string): unknown {
  try {
    return document.toJS({ maxAliasCount: 50 });
  } catch (error) {
    throw new ManifestFilesError(`${where}: not usable YAML: ${(error as Error).message}`);
  }
}

function checkObject(value: unknown, where: string): KubeObject {
  if (typeof value !== "object" || Array.isArray(value)) {
    throw new ManifestFilesError(
      `${where}: expected a Kubernetes object, found ${Array.isArray(value) ? "a list" : typeof value}`,
    );
  }
  const object = value as Partial<KubeObject>;
  if (typeof object.apiVersion !== "string" || typeof object.kind !== "string") {
    throw new ManifestFilesError(`${where}: apiVersion and kind are required`);
  }
  if (typeof object.metadata?.name !== "string" || object.metadata.name === "") {
    throw new ManifestFilesError(`${where}: ${object.kind} has no metadata.name`);
  }
  const kind = DEPLOYABLE_KINDS[object.kind];
  if (!kind) {
    throw new ManifestFilesError(
      `${where}: kind ${object.kind} cannot be deployed into an environment (allowed: ${Object.keys(DEPLOYABLE_KINDS).join(", ")})`,
    );
  }
  const group = object.apiVersion.includes("/") ? object.apiVersion.split("/")[0] : "";
  if (group !== kind.group) {
    throw new ManifestFilesError(
      `${where}: ${object.kind} belongs to API group "${kind.group}", not "${group}"`,
    );
  }
  return object as KubeObject;
}

export interface RenderContext {
  namespace: string;
  /** Labels every object carries (the contract's managed-by, project and environment). */
  labels: Record<string, string>;
  /** `{sha}` in image references is filled with this (images built by the project's own CI). */
  sha: string;
  /**
   * The built image to pin, when Kubler built it: containers whose image repository is `match` (or
   * ends with `/match`) get `pinned` (`registry/group/app@sha256:…`).
   */
  image: { match: string; pinned: string } | null;
  /** Adds the registry pull secret to every pod template. */
  pullSecret: string | null;
}

const POD_TEMPLATE_PATHS: Readonly<Record<string, readonly string[]>> = {
  Deployment: ["spec", "template"],
  StatefulSet: ["spec", "template"],
  DaemonSet: ["spec", "template"],
  Job: ["spec", "template"],
  CronJob: ["spec", "jobTemplate", "spec", "template"],
};

/**
 * The objects to apply: copies, with the namespace forced, the contract labels added and images
 * pinned. Also reports whether the built image was pinned anywhere, so a typo in `deploy.image`
 * does not silently deploy the old image.
 *
 * @example
 * const { objects, pinned } = renderManifests(parsed, context);
 */
export function renderManifests(
  objects: readonly KubeObject[],
  context: RenderContext,
): { objects: KubeObject[]; pinned: number } {
  let pinned = 0;
  const rendered = objects.map((original) => {
    const object = structuredClone(original);
    object.metadata.namespace = context.namespace;
    object.metadata.labels = { ...object.metadata.labels, ...context.labels };
    const template = dig(object, POD_TEMPLATE_PATHS[object.kind] ?? []);
    const spec = template?.spec as PodSpec | undefined;
    if (spec) {
      for (const container of [...(spec.containers ?? []), ...(spec.initContainers ?? [])]) {
        if (typeof container.image !== "string") continue;
        const image = container.image.replaceAll("{sha}", context.sha);
        container.image = image;
        if (context.image && isImage(image, context.image.match)) {
          container.image = context.image.pinned;
          pinned++;
        }
      }
      if (context.pullSecret && !spec.imagePullSecrets?.some((s) => s.name === context.pullSecret)) {
        spec.imagePullSecrets = [...(spec.imagePullSecrets ?? []), { name: context.pullSecret }];
      }
    }
    return object;
  });
  return { objects: rendered, pinned };
}

interface PodSpec {
  containers?: { image?: unknown }[];
  initContainers?: { image?: unknown }[];
  imagePullSecrets?: { name: string }[];
}

function dig(object: KubeObject, path: readonly string[]): Record<string, unknown> | undefined {
  let value: unknown = object;
  for (const key of path) {
    if (typeof value !== "object" || value === null) return undefined;
    value = (value as Record<string, unknown>)[key];
  }
  return path.length > 0 && typeof value === "object" && value !== null
    ? (value as Record<string, unknown>)
    : undefined;
}

function isImage(image: string, match: string): boolean {
  const repository = repositoryOf(image);
  return repository === match || repository.endsWith(`/${match}`);
}

/** `registry:5000/group/app:tag@sha256:…` → `registry:5000/group/app`; a bare `app:1` → `app`. */
export function repositoryOf(image: string): string {
  const withoutDigest = image.split("@")[0] ?? image;
  const lastSlash = withoutDigest.lastIndexOf("/");
  const tagColon = withoutDigest.indexOf(":", lastSlash + 1);
  return tagColon === -1 ? withoutDigest : withoutDigest.slice(0, tagColon);
}

export interface RoleRule {
  apiGroups: string[];
  resources: string[];
  verbs: string[];
}

/**
 * Exactly what applying these objects takes: one rule per API group, listing only the resources the
 * manifests contain, with the deployer verbs. Sorted, so the Role is the same for the same manifests.
 *
 * @example
 * roleRulesFor([deployment, service]);
 * // [{ apiGroups: [""], resources: ["services"], verbs }, { apiGroups: ["apps"], resources: ["deployments"], verbs }]
 */
export function roleRulesFor(objects: readonly KubeObject[]): RoleRule[] {
  const byGroup = new Map<string, Set<string>>();
  for (const object of objects) {
    const kind = DEPLOYABLE_KINDS[object.kind];
    if (!kind) continue;
    const resources = byGroup.get(kind.group) ?? new Set<string>();
    resources.add(kind.resource);
    byGroup.set(kind.group, resources);
  }
  return [...byGroup.entries()]
    .sort(([a], [b]) => a.localeCompare(b))
    .map(([group, resources]) => ({
      apiGroups: [group],
      resources: [...resources].sort(),
      verbs: [...DEPLOYER_VERBS],
    }));
}
