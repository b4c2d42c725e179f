/**
 * A project's Kubernetes manifests, made ready for its environment: parsed, checked to be kinds Kubler
 * may deploy into one namespace, forced into that namespace, labelled, the app image pinned; and the
 * least-privilege Role that is exactly enough to apply them.
 */
import { createHash } from "node:crypto";
import { parseAllDocuments, type ScalarTag } from "yaml";
import { jsonSyntaxProblem } from "./json-syntax.js";
import type { KubeObject } from "./kube-object.js";
import { MAX_FLOW_DEPTH, repeatedKey, yamlErrorPlace, yamlNestingProblem } from "./yaml-nesting.js";

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

/**
 * What a CI job takes to apply the project's objects and follow them: server-side apply is a PATCH to
 * the object's URL, checked for `create` too when the object is new; `kubectl rollout status` and
 * `kubectl wait` get, list and watch. Granted on the kind, not on names: a job applies objects the
 * deployed revision does not have yet (a commit's new Deployment, a `migrate-<sha>` Job), and RBAC
 * checks a PATCH against the name in its URL (kubernetes/kubernetes#80295). No delete.
 */
export const DEPLOYER_VERBS = ["get", "list", "watch", "create", "patch"] as const;
/**
 * Secrets on the deployed revision's names only, never listed or watched: a list answers with every
 * Secret's data, the registry pull secret's among them.
 */
export const DEPLOYER_SECRET_VERBS = ["get", "patch"] as const;

/** The environment's deployer identity (DESIGN §5's `role: kubler-deployer`). */
export const DEPLOYER_NAME = "kubler-deployer";
/** The registry pull secret Kubler writes into each environment. */
export const PULL_SECRET_NAME = "kubler-registry";
/** Where the last good revision's objects are kept, in the environment's own namespace. */
export const LAST_GOOD_CONFIGMAP = "kubler-last-good";
/** The ConfigMap a stop leaves in the namespace it deletes (shared/services/stop-hold.ts). */
export const STOP_HOLD_NAME = "kubler-stop-hold";
/**
 * The ServiceAccounts and RoleBindings job credentials create in the environment, one per policy
 * Role (`jobServiceAccount` in shared/services/mint-job-credentials.ts; a test keeps the two in step).
 */
export const JOB_ACCOUNT_PREFIX = "kubler-ci-";
/** Names Kubler writes into every environment namespace; the project's manifests may not use them. */
export const RESERVED_NAMES: readonly string[] = [
  LAST_GOOD_CONFIGMAP,
  PULL_SECRET_NAME,
  DEPLOYER_NAME,
  STOP_HOLD_NAME,
];

/**
 * Whether an object of this name in an environment namespace is Kubler's own: a project object of
 * that name could overwrite it (the last-good record, the pull secret, the deployer's RBAC).
 *
 * @example
 * isReservedName("kubler-last-good"); // true
 * isReservedName("kubler-ci-kubler-deployer"); // true
 * isReservedName("web"); // false
 */
export function isReservedName(name: string): boolean {
  return RESERVED_NAMES.includes(name) || name.startsWith(JOB_ACCOUNT_PREFIX);
}

/** The files of a manifests directory that are read, as a message names them. */
export const MANIFEST_FILE_NAMES = "*.yaml, *.yml, *.json";
const MANIFEST_FILE_NAME = /\.(?:ya?ml|json)$/;

/**
 * Whether a manifests directory's file is read: the extensions `kubectl apply -f dir/` reads, matched
 * as it matches them (case-sensitively). Not `.jsonc`, `.yaml.bak`, a README or a script.
 *
 * @example
 * isManifestFileName("deployment.json"); // true
 * isManifestFileName("README.md"); // false
 */
export function isManifestFileName(name: string): boolean {
  return MANIFEST_FILE_NAME.test(name);
}

export class ManifestFilesError extends Error {
  override readonly name = "ManifestFilesError";
}

/**
 * A file's bytes as text, or the line where they stop being UTF-8. YAML and Kubernetes read UTF-8: a
 * file saved in another encoding (Latin-1, UTF-16) is refused, where decoding it anyway would deploy
 * U+FFFD in place of its characters. A UTF-8 byte-order mark is dropped.
 *
 * @example
 * utf8Text(Buffer.from("a: café", "latin1")); // { line: 1 }
 */
