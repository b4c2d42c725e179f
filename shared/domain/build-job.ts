/**
 * Image builds as Kubernetes Jobs (DESIGN §7): the Job's name, its spec (a clone of the project at
 * the SHA, a rootless BuildKit build with no credential in reach, then a push of the result as
 * `<image>:<sha>` with its digest written to the termination message), and how a finished Job is
 * read back. Pure: the cluster is the source of
 * truth, so everything reconcile needs to report a build is on the Job itself.
 */
import { createHash } from "node:crypto";
import type { Detail } from "./catalog.js";
import { environmentSlug, LABEL, MANAGED_BY_KUBLER } from "./environment.js";
import { isProjectImage, projectImages } from "./image-repository.js";
import { clipJson, jsonBytes } from "./json-bytes.js";
import { finalizersOtherThan, type KubeObject } from "./kube-object.js";
import type { KublerManifest } from "./kubler-manifest.js";

/** Rootless BuildKit, pinned: https://github.com/moby/buildkit/blob/master/docs/rootless.md */
export const BUILDKIT_IMAGE = "moby/buildkit:v0.18.2-rootless";
export const GIT_IMAGE = "alpine/git:2.47.2";
/** skopeo, pinned: copies the built OCI archive to the registry and writes the pushed digest. */
export const SKOPEO_IMAGE = "quay.io/skopeo/stable:v1.16.1";
/** The init containers, in order, then the one main container: the Job's steps. */
export const CLONE_CONTAINER = "clone";
/** Runs the project's Dockerfile: it holds no credential, so a build step has none to find. */
export const BUILD_CONTAINER = "build";
/** The only container with the registry credential; its termination message is the digest. */
export const PUSH_CONTAINER = "push";
const STEPS = [CLONE_CONTAINER, BUILD_CONTAINER, PUSH_CONTAINER] as const;

export const BUILD_LABEL = {
  /** Tells build Jobs from anything else Kubler might one day run in the namespace. */
  COMPONENT: "app.kubernetes.io/component",
  SHA: "kubler.dev/sha",
  CORRELATION_ID: "kubler.dev/correlation-id",
} as const;
export const BUILD_COMPONENT = "build";
/** Lists of build Jobs select on this. */
export const BUILD_SELECTOR = `${LABEL.MANAGED_BY}=${MANAGED_BY_KUBLER},${BUILD_LABEL.COMPONENT}=${BUILD_COMPONENT}`;

export const BUILD_ANNOTATION = {
  PROJECT_PATH: "kubler.dev/project-path",
  INSTANCE: "kubler.dev/gitlab-instance",
  SHA: "kubler.dev/sha",
  IMAGE: "kubler.dev/image",
  /**
   * JSON list of the environments waiting for this build, each with its request's ref, pipeline, MR
   * and correlation id: one build per project + SHA may serve several environments.
   */
  REQUESTS: "kubler.dev/build-requests",
  /** JSON list of the environments a `Build Finished` was published for. */
  REPORTED: "kubler.dev/build-reported",
  /**
   * JSON list of the requests (environment, correlation id) that the failed Jobs this one replaced
   * had reported (`replacementAnnotations`): a redelivery of one of them is a repeat, not a new request.
   */
  REPLACED_REPORTS: "kubler.dev/build-replaced-reports",
  /**
   * Names the reconcile call that marked the Job's requests reported (shared/services/named-write.ts):
   * a mark whose answer was lost is known for its own by it. Kept by a request joining the Job (the
   * mark's retry may meet that join), dropped by the reporter's next write.
   */
  REPORTING: "kubler.dev/build-reporting",
} as const;

/**
 * Kubler's finalizer on its build Jobs: the Job holds the only record of who waits for it, so a
 * deletion (`kubectl delete job`) only marks it (deletionTimestamp) until reconcile has told each of
 * them (`Build Finished`) and lets it go. Removed in the step that gives the Job its TTL, so the TTL's
 * deletion is never held. https://kubernetes.io/docs/concepts/overview/working-with-objects/finalizers/
 */
export const BUILD_FINALIZER = "kubler.dev/build-waiters";

/** The key of the git Secret the clone reads its token from (what `build-image` passes as `gitSecret.key`). */
export const GIT_TOKEN_KEY = "token";
/** The key of the registry Secret (a `kubernetes.io/dockerconfigjson` one) the push mounts as its auth file. */
export const REGISTRY_AUTH_KEY = ".dockerconfigjson";

/** Requests one Job remembers; more is a loop somewhere, not real environments. */
export const MAX_BUILD_REQUESTS = 20;
/** Log lines of a failed build that go into `Build Finished` (the detail stays under 8 KB). */
export const FAILURE_LOG_LINES = 20;
/**
 * The most a failed build's reason adds to `Build Finished`, in bytes of its JSON as the detail's
 * 8 KB are counted: characters undercount it (a pip progress bar's "━" is 3 bytes, a colour escape 6).
 */
