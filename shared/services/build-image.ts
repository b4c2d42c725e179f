/**
 * The build use case (DESIGN §7): `Build Requested` becomes a Kubernetes Job running rootless
 * BuildKit in the builds namespace. One Job per project + SHA: a second request for the same commit
 * (another delivery, another environment) finds it there (409) and joins it, or builds again in its
 * place when it failed (`rebuild`). The outcome is reported later, by reconcile, when the Job has
 * finished.
 */
import {
  BUILD_ANNOTATION,
  BUILD_SELECTOR,
  BuildRequestsFullError,
  BuildSpecError,
  buildJob,
  buildState,
  damagedBuild,
  GIT_TOKEN_KEY,
  holdingFinalizers,
  isDeleting,
  replacementAnnotations,
  reportsSettled,
  waitingRequests,
  withBuildRequest,
} from "../domain/build-job.js";
import { type Detail, stepFieldsOf } from "../domain/catalog.js";
import { LABEL, MANAGED_BY_KUBLER } from "../domain/environment.js";
import type { KubeObject } from "../domain/kube-object.js";
import { ManifestError, parseKublerManifest } from "../domain/kubler-manifest.js";
import { KubernetesConflictError, KubernetesNotFoundError } from "../errors.js";
import type { AuditLog, BuildCluster, Clock, EventPublisher, ManifestSource } from "../ports.js";
import { digestGone } from "./build-outcome.js";
import { checkBuildPodSecurity, checkBuildSecrets } from "./build-secrets.js";
import { releaseBuildJob, reportBuild } from "./reconcile-builds.js";
import { createStepAudit } from "./step-audit.js";

const FN = "build-image";
/** Writers racing on one Job's request list: a few rounds settle it. */
const MAX_JOIN_ATTEMPTS = 4;

export interface BuildImageDeps {
  cluster: BuildCluster;
  manifests: ManifestSource;
  publisher: EventPublisher;
  audit: AuditLog;
  clock: Clock;
  settings: { namespace: string; gitSecret: string; registrySecret: string; images: string | null };
  /**
   * Whether the build Secrets are looked for before a Job is made (default true). False for the
   * embedded local cluster only: it runs no pod, so a build there reads no Secret.
   */
  checkSecrets?: boolean;
  /**
   * How long after its start an invocation may still report a failed build to those waiting on it
   * (`reportBuild`: a mark, then a publish that an invocation killed in between never makes). None:
   * however long it takes (the local runtime). functions/build-image/limits.ts has Lambda's.
   */
  reportBudgetMs?: number;
  /** How long a failed build's log may take to read when reporting it (`ReconcileBuildsDeps.logReadMs`). */
  logReadMs?: number;
}

export type BuildImageOutcome =
  | { kind: "created" | "joined" | "already running"; job: string }
  | { kind: "failed"; reason: string };

/**
 * @example
 * const outcome = await buildImage(deps, detail); // { kind: "created", job: "build-group-app-da1560886d4f-3f0c2a1b" }
 */