export function utf8Text(bytes: Uint8Array): { text: string } | { line: number } {
  try {
    return { text: new TextDecoder("utf-8", { fatal: true }).decode(bytes) };
  } catch {
    // The first U+FFFD the lenient decoding made, not one the file spells in UTF-8 (EF BF BD).
    const lenient = new TextDecoder("utf-8").decode(bytes);
    const encoder = new TextEncoder();
    for (let at = lenient.indexOf("\uFFFD"); at !== -1; at = lenient.indexOf("\uFFFD", at + 1)) {
      const prefix = lenient.slice(0, at);
      const offset = encoder.encode(prefix).length;
      if (bytes[offset] === 0xef && bytes[offset + 1] === 0xbf && bytes[offset + 2] === 0xbd) continue;
      return { line: prefix.split("\n").length };
    }
    return { line: 1 };
  }
}

/**
 * kubectl reads manifests as YAML 1.1 (sigs.k8s.io/yaml, Go's base-0 integers): `defaultMode: 0440`
 * is octal, 288. YAML 1.2 reads it as decimal 440 (0o670), which the API server takes: a Secret
 * volume meant owner-and-group-readable would become group-writable and world-readable.
 */
const LEADING_ZERO_OCTAL: ScalarTag = {
  tag: "tag:yaml.org,2002:int",
  default: true,
  test: /^[-+]?0[0-7]+$/,
  resolve: (text) => (text.startsWith("-") ? -1 : 1) * Number.parseInt(text.replace(/^[-+]?0/, ""), 8),
};

/**
 * Every object in the manifest files, in path order (so applies are deterministic): `.json` files
 * parsed as JSON, the others as YAML. Errors name the file, and the YAML document.
 *
 * @example
 * parseManifestFiles(new Map([["deploy/app.yaml", "kind: Deployment\n..."], ["deploy/svc.json", "{…}"]]));
 */
export function parseManifestFiles(files: ReadonlyMap<string, string>): KubeObject[] {
  const objects: KubeObject[] = [];
  for (const path of [...files.keys()].sort()) {
    const text = files.get(path) ?? "";
    try {
      objects.push(...parseFile(path, text));
    } catch (error) {
      // YAML reads `{{ .Values.name }}` as a mapping: the error names its symptom, not the template.
      if (error instanceof ManifestFilesError && TEMPLATE_SYNTAX.test(text)) {
        throw new ManifestFilesError(`${error.message}; ${path} ${TEMPLATE_HINT}`);
      }
      throw error;
    }
  }
  if (objects.length === 0) throw new ManifestFilesError("the manifests directory has no Kubernetes objects");
  refuseDuplicates(objects, "");
  return objects;
}

