/**
 * Planning (DESIGN §4 "Plan"): a GitLab fact and the project's `kubler.yaml` (its environment rules
 * from the default branch, `withDefaultBranchRules`) in, the steps to take (or why there are none)
 * out. Pure: the I/O around it is `shared/services/plan-steps.ts`.
 */
import type { BusEntry, Detail, GitlabFactType, GitlabRef } from "./catalog.js";
import {
  type EnvironmentRule,
  fillTemplate,
  findEnvironmentRule,
  type KublerManifest,
} from "./kubler-manifest.js";

export type GitlabFact = Extract<BusEntry, { detailType: GitlabFactType }>;
export type StepType = "Build Requested" | "Deploy Requested" | "Environment Stop Requested";
export type StepEntry = Extract<BusEntry, { detailType: StepType }>;

/** One step, and the commit it is about (a stop's: the last commit of what it stops). */
export interface PlannedStep {
  entry: StepEntry;
  sha: string;
}

export type Plan =
  | { kind: "steps"; steps: PlannedStep[]; reason: string }
  | { kind: "ignored"; reason: string };

/** Where to read `kubler.yaml` for a fact, or why the fact cannot lead to a step whatever it says. */
export type Triage = { kind: "read"; sha: string } | { kind: "ignored"; reason: string };

type Fact<T extends GitlabFactType> = Detail<T>;

const MR_BUILD_ACTIONS = new Set(["open", "reopen"]);
const MR_STOP_REASONS: Readonly<Record<string, "merged" | "closed">> = { merge: "merged", close: "closed" };

/**
 * Decides, before any I/O, whether a fact can lead to a step, and at which commit its `kubler.yaml`
 * is read: most GitLab events (job updates, approvals, releases) never do, and reading the file for
 * each would cost a GitLab API call per event.
 *
 * @example
 * triageFact(fact); // { kind: "read", sha: "e59094b…" } or { kind: "ignored", reason: "pipeline running" }
 */
export function triageFact(fact: GitlabFact): Triage {
  switch (fact.detailType) {
    case "Push":
    case "Tag Push": {
      const { detail } = fact;
      if (fact.detailType === "Tag Push" && detail.change === "deleted") {
        return { kind: "ignored", reason: `tag ${fact.detail.tag} deleted: a release environment stays` };
      }
      // A deletion's `after` is all zeros: its kubler.yaml is the one of the commit it removed.
      if (detail.change === "deleted") return { kind: "read", sha: detail.before };
      return { kind: "read", sha: fact.detailType === "Tag Push" ? tagCommit(fact.detail) : detail.after };
    }
    case "Merge Request": {
      const { detail } = fact;
      const action = detail.action;
      const acts =
        action !== null &&
        (MR_BUILD_ACTIONS.has(action) ||
          Object.hasOwn(MR_STOP_REASONS, action) ||
          (action === "update" && detail.oldrev !== null));
      if (!acts) {
        return {
          kind: "ignored",
          reason:
            action === "update"
              ? `merge request !${detail.iid} updated without new commits`
              : `merge request !${detail.iid} ${action === null ? "without an action (old GitLab)" : `action "${action}"`} does not change an environment`,
        };
      }
      if (detail.lastCommitSha === null) {
        return { kind: "ignored", reason: `merge request !${detail.iid} has no last commit` };
      }
      return { kind: "read", sha: detail.lastCommitSha };
    }
    case "Pipeline":
      return fact.detail.status === "success"
        ? { kind: "read", sha: fact.detail.sha }
        : { kind: "ignored", reason: `pipeline ${fact.detail.pipelineId} ${fact.detail.status}` };
    case "Job": {
      const { detail } = fact;
      if (detail.environment !== null && detail.environmentAction === "stop" && detail.status === "success") {
        return { kind: "read", sha: detail.sha };
      }
      return { kind: "ignored", reason: `job ${detail.jobId} ${detail.status}: not a finished stop job` };
    }
    case "Deployment":
      // GitLab creates no deployment for a stop job (`environment: { action: stop }`): a stop arrives
      // as that job's Job event. Deployment events only report deploys done by the project's own CI.
      return {
        kind: "ignored",
        reason: `deployment ${fact.detail.deploymentId ?? "(no id)"} to ${fact.detail.environment} ${fact.detail.status}: only a stop job stops an environment`,
      };
    case "Release":
      return {
        kind: "ignored",
        reason: `release ${fact.detail.tag} ${fact.detail.action}: tag pushes deploy`,
      };
  }
}