const MAX_REASON_JSON_BYTES = 3_000;
const MAX_VERDICT_JSON_BYTES = 500;
const LOG_SEPARATOR = "\n--- last log lines ---\n";

const MAX_NAME = 63;
const HASH_LENGTH = 8;

/**
 * The build Job's name: one per GitLab instance, project and SHA, so a second request for the same
 * commit finds the first one's Job (409) instead of building twice. DNS-1123 label, ≤ 63 chars: a
 * readable project part, the SHA's first 12 characters and a hash of the exact triple.
 *
 * @example
 * buildJobName({ instance: "https://gitlab.example.com", projectId: 15, projectPath: "group/app" }, sha);
 * // "build-group-app-da1560886d4f-3f0c2a1b"
 */
export function buildJobName(
  gitlab: { instance: string; projectId: number; projectPath: string },
  sha: string,
): string {
  const hash = createHash("sha256")
    .update(`${gitlab.instance}\n${gitlab.projectId}\n${sha}`)
    .digest("hex")
    .slice(0, HASH_LENGTH);
  const tail = `-${sha.slice(0, 12)}-${hash}`;
  const room = MAX_NAME - "build-".length - tail.length;
  const readable = gitlab.projectPath
    .toLowerCase()
    .replace(/[^a-z0-9]+/g, "-")
    .replace(/^-+/, "")
    .slice(0, room)
    .replace(/-+$/, "");
  return `build${readable ? `-${readable}` : ""}${tail}`;
}

/** One environment waiting for a build. */
export interface BuildRequest {
  environment: string;
  correlationId: string;
  ref: string;
  pipelineId: number | null;
  mrIid: number | null;
  /** Carried to Build Finished (see the catalog's step fields); absent from requests recorded before. */
  factAt?: string | null;
  ttl?: string | null;
  /** Who asked; absent from requests recorded before it was carried. */
  user?: string | null;
  /** Carried to Build Finished, for the deploy's ordering (the catalog's step fields). */
  previousSha?: string | null;
  gitlabAt?: string | null;
}

export interface BuildJobSettings {
  namespace: string;
  /** The Secret holding the token the clone uses (`read_repository`); only its name is in the spec. */
  gitSecret: { name: string; key: string };
  /** A `kubernetes.io/dockerconfigjson` Secret with push access to the image's registry. */
  registrySecret: string;
  /** `KUBLER_BUILD_IMAGES`: the repository template the image must be in; null: any. */
  images?: string | null;
  /** Default 1800: a build still running after this (its evicted pods' time included) is failed by Kubernetes. */
  activeDeadlineSeconds?: number;
  resources?: { requests: Record<string, string>; limits: Record<string, string> };
}

/** Copying an archive to a registry: mostly waiting on the network. */
const PUSH_RESOURCES = {
  requests: { cpu: "100m", memory: "128Mi" },
  limits: { cpu: "1", memory: "512Mi" },
} as const;

export const DEFAULT_BUILD_RESOURCES = {
  requests: { cpu: "500m", memory: "1Gi", "ephemeral-storage": "2Gi" },
  limits: { cpu: "2", memory: "4Gi", "ephemeral-storage": "10Gi" },
} as const;

/**
 * `text` as a label value, or null when it cannot be one (GitLab's `Idempotency-Key`, our UUIDs and
 * a SHA-1 can; a SHA-256 cannot, too long; anything else is still in the annotations).
 */
function labelValue(text: string): string | null {
  return /^[A-Za-z0-9]([A-Za-z0-9_.-]{0,61}[A-Za-z0-9])?$/.test(text) ? text : null;
}

/**
 * A build Job already holds `MAX_BUILD_REQUESTS`: the request is refused the same way on every
 * retry, so it is reported failed rather than thrown back to the bus.
 */
export class BuildRequestsFullError extends Error {
  override readonly name = "BuildRequestsFullError";
}

/** kubler.yaml's `image` cannot be built from as written (a path outside the repository). */
export class BuildSpecError extends Error {
  override readonly name = "BuildSpecError";
}

/** `deploy/Dockerfile` → `deploy`; `Dockerfile` → `.`. */
function directoryOf(path: string): string {
  const index = path.lastIndexOf("/");
  return index <= 0 ? "." : path.slice(0, index);
}

function baseName(path: string): string {
  return path.slice(path.lastIndexOf("/") + 1);
}

