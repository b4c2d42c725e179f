import { AsyncLocalStorage } from "node:async_hooks";
import { existsSync, readFileSync } from "node:fs";
import { Agent as HttpAgent, request as httpRequest, type IncomingHttpHeaders } from "node:http";
import { Agent as HttpsAgent, request as httpsRequest } from "node:https";
import { homedir } from "node:os";
import { delimiter, join } from "node:path";
import { setTimeout as delay } from "node:timers/promises";
import { isDeepStrictEqual } from "node:util";
import {
  ApiException,
  type Configuration,
  CoreV1Api,
  createConfiguration,
  HttpMethod,
  KubeConfig,
  type KubernetesObject,
  KubernetesObjectApi,
  type Middleware,
  PatchStrategy,
  type PromiseHttpLibrary,
  type RequestContext,
  ResponseContext,
  ServerConfiguration,
  type V1DeleteOptions,
  wrapHttpLibrary,
} from "@kubernetes/client-node";
import { writtenOver } from "../domain/kube-object.js";
import {
  ConfigError,
  KubernetesAdmissionDeniedError,
  KubernetesConflictError,
  type KubernetesError,
  KubernetesForbiddenError,
  KubernetesInvalidError,
  KubernetesNotFoundError,
  KubernetesUnavailableError,
  messageOf,
} from "../errors.js";
import type {
  AbsentObjectWriter,
  BuildCluster,
  EnvironmentCluster,
  FinalizerRemover,
  KubeObject,
  ListOptions,
  ListPage,
  ObjectRef,
  RequestDeadline,
} from "../ports.js";
import { useInProcessEksTokens } from "./eks-token.js";
import { networkCode, RETRYABLE_NETWORK_CODES, retryAfterMs } from "./http-retry.js";

/** The server-side apply field manager: the objects' `managedFields` name Kubler as their owner. */
export const FIELD_MANAGER = "kubler";

/** Caps one wait (a backoff or a `Retry-After`) so retries stay within a Lambda's time budget. */
const MAX_DELAY_MS = 5_000;

/** What client-node sets on the agent it makes per request: the TLS identity a reused connection must share. */
const TLS_OPTIONS = ["ca", "cert", "key", "pfx", "passphrase", "rejectUnauthorized", "servername"] as const;

export interface KubernetesClusterOptions {
  /** Sends of one request at most, the first included. Default 4. */
  maxAttempts?: number;
  /** The backoff ceiling before the second attempt; it doubles each attempt. Default 100. */
  baseDelayMs?: number;
  /** One attempt's limit, API discovery and authentication included. Default 10 000. */
  timeoutMs?: number;
  sleep?: (ms: number) => Promise<void>;
  /** Uniform in [0, 1), like `Math.random`. */
  random?: () => number;
  /** Milliseconds since the epoch, like `Date.now`: the clock of `withDeadline`'s deadline. */
  now?: () => number;
  /** Where the kubeconfig came from, for the `ConfigError`s that name it. Default "The kubeconfig". */
  source?: string;
}

export interface CreateKubernetesClusterOptions extends KubernetesClusterOptions {
  /** A kubeconfig's text (YAML or JSON), e.g. the embedded cluster's. Wins over `KUBECONFIG`. */
  kubeconfig?: string;
  /** Read for `KUBECONFIG` (and `HOME`); default `process.env`. */
  env?: Record<string, string | undefined>;
}

/** A kubeconfig's server URL carries `user:password@`: refused, so it is never logged nor handed on. */
export class KubeconfigServerCredentialsError extends ConfigError {}

/** A `withDeadline` scope's: `at` is set by the first call made in it. */
interface Deadline {
  ms: number;
  at: number | undefined;
}

/** Where the adapter sends its requests; safe to log (no credentials: userinfo is stripped). */
export interface KubernetesClusterDescription {
  server: string;
  context: string;
}

/**
 * The Kubernetes cluster of a kubeconfig: `options.kubeconfig` when given, else the files of
 * `KUBECONFIG` (merged, like kubectl), else `~/.kube/config`. Fails with a `ConfigError` naming
 * `KUBECONFIG` when there is none or it cannot be read.
 *
 * @example
 * const cluster = createKubernetesCluster({ env: process.env });
 * console.log(`Kubernetes: ${cluster.describe().server}`);
 */