/**
 * Whether every step a fact can lead to is a stop (a merge request merged or closed, a branch
 * deleted, a stop job). A stop needs only the default branch's environment rules, never the commit's
 * `kubler.yaml`: a branch whose last commit removed or broke it still has its environment stopped.
 *
 * @example
 * leadsOnlyToStops(mergeRequestClosed); // true
 */
export function leadsOnlyToStops(fact: GitlabFact): boolean {
  switch (fact.detailType) {
    case "Push":
      return fact.detail.change === "deleted";
    case "Merge Request":
      return Object.hasOwn(MR_STOP_REASONS, fact.detail.action ?? "");
    case "Job":
      return true;
    default:
      return false;
  }
}

/**
 * The manifest a fact is planned with: the commit's `kubler.yaml` (whether the project is opted in,
 * its `image` and `deploy`) under the environment rules, each with its ttl, of the default branch's.
 * The rules decide which environment an event builds, deploys or stops, and Kubler deploys with its
 * own credentials: taken from the commit, anyone who may push a branch could map it to production.
 *
 * @example
 * planSteps(fact, withDefaultBranchRules(atSha, onDefaultBranch));
 */
export function withDefaultBranchRules(
  atSha: KublerManifest,
  onDefaultBranch: KublerManifest,
): KublerManifest {
  return { ...atSha, environments: onDefaultBranch.environments };
}

/**
 * The steps a GitLab fact leads to under a project's `kubler.yaml` (DESIGN §4): the first matching
 * environment rule wins. With an `image`, Kubler builds and the deploy follows `Build Finished`;
 * without one, the project's CI builds and a successful pipeline deploys.
 *
 * @example
 * const plan = planSteps(mergeRequestOpened, manifest);
 * // { kind: "steps", steps: [{ entry: { detailType: "Build Requested", detail: { environment: "review/feature-x", … } }, sha }], reason }
 */
export function planSteps(fact: GitlabFact, manifest: KublerManifest, factAt: string | null = null): Plan {
  const triage = triageFact(fact);
  if (triage.kind === "ignored") return triage;
  const plan = planFact(fact, manifest, triage.sha);
  if (plan.kind === "ignored") return plan;
  const user = "user" in fact.detail ? fact.detail.user : null;
  const carried = { user, ...(factAt === null ? {} : { factAt }) };
  return {
    ...plan,
    // A stop carries who caused it (the merger, closer, branch deleter) and when GitLab said so, which
    // cleanup orders it by: handled late, its bus time would be after a reopen's deploy.
    steps: plan.steps.map((step) => ({ ...step, entry: withCarried(step.entry, carried) })),
  };
}

function withCarried<E extends StepEntry>(entry: E, carried: { user: string | null; factAt?: string }): E {
  return { ...entry, detail: { ...entry.detail, ...carried } };
}

function planFact(fact: GitlabFact, manifest: KublerManifest, sha: string): Plan {
  switch (fact.detailType) {
    case "Push":
      return planPush(fact.detail, manifest);
    case "Tag Push":
      return planTagPush(fact.detail, manifest);
    case "Merge Request":
      return planMergeRequest(fact.detail, manifest, sha);
    case "Pipeline":
      return planPipeline(fact.detail, manifest);
    case "Job":
      return planStopJob(fact.detail, manifest);
    default:
      return { kind: "ignored", reason: `${fact.detailType} events do not change an environment` };
  }
}

interface Target {
  gitlab: GitlabRef;
  correlationId: string;
  environment: string;
  sha: string;
  ref: string;
  pipelineId: number | null;
  mrIid: number | null;
  /** The matched rule's TTL (null: the rule sets none); a stop has no TTL to carry. */
  ttl?: string | null;
  /** The commit the push or update started from, when it is one (`staleDeployReason`'s chain). */
  previousSha?: string | null;
  /** GitLab's own time of the fact, when its payload has one (a merge request's `updated_at`). */
  gitlabAt?: string | null;
}

