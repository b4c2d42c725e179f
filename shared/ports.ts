/**
 * Ports: the interfaces the use cases depend on, named by role. Adapters (AWS, Kubernetes) and the
 * embedded default (`shared/local/`) implement them; tests use the fakes in `test/fakes/`.
 */
import type { AuditRecord } from "./domain/audit.js";
import type { BusEntry, Detail } from "./domain/catalog.js";
import type { JobClaims } from "./domain/job-claims.js";
import type { KubeObject, ObjectRef } from "./domain/kube-object.js";
import type { AssumeRoleRequest } from "./domain/sts-session.js";

export type { KubeObject, ObjectRef };

/**
 * Publishes catalog events on the bus. Resolves with one event id per entry, in order, once every
 * entry is accepted; rejects with `PublishError` when some entries still failed after bounded retries.
 *
 * @example
 * const [id] = await publisher.publish([{ detailType: "Push", detail }]);
 */
export interface EventPublisher {
  publish(entries: readonly BusEntry[]): Promise<string[]>;
}

/**
 * What `DedupeStore.reserve` found: the key is now the caller's ("reserved"), its work was done
 * before ("duplicate"), or another caller holds a live lease on it and may still fail ("in-flight").
 */
export type Reservation = "reserved" | "duplicate" | "in-flight";

/**
 * Remembers delivery keys (GitLab's `Idempotency-Key`) so a retried or resent webhook is published once.
 * A key guarding work that can fail is reserved (a short lease), confirmed once the work is done and
 * released if it failed: a resend that arrives meanwhile is told to retry, never that it is a duplicate,
 * and a lease left by a caller that died expires instead of blocking the key for the whole TTL.
 *
 * @example
 * const reservation = await dedupe.reserve(key, 60); // "reserved" | "duplicate" | "in-flight"
 * try { await publish(); } catch (e) { await dedupe.release(key); throw e; }
 * await dedupe.confirm(key, 3 * 86_400);
 */
export interface DedupeStore {
  /**
   * Claims `key` for `ttlSeconds`, final at once. True when this caller is the first; false when the
   * key is claimed, reserved or confirmed.
   */
  claim(key: string, ttlSeconds: number): Promise<boolean>;
  /** Holds `key` for `leaseSeconds` while the caller does the work it guards. */
  reserve(key: string, leaseSeconds: number): Promise<Reservation>;
  /** Makes a reserved key final for `ttlSeconds`, once its work is done. */
  confirm(key: string, ttlSeconds: number): Promise<void>;
  /** Forgets a claim, so that a resend of a delivery we failed to publish is accepted. */
  release(key: string): Promise<void>;
}

/**
 * Writes one structured audit line per decision (DESIGN §9).
 *
 * @example
 * audit.record({ action: "webhook.receive", outcome: "ignored", reason: "...", ... });
 */
export interface AuditLog {
  record(record: AuditRecord): void;
  /** A secret learned after start-up (read from Secrets Manager): redacted from every later record. */
  redactAlso?(secret: string): void;
}

/** The time source; injected so decisions are testable. */
export interface Clock {
  now(): Date;
}

/** Makes unique ids (event ids, correlation ids). */
export type IdGenerator = () => string;

export interface ListOptions {
  namespace?: string;
  labelSelector?: string;
  /** Page size; the API may return fewer. */
  limit?: number;
  /** The token of the previous page. */
  continue?: string;
}

export interface ListPage {
  items: KubeObject[];
  /** Null on the last page. */
  continue: string | null;
}

/**
 * The Kubernetes API as the environment steps need it (DESIGN §6). Errors are the named Kubernetes
 * errors of `shared/errors.ts` (`KubernetesNotFoundError`, `…ConflictError`, `…ForbiddenError`,
 * `…InvalidError`, `…UnavailableError`) carrying the API's message; throttling and 5xx are retried
 * by the adapter before they surface.
 *
 * @example
 * const ns = await cluster.get({ apiVersion: "v1", kind: "Namespace", name: "group-app-review-x-1a2b3c4d" });
 * await cluster.apply(deployment); // server-side apply, fieldManager "kubler", forced
 */