/** `./a/../b`-free paths inside /workspace (kubler.yaml's validator refuses `..` for manifests; not for these). */
function inWorkspace(path: string, what: string): string {
  const segments = path.split("/").filter((segment) => segment !== "" && segment !== ".");
  if (path.startsWith("/") || segments.includes("..")) {
    throw new BuildSpecError(
      `kubler.yaml: image.${what} ${JSON.stringify(path)} is not a path inside the repository`,
    );
  }
  return segments.length === 0 ? "/workspace" : `/workspace/${segments.join("/")}`;
}

/**
 * The clone: git over HTTPS with the token as a Basic credential given through GIT_CONFIG_* (not
 * the URL, which git repeats in its errors), one commit deep, fetched by SHA (GitLab allows fetching
 * any reachable SHA: https://docs.gitlab.com/user/project/repository/#clone-a-repository).
 */
const CLONE_SCRIPT = [
  "set -eu",
  'auth=$(printf "oauth2:%s" "$GIT_TOKEN" | base64 | tr -d "\\n")',
  "export GIT_CONFIG_COUNT=1 GIT_CONFIG_KEY_0=http.extraHeader",
  'export GIT_CONFIG_VALUE_0="Authorization: Basic $auth"',
  "cd /workspace",
  "git init -q .",
  'git remote add origin "$REPOSITORY_URL"',
  'git fetch -q --depth 1 origin "$SHA"',
  "git checkout -q FETCH_HEAD",
].join("\n");

/** Where the build leaves the image (an OCI archive) for the push, on a volume only those two share. */
const IMAGE_ARCHIVE = "/output/image.tar";
const REGISTRY_AUTH_FILE = "/home/user/.docker/config.json";

/**
 * The build Job for a `Build Requested` and the project's `image` section, in three steps, each a
 * container holding only what it needs:
 * - `clone` (init): the token from `settings.gitSecret` (secretKeyRef), the source into /workspace;
 * - `build` (init): rootless BuildKit, the Dockerfile's steps, the image as an OCI archive. Rootless
 *   BuildKit in an unprivileged pod has no process sandbox, so a build step can reach whatever its
 *   container holds (BuildKit's rootless.md): this one holds no credential;
 * - `push`: skopeo, with `settings.registrySecret` mounted, copies the archive to `<image>:<sha>` and
 *   writes the pushed manifest's digest to the termination message, which reconcile reads.
 * No credential is in the spec itself.
 *
 * @example
 * await cluster.create(buildJob(detail, manifest.image, { namespace: "kubler-builds", ... }));
 */