function planMergeRequest(mr: Fact<"Merge Request">, manifest: KublerManifest, sha: string): Plan {
  const rule = manifest.environments.find((r) => r.on === "merge_request");
  const what = `merge request !${mr.iid}`;
  if (!rule) return { kind: "ignored", reason: `no rule matches ref ${mr.sourceBranch} (${what})` };
  const environment = environmentName(rule, { branch: mr.sourceBranch, mr_iid: mr.iid });
  if (environment.kind === "ignored") return environment;
  const target: Target = {
    gitlab: mr.gitlab,
    correlationId: mr.correlationId,
    environment: environment.name,
    sha,
    ref: mr.sourceBranch,
    pipelineId: null,
    mrIid: mr.iid,
    ttl: rule.ttl ?? null,
    // Only an update with new commits has `oldrev` (an open or reopen has none): the push's `before`.
    previousSha: mr.oldrev,
    // `??`: a detail from before `updatedAt` was carried has none.
    gitlabAt: mr.updatedAt ?? null,
  };
  if (mr.sourceProjectId !== null && mr.sourceProjectId !== mr.gitlab.projectId) {
    // A fork's commits would run with this project's build credentials and land in its cluster. Its
    // close stops nothing either: its branch may share a name with the project's own review branch.
    return {
      kind: "ignored",
      reason: `${what} comes from a fork (project ${mr.sourceProjectId}): not built or deployed`,
    };
  }
  const stop = MR_STOP_REASONS[mr.action ?? ""];
  if (stop) return stopPlan(target, stop, `${what} ${stop}`);
  return buildPlan(
    target,
    manifest,
    `${what} ${mr.action === "update" ? "has new commits" : `${mr.action}ed`}`,
  );
}

function planPush(push: Fact<"Push">, manifest: KublerManifest): Plan {
  if (push.change === "deleted") {
    const rule = manifest.environments.find((r) => r.on === "merge_request");
    if (!rule) return { kind: "ignored", reason: `no rule matches ref ${push.branch} (branch deleted)` };
    const environment = environmentName(rule, { branch: push.branch });
    if (environment.kind === "ignored") return environment;
    return stopPlan(
      { ...refTarget(push, environment.name, push.before, push.branch), mrIid: null },
      "branch_deleted",
      `branch ${push.branch} deleted`,
    );
  }
  const rule = manifest.environments.find(
    (r) => typeof r.on === "object" && "branch" in r.on && matchesGlob(r.on.branch, push.branch),
  );
  if (!rule) return { kind: "ignored", reason: `no rule matches ref ${push.branch}` };
  const environment = environmentName(rule, { branch: push.branch });
  if (environment.kind === "ignored") return environment;
  return buildPlan(
    {
      ...refTarget(push, environment.name, push.after, push.branch),
      ttl: rule.ttl ?? null,
      // A created branch's `before` is all zeros: no commit it came from. A push has no time of
      // GitLab's own, and its commits' timestamps are their authors' (kept by a rebase, older after a
      // force push back), so the chain is all that orders two pushes delivered reversed.
      previousSha: push.change === "updated" ? push.before : null,
    },
    manifest,
    `push to ${push.branch}`,
  );
}

function planTagPush(push: Fact<"Tag Push">, manifest: KublerManifest): Plan {
  const rule = manifest.environments.find(
    (r) => typeof r.on === "object" && "tag" in r.on && matchesGlob(r.on.tag, push.tag),
  );
  if (!rule) return { kind: "ignored", reason: `no rule matches ref ${push.tag} (tag)` };
  const environment = environmentName(rule, { tag: push.tag });
  if (environment.kind === "ignored") return environment;
  return buildPlan(
    { ...refTarget(push, environment.name, tagCommit(push), push.tag), ttl: rule.ttl ?? null },
    manifest,
    `tag ${push.tag} pushed`,
  );
}

/** The commit a pushed tag points to (`??`: a detail from before `checkoutSha` was carried has none). */
function tagCommit(push: Fact<"Tag Push">): string {
  return push.checkoutSha ?? push.after;
}

function planPipeline(pipeline: Fact<"Pipeline">, manifest: KublerManifest): Plan {
  const what = `pipeline ${pipeline.pipelineId} succeeded`;
  if (manifest.image) {
    return { kind: "ignored", reason: `${what}: kubler.yaml has an image, so Kubler builds and deploys` };
  }
  const found = pipelineEnvironment(pipeline, manifest);
  if (found.kind === "ignored") return found;
  const target: Target = {
    gitlab: pipeline.gitlab,
    correlationId: pipeline.correlationId,
    environment: found.name,
    sha: pipeline.sha,
    ref: found.ref,
    pipelineId: pipeline.pipelineId,
    mrIid: pipeline.mrIid,
    ttl: found.rule.ttl ?? null,
  };
  return {
    kind: "steps",
    steps: [{ entry: { detailType: "Deploy Requested", detail: stepDetail(target) }, sha: target.sha }],
    reason: `${what}: deploy ${shortSha(target.sha)} to ${target.environment}`,
  };
}