export function createKubernetesCluster(options: CreateKubernetesClusterOptions = {}): KubernetesCluster {
  const env = options.env ?? process.env;
  const kubeConfig = new KubeConfig();
  let source = options.source;
  if (options.kubeconfig !== undefined) {
    source ??= "The kubeconfig given";
    try {
      kubeConfig.loadFromString(options.kubeconfig);
    } catch (error) {
      throw new ConfigError(`The kubeconfig given is not valid: ${messageOf(error)}`);
    }
  } else {
    const files = (env.KUBECONFIG ?? "").split(delimiter).filter((file) => file !== "");
    if (files.length === 0) {
      const home = join(env.HOME ?? homedir(), ".kube", "config");
      if (!existsSync(home)) {
        throw new ConfigError(
          `KUBECONFIG is not set and ${home} does not exist: no Kubernetes cluster to use`,
        );
      }
      files.push(home);
    }
    source ??= `${env.KUBECONFIG ? "KUBECONFIG" : "The kubeconfig"} ${files.length === 1 ? "file" : "files"} ${files.join(delimiter)}`;
    // kubectl's merge: the first file that sets current-context wins (mergeConfig would let the
    // last one win unless told to keep it, as client-node's loadFromDefault does).
    files.forEach((file, index) => {
      const loaded = index === 0 ? kubeConfig : new KubeConfig();
      try {
        loaded.loadFromFile(file);
      } catch (error) {
        throw new ConfigError(`KUBECONFIG file ${file} cannot be loaded: ${messageOf(error)}`);
      }
      if (index > 0) kubeConfig.mergeConfig(loaded, Boolean(kubeConfig.getCurrentContext()));
    });
  }
  useInProcessEksTokens(kubeConfig, env);
  return new KubernetesCluster(kubeConfig, { ...options, source });
}

/**
 * `EnvironmentCluster` over the Kubernetes API with @kubernetes/client-node: objects are read and
 * written as plain JSON, applied with server-side apply (`fieldManager: kubler`, forced). Throttling
 * (429), 5xx, timeouts and dropped connections are retried with full-jitter exponential backoff
 * (honouring `Retry-After`), up to `maxAttempts` (and within a deadline, see `withDeadline`); other
 * answers map to the named Kubernetes errors.
 *
 * @example
 * const cluster = new KubernetesCluster(kubeConfig, { timeoutMs: 5_000 });
 * const stored = await cluster.apply({ apiVersion: "v1", kind: "Namespace", metadata: { name: "x" } });
 */