export function buildJob(
  request: Detail<"Build Requested">,
  image: NonNullable<KublerManifest["image"]>,
  settings: BuildJobSettings,
): KubeObject {
  const { gitlab, sha } = request;
  const name = buildJobName(gitlab, sha);
  if (settings.images) {
    const allowed = projectImages(settings.images, gitlab.projectPath);
    if (!isProjectImage(image.name, allowed)) {
      throw new BuildSpecError(
        `kubler.yaml: image.name ${JSON.stringify(image.name)} is not this project's to push: it must be ${allowed} or a path below it`,
      );
    }
  }
  const target = `${image.name}:${sha}`;
  const context = inWorkspace(image.context, "context");
  const dockerfile = inWorkspace(image.dockerfile, "dockerfile");
  const correlation = labelValue(request.correlationId);
  const labels: Record<string, string> = {
    [LABEL.MANAGED_BY]: MANAGED_BY_KUBLER,
    [BUILD_LABEL.COMPONENT]: BUILD_COMPONENT,
    [LABEL.PROJECT_ID]: String(gitlab.projectId),
    [LABEL.ENVIRONMENT]: environmentSlug(request.environment),
    // A SHA-256 repository's commit (64 hex digits) is longer than a label value: annotated only.
    ...(labelValue(sha) ? { [BUILD_LABEL.SHA]: sha } : {}),
    ...(correlation ? { [BUILD_LABEL.CORRELATION_ID]: correlation } : {}),
  };
  const buildArgs = Object.entries(image.buildArgs)
    .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))
    .flatMap(([key, value]) => ["--opt", `build-arg:${key}=${value}`]);
  const runAs = { runAsUser: 1000, runAsGroup: 1000, runAsNonRoot: true };
  return {
    apiVersion: "batch/v1",
    kind: "Job",
    metadata: {
      name,
      namespace: settings.namespace,
      labels,
      finalizers: [BUILD_FINALIZER],
      annotations: {
        [BUILD_ANNOTATION.PROJECT_PATH]: gitlab.projectPath,
        [BUILD_ANNOTATION.INSTANCE]: gitlab.instance,
        [BUILD_ANNOTATION.SHA]: sha,
        [BUILD_ANNOTATION.IMAGE]: target,
        [BUILD_ANNOTATION.REQUESTS]: JSON.stringify([requestOf(request)]),
      },
    },
    spec: {
      // A failed build fails the same way again: one try, the logs of that try are the answer.
      backoffLimit: 0,
      // A pod the cluster ended (kubelet eviction on node pressure, preemption, a drain or node
      // shutdown: condition DisruptionTarget) says nothing of the build: a new pod runs, not counted
      // against backoffLimit. Any other failure still fails at once. Rules need restartPolicy Never;
      // GA in 1.31, on by default since 1.26 (an older API server drops the field: one try again).
      // https://kubernetes.io/docs/concepts/workloads/controllers/job/#pod-failure-policy
      podFailurePolicy: {
        rules: [{ action: "Ignore", onPodConditions: [{ type: "DisruptionTarget", status: "True" }] }],
      },
      // Counts from the Job's start across every pod: evictions again and again end here, reported
      // with the last eviction's reason (reconcile-builds).
      activeDeadlineSeconds: settings.activeDeadlineSeconds ?? 1800,
      // No ttlSecondsAfterFinished: the Job holds the only record of who waits for it, so nothing may
      // delete it before each of them has heard. Reporting sets it (`reportedTtl`); a join drops it.
      template: {
        metadata: {
          labels,
          annotations: {
            // Rootless BuildKit needs both unconfined (its rootless.md): the annotations for clusters
            // older than 1.30 (AppArmor) and the securityContext fields for newer ones.
            [`container.apparmor.security.beta.kubernetes.io/${BUILD_CONTAINER}`]: "unconfined",
            [`container.seccomp.security.alpha.kubernetes.io/${BUILD_CONTAINER}`]: "unconfined",
          },
        },
        spec: {
          restartPolicy: "Never",
          automountServiceAccountToken: false,
          enableServiceLinks: false,
          initContainers: [
            {
              name: CLONE_CONTAINER,
              image: GIT_IMAGE,
              command: ["sh", "-c", CLONE_SCRIPT],
              env: [
                { name: "REPOSITORY_URL", value: repositoryUrl(gitlab) },
                { name: "SHA", value: sha },
                {
                  name: "GIT_TOKEN",
                  valueFrom: { secretKeyRef: { name: settings.gitSecret.name, key: settings.gitSecret.key } },
                },
              ],
              securityContext: { ...runAs, allowPrivilegeEscalation: false, capabilities: { drop: ["ALL"] } },
              resources: {
                requests: { cpu: "100m", memory: "128Mi" },
                limits: { cpu: "1", memory: "512Mi" },
              },
              terminationMessagePolicy: "FallbackToLogsOnError",
              volumeMounts: [{ name: "workspace", mountPath: "/workspace" }],
            },
            {
              name: BUILD_CONTAINER,
              image: BUILDKIT_IMAGE,
              command: ["buildctl-daemonless.sh"],
              args: [
                "build",
                "--frontend",
                "dockerfile.v0",
                "--local",
                `context=${context}`,
                "--local",
                `dockerfile=${directoryOf(dockerfile)}`,
                "--opt",
                `filename=${baseName(dockerfile)}`,
                ...buildArgs,
                "--output",
                `type=oci,dest=${IMAGE_ARCHIVE}`,
              ],
              env: [
                // Without a process sandbox: rootless BuildKit in an unprivileged pod cannot make one.
                { name: "BUILDKITD_FLAGS", value: "--oci-worker-no-process-sandbox" },
              ],
              securityContext: {
                ...runAs,
                seccompProfile: { type: "Unconfined" },
                appArmorProfile: { type: "Unconfined" },
              },
              resources: settings.resources ?? DEFAULT_BUILD_RESOURCES,
              // On failure the message is the log's tail, which reconcile reports as the reason.
              terminationMessagePolicy: "FallbackToLogsOnError",
              volumeMounts: [
                { name: "workspace", mountPath: "/workspace", readOnly: true },
                { name: "buildkitd", mountPath: "/home/user/.local/share/buildkit" },
                { name: "output", mountPath: "/output" },
              ],
            },
          ],
          containers: [
            {
              name: PUSH_CONTAINER,
              image: SKOPEO_IMAGE,
              // No shell: the target is one argument, whatever it holds.
              command: ["skopeo"],
              args: [
                // The archive is unpacked here, not in the read-only root.
                "--tmpdir",
                "/output",
                "copy",
                "--quiet",
                // The digest BuildKit computed is the one pushed, or the push fails.
                "--preserve-digests",
                "--authfile",
                REGISTRY_AUTH_FILE,
                "--digestfile",
                "/dev/termination-log",
                `oci-archive:${IMAGE_ARCHIVE}`,
                `docker://${target}`,
              ],
              securityContext: {
                ...runAs,
                allowPrivilegeEscalation: false,
                readOnlyRootFilesystem: true,
                capabilities: { drop: ["ALL"] },
              },
              // skopeo's caches go under $HOME: the writable volume, not the read-only root.
              env: [{ name: "HOME", value: "/output" }],
              resources: PUSH_RESOURCES,
              terminationMessagePath: "/dev/termination-log",
              terminationMessagePolicy: "FallbackToLogsOnError",
              volumeMounts: [
                { name: "output", mountPath: "/output" },
                { name: "registry", mountPath: "/home/user/.docker", readOnly: true },
              ],
            },
          ],
          volumes: [
            { name: "workspace", emptyDir: {} },
            { name: "buildkitd", emptyDir: {} },
            { name: "output", emptyDir: {} },
            {
              name: "registry",
              secret: {
                secretName: settings.registrySecret,
                items: [{ key: REGISTRY_AUTH_KEY, path: "config.json" }],
              },
            },
          ],
        },
      },
    },
  };
}