export async function buildImage(
  deps: BuildImageDeps,
  detail: Detail<"Build Requested">,
): Promise<BuildImageOutcome> {
  const reportBy =
    deps.reportBudgetMs === undefined
      ? undefined
      : new Date(deps.clock.now().getTime() + deps.reportBudgetMs);
  const audit = createStepAudit(deps, {
    fn: FN,
    action: "image.build",
    trigger: "Build Requested",
    detail,
    subject: { environment: detail.environment, sha: detail.sha },
  });
  const jobSubject = (job: string) => ({ job, namespace: deps.settings.namespace });

  // A request always ends with Build Finished, or its commit status stays "pending": one that cannot
  // be built fails the same way on every retry: reported, not retried. (plan-steps asks only for
  // commits whose kubler.yaml builds an image: a missing one means a request published by hand.)
  const fail = async (reason: string): Promise<BuildImageOutcome> => {
    await deps.publisher.publish([{ detailType: "Build Finished", detail: failed(detail, reason) }]);
    audit("failure", reason);
    return { kind: "failed", reason };
  };
  const text = await deps.manifests.readManifest(detail.gitlab, detail.sha);
  if (text === null) return fail(`no kubler.yaml at ${detail.sha}: the project is not opted in`);
  let job: KubeObject;
  try {
    const manifest = parseKublerManifest(text);
    if (!manifest.image) return fail("kubler.yaml has no image: the project builds its image in its own CI");
    job = buildJob(detail, manifest.image, {
      namespace: deps.settings.namespace,
      gitSecret: { name: deps.settings.gitSecret, key: GIT_TOKEN_KEY },
      registrySecret: deps.settings.registrySecret,
      images: deps.settings.images,
    });
  } catch (error) {
    if (!(error instanceof ManifestError) && !(error instanceof BuildSpecError)) throw error;
    return fail(error.message);
  }

  // Before the Job: one whose pod cannot start fails only at its deadline, the cause gone from it.
  // Also before a join (not known to be one yet): a Job of that name made without them waits too.
  const secrets = deps.checkSecrets === false ? null : await checkBuildSecrets(deps.cluster, deps.settings);
  if (secrets?.kind === "missing") return fail(secrets.reason);
  // The same for a namespace whose Pod Security level refuses the build pod.
  const security =
    deps.checkSecrets === false ? null : await checkBuildPodSecurity(deps.cluster, deps.settings.namespace);
  if (security?.kind === "missing") return fail(security.reason);
  const unchecked = [secrets, security]
    .map((check) => (check?.kind === "unchecked" ? ` (${check.reason})` : ""))
    .join("");

  const name = job.metadata.name;
  const created = await createJob(deps, job);
  if (created) {
    audit("success", `build Job created for ${detail.sha}${unchecked}`, jobSubject(name));
    return { kind: "created", job: name };
  }
  let joined: Awaited<ReturnType<typeof joinJob>>;
  try {
    joined = await joinJob(deps, job, detail, reportBy);
  } catch (error) {
    if (!(error instanceof BuildRequestsFullError) && !(error instanceof ForeignJobError)) throw error;
    return fail(error.message);
  }
  if (typeof joined === "object") {
    audit(
      "success",
      `the earlier build of ${detail.sha} ${joined.rebuilt}: built again for ${detail.environment}${unchecked}`,
      jobSubject(name),
    );
    return { kind: "created", job: name };
  }
  audit(
    "success",
    joined === "joined"
      ? `a build of ${detail.sha} already exists: ${detail.environment} waits for it too`
      : `a build of ${detail.sha} for ${detail.environment} already exists (a repeated request)`,
    jobSubject(name),
  );
  return { kind: joined === "joined" ? "joined" : "already running", job: name };
}

/** True when created; false when a Job of that name was already there. */
async function createJob(deps: BuildImageDeps, job: KubeObject): Promise<boolean> {
  try {
    await deps.cluster.create(job);
    return true;
  } catch (error) {
    if (error instanceof KubernetesConflictError) return false;
    if (!(error instanceof KubernetesNotFoundError)) throw error;
  }
  // The namespace is created on first use. Where the Secrets are checked it exists (they are in it):
  // this is for the embedded local cluster, which needs no set-up step for builds.
  await deps.cluster.apply({
    apiVersion: "v1",
    kind: "Namespace",
    metadata: {
      name: deps.settings.namespace,
      labels: { [LABEL.MANAGED_BY]: MANAGED_BY_KUBLER, "app.kubernetes.io/component": "builds" },
    },
  });
  try {
    await deps.cluster.create(job);
    return true;
  } catch (error) {
    if (error instanceof KubernetesConflictError) return false;
    throw error;
  }
}

/**
 * Adds the request's environment to the existing Job's, so reconcile reports the build to it too.
 * Written over the resourceVersion read: a concurrent writer makes it a 409 and another round.
 * "repeated" when the environment was already waiting (or its request was reported); `rebuilt` (why)
 * when the Job had failed, or cannot report a success, and was replaced by a new one (`rebuild`).
 */