export class KubernetesCluster
  implements EnvironmentCluster, BuildCluster, FinalizerRemover, AbsentObjectWriter, RequestDeadline
{
  readonly #kubeConfig: KubeConfig;
  readonly #objects: PlainObjectApi;
  readonly #core: CoreV1Api;
  readonly #attemptSignal = new AsyncLocalStorage<AbortSignal>();
  readonly #deadline = new AsyncLocalStorage<Deadline>();
  readonly #maxAttempts: number;
  readonly #baseDelayMs: number;
  readonly #timeoutMs: number;
  readonly #sleep: (ms: number) => Promise<void>;
  readonly #random: () => number;
  readonly #now: () => number;
  /** Kept alive across requests; replaced when the kubeconfig's TLS identity changes (a rotated client certificate). */
  #agent: HttpAgent | undefined;

  constructor(kubeConfig: KubeConfig, options: KubernetesClusterOptions = {}) {
    const cluster = kubeConfig.getCurrentCluster();
    if (!cluster) {
      throw new ConfigError(`The kubeconfig has no cluster for context "${kubeConfig.getCurrentContext()}"`);
    }
    if (hasUserinfo(cluster.server)) {
      // Never quoted: the URL is the secret. client-node would send it as is, and describe() and
      // endpoint() would hand it to the start-up banner and to every CI job's kubeconfig.
      throw new KubeconfigServerCredentialsError(
        `${options.source ?? "The kubeconfig"}: cluster "${cluster.name}" has credentials (user:password@) in its server URL; a Kubernetes API server does not take basic auth in the URL: put them in the kubeconfig's user entry (a token or a client certificate)`,
      );
    }
    this.#kubeConfig = kubeConfig;
    this.#maxAttempts = Math.max(1, Math.floor(options.maxAttempts ?? 4));
    this.#baseDelayMs = Math.max(0, options.baseDelayMs ?? 100);
    this.#timeoutMs = Math.max(1, options.timeoutMs ?? 10_000);
    this.#sleep = options.sleep ?? ((ms) => delay(ms));
    this.#random = options.random ?? Math.random;
    this.#now = options.now ?? Date.now;

    // Each attempt runs with its own AbortSignal in #attemptSignal; this hands it to every request
    // the attempt makes (discovery included), so a timed-out attempt also closes its connection.
    // It also swaps the agent client-node 1.4 makes for every request (so a new connection, and a
    // TLS handshake, per call) for this cluster's keep-alive one.
    const perAttempt: Middleware = {
      pre: async (context: RequestContext) => {
        const signal = this.#attemptSignal.getStore();
        if (signal) context.setSignal(signal);
        const agent = this.#keepAlive(context.getAgent());
        if (agent) context.setAgent(agent);
        return context;
      },
      post: async (response: ResponseContext) => response,
    };
    const configuration = createConfiguration({
      baseServer: new ServerConfiguration(cluster.server, {}),
      authMethods: { default: kubeConfig },
      promiseMiddleware: [perAttempt],
      httpApi: wrapHttpLibrary(nodeHttp),
    });
    this.#objects = new PlainObjectApi(configuration, kubeConfig);
    this.#core = new CoreV1Api(configuration);
  }

  /** The API server (without any `user:password@`) and kubeconfig context in use. */
  describe(): KubernetesClusterDescription {
    return {
      server: withoutUserinfo(this.#kubeConfig.getCurrentCluster()?.server ?? ""),
      context: this.#kubeConfig.getCurrentContext(),
    };
  }

  /**
   * Where the API server is and which CA vouches for it: what a kubeconfig handed to a CI job needs
   * (the `CredentialsCluster` port). The CA comes from the kubeconfig's data or file.
   */
  endpoint(): { server: string; certificateAuthorityData: string | null; insecureSkipTlsVerify: boolean } {
    const cluster = this.#kubeConfig.getCurrentCluster();
    const caFile = cluster?.caFile;
    return {
      server: withoutUserinfo(cluster?.server ?? ""),
      certificateAuthorityData: cluster?.caData ?? (caFile ? readFileSync(caFile).toString("base64") : null),
      insecureSkipTlsVerify: cluster?.skipTLSVerify ?? false,
    };
  }

  /**
   * Runs `work` with one deadline, `deadlineMs` from the first call it makes to this cluster, shared
   * by all its calls (concurrent ones too): an attempt is cut to the time left, a retry is made only
   * when its wait (backoff or `Retry-After`) and a whole attempt (`timeoutMs`) fit before the
   * deadline, and a call once it has passed fails at once. `maxAttempts` still caps each call. For a
   * request whose Kubernetes calls together must end inside a time budget, retries included; calls
   * outside any `withDeadline` retry as before.
   *
   * @example
   * const issued = await cluster.withDeadline(5_000, () => mintJobCredentials(deps, request));
   */
  withDeadline<T>(deadlineMs: number, work: () => Promise<T>): Promise<T> {
    return this.#deadline.run({ ms: Math.max(0, deadlineMs), at: undefined }, work);
  }

  /**
   * The time left before the deadline of the `withDeadline` this runs in (started now if no call has
   * started it yet), 0 once it has passed; null outside one (`RequestDeadline`).
   */
  remainingMs(): number | null {
    const deadline = this.#deadline.getStore();
    if (!deadline) return null;
    deadline.at ??= this.#now() + deadline.ms;
    return Math.max(0, deadline.at - this.#now());
  }

  /** Closes the kept-alive connections; a later request opens a new one. */
  close(): void {
    this.#agent?.destroy();
    this.#agent = undefined;
  }

  async get(ref: ObjectRef): Promise<KubeObject | null> {
    try {
      return await this.#call("get", describeRef(ref), () => this.#objects.get(ref));
    } catch (error) {
      if (error instanceof KubernetesNotFoundError) return null;
      throw error;
    }
  }

  async list(apiVersion: string, kind: string, options: ListOptions = {}): Promise<ListPage> {
    const target = `${kind}${options.namespace ? ` in ${options.namespace}` : ""}${
      options.labelSelector ? ` (${options.labelSelector})` : ""
    }`;
    const list = await this.#call("list", target, () => this.#objects.listPage(apiVersion, kind, options));
    const items = list.items ?? [];
    // A List's items usually carry neither apiVersion nor kind: the List's kind names them. The items
    // were just parsed from the answer, so they are set in place rather than copied (500 to a page).
    for (const item of items) {
      item.apiVersion = apiVersion;
      item.kind = kind;
    }
    return { items, continue: list.metadata?.continue || null };
  }

  async apply(object: KubeObject): Promise<KubeObject> {
    const { kind, metadata } = object;
    const target = describeRef({ kind, name: metadata.name, namespace: metadata.namespace });
    return this.#withoutCreateEntry(await this.#call("apply", target, () => this.#objects.apply(object)));
  }

  async create(object: KubeObject): Promise<KubeObject> {
    const { kind, metadata } = object;
    const target = describeRef({ kind, name: metadata.name, namespace: metadata.namespace });
    return this.#call("create", target, () => this.#objects.createObject(object));
  }

  async createApplied(object: KubeObject): Promise<KubeObject> {
    const created = await this.create(object);
    try {
      return await this.#applyOverCreated(object, created);
    } catch (error) {
      // Refused where the create was not (server-side apply validates more, e.g. duplicate list
      // keys): what the create made would stay running the refused revision, outside what the deploy
      // recorded as written, so no rollback would remove it. A 409 or an outage leaves it to the
      // caller's read again or retry, which apply over it.
      if (error instanceof KubernetesInvalidError || error instanceof KubernetesForbiddenError) {
        const { uid } = created.metadata;
        await this.delete(refOf(object), uid ? { uid } : {}).catch(() => undefined);
      }
      throw error;
    }
  }

  /**
   * A create is recorded as an Update by "kubler", which keeps owning every field it set: a later
   * apply that stops setting one could then not remove it (kubernetes/kubernetes#99003). Once an
   * apply owns them, that entry goes, by a merge patch of managedFields held to the resourceVersion
   * it was read at (a patch that changes nothing else adds no entry of its own). Done after every
   * apply, not only the one after a create: that one may have failed, or met a controller's write
   * (a Deployment's revision annotation, at once) and been made again by the caller; and before the
   * next apply, since one that drops a field while the entry is there leaves the field owned by nobody.
   */
  async #withoutCreateEntry(written: KubeObject): Promise<KubeObject> {
    let current = written;
    for (let attempt = 1; ; attempt++) {
      const entries = Array.isArray(current.metadata.managedFields)
        ? (current.metadata.managedFields as { manager?: string; operation?: string; subresource?: string }[])
        : [];
      const kept = entries.filter(
        (entry) => !(entry.manager === FIELD_MANAGER && entry.operation === "Update" && !entry.subresource),
      );
      // An empty list would be ignored by the API server, not written.
      if (kept.length === entries.length || kept.length === 0) return current;
      const ref = refOf(current);
      const { uid, resourceVersion } = current.metadata;
      try {
        return await this.#call("drop the create's field manager of", describeRef(ref), () =>
          this.#objects.mergePatch(ref, { metadata: { managedFields: kept, uid, resourceVersion } }),
        );
      } catch (error) {
        // A controller's status write since is the usual reason: read again and drop it from that.
        // The apply itself landed: a write that keeps winning leaves the entry to the next apply.
        if (!(error instanceof KubernetesConflictError)) throw error;
        const now = attempt < 3 ? await this.get(ref) : null;
        if (!now || now.metadata.uid !== uid) return written;
        current = now;
      }
    }
  }

  /**
   * The apply over what `create` made, held to it. A controller writing its status meanwhile (a Job's
   * or a Deployment's, at once) is no reason to give up: held again to that, up to a few times. Any
   * other write since (another deploy's) is the 409 the caller reads again for.
   */
  async #applyOverCreated(object: KubeObject, created: KubeObject): Promise<KubeObject> {
    let over = created;
    for (let attempt = 1; ; attempt++) {
      try {
        return await this.apply(writtenOver(object, over.metadata));
      } catch (error) {
        if (!(error instanceof KubernetesConflictError) || attempt >= 3) throw error;
        const now = await this.get(refOf(object));
        if (!now || !sameButStatus(now, over)) throw error;
        over = now;
      }
    }
  }

  async readLog(
    ref: { namespace: string; pod: string; container?: string },
    options: { tailLines?: number } = {},
  ): Promise<string | null> {
    const target = `log of Pod ${ref.namespace}/${ref.pod}${ref.container ? ` (${ref.container})` : ""}`;
    try {
      return await this.#call("read", target, () =>
        this.#core.readNamespacedPodLog({
          name: ref.pod,
          namespace: ref.namespace,
          ...(ref.container ? { container: ref.container } : {}),
          ...(options.tailLines !== undefined ? { tailLines: options.tailLines } : {}),
        }),
      );
    } catch (error) {
      if (error instanceof KubernetesNotFoundError) return null;
      throw error;
    }
  }

  async delete(
    ref: ObjectRef,
    preconditions?: { uid?: string; resourceVersion?: string },
  ): Promise<"deleted" | "absent"> {
    const given = Object.fromEntries(
      Object.entries(preconditions ?? {}).filter(([, value]) => value !== undefined),
    );
    // https://kubernetes.io/docs/concepts/architecture/garbage-collection/#background-deletion
    const options: V1DeleteOptions = {
      propagationPolicy: "Background",
      ...(Object.keys(given).length > 0 ? { preconditions: given } : {}),
    };
    try {
      await this.#call("delete", describeRef(ref), () => this.#objects.deleteObject(ref, options));
      return "deleted";
    } catch (error) {
      // Also on a retry: the attempt that timed out or got a 5xx may have deleted it.
      if (error instanceof KubernetesNotFoundError) return "absent";
      if (error instanceof KubernetesConflictError) return this.#alreadyDeleting(ref, preconditions, error);
      throw error;
    }
  }

  async removeFinalizers(
    ref: ObjectRef,
    { uid, resourceVersion }: { uid: string; resourceVersion: string },
    { keep = [] }: { keep?: readonly string[] } = {},
  ): Promise<"removed" | "absent"> {
    // null deletes the list (RFC 7386); a list replaces it whole, which the resourceVersion makes the
    // one read less the removed; uid and resourceVersion in a patch are preconditions.
    const finalizers = keep.length > 0 ? [...keep] : null;
    const patch = { metadata: { finalizers, uid, resourceVersion } };
    try {
      await this.#call("remove finalizers of", describeRef(ref), () => this.#objects.mergePatch(ref, patch));
      return "removed";
    } catch (error) {
      // Also on a retry: the attempt that timed out may have released it, and it went.
      if (error instanceof KubernetesNotFoundError) return "absent";
      throw error;
    }
  }

  /**
   * A 409 on delete is a failed precondition, or (for a namespace) "already Terminating", which is
   * what was asked for: the API answers a second delete of a namespace still being emptied with a
   * Conflict (pkg/registry/core/namespace/storage). Reading the object tells the two apart.
   */
  async #alreadyDeleting(
    ref: ObjectRef,
    preconditions: { uid?: string; resourceVersion?: string } | undefined,
    conflict: KubernetesConflictError,
  ): Promise<"deleted" | "absent"> {
    const current = await this.get(ref);
    if (!current) return "absent";
    const deleting = Boolean(current.metadata.deletionTimestamp);
    const same = preconditions?.uid === undefined || preconditions.uid === current.metadata.uid;
    if (deleting && same) return "deleted";
    throw conflict;
  }

  async createToken(
    ref: { namespace: string; serviceAccount: string },
    options: { audiences: string[]; expirationSeconds: number },
  ): Promise<{ token: string; expiresAt: Date }> {
    const target = `ServiceAccount ${ref.namespace}/${ref.serviceAccount}`;
    const request = await this.#call("create token for", target, () =>
      this.#core.createNamespacedServiceAccountToken({
        name: ref.serviceAccount,
        namespace: ref.namespace,
        body: {
          apiVersion: "authentication.k8s.io/v1",
          kind: "TokenRequest",
          spec: { audiences: options.audiences, expirationSeconds: options.expirationSeconds },
        },
      }),
    );
    const token = request.status?.token;
    const expiresAt = new Date(request.status?.expirationTimestamp ?? Number.NaN);
    if (!token || Number.isNaN(expiresAt.getTime())) {
      throw new KubernetesUnavailableError(
        `create token for ${target}: the TokenRequest came back without a token or an expiry`,
        200,
      );
    }
    return { token, expiresAt };
  }

  /**
   * Runs `send` until it succeeds, fails in a way that will not change, or `maxAttempts` is spent
   * (or, inside `withDeadline`, the deadline leaves no time for another attempt).
   * Retrying a create is safe here: apply is idempotent, a TokenRequest just mints another token,
   * delete reports a 404 as "absent", and a create whose earlier attempt got through answers 409,
   * which its callers take as "already there".
   */
  async #call<T>(verb: string, target: string, send: () => Promise<T>): Promise<T> {
    const deadline = this.#deadline.getStore();
    if (deadline) deadline.at ??= this.#now() + deadline.ms;
    let last: Transient | undefined;
    let attempt = 1;
    for (; attempt <= this.#maxAttempts; attempt++) {
      let timeoutMs = this.#timeoutMs;
      if (last) {
        const wait = this.#delayBefore(attempt, last);
        // The server's own figure decides, not the capped wait: retrying before it is due would
        // likely be throttled again.
        if (deadline && !this.#fits(deadline, Math.max(wait, last.retryAfterMs ?? 0) + timeoutMs)) break;
        await this.#sleep(wait);
      }
      if (deadline) {
        const left = (deadline.at as number) - this.#now();
        if (left <= 0) {
          throw new KubernetesUnavailableError(
            `${verb} ${target}: the ${deadline.ms} ms deadline for this request's Kubernetes calls has passed`,
            0,
          );
        }
        timeoutMs = Math.min(timeoutMs, left);
      }
      const outcome = await this.#attempt(send, timeoutMs).then(
        (value) => ({ value }),
        (error: unknown) => ({ problem: classify(error, verb, target, timeoutMs) }),
      );
      if ("value" in outcome) return outcome.value;
      if (!isTransient(outcome.problem)) throw outcome.problem;
      last = outcome.problem;
    }
    const attempts = attempt - 1;
    const why =
      attempts < this.#maxAttempts && deadline
        ? `, with no time for another within the ${deadline.ms} ms deadline${
            last?.retryAfterMs !== undefined ? ` (Retry-After: ${Math.ceil(last.retryAfterMs / 1000)} s)` : ""
          }`
        : "";
    throw new KubernetesUnavailableError(
      `${verb} ${target} failed after ${attempts} attempt(s)${why}; last problem: ${last?.reason}`,
      last?.status ?? 0,
    );
  }

  /** Whether `ms` from now is still before the deadline. */
  #fits(deadline: Deadline, ms: number): boolean {
    return this.#now() + ms <= (deadline.at as number);
  }

  /** One try, bounded by `timeoutMs` even when the time goes to authentication, not to a socket. */
  async #attempt<T>(send: () => Promise<T>, timeoutMs: number): Promise<T> {
    const controller = new AbortController();
    let timer: NodeJS.Timeout | undefined;
    const timedOut = new Promise<never>((_, reject) => {
      timer = setTimeout(() => {
        const error = new AttemptTimeoutError();
        controller.abort(error);
        reject(error);
      }, timeoutMs);
    });
    try {
      return await Promise.race([this.#attemptSignal.run(controller.signal, send), timedOut]);
    } finally {
      clearTimeout(timer);
    }
  }

  /**
   * The keep-alive agent to send with instead of `given`, the one client-node made for the request:
   * one per cluster, of the same class, with the same TLS options. A proxy's agent (a subclass) is
   * left as it is.
   */
  #keepAlive(given: HttpAgent | undefined): HttpAgent | undefined {
    const Agent = given?.constructor;
    if (!given || (Agent !== HttpAgent && Agent !== HttpsAgent)) return given;
    const options = optionsOf(given);
    // Only the options set: an undefined `rejectUnauthorized` would turn certificate checks off.
    const tls = Object.fromEntries(
      TLS_OPTIONS.flatMap((name) => (options[name] === undefined ? [] : [[name, options[name]]])),
    );
    const current = this.#agent;
    if (
      current?.constructor === Agent &&
      TLS_OPTIONS.every((name) => isDeepStrictEqual(optionsOf(current)[name], tls[name]))
    ) {
      return current;
    }
    if (current) retire(current);
    this.#agent = new (Agent as typeof HttpAgent)({ ...tls, keepAlive: true });
    return this.#agent;
  }

  /** Full jitter (https://aws.amazon.com/blogs/architecture/exponential-backoff-and-jitter/), or the server's `Retry-After`. */
  #delayBefore(attempt: number, last: Transient): number {
    if (last.retryAfterMs !== undefined) return Math.min(MAX_DELAY_MS, last.retryAfterMs);
    const ceiling = Math.min(MAX_DELAY_MS, this.#baseDelayMs * 2 ** (attempt - 2));
    return Math.floor(this.#random() * ceiling);
  }
}