function repositoryUrl(gitlab: { instance: string; projectPath: string }): string {
  return `${gitlab.instance.replace(/\/+$/, "")}/${gitlab.projectPath}.git`;
}

function requestOf(detail: Detail<"Build Requested">): BuildRequest {
  return {
    environment: detail.environment,
    correlationId: detail.correlationId,
    ref: detail.ref,
    pipelineId: detail.pipelineId,
    mrIid: detail.mrIid,
    ...(detail.user !== undefined ? { user: detail.user } : {}),
    ...(detail.factAt !== undefined ? { factAt: detail.factAt } : {}),
    ...(detail.ttl !== undefined ? { ttl: detail.ttl } : {}),
    ...(detail.previousSha !== undefined ? { previousSha: detail.previousSha } : {}),
    ...(detail.gitlabAt !== undefined ? { gitlabAt: detail.gitlabAt } : {}),
  };
}

/**
 * The Job's annotations with `detail`'s environment added to its requests, or null when it is
 * already waiting or reported for that very request (nothing to write). A later request for another
 * environment, or the same one asking again after its report, waits on the same build. One asking
 * again while it waits replaces its earlier request when its GitLab fact time is later.
 * `replacing`: the Job is not joined but replaced (build-image's rebuild: failed, or a success it
 * cannot report), so only the requests still waiting count against `MAX_BUILD_REQUESTS`.
 *
 * @example
 * const annotations = withBuildRequest(existing, detail, false);
 * if (annotations) await cluster.apply({ ...header, metadata: { ...meta, annotations } });
 */
export function withBuildRequest(
  job: KubeObject,
  detail: Detail<"Build Requested">,
  replacing = false,
): Record<string, string> | null {
  const requests = readBuildRequests(job);
  const reportedBefore = readReported(job);
  const earlier = requests.find((request) => request.environment === detail.environment);
  // A request the failed Job this one replaced had already reported: the bus redelivering it (or an
  // archive replaying it) must not build the commit again, nor report it twice.
  if (!earlier && readReplacedReports(job).some((r) => sameRequest(r, detail))) return null;
  if (earlier) {
    // Stopped and asked again while the build runs (MR closed and reopened, branch deleted and pushed
    // again): the report must carry the newest fact, or the deploy finds it older than the stop.
    const waiting = !reportedBefore.includes(detail.environment);
    if (waiting && !isLaterFact(detail.factAt, earlier.factAt)) return null;
    // The bus redelivering the request already reported: nothing to write. A new request after the
    // report (stopped, then asked again at this commit) is reported again.
    if (!waiting && earlier.correlationId === detail.correlationId) return null;
    return {
      [BUILD_ANNOTATION.REQUESTS]: JSON.stringify(
        requests.map((request) => (request === earlier ? requestOf(detail) : request)),
      ),
      [BUILD_ANNOTATION.REPORTED]: JSON.stringify(
        reportedBefore.filter((environment) => environment !== detail.environment),
      ),
    };
  }
  // A Job replaced (its waiting requests reported first) passes on only those still waiting, and this one.
  const held = replacing ? waitingRequests(job).length : requests.length;
  if (held >= MAX_BUILD_REQUESTS) {
    throw new BuildRequestsFullError(
      `build Job ${job.metadata.name} already serves ${MAX_BUILD_REQUESTS} environments; not adding ${detail.environment}: it can be built for it at this commit once that Job is gone (its TTL), or at a new commit`,
    );
  }
  return {
    [BUILD_ANNOTATION.REQUESTS]: JSON.stringify([...requests, requestOf(detail)]),
    [BUILD_ANNOTATION.REPORTED]: JSON.stringify(
      reportedBefore.filter((environment) => environment !== detail.environment),
    ),
  };
}

/** How long a reported Job is kept after its finish: a later request for its commit joins it, not a new build. */
export const REPORTED_TTL_SECONDS = 86_400;

/**
 * How long a Job is kept, at least, once reported: a report long after the finish (reconcile was
 * down) would otherwise let the TTL delete it at once, and a request a moment later build again.
 */