async function joinJob(
  deps: BuildImageDeps,
  job: KubeObject,
  detail: Detail<"Build Requested">,
  reportBy: Date | undefined,
): Promise<"joined" | "repeated" | { rebuilt: string }> {
  const ref = {
    apiVersion: job.apiVersion,
    kind: job.kind,
    name: job.metadata.name,
    namespace: deps.settings.namespace,
  };
  for (let attempt = 1; ; attempt++) {
    const existing = await deps.cluster.get(ref);
    // Gone since the 409 (its TTL ran out): the next delivery creates it again.
    if (!existing)
      throw new KubernetesConflictError(`build Job ${ref.name} was deleted while joining it`, 409);
    // DESIGN's label contract: a Job without Kubler's build labels is not Kubler's to delete or to
    // write a request on (reconcile, listing by the labels, would never report it): the same on
    // every retry, so this request fails, saying how to clear the name.
    const damaged = damagedBuild(existing);
    if (damaged === null) {
      throw new ForeignJobError(
        `build Job ${ref.name} in namespace ${ref.namespace} is not Kubler's (it lacks the labels ${BUILD_SELECTOR}), so Kubler neither joins nor replaces it: delete it (kubectl -n ${ref.namespace} delete job ${ref.name}), then run the pipeline again`,
      );
    }
    const state = buildState(existing);
    // Deleted by hand (Kubler's finalizer holds it): its waiters hear of it now, as reconcile would
    // tell them, then it may go; this request is built again on a retry, once it has.
    if (isDeleting(existing)) {
      if (waitingRequests(existing).length > 0) {
        await tellWaiters(deps, reportBy, existing, state, detail);
        continue;
      }
      if (await releaseBuildJob(deps, existing, existing.metadata.resourceVersion)) continue;
      throw new KubernetesConflictError(
        `build Job ${ref.name} is being deleted: built again on a retry, once it is gone`,
        409,
      );
    }
    // A finished Job of Kubler's without its project or commit (`damagedBuild`: changed by hand) is
    // replaced like a failed one: its waiters hear that (named for this request's commit, which the
    // Job's name is made from), then this request builds again, not 409 or waiting on it for good.
    // So is a succeeded one whose pods, and the digest they held, are gone (`digestGone`): joined,
    // this request would hear only that its build failed, as would every other until the Job's TTL.
    const replaceable =
      state.state === "failed" ||
      (state.state === "succeeded" &&
        (damaged.length > 0 || (await digestGone(reportDeps(deps, reportBy), existing))));
    // The failed Job is the only record of who waits on it: they hear of its failure first, as
    // reconcile would tell them (this request too, if it is a redelivery of one of theirs), then it
    // may go. Its publish failing is this request's failure too: the bus delivers it again; so is
    // too little time left to publish once marked (`reportBudgetMs`): the next reconcile reports them.
    if (replaceable && waitingRequests(existing).length > 0) {
      await tellWaiters(deps, reportBy, existing, state, detail);
      continue;
    }
    const annotations = withBuildRequest(existing, detail, replaceable);
    if (!annotations) return "repeated";
    if (replaceable) {
      if (!reportsSettled(existing)) {
        throw new KubernetesConflictError(
          `build Job ${ref.name} failed and its Build Finished is being published: built again on a retry, once it is`,
          409,
        );
      }
      if (await rebuild(deps, job, existing, annotations)) {
        return {
          rebuilt:
            state.state === "failed" || damaged.length > 0
              ? "failed"
              : "succeeded, but its pods and the digest they held are gone",
        };
      }
      if (attempt >= MAX_JOIN_ATTEMPTS) {
        throw new KubernetesConflictError(`build Job ${ref.name} kept changing while building it again`, 409);
      }
      continue;
    }
    // A finished Job is not reported to this environment until the next reconcile: its TTL goes in
    // the same write (server-side apply drops the field this apply leaves out), so nothing deletes
    // it first; reconcile sets it again once this environment has heard.
    try {
      await deps.cluster.apply({
        apiVersion: job.apiVersion,
        kind: job.kind,
        metadata: {
          name: ref.name,
          namespace: ref.namespace,
          // A resourceVersion in an apply is a precondition: https://github.com/kubernetes/kubernetes/issues/63104
          ...(existing.metadata.resourceVersion
            ? { resourceVersion: existing.metadata.resourceVersion }
            : {}),
          annotations: { ...annotations, ...reportingMark(existing) },
          // Its TTL dropped, it is again the only record of this request: a deletion must wait for it.
          ...holdingFinalizers(existing),
        },
      });
      return "joined";
    } catch (error) {
      if (!(error instanceof KubernetesConflictError) || attempt >= MAX_JOIN_ATTEMPTS) throw error;
    }
  }
}