/**
 * KubernetesObjectApi with its discovery, authentication and transport, but objects kept as the
 * API's JSON: its typed (de)serializer drops fields its models lack (newer fields, and any custom
 * resource whose kind shares a built-in's name) and turns timestamps into Dates. The casts below are
 * that difference: client-node types its answers as its models, processResponse returns the JSON.
 */
class PlainObjectApi extends KubernetesObjectApi {
  constructor(configuration: Configuration, kubeConfig: KubeConfig) {
    super(configuration);
    this.setDefaultNamespace(kubeConfig);
  }

  async get(ref: ObjectRef): Promise<KubeObject> {
    return (await this.read(headerOf(ref))) as unknown as KubeObject;
  }

  async listPage(
    apiVersion: string,
    kind: string,
    options: ListOptions,
  ): Promise<{ items?: KubeObject[]; metadata?: { continue?: string } }> {
    const { namespace, labelSelector, limit } = options;
    const list = await this.list(
      apiVersion,
      kind,
      namespace,
      undefined,
      undefined,
      undefined,
      undefined,
      labelSelector,
      limit,
      options.continue,
    );
    return list as unknown as { items?: KubeObject[]; metadata?: { continue?: string } };
  }

  async deleteObject(ref: ObjectRef, options: V1DeleteOptions): Promise<void> {
    await this.delete(headerOf(ref), undefined, undefined, undefined, undefined, undefined, options);
  }