export const REPORTED_KEEP_SECONDS = 3_600;

/** The Job's `ttlSecondsAfterFinished`; undefined when it has none (kept until deleted). */
export function ttlAfterFinished(job: KubeObject): number | undefined {
  const ttl = (job.spec as { ttlSecondsAfterFinished?: unknown } | undefined)?.ttlSecondsAfterFinished;
  return typeof ttl === "number" ? ttl : undefined;
}

/**
 * The `ttlSecondsAfterFinished` a finished Job gets once every environment waiting on it has heard
 * (its Build Finished published) at `now`: `REPORTED_TTL_SECONDS` from its finish, or
 * `REPORTED_KEEP_SECONDS` from `now` when that is later. Until then it has none, so neither the TTL
 * controller nor a rebuild removes the only record of who waits. The TTL counts from the terminal
 * condition: https://kubernetes.io/docs/concepts/workloads/controllers/ttlafterfinished/#updating-ttl-for-finished-jobs
 *
 * @example
 * reportedTtl(jobFinishedTwoDaysAgo, now); // 176400: the 172800 s since it finished, and an hour
 */
export function reportedTtl(job: KubeObject, now: Date): number {
  // No finish time recorded: the creation is earlier, so counting from it keeps the Job long enough.
  const since = Date.parse(finishedAt(job) ?? job.metadata.creationTimestamp ?? "");
  if (Number.isNaN(since)) return REPORTED_TTL_SECONDS;
  const elapsed = Math.max(0, Math.ceil((now.getTime() - since) / 1000));
  return Math.max(REPORTED_TTL_SECONDS, elapsed + REPORTED_KEEP_SECONDS);
}

/**
 * The requests of `job` not reported yet: each must hear how the build ended.
 *
 * @example
 * waitingRequests(job).map((r) => r.environment); // ["review/feature-x"]
 */
export function waitingRequests(job: KubeObject): BuildRequest[] {
  const reported = readReported(job);
  return readBuildRequests(job).filter((request) => !reported.includes(request.environment));
}

/**
 * True when a finished Job's reports are settled: every request reported and its Build Finished
 * published (the TTL set after the publish, `reportedTtl`). A Job marked reported without its TTL
 * may be in the middle of its publish, whose failure takes the mark back onto this very Job.
 *
 * @example
 * if (buildState(job).state === "failed" && reportsSettled(job)) replace(job);
 */
export function reportsSettled(job: KubeObject): boolean {
  return waitingRequests(job).length === 0 && ttlAfterFinished(job) !== undefined;
}

function finishedAt(job: KubeObject): string | undefined {
  const conditions = (job.status as { conditions?: unknown } | undefined)?.conditions;
  for (const condition of Array.isArray(conditions) ? conditions : []) {
    const c = condition as { type?: unknown; status?: unknown; lastTransitionTime?: unknown };
    if ((c.type === "Complete" || c.type === "Failed") && c.status === "True") {
      return typeof c.lastTransitionTime === "string" ? c.lastTransitionTime : undefined;
    }
  }
  return undefined;
}

/** A fact time without one (recorded before times were carried) is older than any with one. */
function isLaterFact(incoming: string | null | undefined, stored: string | null | undefined): boolean {
  if (!incoming) return false;
  if (!stored) return true;
  return Date.parse(incoming) > Date.parse(stored);
}

/** True when the Job was deleted and a finalizer holds it (Terminating): `deletionTimestamp` is set. */
export function isDeleting(job: KubeObject): boolean {
  return Boolean(job.metadata.deletionTimestamp);
}

/**
 * The Job's finalizers other than Kubler's (`BUILD_FINALIZER`), or null when Kubler's is not among
 * them (nothing of Kubler's to remove).
 *
 * @example
 * const others = othersThanBuildFinalizer(job); // [] : only Kubler's holds it
 * if (others) await cluster.removeFinalizers(ref, { uid, resourceVersion }, { keep: others });
 */
export function othersThanBuildFinalizer(job: KubeObject): string[] | null {
  return finalizersOtherThan(job, BUILD_FINALIZER);
}

/**
 * Kubler's finalizer for an apply of its own while a request waits (server-side apply merges
 * `metadata.finalizers` as a set: others' stay), unless the Job is being deleted without it: no
 * finalizer may be added then (422).
 *
 * @example
 * await cluster.apply({ ...header, metadata: { name, namespace, annotations, ...holdingFinalizers(existing) } });
 */
export function holdingFinalizers(job: KubeObject): { finalizers?: string[] } {
  if (isDeleting(job) && othersThanBuildFinalizer(job) === null) return {};
  return { finalizers: [BUILD_FINALIZER] };
}