/** The environment a successful pipeline deploys: its merge request's review environment, or its ref's. */
function pipelineEnvironment(
  pipeline: Fact<"Pipeline">,
  manifest: KublerManifest,
): { kind: "name"; name: string; ref: string; rule: EnvironmentRule } | { kind: "ignored"; reason: string } {
  // Taken as it is: the webhook names a branch or tag by its short name, so `refs/heads/main` is a
  // branch literally so named (git allows it; GitLab took it on push until it validated pushed
  // names), never `main`, whose environment any developer could otherwise deploy to.
  const ref = pipeline.ref;
  // `??`: a detail from before the field existed has none.
  const fork = pipeline.mrSourceProjectId ?? null;
  if (fork !== null && fork !== pipeline.gitlab.projectId) {
    // A fork's branch may share its name with one of the project's own: its commit would replace
    // that branch's review environment. Merge request events refuse forks the same way.
    return {
      kind: "ignored",
      reason: `pipeline ${pipeline.pipelineId} is for a merge request from a fork (project ${fork}): not deployed`,
    };
  }
  if (pipeline.mrIid !== null) {
    const rule = manifest.environments.find((r) => r.on === "merge_request");
    if (!rule)
      return { kind: "ignored", reason: `no rule matches ref ${ref} (merge request !${pipeline.mrIid})` };
    // GitLab runs a detached merge request pipeline on refs/merge-requests/<iid>/head (the MR's source
    // branch head), a merged-results pipeline on …/merge (the source merged into the target) and a
    // merge-train one on …/train, but its webhook's `ref` is the pipeline's `source_ref`: the MR's
    // source branch for all three (lib/gitlab/data_builder/pipeline.rb), so a merge train's pipeline
    // deploys too. A payload naming the MR's …/head or …/merge ref is read the same way; …/train,
    // which also carries the MRs ahead of it in the train, is not. Pipeline ids order them.
    const branch = !ref.startsWith("refs/")
      ? ref
      : ref === `refs/merge-requests/${pipeline.mrIid}/head` ||
          ref === `refs/merge-requests/${pipeline.mrIid}/merge`
        ? (pipeline.mrSourceBranch ?? null)
        : null;
    if (branch !== null && branch !== ref && fork === null) {
      // The merge request ref also carries a fork's commits (a fork's pipeline run in this project).
      return {
        kind: "ignored",
        reason: `pipeline ${pipeline.pipelineId} ran on ${ref} for merge request !${pipeline.mrIid}, whose source project it does not name: not deployed`,
      };
    }
    if (branch === null) {
      return { kind: "ignored", reason: `pipeline ${pipeline.pipelineId} ran on ${ref}, not on a branch` };
    }
    const environment = environmentName(rule, { branch, mr_iid: pipeline.mrIid });
    return environment.kind === "name" ? { ...environment, ref: branch, rule } : environment;
  }
  if (ref.startsWith("refs/")) {
    // A merge request pipeline whose payload names no MR (old GitLab, or the MR deleted since), or a
    // branch named like a full ref.
    return { kind: "ignored", reason: `pipeline ${pipeline.pipelineId} ran on ${ref}, not on a branch` };
  }
  const key = pipeline.tag ? "tag" : "branch";
  const rule = manifest.environments.find(
    (r) =>
      typeof r.on === "object" &&
      key in r.on &&
      matchesGlob((r.on as Record<string, string>)[key] ?? "", ref),
  );
  if (!rule) return { kind: "ignored", reason: `no rule matches ref ${ref}${pipeline.tag ? " (tag)" : ""}` };
  const environment = environmentName(rule, pipeline.tag ? { tag: ref } : { branch: ref });
  return environment.kind === "name" ? { ...environment, ref, rule } : environment;
}