  /** POST as plain JSON: client-node's create would pass the body through its typed models. */
  async createObject(object: KubeObject): Promise<KubeObject> {
    const { apiVersion, kind, metadata } = object;
    const header = headerOf({ apiVersion, kind, name: metadata.name, namespace: metadata.namespace });
    const path = await this.specUriPath(header, "create");
    const body = { ...object, metadata: { ...object.metadata, namespace: header.metadata.namespace } };
    const context = this.configuration.baseServer.makeRequestContext(path, HttpMethod.POST);
    context.setHeaderParam("Accept", "application/json");
    context.setHeaderParam("Content-Type", "application/json");
    context.setQueryParam("fieldManager", FIELD_MANAGER);
    context.setBody(JSON.stringify(body));
    return (await this.requestPromise(context)) as unknown as KubeObject;
  }

  /** A JSON merge patch (RFC 7386), sent as is: client-node's patch would pass it through its typed models. */
  async mergePatch(ref: ObjectRef, patch: Record<string, unknown>): Promise<KubeObject> {
    const path = await this.specUriPath(headerOf(ref), "patch");
    const context = this.configuration.baseServer.makeRequestContext(path, HttpMethod.PATCH);
    context.setHeaderParam("Accept", "application/json");
    context.setHeaderParam("Content-Type", PatchStrategy.MergePatch);
    context.setQueryParam("fieldManager", FIELD_MANAGER);
    context.setBody(JSON.stringify(patch));
    return (await this.requestPromise(context)) as unknown as KubeObject;
  }