/**
 * What a build Job Kubler made (its build labels: `BUILD_SELECTOR`, DESIGN's label contract) lacks
 * of the project and commit it was built for: Kubler always writes them, so a Job without one was
 * changed by hand, and its Build Finished cannot say which commit it is for. Empty when it has them
 * all; null when it is not Kubler's build (not to be touched).
 *
 * @example
 * damagedBuild(job); // ["annotation kubler.dev/sha"]
 */
export function damagedBuild(job: KubeObject): string[] | null {
  const labels = job.metadata.labels ?? {};
  if (labels[LABEL.MANAGED_BY] !== MANAGED_BY_KUBLER || labels[BUILD_LABEL.COMPONENT] !== BUILD_COMPONENT) {
    return null;
  }
  const annotations = job.metadata.annotations ?? {};
  const missing: string[] = [];
  if (!Number.isSafeInteger(Number(labels[LABEL.PROJECT_ID] ?? Number.NaN))) {
    missing.push(`label ${LABEL.PROJECT_ID}`);
  }
  for (const key of [BUILD_ANNOTATION.INSTANCE, BUILD_ANNOTATION.PROJECT_PATH, BUILD_ANNOTATION.SHA]) {
    if (!annotations[key]) missing.push(`annotation ${key}`);
  }
  return missing;
}

/** The environments waiting for this Job's build. Malformed entries are dropped. */
export function readBuildRequests(job: KubeObject): BuildRequest[] {
  const parsed = parseJsonList(job.metadata.annotations?.[BUILD_ANNOTATION.REQUESTS]);
  return parsed.flatMap((item) => {
    const r = item as Partial<BuildRequest> | null;
    if (!r || typeof r.environment !== "string" || typeof r.correlationId !== "string") return [];
    if (typeof r.ref !== "string") return [];
    const optionalId = (value: unknown) =>
      typeof value === "number" && Number.isInteger(value) ? value : null;
    return [
      {
        environment: r.environment,
        correlationId: r.correlationId,
        ref: r.ref,
        pipelineId: optionalId(r.pipelineId),
        mrIid: optionalId(r.mrIid),
        ...(typeof r.user === "string" || r.user === null ? { user: r.user } : {}),
        ...(typeof r.factAt === "string" || r.factAt === null ? { factAt: r.factAt } : {}),
        ...(typeof r.ttl === "string" || r.ttl === null ? { ttl: r.ttl } : {}),
        ...(typeof r.previousSha === "string" && /^[0-9a-f]{7,64}$/.test(r.previousSha)
          ? { previousSha: r.previousSha }
          : {}),
        ...(typeof r.gitlabAt === "string" && !Number.isNaN(Date.parse(r.gitlabAt))
          ? { gitlabAt: r.gitlabAt }
          : {}),
      },
    ];
  });
}

/** A request by its environment and correlation id: what tells a redelivery from a new request. */
export interface RequestIdentity {
  environment: string;
  correlationId: string;
}

function sameRequest(a: RequestIdentity, b: RequestIdentity): boolean {
  return a.environment === b.environment && a.correlationId === b.correlationId;
}

/** The requests the failed Jobs this one replaced had reported (`BUILD_ANNOTATION.REPLACED_REPORTS`). */
function readReplacedReports(job: KubeObject): RequestIdentity[] {
  return parseJsonList(job.metadata.annotations?.[BUILD_ANNOTATION.REPLACED_REPORTS]).flatMap((item) => {
    const r = item as Partial<RequestIdentity> | null;
    return r && typeof r.environment === "string" && typeof r.correlationId === "string"
      ? [{ environment: r.environment, correlationId: r.correlationId }]
      : [];
  });
}

/**
 * The annotations of the Job that replaces `failed` (`build-image`'s rebuild), from `annotations`,
 * `failed`'s as the new request leaves them (`withBuildRequest`: that request's environment is no
 * longer reported): the requests still waiting, to be built for, and in `REPLACED_REPORTS` those
 * `failed` reported and those it carried, the newest `MAX_BUILD_REQUESTS` kept.
 *
 * @example
 * const annotations = withBuildRequest(failed, detail);
 * newJob.metadata.annotations = { ...newJob.metadata.annotations, ...replacementAnnotations(failed, annotations) };
 */
export function replacementAnnotations(
  failed: KubeObject,
  annotations: Record<string, string>,
): Record<string, string> {
  const asked = { ...failed, metadata: { ...failed.metadata, annotations } };
  const reported = readReported(asked);
  const requests = readBuildRequests(asked);
  const waiting = requests.filter((request) => !reported.includes(request.environment));
  const now = requests
    .filter((request) => reported.includes(request.environment))
    .map(({ environment, correlationId }) => ({ environment, correlationId }));
  const before = readReplacedReports(failed).filter((r) => !now.some((n) => sameRequest(n, r)));
  return {
    [BUILD_ANNOTATION.REQUESTS]: JSON.stringify(waiting),
    [BUILD_ANNOTATION.REPLACED_REPORTS]: JSON.stringify([...before, ...now].slice(-MAX_BUILD_REQUESTS)),
  };
}