export interface EnvironmentCluster {
  /** The object, or null when it does not exist. */
  get(ref: ObjectRef): Promise<KubeObject | null>;
  /** One page of a list; follow `continue` for the next. */
  list(apiVersion: string, kind: string, options?: ListOptions): Promise<ListPage>;
  /** Server-side apply (`fieldManager: kubler`, `force`): creates or updates; returns what is stored. */
  apply(object: KubeObject): Promise<KubeObject>;
  /**
   * Deletes, only if the object still has the given uid / resourceVersion when they are set, so an
   * object replaced since it was read is never deleted. "absent" when it was already gone.
   */
  delete(
    ref: ObjectRef,
    preconditions?: { uid?: string; resourceVersion?: string },
  ): Promise<"deleted" | "absent">;
  /** A TokenRequest for a ServiceAccount; the API may shorten the lifetime, so read `expiresAt`. */
  createToken(
    ref: { namespace: string; serviceAccount: string },
    options: { audiences: string[]; expirationSeconds: number },
  ): Promise<{ token: string; expiresAt: Date }>;
}

/**
 * What is left of the one deadline a request's calls share (`KubernetesCluster.withDeadline`, counted
 * from its first call), so work the request waits on elsewhere (GitLab's reads in a deploy) ends by
 * it too. Null outside such a deadline: nothing bounds the request but its calls' own limits.
 *
 * @example
 * const left = cluster.remainingMs(); // 12_400, 0 once it has passed, or null
 */
export interface RequestDeadline {
  remainingMs(): number | null;
}

/**
 * Releases an object from finalizers others set on it, as replacing one of Kubler's own objects needs
 * (a CI job may hold `kubler-last-good` with one: DESIGN §6): a merge patch emptying
 * `metadata.finalizers`, held to the uid and resourceVersion read (`KubernetesConflictError`, 409, when
 * it was written since). An object being deleted then goes. Its own port rather than a new
 * `EnvironmentCluster` method, so the environment steps' other test doubles need not change.
 *
 * `keep`: the finalizers (as read, with that resourceVersion) to leave in place, when only one's own
 * is to go (Kubler's on its build Jobs: `BUILD_FINALIZER`); none: every finalizer goes.
 *
 * @example
 * await cluster.removeFinalizers(ref, { uid, resourceVersion }); // "removed", or "absent" when it is gone
 * await cluster.removeFinalizers(ref, { uid, resourceVersion }, { keep: ["example.com/hold"] });
 */
export interface FinalizerRemover {
  removeFinalizers(
    ref: ObjectRef,
    preconditions: { uid: string; resourceVersion: string },
    options?: { keep?: readonly string[] },
  ): Promise<"removed" | "absent">;
}

/**
 * Writes an object read absent, and only if it still is: a server-side apply creates or updates
 * alike, so a write meant to create an object would land over one written since (another deploy of the
 * environment adding it too). Created (409 `KubernetesConflictError` when one of its name exists,
 * Terminating ones included), then applied over exactly what was created (409 when written in
 * between, a controller's status write aside), so its fields belong to Kubler's apply manager as
 * every later apply's do; the create's own field-manager entry is then dropped, so a later revision
 * that stops setting a field removes it.
 *
 * @example
 * try { await cluster.createApplied(configMap); } catch (e) { if (e instanceof KubernetesConflictError) read again }
 */
export interface AbsentObjectWriter {
  createApplied(object: KubeObject): Promise<KubeObject>;
}

/**
 * The Kubernetes API as builds need it (DESIGN §7): the build Jobs' namespace, the Jobs (and the
 * release of Kubler's finalizer on them), and their pods' status and logs. Same errors and retries
 * as `EnvironmentCluster`.
 *
 * @example
 * try { await cluster.create(job); } catch (e) { if (!(e instanceof KubernetesConflictError)) throw e; }
 * const tail = await cluster.readLog({ namespace: "kubler-builds", pod, container: "build" }, { tailLines: 20 });
 */