  /** Server-side apply: https://kubernetes.io/docs/reference/using-api/server-side-apply/ */
  async apply(object: KubeObject): Promise<KubeObject> {
    const { apiVersion, kind, metadata } = object;
    const header = headerOf({ apiVersion, kind, name: metadata.name, namespace: metadata.namespace });
    const path = await this.specUriPath(header, "patch");
    // specUriPath fills in a namespaced kind's missing namespace: the body must name the same one.
    const body = { ...object, metadata: { ...object.metadata, namespace: header.metadata.namespace } };
    const context = this.configuration.baseServer.makeRequestContext(path, HttpMethod.PATCH);
    context.setHeaderParam("Accept", "application/json");
    context.setHeaderParam("Content-Type", PatchStrategy.ServerSideApply);
    context.setQueryParam("fieldManager", FIELD_MANAGER);
    context.setQueryParam("force", "true");
    context.setBody(JSON.stringify(body));
    return (await this.requestPromise(context)) as unknown as KubeObject;
  }

  protected override async specUriPath(
    spec: KubernetesObject,
    action: Parameters<KubernetesObjectApi["specUriPath"]>[1],
  ): Promise<string> {
    try {
      return await super.specUriPath(spec, action);
    } catch (error) {
      // No such group/version (404 on discovery) or no such kind in it: the request cannot succeed.
      if (error instanceof ApiException && error.code === 404) throw new UnknownKindError(spec);
      if (error instanceof Error && error.message.startsWith("Unrecognized API version and kind")) {
        throw new UnknownKindError(spec);
      }
      throw error;
    }
  }