export function readReported(job: KubeObject): string[] {
  return parseJsonList(job.metadata.annotations?.[BUILD_ANNOTATION.REPORTED]).filter(
    (item): item is string => typeof item === "string",
  );
}

function parseJsonList(text: string | undefined): unknown[] {
  if (!text) return [];
  try {
    const parsed: unknown = JSON.parse(text);
    return Array.isArray(parsed) ? parsed : [];
  } catch {
    return [];
  }
}

export type BuildState = { state: "running" } | { state: "succeeded" } | { state: "failed"; reason: string };

/**
 * Where a Job is, from its conditions (the Job controller's verdict, not the pods'):
 * https://kubernetes.io/docs/concepts/workloads/controllers/job/#terminal-job-conditions
 *
 * @example
 * buildState(job); // { state: "failed", reason: "DeadlineExceeded: Job was active longer than specified deadline" }
 */
export function buildState(job: KubeObject): BuildState {
  const conditions = (job.status as { conditions?: unknown } | undefined)?.conditions;
  for (const condition of Array.isArray(conditions) ? conditions : []) {
    const c = condition as { type?: unknown; status?: unknown; reason?: unknown; message?: unknown };
    if (c.status !== "True") continue;
    if (c.type === "Complete") return { state: "succeeded" };
    if (c.type === "Failed") {
      const reason = [c.reason, c.message].filter((part) => typeof part === "string" && part).join(": ");
      return { state: "failed", reason: reason || "the Job failed" };
    }
  }
  return { state: "running" };
}

/**
 * The digest a succeeded build pod's push wrote to its termination message, or null when none of
 * the pods has one.
 *
 * @example
 * buildDigest(pods); // "sha256:3f0c…"
 */
export function buildDigest(pods: readonly KubeObject[]): string | null {
  for (const pod of pods) {
    const terminated = containerTerminated(pod, PUSH_CONTAINER);
    const message = typeof terminated?.message === "string" ? terminated.message.trim() : "";
    if (terminated?.exitCode === 0 && /^sha256:[0-9a-f]{64}$/.test(message)) return message;
  }
  return null;
}

/**
 * The pod and container whose logs explain a failure: the first step (clone, build, push) that ended
 * with a non-zero exit code, else the build container of the newest pod.
 */
export function failedContainer(pods: readonly KubeObject[]): { pod: string; container: string } | null {
  const newestFirst = [...pods].sort((a, b) =>
    String(b.metadata.creationTimestamp ?? "").localeCompare(String(a.metadata.creationTimestamp ?? "")),
  );
  for (const pod of newestFirst) {
    for (const container of STEPS) {
      const terminated = containerTerminated(pod, container);
      if (typeof terminated?.exitCode === "number" && terminated.exitCode !== 0) {
        return { pod: pod.metadata.name, container };
      }
    }
  }
  const newest = newestFirst[0];
  return newest ? { pod: newest.metadata.name, container: BUILD_CONTAINER } : null;
}

function containerTerminated(
  pod: KubeObject,
  container: string,
): { exitCode?: unknown; message?: unknown; reason?: unknown } | undefined {
  const status = pod.status as { containerStatuses?: unknown; initContainerStatuses?: unknown } | undefined;
  const all = [
    ...(Array.isArray(status?.initContainerStatuses) ? status.initContainerStatuses : []),
    ...(Array.isArray(status?.containerStatuses) ? status.containerStatuses : []),
  ] as { name?: unknown; state?: { terminated?: Record<string, unknown> } }[];
  return all.find((entry) => entry?.name === container)?.state?.terminated;
}

/**
 * A failed build's reason for `Build Finished`: the Job's verdict and the last lines of the log,
 * bounded so the detail stays small.
 */
export function failureReason(verdict: string, logTail: string | null): string {
  const head =
    jsonBytes(verdict) > MAX_VERDICT_JSON_BYTES
      ? `${clipJson(verdict, MAX_VERDICT_JSON_BYTES - jsonBytes("…"), "start")}…`
      : verdict;
  let lines = (logTail ?? "").trimEnd().split("\n").slice(-FAILURE_LOG_LINES).join("\n");
  // The end of a log says why it failed: a long one loses its beginning, not its last line.
  const room = MAX_REASON_JSON_BYTES - jsonBytes(head) - jsonBytes(LOG_SEPARATOR);
  if (jsonBytes(lines) > room) lines = `…${clipJson(lines, room - jsonBytes("…"), "end")}`;
  return lines ? `${head}${LOG_SEPARATOR}${lines}` : head;
}