function planStopJob(job: Fact<"Job">, manifest: KublerManifest): Plan {
  const environment = job.environment ?? "";
  if (!findEnvironmentRule(manifest, environment)) {
    return { kind: "ignored", reason: `no rule matches environment ${environment} (stop job ${job.jobId})` };
  }
  return stopPlan(
    {
      gitlab: job.gitlab,
      correlationId: job.correlationId,
      environment,
      sha: job.sha,
      ref: job.ref,
      pipelineId: job.pipelineId,
      mrIid: null,
    },
    "stopped",
    `stop job ${job.jobId} (${job.name}) succeeded`,
  );
}

function buildPlan(target: Target, manifest: KublerManifest, why: string): Plan {
  if (!manifest.image) {
    return {
      kind: "ignored",
      reason: `${why}: kubler.yaml has no image, so ${target.environment} deploys when the project's pipeline for ${shortSha(target.sha)} succeeds`,
    };
  }
  return {
    kind: "steps",
    steps: [{ entry: { detailType: "Build Requested", detail: stepDetail(target) }, sha: target.sha }],
    reason: `${why}: build ${shortSha(target.sha)} for ${target.environment}`,
  };
}

function stopPlan(target: Target, reason: Detail<"Environment Stop Requested">["reason"], why: string): Plan {
  const detail: Detail<"Environment Stop Requested"> = {
    correlationId: target.correlationId,
    gitlab: target.gitlab,
    environment: target.environment,
    reason,
  };
  return {
    kind: "steps",
    steps: [{ entry: { detailType: "Environment Stop Requested", detail }, sha: target.sha }],
    reason: `${why}: stop ${target.environment}`,
  };
}

function stepDetail(target: Target): Detail<"Build Requested"> {
  return {
    correlationId: target.correlationId,
    gitlab: target.gitlab,
    environment: target.environment,
    sha: target.sha,
    ref: target.ref,
    pipelineId: target.pipelineId,
    mrIid: target.mrIid,
    ttl: target.ttl ?? null,
    // Only when known: a step without them is the same as one published before they were carried.
    ...(target.previousSha ? { previousSha: target.previousSha } : {}),
    ...(target.gitlabAt ? { gitlabAt: target.gitlabAt } : {}),
  };
}

function refTarget(
  fact: { gitlab: GitlabRef; correlationId: string },
  environment: string,
  sha: string,
  ref: string,
): Target {
  return {
    gitlab: fact.gitlab,
    correlationId: fact.correlationId,
    environment,
    sha,
    ref,
    pipelineId: null,
    mrIid: null,
  };
}

/** A rule's name with the event's values filled in; a placeholder the event cannot fill is a reason. */
function environmentName(
  rule: EnvironmentRule,
  values: { branch?: string; mr_iid?: number; tag?: string },
): { kind: "name"; name: string } | { kind: "ignored"; reason: string } {
  // Looked for in the rule, not the result: git allows braces in a branch name (`fix-{tag}`).
  for (const [, key = ""] of rule.name.matchAll(/\{([^}]*)\}/g)) {
    if (!Object.hasOwn(values, key)) {
      return {
        kind: "ignored",
        reason: `environment ${rule.name} needs {${key}}, which this event does not carry`,
      };
    }
  }
  return { kind: "name", name: fillTemplate(rule.name, values) };
}

const globs = new Map<string, RegExp>();

/**
 * GitLab-style ref globs: `*` is any run of characters (slashes included, so `release/*` matches
 * `release/1.2/hotfix`), `?` one character, everything else literal.
 *
 * @example
 * matchesGlob("v*", "v1.2.0"); // true
 */
export function matchesGlob(glob: string, value: string): boolean {
  let pattern = globs.get(glob);
  if (!pattern) {
    const source = [...glob]
      .map((c) => (c === "*" ? ".*" : c === "?" ? "." : c.replace(/[.+^${}()|[\]\\]/, "\\$&")))
      .join("");
    pattern = new RegExp(`^${source}$`, "s");
    // Globs come from a handful of kubler.yaml files; the bound only guards against a hostile one.
    if (globs.size < 1024) globs.set(glob, pattern);
  }
  return pattern.test(value);
}