  protected override async processResponse<T>(response: ResponseContext): Promise<T> {
    const text = await response.body.text();
    if (response.httpStatusCode >= 200 && response.httpStatusCode <= 299)
      return (text ? JSON.parse(text) : {}) as T;
    throw new ApiException(response.httpStatusCode, "Unsuccessful HTTP Request", text, response.headers);
  }
}

/**
 * client-node's transport without node-fetch: node:http(s) straight onto the request's agent and
 * AbortSignal, the answer read whole. node-fetch's Headers, Body streams and bookkeeping were about
 * a fifth of the client's CPU per call; what else it did, following redirects and asking for gzip,
 * the API server needs neither (it compresses only for clients that ask).
 */
const nodeHttp: PromiseHttpLibrary = {
  send: (context) =>
    new Promise((resolve, reject) => {
      const url = new URL(context.getUrl());
      const body = context.getBody();
      if (body !== undefined && typeof body !== "string" && !Buffer.isBuffer(body)) {
        throw new Error("only string and Buffer request bodies are supported");
      }
      const headers: Record<string, string | number> = { ...context.getHeaders() };
      if (body !== undefined) headers["Content-Length"] = Buffer.byteLength(body);
      const signal = context.getSignal();
      const agent = context.getAgent();
      const request = (url.protocol === "https:" ? httpsRequest : httpRequest)(
        url,
        {
          method: context.getHttpMethod(),
          headers,
          ...(agent ? { agent } : {}),
          ...(signal ? { signal } : {}),
        },
        (response) => {
          const chunks: Buffer[] = [];
          response.on("data", (chunk: Buffer) => chunks.push(chunk));
          response.on("error", reject);
          response.on("close", () => {
            if (!response.complete)
              reject(Object.assign(new Error("the answer was cut off"), { code: "ECONNRESET" }));
          });
          response.on("end", () => {
            const data = Buffer.concat(chunks);
            resolve(
              new ResponseContext(response.statusCode ?? 0, flatHeaders(response.headers), {
                text: async () => data.toString("utf8"),
                binary: async () => data,
              }),
            );
          });
        },
      );
      request.on("error", reject);
      request.end(body);
    }),
};

function flatHeaders(headers: IncomingHttpHeaders): Record<string, string> {
  const flat: Record<string, string> = {};
  for (const [name, value] of Object.entries(headers)) {
    if (value !== undefined) flat[name] = Array.isArray(value) ? value.join(", ") : value;
  }
  return flat;
}

class AttemptTimeoutError extends Error {
  override readonly name = "AttemptTimeoutError";
}

class UnknownKindError extends Error {
  override readonly name = "UnknownKindError";
  constructor(spec: { apiVersion?: string; kind?: string }) {
    super(`the server serves no kind ${spec.kind} in ${spec.apiVersion} (is its CRD installed?)`);
  }
}

/** A failure worth another attempt. */
interface Transient {
  reason: string;
  /** The HTTP status, or 0 when there was no answer. */
  status: number;
  retryAfterMs?: number;
}

function isTransient(problem: Transient | KubernetesError): problem is Transient {
  return !(problem instanceof Error);
}

/**
 * How k8s.io/apiserver words an admission plugin's 403 refusing the object itself: a webhook's
 * (`admission webhook "<name>" denied the request…`, webhook/errors ToStatusErr), a
 * ValidatingAdmissionPolicy's (`ValidatingAdmissionPolicy '<policy>' with binding '<binding>' denied
 * request: …`, policy/validating; 403 only for a validation whose reason is Forbidden, the default
 * Invalid being a 422) and ResourceQuota's (`… is forbidden: exceeded quota: …`). Other 403s are not
 * about the object: Kubler's own RBAC (`User "…" cannot patch resource …`), RBAC's escalation check,
 * a namespace being deleted.
 */
const ADMISSION_DENIAL =
  /admission webhook "[^"]*" denied the request|ValidatingAdmissionPolicy '[^']*' with binding '[^']*' denied request|is forbidden: exceeded quota: /;

/**
 * The named error for an answer that will not change, or the transient problem to retry. Messages
 * come from the API's Status, never from client-node's, which carry the response headers.
 */