/** `{{` on a line before any quote or comment: a Helm chart's or Go template's, not a value's. */
const TEMPLATE_SYNTAX = /^[^'"#\n]*\{\{/m;
const TEMPLATE_HINT =
  "holds template syntax ({{ … }}), which Kubler does not render: commit the rendered YAML (helm template)";

/** A document of a file, `labels` placing it in errors: `deploy/a.yaml (document 2)`, `deploy/a.json`. */
interface FileDocument {
  value: unknown;
  labels: readonly string[];
}

/**
 * The file's objects: YAML and JSON are parsed each their way, then held to the same checks, a List's
 * items one by one as kubectl apply takes them.
 */
function parseFile(path: string, text: string): KubeObject[] {
  const objects: KubeObject[] = [];
  const where = (labels: readonly string[]) => (labels.length > 0 ? `${path} (${labels.join(", ")})` : path);
  const documents = path.endsWith(".json") ? jsonDocuments(path, text) : yamlDocuments(path, text);
  for (const { value, labels } of documents) {
    if (value === null || value === undefined) continue;
    const items = listItems(value);
    if (items)
      objects.push(...items.map((item, at) => checkObject(item, where([...labels, `item ${at + 1}`]))));
    else objects.push(checkObject(value, where(labels)));
  }
  return objects;
}

/** Lazily, so a document's objects are checked before a later document's YAML error is met. */
function* yamlDocuments(path: string, text: string): Generator<FileDocument> {
  // Nesting deep enough to crash Node inside yaml is refused first (see yaml-nesting.ts).
  const tooDeep = yamlNestingProblem(text);
  if (tooDeep) throw new ManifestFilesError(`${path}: not accepted: ${tooDeep}`);
  // Repeated keys are refused by repeatedKey: yaml's own check takes quadratic time.
  const documents = parseAllDocuments(text, {
    logLevel: "error",
    uniqueKeys: false,
    // The one error reported is placed by yamlErrorPlace: pretty errors cost a copy of the line each.
    prettyErrors: false,
    customTags: (tags) => [LEADING_ZERO_OCTAL, ...tags],
    // YAML 1.1's `<<` merge keys, which kubectl applies (`labels: { <<: *common }`).
    merge: true,
  });
  for (const [index, document] of documents.entries()) {
    const label = `document ${index + 1}`;
    const where = `${path} (${label})`;
    const [error] = document.errors;
    const repeated = repeatedKey(document, text);
    if (repeated) {
      const { line, column } = repeated;
      throw new ManifestFilesError(
        `${where}: not valid YAML: Map keys must be unique at line ${line}, column ${column}:`,
      );
    }
    if (error) {
      const place = yamlErrorPlace(error, text);
      const at = place ? ` at line ${place.line}, column ${place.column}:` : "";
      throw new ManifestFilesError(`${where}: not valid YAML: ${error.message.split("\n")[0]}${at}`);
    }
    yield { value: toJs(document, where), labels: [label] };
  }
}

/**
 * A `.json` file's one value. Nothing at all is no objects, as an empty YAML file is; kubectl skips
 * both. The text is checked before JSON.parse (json-syntax.ts): its messages quote the file around
 * the error, a Secret's value included, and do not always say where.
 */
function jsonDocuments(path: string, text: string): FileDocument[] {
  if (/^[ \t\n\r]*$/.test(text)) return [];
  const syntax = jsonSyntaxProblem(text, MAX_FLOW_DEPTH);
  if (syntax) {
    // yaml's placement helper only counts lines and columns in the text, as the YAML errors are placed.
    const place = yamlErrorPlace({ pos: [syntax.offset, syntax.offset] }, text);
    const at = place ? ` at line ${place.line}, column ${place.column}` : "";
    throw new ManifestFilesError(`${path}: not valid JSON: ${syntax.problem}${at}`);
  }
  try {
    return [{ value: JSON.parse(text), labels: [] }];
  } catch {
    // Only if json-syntax.ts let through what V8 refuses; its message would quote the file.
    throw new ManifestFilesError(`${path}: not valid JSON`);
  }
}

/**
 * The digest of a last-good record's data (its `sha`, `pipelineId`, `objects.json`, and `secrets.json`,
 * its Secrets' data, when it has any), kept on the Namespace where no namespaced Role reaches: a record
 * whose digest differs was not written by Kubler.
 *
 * @example
 * lastGoodDigest({ sha, pipelineId: "42", "objects.json": "[…]" }); // "5f1c…" (64 hex)
 */
export function lastGoodDigest(data: Readonly<Record<string, string | undefined>>): string {
  const parts = [data.sha ?? "", data.pipelineId ?? "", data["objects.json"] ?? ""];
  // Absent from records without Secrets, whose digest stays what it was before the key existed.
  if (data["secrets.json"] !== undefined) parts.push(data["secrets.json"]);
  return createHash("sha256").update(JSON.stringify(parts)).digest("hex");
}

/**
 * Objects Kubler kept from an earlier deploy (the last-good record, JSON), held to exactly the checks
 * of fresh manifests: the record lives in the project's namespace, so what it holds is not trusted.
 * Render them (`renderManifests`) before applying, so the namespace is forced again.
 *
 * @example
 * checkStoredObjects(JSON.parse(data["objects.json"]), "ConfigMap kubler-last-good");
 */
export function checkStoredObjects(value: unknown, where: string): KubeObject[] {
  if (!Array.isArray(value)) {
    throw new ManifestFilesError(`${where}: expected a list of Kubernetes objects, found ${shown(value)}`);
  }
  // A revision always has objects; an empty record would make a rollback remove every object.
  if (value.length === 0) throw new ManifestFilesError(`${where}: holds no Kubernetes objects`);
  const objects = value.map((item, index) => checkObject(item, `${where} (object ${index + 1})`));
  refuseDuplicates(objects, `${where}: `);
  return objects;
}

function refuseDuplicates(objects: readonly KubeObject[], prefix: string): void {
  const seen = new Set<string>();
  for (const object of objects) {
    const key = `${object.kind}/${object.metadata.name}`;
    if (seen.has(key)) throw new ManifestFilesError(`${prefix}${key} is defined twice`);
    seen.add(key);
  }
}

/**
 * The items of a `kind: List` (or `ConfigMapList`, …), as `kubectl get -o yaml` writes them and
 * kubectl apply takes them; null for anything else.
 */
function listItems(value: unknown): unknown[] | null {
  if (!isMapping(value) || typeof value.kind !== "string" || !value.kind.endsWith("List")) return null;
  return Array.isArray(value.items) ? value.items : null;
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
  if (typeof value !== "object" || value === null || Array.isArray(value)) {
    throw new ManifestFilesError(
      `${where}: expected a Kubernetes object, found ${Array.isArray(value) ? "a list" : value === null ? "null" : typeof value}`,
    );
  }
  const object = value as Partial<KubeObject>;
  if (typeof object.apiVersion !== "string" || typeof object.kind !== "string") {
    throw new ManifestFilesError(`${where}: apiVersion and kind are required`);
  }
  if (typeof object.metadata?.name !== "string" || object.metadata.name === "") {
    if (typeof (object.metadata as { generateName?: unknown } | undefined)?.generateName === "string") {
      throw new ManifestFilesError(
        `${where}: ${object.kind} has metadata.generateName but no metadata.name: server-side apply needs a name; write metadata.name (a Job whose template changes is deleted and created again by the deploy)`,
      );
    }
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
  if (isReservedName(object.metadata.name)) {
    throw new ManifestFilesError(
      `${where}: ${object.kind} ${object.metadata.name}: the name is Kubler's own in every environment (reserved: ${RESERVED_NAMES.join(", ")}, ${JOB_ACCOUNT_PREFIX}*); rename it`,
    );
  }
  // Rendering spreads the contract labels into these: a string would become one label per character.
  const { labels } = object.metadata as { labels?: unknown };
  if (labels !== undefined && labels !== null && !isMapping(labels)) {
    throw new ManifestFilesError(
      `${where}: ${object.kind} ${object.metadata.name}: metadata.labels: expected a mapping, found ${shown(labels)}`,
    );
  }
  checkAccountToken(object as KubeObject, where);
  checkPodSpec(object as KubeObject, where);
  return object as KubeObject;
}

/**
 * A ServiceAccount token Secret makes the cluster keep a token for the account that never expires.
 * For Kubler's accounts (the deployer, the jobs' `kubler-ci-*`) that is the long-lived credential
 * job-credentials exists to replace, readable by any job that may get the Secret by its name.
 */
function checkAccountToken(object: KubeObject, where: string): void {
  if (object.kind !== "Secret" || object.type !== "kubernetes.io/service-account-token") return;
  const account = object.metadata.annotations?.["kubernetes.io/service-account.name"];
  if (typeof account === "string" && isReservedName(account)) {
    throw new ManifestFilesError(
      `${where}: Secret ${object.metadata.name}: a token Secret for Kubler's ServiceAccount ${account}, which would never expire; job-credentials mints its tokens for minutes`,
    );
  }
}

/**
 * The pod template's shape, as far as rendering reads it (containers, initContainers, their images,
 * imagePullSecrets): a list where a mapping belongs is the project's error, not a crash of the deploy.
 * Its ServiceAccount may not be Kubler's. Everything else in the spec is the API server's to judge.
 */
function checkPodSpec(object: KubeObject, where: string): void {
  const path = POD_TEMPLATE_PATHS[object.kind];
  if (!path) return;
  const refuse = (at: string, expected: string, found: unknown) =>
    new ManifestFilesError(
      `${where}: ${object.kind} ${object.metadata.name}: ${at}: expected ${expected}, found ${shown(found)}`,
    );
  let value: unknown = object;
  const at: string[] = [];
  for (const key of [...path, "spec"]) {
    value = (value as Record<string, unknown>)[key];
    at.push(key);
    if (value === undefined) return;
    if (!isMapping(value)) throw refuse(at.join("."), "a mapping", value);
  }
  const spec = value as Record<string, unknown>;
  const specPath = at.join(".");
  // A pod run as Kubler's deployer or a job's account holds that Role for as long as it runs, no
  // policy asked: the standing credential checkAccountToken refuses. `serviceAccount` is the old name.
  for (const key of ["serviceAccountName", "serviceAccount"]) {
    const account = spec[key];
    if (typeof account === "string" && isReservedName(account)) {
      throw new ManifestFilesError(
        `${where}: ${object.kind} ${object.metadata.name}: ${specPath}.${key}: ${account} is Kubler's own ServiceAccount, whose rights are for Kubler and for jobs' minutes-long credentials; run the pods as a ServiceAccount of the project's own`,
      );
    }
  }
  for (const key of ["containers", "initContainers", "imagePullSecrets"]) {
    const list = spec[key];
    if (list === undefined) continue;
    if (!Array.isArray(list)) throw refuse(`${specPath}.${key}`, "a list", list);
    list.forEach((item: unknown, index) => {
      const itemPath = `${specPath}.${key}[${index}]`;
      if (!isMapping(item)) throw refuse(itemPath, "a mapping", item);
      if (key !== "imagePullSecrets" && item.image !== undefined && typeof item.image !== "string") {
        throw refuse(`${itemPath}.image`, "an image reference (a string)", item.image);
      }
    });
  }
}

function isMapping(value: unknown): value is Record<string, unknown> {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

/** A value as an error message shows it: its kind for collections, a short JSON otherwise. */
function shown(value: unknown): string {
  if (Array.isArray(value)) return "a list";
  if (isMapping(value)) return "a mapping";
  const json = JSON.stringify(value) ?? String(value);
  return json.length > 40 ? `${json.slice(0, 40)}…` : json;
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
  resourceNames?: string[];
  verbs: string[];
}

/**
 * What a CI job bound to the environment's deployer may do: on each kind the manifests contain, the
 * deployer verbs on any name; on Secrets, get and patch by the manifests' names, and create. Nothing on
 * other kinds, nothing of RBAC, never delete. Sorted, so the Role is the same for the same manifests.
 *
 * Names cannot narrow the other kinds: the Role is rewritten only when Kubler deploys a commit, after
 * that commit's pipeline ran, so a job must be able to apply and wait on objects it does not name yet.
 * They do narrow Secrets, whose `create` cannot be (a POST's name is unknown at authorization time,
 * https://kubernetes.io/docs/reference/access-authn-authz/rbac/#referring-to-resources): a job can
 * create a new Secret (a POST, `kubectl create`; a server-side apply of it is refused, as a patch) but
 * read or change only those the deployed revision names, so never the pull secret through the API
 * (a pod it creates can still mount any Secret of the namespace, as the project's manifests can).
 *
 * Of Kubler's own objects, a job can therefore reach those of a kind the project ships: the
 * `kubler-last-good` ConfigMap when it ships ConfigMaps, the `kubler-deployer` and `kubler-ci-*`
 * ServiceAccounts when it ships ServiceAccounts (read and patch; never their RBAC). Reading the record
 * tells the job no more than its repository does. Rewriting it can at most have a rollback apply
 * objects the project could ship itself: a restored record is checked and rendered like fresh
 * manifests (`checkStoredObjects`, `renderManifests`: deployable kinds, no reserved names, the
 * namespace forced). Patching a ServiceAccount changes no permission, which only Kubler's RBAC grants.
 *
 * @example
 * roleRulesFor([deployment, service, secret]);
 * // [{ apiGroups: [""], resources: ["services"], verbs: DEPLOYER_VERBS },
 * //  { apiGroups: [""], resources: ["secrets"], resourceNames: ["api-key"], verbs: DEPLOYER_SECRET_VERBS },
 * //  { apiGroups: [""], resources: ["secrets"], verbs: ["create"] },
 * //  { apiGroups: ["apps"], resources: ["deployments"], verbs: DEPLOYER_VERBS }]
 */
export function roleRulesFor(objects: readonly KubeObject[]): RoleRule[] {
  const byGroup = new Map<string, { resources: Set<string>; secrets: Set<string> }>();
  for (const object of objects) {
    const kind = DEPLOYABLE_KINDS[object.kind];
    if (!kind || isReservedName(object.metadata.name)) continue;
    const group = byGroup.get(kind.group) ?? { resources: new Set<string>(), secrets: new Set<string>() };
    if (kind.resource === "secrets") group.secrets.add(object.metadata.name);
    else group.resources.add(kind.resource);
    byGroup.set(kind.group, group);
  }
  return [...byGroup.entries()]
    .sort(([a], [b]) => a.localeCompare(b))
    .flatMap(([group, { resources, secrets }]) => [
      ...(resources.size > 0
        ? [{ apiGroups: [group], resources: [...resources].sort(), verbs: [...DEPLOYER_VERBS] }]
        : []),
      ...(secrets.size > 0
        ? [
            {
              apiGroups: [group],
              resources: ["secrets"],
              resourceNames: [...secrets].sort(),
              verbs: [...DEPLOYER_SECRET_VERBS],
            },
            { apiGroups: [group], resources: ["secrets"], verbs: ["create"] },
          ]
        : []),
    ]);
}