/**
 * The key under which a step is remembered, so a second delivery of the same change (GitLab sends
 * two MR events for one push; old GitLab resends without an idempotency key) plans nothing new.
 * A step whose push or update started from a known commit (`previousSha`) is keyed by it too: a force
 * push back to a commit built minutes ago (A, then B, then back to A) is a new change, not a second
 * delivery of the first push to A, and must be built and deployed again, over B.
 * A pipeline's deploy is keyed by its pipeline (`pipelineId`): its success sent again (a job of it
 * retried) is the same deploy, while a new pipeline for the commit is how a project that builds its
 * own image deploys it again after a failed deploy, and must not be taken for a second delivery.
 *
 * @example
 * stepKey("Build Requested", gitlab, "review/feature-x", sha); // "plan/https://gitlab.example.com/15/review/feature-x/Build Requested/e59094b…"
 */
export function stepKey(
  type: StepType,
  gitlab: GitlabRef,
  environment: string,
  sha: string,
  previousSha: string | null = null,
  pipelineId: number | null = null,
): string {
  const key = `plan/${gitlab.instance}/${gitlab.projectId}/${environment}/${type}/${sha}`;
  const from = previousSha ? `${key}/from/${previousSha}` : key;
  return pipelineId === null ? from : `${from}/pipeline/${pipelineId}`;
}

/**
 * Where a stop of an environment is remembered (`EnvironmentStops`), beside the step keys.
 *
 * @example
 * environmentStopKey(gitlab, "review/feature-x"); // "plan/stop/https://gitlab.example.com/15/review/feature-x"
 */
export function environmentStopKey(gitlab: GitlabRef, environment: string): string {
  return `plan/stop/${gitlab.instance}/${gitlab.projectId}/${environment}`;
}

/** What Kubler remembers of a merge request's life, by its iid (`mergeRequestStateKey`). */
export type MergeRequestState = "merged" | "closed" | "reopened";

/**
 * Where the merge, close or reopen of a merge request is remembered, beside the stop keys: what
 * GitLab sends about an MR after it was merged, or closed and not reopened since (a pipeline that
 * finished later, an update its queue held back), however late that reaches Kubler, must not bring
 * its environment back.
 *
 * @example
 * mergeRequestStateKey(gitlab, 16, "merged"); // "plan/mr/https://gitlab.example.com/15/16/merged"
 */
export function mergeRequestStateKey(gitlab: GitlabRef, iid: number, state: MergeRequestState): string {
  return `plan/mr/${gitlab.instance}/${gitlab.projectId}/${iid}/${state}`;
}

/**
 * Why a merge request's build or deploy is refused, from when it was last merged, closed and reopened
 * (null: never), or null when it is open. A merged MR never reopens; a reopen in its close's second
 * (event times have one-second precision) counts as after it.
 *
 * @example
 * mergeRequestEnded(16, { merged: null, closed: new Date("2026-11-21T10:00:00Z"), reopened: null });
 * // "merge request !16 was closed (2026-11-21T10:00:00.000Z) and not reopened since"
 */
export function mergeRequestEnded(
  iid: number,
  at: Readonly<Record<MergeRequestState, Date | null>>,
): string | null {
  if (at.merged) return `merge request !${iid} was merged (${at.merged.toISOString()})`;
  if (at.closed && !(at.reopened && at.reopened.getTime() >= at.closed.getTime())) {
    return `merge request !${iid} was closed (${at.closed.toISOString()}) and not reopened since`;
  }
  return null;
}

/**
 * Whether a stop of the environment at `stoppedAt` refuses a build or deploy GitLab asked for at
 * `factAt`, so the stop is not undone by what was sent before it.
 *
 * @example
 * isRefusedByStop(new Date("2026-11-21T10:00:00Z"), new Date("2026-11-21T10:01:00Z")); // true
 */
export function isRefusedByStop(factAt: Date, stoppedAt: Date): boolean {
  // A tie goes to the stop, unlike staleDeployReason's: fact times have one-second precision, and an MR
  // update delivered in its merge's second must not bring the environment back, while a reopen in
  // the very second of its close is rare, and reopening or pushing again brings it back.
  return factAt.getTime() <= stoppedAt.getTime();
}

/** The step types a step undoes: a stop makes the next build of the same commit new again, and back. */
export const STEPS_UNDONE_BY: Readonly<Record<StepType, readonly StepType[]>> = {
  "Build Requested": ["Environment Stop Requested"],
  "Deploy Requested": ["Environment Stop Requested"],
  "Environment Stop Requested": ["Build Requested", "Deploy Requested"],
};

function shortSha(sha: string): string {
  return sha.slice(0, 8);
}