function classify(
  error: unknown,
  verb: string,
  target: string,
  timeoutMs: number,
): Transient | KubernetesError {
  if (error instanceof ApiException) {
    const status = error.code;
    const { message, causes } = readStatus(error.body);
    const text = message ?? `${verb} ${target}: HTTP ${status}`;
    if (status === 429 || status >= 500) {
      return {
        reason: `HTTP ${status}: ${text}`,
        status,
        retryAfterMs: retryAfterMs(error.headers?.["retry-after"]),
      };
    }
    if (status === 404) return new KubernetesNotFoundError(text, status);
    if (status === 409) return new KubernetesConflictError(text, status);
    if (status === 403 && ADMISSION_DENIAL.test(text))
      return new KubernetesAdmissionDeniedError(text, status);
    if (status === 401 || status === 403) return new KubernetesForbiddenError(text, status);
    const missing = causes.filter((cause) => !text.includes(cause));
    return new KubernetesInvalidError(missing.length > 0 ? `${text}: ${missing.join("; ")}` : text, status);
  }
  if (error instanceof AttemptTimeoutError || (error instanceof Error && error.name === "AbortError")) {
    return { reason: `no answer within ${timeoutMs} ms`, status: 0 };
  }
  if (error instanceof UnknownKindError)
    return new KubernetesInvalidError(`${verb} ${target}: ${error.message}`, 404);
  const code = networkCode(error);
  if (code !== undefined && RETRYABLE_NETWORK_CODES.has(code)) {
    return { reason: `connection failed (${code})`, status: 0 };
  }
  // Anything else (a TLS or kubeconfig problem, an exec credential plugin failing) fails the same way again.
  return new KubernetesUnavailableError(`${verb} ${target}: ${messageOf(error)}`, 0);
}

/** The `message` and `details.causes` of a Kubernetes Status body. */
function readStatus(body: unknown): { message?: string; causes: string[] } {
  let status: unknown = body;
  if (typeof body === "string") {
    try {
      status = JSON.parse(body);
    } catch {
      const text = body.trim();
      return text ? { message: text.slice(0, 300), causes: [] } : { causes: [] };
    }
  }
  if (typeof status !== "object" || status === null) return { causes: [] };
  const { message, details } = status as {
    message?: unknown;
    details?: { causes?: { field?: unknown; message?: unknown }[] };
  };
  const causes = (Array.isArray(details?.causes) ? details.causes : []).flatMap((cause) => {
    if (typeof cause?.message !== "string") return [];
    return [
      typeof cause.field === "string" && cause.field ? `${cause.field}: ${cause.message}` : cause.message,
    ];
  });
  return typeof message === "string" && message ? { message, causes } : { causes };
}

/** Closes an agent's idle connections now and its busy ones once their answer is in. */
function retire(agent: HttpAgent): void {
  agent.maxFreeSockets = 0;
  for (const sockets of Object.values(agent.freeSockets))
    for (const socket of sockets ?? []) socket.destroy();
}

/** The options an agent was made with (node:http keeps them, untyped). */
function optionsOf(agent: HttpAgent): Record<string, unknown> {
  return (agent as HttpAgent & { options: Record<string, unknown> }).options;
}

function headerOf(ref: ObjectRef): {
  apiVersion: string;
  kind: string;
  metadata: { name: string; namespace?: string };
} {
  return {
    apiVersion: ref.apiVersion,
    kind: ref.kind,
    metadata: ref.namespace === undefined ? { name: ref.name } : { name: ref.name, namespace: ref.namespace },
  };
}

function refOf({ apiVersion, kind, metadata }: KubeObject): ObjectRef {
  return { apiVersion, kind, name: metadata.name, namespace: metadata.namespace };
}

/** The same object (uid) with nothing but its status (and so its resourceVersion) written since. */
function sameButStatus(now: KubeObject, before: KubeObject): boolean {
  const rest = ({ status: _status, metadata, ...object }: KubeObject) => {
    const { resourceVersion: _rv, managedFields: _fields, ...meta } = metadata;
    return { ...object, metadata: meta };
  };
  return now.metadata.uid === before.metadata.uid && isDeepStrictEqual(rest(now), rest(before));
}

function describeRef(ref: { kind: string; name: string; namespace?: string | undefined }): string {
  return `${ref.kind} ${ref.namespace ? `${ref.namespace}/` : ""}${ref.name}`;
}

/** `scheme://user:password@host` (or unparsed, `user@` before the first `/`, `?` or `#`). */
const USERINFO = /^([a-z][a-z0-9+.-]*:[/\\]{2})[^/\\?#]*@/i;

function hasUserinfo(server: string): boolean {
  if (USERINFO.test(server)) return true;
  if (!URL.canParse(server)) return false;
  const url = new URL(server);
  return Boolean(url.username || url.password);
}

/** `server` as given, less its `user:password@`. */
function withoutUserinfo(server: string): string {
  const stripped = server.replace(USERINFO, "$1");
  if (!hasUserinfo(stripped)) return stripped;
  const url = new URL(stripped);
  url.username = "";
  url.password = "";
  return url.href;
}