export interface BuildCluster
  extends Pick<EnvironmentCluster, "get" | "list" | "apply" | "delete">,
    FinalizerRemover {
  /**
   * Creates the object; one of the same name already there is `KubernetesConflictError` (409), also
   * when an earlier attempt of this very call created it (a create retried after a timeout).
   */
  create(object: KubeObject): Promise<KubeObject>;
  /** The last `tailLines` lines of a pod container's log, or null when the pod is gone. */
  readLog(
    ref: { namespace: string; pod: string; container?: string },
    options?: { tailLines?: number },
  ): Promise<string | null>;
}

/** Where a client reaches the cluster: what the kubeconfig handed to a CI job needs. */
export interface ClusterEndpoint {
  server: string;
  /** The CA bundle, base64 PEM as in a kubeconfig; null when the system's CAs apply. */
  certificateAuthorityData: string | null;
  /** Kubler's own kubeconfig skips TLS verification (the embedded local cluster over http). */
  insecureSkipTlsVerify: boolean;
}

/**
 * The cluster as job credentials need it (DESIGN §5): read the namespace (list: to find a renamed
 * project's by its labels), apply the job's ServiceAccount and RoleBinding, request a token, and say
 * where the API server is. Its own port
 * rather than a new `EnvironmentCluster` method, so the environment steps' test doubles need not change.
 *
 * @example
 * const { server } = cluster.endpoint();
 * const { token, expiresAt } = await cluster.createToken({ namespace, serviceAccount }, { audiences: [], expirationSeconds: 900 });
 */
export interface CredentialsCluster
  extends Pick<EnvironmentCluster, "get" | "list" | "apply" | "createToken"> {
  endpoint(): ClusterEndpoint;
}

/**
 * Verifies a GitLab CI ID token (signature, algorithm, issuer, audience, times) and reads its claims.
 * Refusals are `TokenRejectedError` (401, with a reason code); an unreachable JWKS is `UnavailableError`.
 * Replays are the caller's to catch (through `DedupeStore`), once the token is known to be genuine.
 *
 * @example
 * const claims = await verifier.verify(bearer); // JobClaims, or throws TokenRejectedError("expired", ...)
 */
export interface IdTokenVerifier {
  verify(token: string): Promise<JobClaims>;
}

/** Temporary AWS credentials. */
export interface AwsCredentials {
  accessKeyId: string;
  secretAccessKey: string;
  sessionToken: string;
  expiresAt: Date;
  /** The assumed-role ARN STS reports (`arn:aws:sts::…:assumed-role/<role>/gl-302`). */
  assumedRoleArn: string | null;
}

/**
 * Turns an AssumeRole request into temporary credentials: STS in AWS, a clearly labelled local issuer
 * otherwise. STS refusals come back as named errors (`ForbiddenError` for AccessDenied,
 * `UnprocessableError` for a packed policy too large or a disabled region, `UnavailableError` for
 * throttling), with messages that say what to fix.
 *
 * @example
 * const credentials = await issuer.assumeRole(buildAssumeRoleRequest({ aws, claims, environment, namespace, now }));
 */
export interface CredentialIssuer {
  /** "sts", or "local" for credentials that are not valid for AWS: shown in every answer. */
  readonly kind: "sts" | "local";
  assumeRole(request: AssumeRoleRequest): Promise<AwsCredentials>;
}

/** GitLab's commit status states Kubler reports (DESIGN §8). */
export type CommitState = "pending" | "running" | "success" | "failed" | "canceled";

/** One status of a commit: `kubler/<environment>` on the SHA, linking to the environment. */
export interface CommitStatus {
  projectId: number;
  projectPath: string;
  sha: string;
  state: CommitState;
  /** `kubler/<environment>`: one status per environment, moved through its states. */
  name: string;
  /** The branch or tag, so GitLab attaches the status to that ref's pipeline; null when unknown. */
  ref: string | null;
  pipelineId: number | null;
  /** The environment's URL, when known. */
  targetUrl: string | null;
  description: string;
}

/**
 * Which status: a name on a commit, of a ref when one is known, or of the pipeline that set it
 * (`pipelineId`: GitLab keeps such statuses under the pipeline's ref, not the one Kubler knows).
 */
export type CommitStatusKey = Pick<CommitStatus, "projectId" | "projectPath" | "sha" | "name" | "ref"> &
  Partial<Pick<CommitStatus, "pipelineId">>;