/**
 * A new request for a commit whose build failed builds it again: the failure may have been the
 * registry's or the network's, and the Job (kept a day by its TTL) would otherwise give every request
 * for that commit the same failure until then. A redelivered request never gets here
 * (`withBuildRequest` has nothing to add; for a request the replaced Job reported, the new Job's
 * `REPLACED_REPORTS` says so). Only a Job whose reports are settled gets here (`joinJob`): every
 * environment that waited on it has heard, so the new Job is for this request alone, and a create
 * that fails loses nothing (this request is thrown back to the bus, and its retry creates the Job).
 * The failed Job is deleted over what was read (a request that joined it since makes it a 409, and
 * another round).
 * False when another writer changed, replaced or re-created it first: the caller reads it again.
 */
async function rebuild(
  deps: BuildImageDeps,
  job: KubeObject,
  failed: KubeObject,
  annotations: Record<string, string>,
): Promise<boolean> {
  const ref = {
    apiVersion: job.apiVersion,
    kind: job.kind,
    name: job.metadata.name,
    namespace: deps.settings.namespace,
  };
  const { uid, resourceVersion } = failed.metadata;
  try {
    // Its reports settled, Kubler's finalizer is normally gone with them; one left (its removal
    // lost) would hold the deleted Job, and the new one's create would be a 409 until it went.
    if (await releaseBuildJob(deps, failed, resourceVersion)) return false;
    await deps.cluster.delete(ref, { uid, resourceVersion });
    await deps.cluster.create({
      ...job,
      metadata: {
        ...job.metadata,
        annotations: { ...job.metadata.annotations, ...replacementAnnotations(failed, annotations) },
      },
    });
    return true;
  } catch (error) {
    if (error instanceof KubernetesConflictError) return false;
    throw error;
  }
}

const REPORTER = { fn: FN, trigger: "Build Requested" } as const;

/**
 * Tells the environments waiting on `job` how it ended, as reconcile would, before this request may
 * take its place. A publish that failed is this request's failure (the bus delivers it again); too
 * little time left to publish once marked is a 409 (the next reconcile reports them).
 */
async function tellWaiters(
  deps: BuildImageDeps,
  reportBy: Date | undefined,
  job: KubeObject,
  state: ReturnType<typeof buildState>,
  detail: Detail<"Build Requested">,
): Promise<void> {
  const reported = await reportBuild(reportDeps(deps, reportBy), job, state, {
    ...REPORTER,
    commit: { gitlab: detail.gitlab, sha: detail.sha },
  });
  if (reported.kind === "reported" && reported.failure) throw reported.failure;
  if (reported.kind === "skipped") throw new KubernetesConflictError(reported.reason, 409);
}

/**
 * The mark of a reconcile reporting the Job (`BUILD_ANNOTATION.REPORTING`), kept through a join: a
 * mark whose answer was lost is retried and read again, and must still be found its own, or its
 * Build Finished is published by nobody.
 */
function reportingMark(job: KubeObject): Record<string, string> {
  const mark = job.metadata.annotations?.[BUILD_ANNOTATION.REPORTING];
  return mark ? { [BUILD_ANNOTATION.REPORTING]: mark } : {};
}

/** The Job of the request's name is not Kubler's (`joinJob`): a failure, not retried. */
class ForeignJobError extends Error {
  override readonly name = "ForeignJobError";
}

function reportDeps(deps: BuildImageDeps, deadline: Date | undefined) {
  const { cluster, publisher, audit, clock } = deps;
  return {
    cluster,
    publisher,
    audit,
    clock,
    namespace: deps.settings.namespace,
    ...(deadline ? { deadline } : {}),
    ...(deps.logReadMs !== undefined ? { logReadMs: deps.logReadMs } : {}),
  };
}

function failed(detail: Detail<"Build Requested">, reason: string): Detail<"Build Finished"> {
  return {
    ...stepFieldsOf(detail),
    status: "failed",
    imageDigest: null,
    reason,
  };
}