/** The newest status of a name, as GitLab lists it. */
export interface LatestCommitStatus {
  /** A GitLab state, so it may be one Kubler never sets (`skipped`, `created`, `manual`, …). */
  state: string;
  /**
   * When it last moved, so when a finished status finished: the latest of GitLab's `created_at`,
   * `started_at` and `finished_at`. Null when no time is known.
   */
  at: Date | null;
}

/**
 * Sets commit statuses: GitLab's API in AWS (and locally when a GitLab is configured), a clearly
 * labelled JSONL file otherwise. Errors are `ConfigError` (a token or `GITLAB_URL` GitLab cannot be
 * reached with), `UnavailableError` (still failing after bounded retries), `GoneError` (GitLab no
 * longer has the commit or pipeline) or `Error` (GitLab refused).
 *
 * @example
 * const latest = await statuses.latest(key); // { state: "success", at: 2026-11-21T10:00:00.412Z }
 * if (latest?.state !== "success") await statuses.set({ ...key, state: "running", ... });
 */
export interface CommitStatuses {
  set(status: CommitStatus): Promise<"set" | "unchanged">;
  /** The newest status of that name, null when there is none. */
  latest(key: CommitStatusKey): Promise<LatestCommitStatus | null>;
}

/**
 * One-time schedules that stop an environment at its expiry (EventBridge Scheduler in AWS, timers
 * locally). Keyed by the environment's namespace, so a redeploy moves the schedule instead of adding one.
 *
 * @example
 * await scheduler.scheduleStop(namespace, expiresAt, stopDetail); // creates or moves
 * await scheduler.cancel(namespace); // already gone is fine
 */
export interface Scheduler {
  scheduleStop(name: string, at: Date, detail: Detail<"Environment Stop Requested">): Promise<void>;
  cancel(name: string): Promise<void>;
}

/**
 * Reads a project's Kubler files at a commit: the GitLab API in AWS, a directory locally.
 *
 * @example
 * const project = await source.read({ projectId: 15, projectPath: "group/app" }, sha, "deploy/");
 */
export interface ManifestSource {
  /** `kubler.yaml` at `sha`, or null when the project has none. */
  readManifest(project: { projectId: number; projectPath: string }, sha: string): Promise<string | null>;
  /**
   * `kubler.yaml` on the project's default branch, or null when it has none: plan-steps takes the
   * environment rules from there, never from the event's commit, which anyone who may push a branch
   * writes. May be cached for a minute; `fresh` reads it again. Only plan-steps needs it.
   */
  readDefaultBranchManifest?(
    project: { projectId: number; projectPath: string },
    options?: { fresh?: boolean },
  ): Promise<string | null>;
  /** The manifest files (*.yaml, *.yml, *.json) directly under `directory` at `sha` (path → text). */
  readDirectory(
    project: { projectId: number; projectPath: string },
    sha: string,
    directory: string,
  ): Promise<ReadonlyMap<string, string>>;
}

/**
 * Remembers that an environment was stopped (merge, close, branch deletion, stop job) and as of which
 * GitLab fact, after its namespace is gone: plan-steps and deploy-environment refuse what GitLab sent
 * before the stop, so a late build or a late delivery cannot bring the environment back. The dedupe
 * table in AWS (not the cluster, which plan-steps cannot reach, and where cleanup would have to tell
 * such a record from an environment); in memory locally.
 *
 * @example
 * await stops.record(environmentStopKey(gitlab, "review/x"), factAt, 7 * 86_400);
 * const stoppedAt = await stops.stoppedAt(environmentStopKey(gitlab, "review/x")); // Date | null
 */
export interface EnvironmentStops {
  /**
   * Records a stop as of `factAt`, kept for `ttlSeconds` from `factAt` (not from when it is written: a
   * record redriven late must not outlive a later fact's record, say a reopen after a close), or
   * forever when null. A stop as of an earlier fact never replaces a later one.
   */
  record(key: string, factAt: Date, ttlSeconds: number | null): Promise<void>;
  /** The fact time of the latest recorded stop, or null when there is none (or it expired). */
  stoppedAt(key: string): Promise<Date | null>;
}
