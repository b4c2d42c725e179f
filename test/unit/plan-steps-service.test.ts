/**
 * The plan-steps use case with fakes for its ports (and the local in-memory dedupe store): what is
 * published, what is audited, and that duplicate deliveries — the same one again, or GitLab's second
 * delivery of one change — plan each step once.
 */
import fc from "fast-check";
import { beforeEach, describe, expect, it, vi } from "vitest";
import { createPlanStepsConsumer } from "../../functions/plan-steps/consumer.js";
import { type BusEntry, sourceOf, validateBusDetail } from "../../shared/domain/catalog.js";
import type { GitlabFact } from "../../shared/domain/plan-steps.js";
import { UnavailableError } from "../../shared/errors.js";
import { MemoryDedupeStore } from "../../shared/local/memory-dedupe-store.js";
import { MemoryEnvironmentStops } from "../../shared/local/memory-environment-stops.js";
import type { ManifestSource } from "../../shared/ports.js";
import { FACT_LEASE_SECONDS, type PlanStepsDeps, planStepsFor } from "../../shared/services/plan-steps.js";
import { FixedClock, RecordingAuditLog, RecordingPublisher } from "../fakes/index.js";

const BUILT = "group/built"; // Kubler builds its image
const CI_BUILT = "group/ci-built"; // its own CI builds the image
const MANIFESTS: Record<string, string> = {
  [BUILT]: `version: 1
image: { name: registry.example.com/group/built }
deploy: { manifests: deploy/ }
environments:
  - { name: "review/{branch}", on: merge_request }
  - { name: staging, on: { branch: main } }
  - { name: production, on: { tag: "v*" } }
`,
  [CI_BUILT]: `version: 1
deploy: { manifests: deploy/ }
environments:
  - { name: "review/{branch}", on: merge_request }
  - { name: staging, on: { branch: main } }
`,
};

/**
 * kubler.yaml by project path, the same at every commit and on the default branch unless a commit
 * (`atSha`) or the default branch (`onDefaultBranch`) has its own; counts reads at a commit; can be
 * told to fail, or to wait for a gate.
 */
class FakeManifestSource implements ManifestSource {
  reads = 0;
  failNext = 0;
  /** While set, a read waits for it: a slow GitLab, or (never settled) one that hangs. */
  gate: Promise<void> | null = null;
  /** sha → project path → kubler.yaml (null: none), over `files`. */
  readonly atSha = new Map<string, Record<string, string | null>>();
  /** project path → kubler.yaml on the default branch (null: none), over `files`. */
  readonly onDefaultBranch: Record<string, string | null> = {};
  /** Each default-branch read's `fresh` option. */
  readonly defaultBranchReads: boolean[] = [];
  constructor(readonly files: Record<string, string> = { ...MANIFESTS }) {}
  async readManifest(project: { projectPath: string }, sha: string): Promise<string | null> {
    this.reads++;
    if (this.gate) await this.gate;
    if (this.failNext > 0) {
      this.failNext--;
      throw new UnavailableError("GitLab answered 503 three times");
    }
    const commit = this.atSha.get(sha);
    if (commit && Object.hasOwn(commit, project.projectPath)) return commit[project.projectPath] ?? null;
    return this.files[project.projectPath] ?? null;
  }
  async readDefaultBranchManifest(
    project: { projectPath: string },
    options: { fresh?: boolean } = {},
  ): Promise<string | null> {
    this.defaultBranchReads.push(options.fresh ?? false);
    if (Object.hasOwn(this.onDefaultBranch, project.projectPath)) {
      return this.onDefaultBranch[project.projectPath] ?? null;
    }
    return this.files[project.projectPath] ?? null;
  }
  async readDirectory(): Promise<ReadonlyMap<string, string>> {
    return new Map();
  }
}

const SHA_A = "a".repeat(40);
const SHA_B = "b".repeat(40);
const gitlabOf = (projectPath: string) => ({
  instance: "https://gitlab.example.com",
  projectId: projectPath === BUILT ? 1 : 2,
  projectPath,
});

/** A time on the day the tests plan at, e.g. at("10:00:30"). */
const at = (time: string) => new Date(`2026-11-21T${time}Z`);

function mergeRequest(
  correlationId: string,
  overrides: Partial<Extract<GitlabFact, { detailType: "Merge Request" }>["detail"]> = {},
): GitlabFact {
  return {
    detailType: "Merge Request",
    detail: {
      correlationId,
      gitlab: gitlabOf(BUILT),
      action: "open",
      iid: 7,
      state: "opened",
      sourceBranch: "feature-x",
      targetBranch: "main",
      sourceProjectId: 1,
      lastCommitSha: SHA_A,
      oldrev: null,
      url: null,
      user: "dev",
      ...overrides,
    },
  };
}

/** A merge request of the project whose own CI builds its image. */
const ciMergeRequest = (correlationId: string, overrides: Parameters<typeof mergeRequest>[1] = {}) =>
  mergeRequest(correlationId, {
    gitlab: gitlabOf(CI_BUILT),
    sourceProjectId: gitlabOf(CI_BUILT).projectId,
    ...overrides,
  });

function push(correlationId: string, projectPath: string, overrides: object = {}): GitlabFact {
  return {
    detailType: "Push",
    detail: {
      correlationId,
      gitlab: gitlabOf(projectPath),
      ref: "refs/heads/main",
      branch: "main",
      before: SHA_A,
      after: SHA_B,
      change: "updated",
      totalCommits: 1,
      user: "dev",
      ...overrides,
    },
  } as GitlabFact;
}

function pipeline(correlationId: string, overrides: object = {}): GitlabFact {
  return {
    detailType: "Pipeline",
    detail: {
      correlationId,
      gitlab: gitlabOf(CI_BUILT),
      pipelineId: 40,
      status: "success",
      ref: "feature-x",
      tag: false,
      sha: SHA_B,
      source: "merge_request_event",
      mrIid: 7,
      user: "dev",
      ...overrides,
    },
  } as GitlabFact;
}

let deps: PlanStepsDeps & {
  manifests: FakeManifestSource;
  publisher: RecordingPublisher;
  audit: RecordingAuditLog;
  dedupe: MemoryDedupeStore;
  clock: FixedClock;
};

function freshDeps(): typeof deps {
  const clock = new FixedClock();
  return {
    manifests: new FakeManifestSource(),
    publisher: new RecordingPublisher(),
    dedupe: new MemoryDedupeStore(clock),
    stops: new MemoryEnvironmentStops(clock),
    audit: new RecordingAuditLog(),
    clock,
  };
}

beforeEach(() => {
  deps = freshDeps();
});

const published = () =>
  deps.publisher.entries.map((e) => `${e.detailType} ${(e.detail as { environment?: string }).environment}`);

describe("planStepsFor", () => {
  it("publishes a build for an opened merge request and audits the decision", async () => {
    const outcome = await planStepsFor(deps, mergeRequest("c-1"));
    expect(outcome).toMatchObject({ kind: "published", duplicates: [] });
    expect(deps.publisher.entries).toEqual([
      {
        detailType: "Build Requested",
        detail: {
          correlationId: "c-1",
          gitlab: gitlabOf(BUILT),
          environment: "review/feature-x",
          sha: SHA_A,
          ref: "feature-x",
          pipelineId: null,
          mrIid: 7,
          ttl: null,
          user: "dev",
        },
      },
    ]);
    expect(deps.audit.records).toEqual([
      expect.objectContaining({
        action: "plan.steps",
        outcome: "success",
        reason: "merge request !7 opened: build aaaaaaaa for review/feature-x",
        actor: { function: "plan-steps", gitlabUser: "dev" },
        correlationId: "c-1",
        subject: {
          project: BUILT,
          projectId: 1,
          sha: SHA_A,
          environments: ["review/feature-x"],
          steps: ["Build Requested"],
        },
        gitlab: expect.objectContaining({ event: "Merge Request" }),
      }),
    ]);
  });

  it("deploys on a successful pipeline when the project builds its own image", async () => {
    await planStepsFor(deps, pipeline("c-1"));
    expect(deps.publisher.entries).toMatchObject([
      {
        detailType: "Deploy Requested",
        detail: { environment: "review/feature-x", pipelineId: 40, sha: SHA_B },
      },
    ]);
  });

  it("deploys a commit again for a new pipeline of it (the runbook's fix forward), not for its pipeline's success again", async () => {
    await planStepsFor(deps, pipeline("c-1"), at("10:00:00"));
    // A job of the same pipeline retried, or GitLab sending its success again: the same deploy.
    const again = await planStepsFor(deps, pipeline("c-2"), at("10:05:00"));
    expect(again).toMatchObject({ kind: "ignored", reason: expect.stringContaining("already planned") });
    // The deploy failed (the cluster was short of nodes): the on-call runs a new pipeline for the commit.
    const rerun = await planStepsFor(deps, pipeline("c-3", { pipelineId: 41 }), at("10:10:00"));
    expect(rerun).toMatchObject({ kind: "published" });
    expect(deps.publisher.entries).toMatchObject([
      { detailType: "Deploy Requested", detail: { pipelineId: 40, sha: SHA_B } },
      { detailType: "Deploy Requested", detail: { pipelineId: 41, sha: SHA_B } },
    ]);
  });

  it("does not deploy again for the success GitLab sends once a stop job of the deploying pipeline ran", async () => {
    await planStepsFor(deps, pipeline("c-1"), at("10:00:00"));
    // Hours later (the deploy's step key has expired) the review app is stopped by its manual stop job
    // in that pipeline (or GitLab's on_stop after the branch's deletion).
    deps.clock.advance(2 * 3_600_000);
    const stopJob = (correlationId: string, pipelineId: number): GitlabFact =>
      ({
        detailType: "Job",
        detail: {
          correlationId,
          gitlab: gitlabOf(CI_BUILT),
          jobId: 90,
          name: "stop-review",
          stage: "deploy",
          status: "success",
          ref: "feature-x",
          tag: false,
          sha: SHA_B,
          pipelineId,
          environment: "review/feature-x",
          environmentAction: "stop",
          user: "dev",
        },
      }) as GitlabFact;
    expect(await planStepsFor(deps, stopJob("c-2", 40), at("12:00:00"))).toMatchObject({ kind: "published" });
    // The job ran, so pipeline 40 went running, then success again: GitLab sends that success after the stop.
    const again = await planStepsFor(deps, pipeline("c-3"), at("12:00:30"));
    expect(again).toMatchObject({
      kind: "ignored",
      reason: expect.stringContaining("stopped by a stop job of pipeline 40"),
    });
    expect(published()).toEqual([
      "Deploy Requested review/feature-x",
      "Environment Stop Requested review/feature-x",
    ]);
    // A new pipeline for the commit deploys it again.
    const rerun = await planStepsFor(deps, pipeline("c-4", { pipelineId: 41 }), at("12:05:00"));
    expect(rerun).toMatchObject({ kind: "published" });
  });

  it("does not deploy a pipeline for a merge request from a fork", async () => {
    const fork = await planStepsFor(deps, pipeline("c-1", { mrSourceProjectId: 999 }));
    expect(fork).toEqual({
      kind: "ignored",
      reason: "pipeline 40 is for a merge request from a fork (project 999): not deployed",
    });
    expect(deps.publisher.entries).toEqual([]);
    // The project's own merge request (its id as the source) deploys as before.
    await planStepsFor(deps, pipeline("c-2", { mrSourceProjectId: gitlabOf(CI_BUILT).projectId }));
    expect(deps.publisher.entries).toMatchObject([{ detailType: "Deploy Requested" }]);
  });

  it("ignores, and audits, a project without kubler.yaml", async () => {
    const outcome = await planStepsFor(deps, push("c-1", "group/other"));
    expect(outcome).toEqual({
      kind: "ignored",
      reason: `no kubler.yaml at ${SHA_B}: the project is not opted in`,
    });
    expect(deps.publisher.entries).toEqual([]);
    expect(deps.audit.last()).toMatchObject({
      outcome: "ignored",
      reason: outcome.reason,
      subject: { sha: SHA_B },
    });
  });

  it("ignores, and audits, a ref no rule matches", async () => {
    await planStepsFor(deps, push("c-1", BUILT, { branch: "develop", ref: "refs/heads/develop" }));
    expect(deps.publisher.entries).toEqual([]);
    expect(deps.audit.last()).toMatchObject({ outcome: "ignored", reason: "no rule matches ref develop" });
  });

  it("audits events that cannot lead to a step without reading kubler.yaml", async () => {
    await planStepsFor(deps, pipeline("c-1", { status: "running" }));
    await planStepsFor(deps, mergeRequest("c-2", { action: "approved" }));
    expect(deps.manifests.reads).toBe(0);
    expect(deps.audit.records.map((r) => [r.outcome, r.reason])).toEqual([
      ["ignored", "pipeline 40 running"],
      ["ignored", 'merge request !7 action "approved" does not change an environment'],
    ]);
  });

  it("fails a step too large for the bus once, audited, instead of retrying it for a day", async () => {
    // Git allows a branch name of several KB (path components of ≤ 255 bytes): the MR fact fits in
    // 8 KB, but its review environment's Build Requested carries the name twice (environment, ref).
    const branch = Array.from({ length: 17 }, (_, i) => `part${i}-`.padEnd(240, "x")).join("/");
    const fact = mergeRequest("c-1", { sourceBranch: branch });
    expect(() => validateBusDetail(fact.detailType, fact.detail)).not.toThrow();
    const outcome = await planStepsFor(deps, fact);
    expect(outcome).toEqual({
      kind: "failed",
      reason: expect.stringMatching(/^"Build Requested" detail is \d+ bytes, over the 8192-byte limit/),
    });
    expect(deps.publisher.entries).toEqual([]);
    expect(deps.audit.last()).toMatchObject({ outcome: "failure", subject: { sha: SHA_A } });
    // A redelivery is the same verdict, not another read of kubler.yaml.
    await planStepsFor(deps, fact);
    expect(deps.manifests.reads).toBe(1);
  });

  it("fails a bad kubler.yaml with its precise message, audited, without a crash or a retry", async () => {
    deps.manifests.files[BUILT] = "version: 1\ndeploy: { manifests: deploy/ }\nenvironments: []\n";
    const outcome = await planStepsFor(deps, mergeRequest("c-1"));
    const reason = "kubler.yaml: environments: expected at least one environment, found []";
    expect(outcome).toEqual({ kind: "failed", reason });
    expect(deps.publisher.entries).toEqual([]);
    expect(deps.audit.last()).toMatchObject({
      outcome: "failure",
      reason,
      subject: { sha: SHA_A, file: "kubler.yaml" },
    });
    // The same delivery again is not re-read: the verdict stands until the project fixes the file.
    await planStepsFor(deps, mergeRequest("c-1"));
    expect(deps.manifests.reads).toBe(1);
  });

  it("plans one build for GitLab's two MR deliveries for one push", async () => {
    await planStepsFor(deps, mergeRequest("c-1", { action: "update", oldrev: SHA_B }));
    await planStepsFor(deps, mergeRequest("c-2", { action: "update", oldrev: SHA_B }));
    expect(published()).toEqual(["Build Requested review/feature-x"]);
    expect(deps.audit.last()).toMatchObject({
      outcome: "ignored",
      reason: expect.stringMatching(/^duplicate: Build Requested review\/feature-x@aaaaaaaa already planned/),
      correlationId: "c-2",
    });
  });

  it("plans one build for the same push delivered twice, with or without an idempotency key", async () => {
    await planStepsFor(deps, push("c-1", BUILT));
    await planStepsFor(deps, push("c-1", BUILT)); // a redelivery of the same event
    await planStepsFor(deps, push("c-2", BUILT)); // an old GitLab resending: a new correlation id
    expect(published()).toEqual(["Build Requested staging"]);
    expect(deps.audit.records[1]).toMatchObject({
      outcome: "ignored",
      reason: "duplicate delivery of Push c-1: already planned",
    });
  });

  it("plans a force push back to a commit built minutes ago: a new change, not a second delivery", async () => {
    await planStepsFor(deps, push("c-1", BUILT, { before: SHA_A, after: SHA_B }));
    await planStepsFor(deps, push("c-2", BUILT, { before: SHA_B, after: SHA_A }));
    // GitLab's second delivery of it (old GitLab resends with a new correlation id) is still one.
    await planStepsFor(deps, push("c-2-again", BUILT, { before: SHA_B, after: SHA_A }));
    await planStepsFor(deps, push("c-3", BUILT, { before: SHA_A, after: SHA_B })); // and forward again
    expect(
      deps.publisher.entries.map((e) => [e.detail.correlationId, (e.detail as { sha: string }).sha]),
    ).toEqual([
      ["c-1", SHA_B],
      ["c-2", SHA_A],
      ["c-3", SHA_B],
    ]);
    expect(deps.publisher.entries.map((e) => (e.detail as { previousSha?: string }).previousSha)).toEqual([
      SHA_A,
      SHA_B,
      SHA_A,
    ]);
  });

  it("carries what orders a step against one delivered reversed: the commit it came from, GitLab's time", async () => {
    await planStepsFor(
      deps,
      mergeRequest("c-1", { action: "update", oldrev: SHA_B, updatedAt: "2026-11-21T10:00:05.000Z" }),
    );
    await planStepsFor(deps, push("c-2", BUILT, { before: "0".repeat(40), change: "created" }));
    await planStepsFor(deps, mergeRequest("c-3", { iid: 8, sourceBranch: "feature-y" })); // an open: no oldrev
    const [update, created, opened] = deps.publisher.entries.map((e) => e.detail);
    expect(update).toMatchObject({ previousSha: SHA_B, gitlabAt: "2026-11-21T10:00:05.000Z" });
    // A created branch came from no commit of its own; an open has no oldrev, a push no time of GitLab's.
    for (const detail of [created, opened]) expect(detail).not.toHaveProperty("previousSha");
    expect(created).not.toHaveProperty("gitlabAt");
  });

  it("builds the same commit again after the environment was stopped (close, then reopen)", async () => {
    await planStepsFor(deps, mergeRequest("c-1"));
    await planStepsFor(deps, mergeRequest("c-2", { action: "close", state: "closed" }));
    await planStepsFor(deps, mergeRequest("c-3", { action: "reopen", state: "opened" }));
    await planStepsFor(deps, mergeRequest("c-4", { action: "close", state: "closed" }));
    expect(published()).toEqual([
      "Build Requested review/feature-x",
      "Environment Stop Requested review/feature-x",
      "Build Requested review/feature-x",
      "Environment Stop Requested review/feature-x",
    ]);
  });

  it("carries the fact's time and the matched rule's TTL on the step", async () => {
    deps.manifests.files[BUILT] = MANIFESTS[BUILT]?.replace(
      '{ name: "review/{branch}", on: merge_request }',
      '{ name: "review/{branch}", on: merge_request, ttl: 24h }',
    ) as string;
    await planStepsFor(deps, mergeRequest("c-1"), new Date("2026-11-21T10:00:00Z"));
    expect(deps.publisher.entries[0]?.detail).toMatchObject({
      environment: "review/feature-x",
      factAt: "2026-11-21T10:00:00.000Z",
      ttl: "24h",
    });
  });

  it("refuses what GitLab sent before a stop, and builds again for what it sends after", async () => {
    await planStepsFor(deps, mergeRequest("c-1", { action: "update", oldrev: SHA_B }), at("10:00:00"));
    await planStepsFor(deps, mergeRequest("c-2", { action: "merge", state: "merged" }), at("10:01:00"));
    // GitLab's second delivery of the update (or an old instance resending it) arrives late.
    const late = await planStepsFor(
      deps,
      mergeRequest("c-3", { action: "update", oldrev: SHA_B }),
      at("10:00:00"),
    );
    expect(late).toMatchObject({
      kind: "ignored",
      reason: expect.stringContaining("stopped by a later event"),
    });
    expect(published()).toEqual([
      "Build Requested review/feature-x",
      "Environment Stop Requested review/feature-x",
    ]);
    await planStepsFor(deps, mergeRequest("c-4", { action: "reopen" }), at("10:02:00"));
    expect(published()).toEqual([
      "Build Requested review/feature-x",
      "Environment Stop Requested review/feature-x",
      "Build Requested review/feature-x",
    ]);
  });

  it("builds or deploys nothing more for a merged merge request, however late GitLab's event reaches Kubler", async () => {
    await planStepsFor(deps, mergeRequest("c-1", { action: "merge", state: "merged" }), at("10:00:00"));
    await planStepsFor(deps, ciMergeRequest("c-2", { action: "merge", state: "merged" }), at("10:00:00"));
    // Merged while its last pipeline still ran ("merge immediately"): the pipeline's success, and an
    // MR update GitLab's Sidekiq queued before the merge, reach Kubler after the merge did.
    const lateUpdate = await planStepsFor(
      deps,
      mergeRequest("c-3", { action: "update", oldrev: SHA_B }),
      at("10:00:05"),
    );
    const latePipeline = await planStepsFor(deps, pipeline("c-4"), at("10:00:30"));
    expect(lateUpdate).toMatchObject({ kind: "ignored", reason: expect.stringContaining("!7 was merged") });
    expect(latePipeline).toMatchObject({ kind: "ignored", reason: expect.stringContaining("!7 was merged") });
    expect(published()).toEqual([
      "Environment Stop Requested review/feature-x",
      "Environment Stop Requested review/feature-x",
    ]);
    // A new merge request from a branch of the same name is another one: it builds.
    await planStepsFor(deps, mergeRequest("c-5", { iid: 8 }), at("10:01:00"));
    expect(published()).toEqual([
      "Environment Stop Requested review/feature-x",
      "Environment Stop Requested review/feature-x",
      "Build Requested review/feature-x",
    ]);
  });

  it("deploys nothing for a closed merge request's late pipeline, and again once it is reopened", async () => {
    await planStepsFor(deps, ciMergeRequest("c-1", { action: "close", state: "closed" }), at("10:00:00"));
    // Closed while its pipeline still ran: the pipeline's success reaches Kubler after the close.
    const late = await planStepsFor(deps, pipeline("c-2"), at("10:00:30"));
    expect(late).toMatchObject({ kind: "ignored", reason: expect.stringContaining("!7 was closed") });
    expect(published()).toEqual(["Environment Stop Requested review/feature-x"]);
    await planStepsFor(deps, ciMergeRequest("c-3", { action: "reopen", state: "opened" }), at("10:01:00"));
    await planStepsFor(deps, pipeline("c-4"), at("10:02:00"));
    expect(published()).toEqual([
      "Environment Stop Requested review/feature-x",
      "Deploy Requested review/feature-x",
    ]);
  });

  it("takes a reopen at a commit whose kubler.yaml is bad for a reopen all the same", async () => {
    await planStepsFor(deps, ciMergeRequest("c-1", { action: "close", state: "closed" }), at("10:00:00"));
    const good = deps.manifests.files[CI_BUILT] as string;
    deps.manifests.files[CI_BUILT] = "version: 1\ndeploy: { manifests: deploy/ }\nenvironments: []\n";
    const reopen = await planStepsFor(deps, ciMergeRequest("c-2", { action: "reopen" }), at("10:01:00"));
    expect(reopen).toMatchObject({ kind: "failed" });
    // The project fixes kubler.yaml; the pipeline of that commit succeeds.
    deps.manifests.files[CI_BUILT] = good;
    await planStepsFor(deps, pipeline("c-3"), at("10:02:00"));
    expect(published()).toEqual([
      "Environment Stop Requested review/feature-x",
      "Deploy Requested review/feature-x",
    ]);
  });

  it("retries a close it could not record, auditing why", async () => {
    const record = deps.stops.record.bind(deps.stops);
    let failures = 1;
    vi.spyOn(deps.stops, "record").mockImplementation(async (key, at, ttl) => {
      if (key.startsWith("plan/mr/") && failures-- > 0) throw new UnavailableError("DynamoDB timed out");
      return record(key, at, ttl);
    });
    const close = mergeRequest("c-1", { action: "close", state: "closed" });
    await expect(planStepsFor(deps, close)).rejects.toThrow("DynamoDB timed out");
    expect(deps.audit.last()).toMatchObject({
      outcome: "failure",
      reason: "could not record the merge request's close: DynamoDB timed out; will retry",
    });
    await planStepsFor(deps, close);
    expect(published()).toEqual(["Environment Stop Requested review/feature-x"]);
  });

  it("forgets its claims when publishing fails, so the bus's retry publishes", async () => {
    deps.publisher.failNext = 1;
    await expect(planStepsFor(deps, mergeRequest("c-1"))).rejects.toThrow("failed to publish");
    expect(deps.audit.last()).toMatchObject({
      outcome: "failure",
      reason: expect.stringContaining("publishing Build Requested review/feature-x@aaaaaaaa failed"),
    });
    await planStepsFor(deps, mergeRequest("c-1"));
    expect(published()).toEqual(["Build Requested review/feature-x"]);
  });

  it("retries when kubler.yaml cannot be read, auditing why", async () => {
    deps.manifests.failNext = 1;
    await expect(planStepsFor(deps, mergeRequest("c-1"))).rejects.toThrow(UnavailableError);
    expect(deps.audit.last()).toMatchObject({
      outcome: "failure",
      reason: `could not read kubler.yaml at ${SHA_A}: GitLab answered 503 three times; will retry`,
    });
    await planStepsFor(deps, mergeRequest("c-1"));
    expect(published()).toEqual(["Build Requested review/feature-x"]);
  });
});

/** A Merge Request envelope as EventBridge hands it to the plan-steps consumer. */
function envelope(detail: unknown) {
  return {
    version: "0",
    id: "e-1",
    "detail-type": "Merge Request",
    source: sourceOf("Merge Request"),
    account: "000000000000",
    time: "2026-11-21T10:00:00Z",
    region: "local",
    resources: [],
    detail,
  };
}

describe("planStepsFor when the dedupe store fails", () => {
  const down = () => new UnavailableError("dedupe store unavailable");

  it("audits a fact it cannot claim, and throws it back for a retry", async () => {
    vi.spyOn(deps.dedupe, "reserve").mockRejectedValueOnce(down());
    await expect(planStepsFor(deps, mergeRequest("c-1"))).rejects.toThrow("dedupe store unavailable");
    expect(deps.publisher.entries).toEqual([]);
    expect(deps.audit.records).toEqual([
      expect.objectContaining({
        outcome: "failure",
        reason: "could not claim Merge Request c-1: dedupe store unavailable; will retry",
        correlationId: "c-1",
      }),
    ]);
  });

  it("audits the success once published, even when forgetting an undone step then fails", async () => {
    vi.spyOn(deps.dedupe, "release").mockRejectedValue(down());
    const outcome = await planStepsFor(deps, mergeRequest("c-1"));
    expect(outcome).toMatchObject({ kind: "published" });
    expect(published()).toEqual(["Build Requested review/feature-x"]);
    expect(deps.audit.records.map((r) => `${r.outcome}: ${r.reason}`)).toEqual([
      "success: merge request !7 opened: build aaaaaaaa for review/feature-x",
      "failure: published, but could not release 1 undone step key(s) (dedupe store unavailable): " +
        "the same step within 60 min is taken for a duplicate",
    ]);
  });

  it("keeps a decision whose fact cannot be confirmed, saying so in its one line", async () => {
    vi.spyOn(deps.dedupe, "confirm").mockRejectedValue(down());
    expect(await planStepsFor(deps, mergeRequest("c-1"))).toMatchObject({ kind: "published" });
    expect(deps.audit.records.map((r) => `${r.outcome}: ${r.reason}`)).toEqual([
      "success: merge request !7 opened: build aaaaaaaa for review/feature-x; its claim could not be " +
        "confirmed (dedupe store unavailable): a redelivery after 60 s plans it again",
    ]);
  });

  it("writes one line for an attempt whose claim cannot be released, saying what a retry will find", async () => {
    const consume = createPlanStepsConsumer(deps);
    deps.manifests.failNext = 1;
    vi.spyOn(deps.dedupe, "release").mockRejectedValue(down());
    // The attempt's own error goes back to the bus, not the release's; the consumer adds no line.
    await expect(consume(envelope(mergeRequest("c-1").detail))).rejects.toThrow("GitLab answered 503");
    expect(deps.audit.records.map((r) => `${r.outcome}: ${r.reason}`)).toEqual([
      `failure: could not read kubler.yaml at ${SHA_A}: GitLab answered 503 three times; ` +
        "and could not release its claim (dedupe store unavailable): a retry plans it once its 60 s lease ends",
    ]);
    deps = freshDeps();
    deps.publisher.failNext = 1;
    vi.spyOn(deps.dedupe, "release").mockRejectedValue(down());
    await expect(planStepsFor(deps, mergeRequest("c-1"))).rejects.toThrow("failed to publish");
    expect(deps.audit.records).toHaveLength(1);
    expect(deps.audit.last()).toMatchObject({
      outcome: "failure",
      reason: expect.stringMatching(/publishing Build Requested .* failed: .*could not release its claim/),
    });
  });
});

describe("a fact's lease", () => {
  const hang = () => {
    deps.manifests.gate = new Promise(() => {}); // until Lambda kills the attempt at its timeout
  };
  const slow = () => {
    let open = () => {};
    deps.manifests.gate = new Promise((resolve) => {
      open = resolve;
    });
    return () => {
      deps.manifests.gate = null;
      open();
    };
  };
  const reading = () => vi.waitFor(() => expect(deps.manifests.reads).toBeGreaterThan(0));
  const inFlight = "failure: Merge Request c-1 is being planned by another attempt; will retry";

  it("frees the fact of an attempt killed mid-way once the lease ends", async () => {
    hang();
    void planStepsFor(deps, mergeRequest("c-1"));
    await reading();
    deps.manifests.gate = null;
    // The bus's retry, while the lease holds: told to retry later, not that the fact is planned.
    deps.clock.advance(FACT_LEASE_SECONDS * 1000 - 1);
    await expect(planStepsFor(deps, mergeRequest("c-1"))).rejects.toThrow(UnavailableError);
    expect(deps.audit.records.map((r) => `${r.outcome}: ${r.reason}`)).toEqual([inFlight]);
    deps.clock.advance(1);
    await planStepsFor(deps, mergeRequest("c-1"));
    expect(published()).toEqual(["Build Requested review/feature-x"]);
  });

  it("retries an in-flight duplicate, which plans the fact when the first attempt fails", async () => {
    const consume = createPlanStepsConsumer(deps);
    const open = slow();
    deps.manifests.failNext = 1;
    const first = planStepsFor(deps, mergeRequest("c-1"));
    await reading();
    // One line for the duplicate's attempt: the consumer adds none.
    await expect(consume(envelope(mergeRequest("c-1").detail))).rejects.toThrow(UnavailableError);
    expect(deps.audit.records.map((r) => `${r.outcome}: ${r.reason}`)).toEqual([inFlight]);
    open();
    await expect(first).rejects.toThrow("GitLab answered 503");
    await consume(envelope(mergeRequest("c-1").detail)); // the bus's retry of the duplicate
    expect(published()).toEqual(["Build Requested review/feature-x"]);
  });

  it("retries an in-flight duplicate, which finds the fact planned when the first attempt succeeds", async () => {
    const open = slow();
    const first = planStepsFor(deps, mergeRequest("c-1"));
    await reading();
    await expect(planStepsFor(deps, mergeRequest("c-1"))).rejects.toThrow(UnavailableError);
    open();
    await first;
    expect(await planStepsFor(deps, mergeRequest("c-1"))).toEqual({
      kind: "ignored",
      reason: "duplicate delivery of Merge Request c-1: already planned",
    });
    expect(published()).toEqual(["Build Requested review/feature-x"]);
  });

  const decisions: {
    name: string;
    fact: GitlabFact;
    at?: Date;
    before?: () => unknown;
  }[] = [
    { name: "steps published", fact: mergeRequest("c-1") },
    { name: "no kubler.yaml", fact: push("c-1", "group/other") },
    { name: "no matching rule", fact: push("c-1", BUILT, { branch: "develop", ref: "refs/heads/develop" }) },
    {
      name: "a bad kubler.yaml",
      fact: mergeRequest("c-1"),
      before: () => {
        deps.manifests.files[BUILT] = "version: 1\ndeploy: { manifests: deploy/ }\nenvironments: []\n";
      },
    },
    {
      name: "its steps already planned",
      fact: mergeRequest("c-1"),
      before: () => planStepsFor(deps, mergeRequest("c-0")),
    },
    {
      name: "refused by a later stop",
      fact: mergeRequest("c-1", { action: "update", oldrev: SHA_B }),
      at: at("10:00:00"),
      before: () =>
        planStepsFor(deps, mergeRequest("c-0", { action: "merge", state: "merged" }), at("10:01:00")),
    },
  ];

  it.each(decisions)(
    "confirms a final decision ($name): a redelivery after the lease is a duplicate",
    async ({ fact, at, before }) => {
      await before?.();
      await planStepsFor(deps, fact, at);
      const reads = deps.manifests.reads;
      const entries = deps.publisher.entries.length;
      deps.clock.advance(10 * FACT_LEASE_SECONDS * 1000);
      expect(await planStepsFor(deps, fact, at)).toEqual({
        kind: "ignored",
        reason: `duplicate delivery of ${fact.detailType} c-1: already planned`,
      });
      expect(deps.manifests.reads).toBe(reads);
      expect(deps.publisher.entries).toHaveLength(entries);
    },
  );
});

describe("planStepsFor takes the environment rules from the default branch", () => {
  // What a Developer may push to a branch of their own: kubler.yaml naming production.
  const branchToProduction = `version: 1
image: { name: registry.example.com/group/built }
deploy: { manifests: deploy/ }
environments:
  - { name: production, on: { branch: my-branch } }
`;
  const reviewAsProduction = `version: 1
image: { name: registry.example.com/group/built }
deploy: { manifests: deploy/ }
environments:
  - { name: production, on: merge_request, ttl: never }
`;

  it("deploys nothing to production for a branch whose own kubler.yaml maps it there", async () => {
    deps.manifests.atSha.set(SHA_B, { [BUILT]: branchToProduction });
    const outcome = await planStepsFor(
      deps,
      push("c-1", BUILT, { branch: "my-branch", ref: "refs/heads/my-branch" }),
    );
    expect(outcome).toEqual({ kind: "ignored", reason: "no rule matches ref my-branch" });
    expect(deps.publisher.entries).toEqual([]);
    // Merged to the default branch (reviewed there), the same rule takes effect.
    deps.manifests.onDefaultBranch[BUILT] = branchToProduction;
    await planStepsFor(deps, push("c-2", BUILT, { branch: "my-branch", ref: "refs/heads/my-branch" }));
    expect(published()).toEqual(["Build Requested production"]);
  });

  it("builds, deploys and stops no review environment named production in a branch's kubler.yaml", async () => {
    const ciBuilt = reviewAsProduction.replace(/^image:.*\n/m, "");
    deps.manifests.atSha.set(SHA_A, { [BUILT]: reviewAsProduction });
    deps.manifests.atSha.set(SHA_B, { [BUILT]: reviewAsProduction, [CI_BUILT]: ciBuilt });
    await planStepsFor(deps, mergeRequest("c-1"));
    await planStepsFor(deps, mergeRequest("c-2", { action: "close", state: "closed" }));
    await planStepsFor(
      deps,
      push("c-3", BUILT, { branch: "feature-x", change: "deleted", before: SHA_B, after: "0".repeat(40) }),
    );
    expect(published()).toEqual([
      "Build Requested review/feature-x",
      "Environment Stop Requested review/feature-x",
      "Environment Stop Requested review/feature-x",
    ]);
    // Nor does its own CI's pipeline deploy there.
    await planStepsFor(deps, pipeline("c-4"));
    expect(published().at(-1)).toBe("Deploy Requested review/feature-x");
  });

  it("takes a rule's ttl from the default branch with it, the rest (image, deploy) from the commit", async () => {
    deps.manifests.onDefaultBranch[CI_BUILT] = (MANIFESTS[CI_BUILT] as string).replace(
      '"review/{branch}", on: merge_request',
      '"review/{branch}", on: merge_request, ttl: 72h',
    );
    // The commit adds an image (Kubler builds from now on) and asks to live forever: only the first counts.
    deps.manifests.atSha.set(SHA_A, {
      [CI_BUILT]: `version: 1
image: { name: registry.example.com/group/ci-built }
deploy: { manifests: deploy/ }
environments:
  - { name: "review/{branch}", on: merge_request, ttl: never }
`,
    });
    await planStepsFor(deps, mergeRequest("c-1", { gitlab: gitlabOf(CI_BUILT), sourceProjectId: 2 }));
    expect(deps.publisher.entries).toMatchObject([
      { detailType: "Build Requested", detail: { environment: "review/feature-x", ttl: "72h" } },
    ]);
  });

  it("plans nothing, audited, when the default branch has no kubler.yaml, whatever the commit's says", async () => {
    deps.manifests.onDefaultBranch[BUILT] = null;
    const outcome = await planStepsFor(deps, mergeRequest("c-1"));
    const reason =
      "no kubler.yaml on the default branch: its environment rules decide what is built, deployed or stopped, " +
      "so nothing is (environment rules take effect once merged to the default branch)";
    expect(outcome).toEqual({ kind: "ignored", reason });
    expect(deps.publisher.entries).toEqual([]);
    expect(deps.audit.last()).toMatchObject({ outcome: "ignored", reason, subject: { sha: SHA_A } });
  });

  it("fails, audited, on an invalid kubler.yaml on the default branch, never falling back to the commit's", async () => {
    deps.manifests.onDefaultBranch[BUILT] = "version: 1\ndeploy: { manifests: deploy/ }\nenvironments: []\n";
    const outcome = await planStepsFor(deps, mergeRequest("c-1"));
    const reason =
      "kubler.yaml on the default branch: environments: expected at least one environment, found []; " +
      "nothing is planned until it is fixed there";
    expect(outcome).toEqual({ kind: "failed", reason });
    expect(deps.publisher.entries).toEqual([]);
    expect(deps.audit.last()).toMatchObject({
      outcome: "failure",
      reason,
      subject: { sha: SHA_A, file: "kubler.yaml", ref: "default branch" },
    });
  });

  it("is not opted in without kubler.yaml at the commit, whatever the default branch has", async () => {
    deps.manifests.atSha.set(SHA_B, { [BUILT]: null });
    expect(await planStepsFor(deps, push("c-1", BUILT))).toEqual({
      kind: "ignored",
      reason: `no kubler.yaml at ${SHA_B}: the project is not opted in`,
    });
    expect(deps.publisher.entries).toEqual([]);
  });

  const lastCommitStops: [string, () => GitlabFact][] = [
    ["its merge request closed", () => mergeRequest("c-2", { action: "close", lastCommitSha: SHA_B })],
    ["its merge request merged", () => mergeRequest("c-2", { action: "merge", lastCommitSha: SHA_B })],
    [
      "its branch deleted",
      () =>
        push("c-2", BUILT, { branch: "feature-x", change: "deleted", before: SHA_B, after: "0".repeat(40) }),
    ],
  ];
  it.each(
    lastCommitStops.flatMap(([what, fact]) => [
      { what, fact, change: "removed", text: null },
      { what, fact, change: "broke", text: "version: 1\ndeploy: { manifests: deploy/ }\nenvironments: []\n" },
    ]),
  )(
    "stops a review environment on $what after the last commit $change kubler.yaml: a stop needs only the default branch's rules",
    async ({ fact, text }) => {
      await planStepsFor(deps, mergeRequest("c-1"), at("10:00:00"));
      // The branch's last commit drops or breaks kubler.yaml: the environment built at SHA_A must not
      // outlive the merge request or the branch for it.
      deps.manifests.atSha.set(SHA_B, { [BUILT]: text });
      const reads = deps.manifests.reads;
      expect(await planStepsFor(deps, fact(), at("10:01:00"))).toMatchObject({ kind: "published" });
      expect(published()).toEqual([
        "Build Requested review/feature-x",
        "Environment Stop Requested review/feature-x",
      ]);
      // The commit's own file is not read for a stop.
      expect(deps.manifests.reads).toBe(reads);
      // Nor is a build planned at that commit: it is still not opted in, or still broken.
      await planStepsFor(
        deps,
        mergeRequest("c-3", { action: "reopen", lastCommitSha: SHA_B }),
        at("10:02:00"),
      );
      expect(published()).toHaveLength(2);
    },
  );

  it("reads the default branch afresh for a push or tag push (what a merge or a release is), cached for the rest", async () => {
    await planStepsFor(deps, push("c-1", BUILT));
    await planStepsFor(deps, mergeRequest("c-2"));
    await planStepsFor(deps, pipeline("c-3"));
    expect(deps.manifests.defaultBranchReads).toEqual([true, false, false]);
  });
});

describe("plan-steps consumer", () => {
  it("audits a malformed envelope before throwing it back", async () => {
    await expect(createPlanStepsConsumer(deps)(envelope({ correlationId: "c-9" }))).rejects.toThrow();
    expect(deps.audit.records).toEqual([
      expect.objectContaining({
        action: "plan.steps",
        outcome: "failure",
        reason: expect.stringMatching(/^attempt failed, left to the bus to retry: /),
        correlationId: "c-9",
        subject: { eventId: "e-1" },
      }),
    ]);
  });

  it("writes one line for a failure the use case already audited", async () => {
    deps.manifests.failNext = 1;
    await expect(createPlanStepsConsumer(deps)(envelope(mergeRequest("c-1").detail))).rejects.toThrow(
      UnavailableError,
    );
    expect(deps.audit.records.map((r) => r.reason)).toEqual([
      `could not read kubler.yaml at ${SHA_A}: GitLab answered 503 three times; will retry`,
    ]);
  });
});

/** Distinct changes, each one GitLab delivery with its own correlation id. */
const POOL: ((id: string) => GitlabFact)[] = [
  (id) => mergeRequest(id),
  (id) => mergeRequest(id, { action: "update", oldrev: SHA_A, lastCommitSha: SHA_B }),
  (id) => mergeRequest(id, { action: "close", state: "closed", lastCommitSha: SHA_B }),
  (id) => mergeRequest(id, { action: "reopen", lastCommitSha: SHA_B }),
  (id) => mergeRequest(id, { action: "merge", state: "merged", lastCommitSha: SHA_B }),
  (id) => push(id, BUILT),
  (id) => push(id, BUILT, { branch: "feature-x", change: "deleted", before: SHA_B, after: "0".repeat(40) }),
  (id) => push(id, CI_BUILT),
  (id) => pipeline(id),
  (id) => pipeline(id, { mrIid: null, ref: "main", sha: SHA_A }),
  (id) => pipeline(id, { status: "failed" }),
];

async function run(facts: GitlabFact[]): Promise<BusEntry[]> {
  deps = freshDeps();
  for (const fact of facts) await planStepsFor(deps, fact);
  return deps.publisher.entries;
}

const withoutCorrelation = (entries: BusEntry[]) =>
  entries.map((e) => ({ ...e, detail: { ...e.detail, correlationId: "-" } }));

describe("duplicate deliveries (property)", () => {
  // A sequence of distinct changes, and where each change's redeliveries land (anywhere after it).
  const scenario = fc.array(fc.nat(POOL.length - 1), { minLength: 1, maxLength: 8 }).chain((changes) =>
    fc.record({
      changes: fc.constant(changes),
      redeliveries: fc.array(
        fc.record({ of: fc.nat(changes.length - 1), offset: fc.nat(changes.length + 4) }),
        { maxLength: 12 },
      ),
    }),
  );

  it("any sequence with redeliveries of the same events publishes what one delivery each does", async () => {
    await fc.assert(
      fc.asyncProperty(scenario, async ({ changes, redeliveries }) => {
        const once = changes.map((pool, i) => POOL[pool]?.(`c-${i}`) as GitlabFact);
        const sequence: { at: number; fact: GitlabFact }[] = once.map((fact, i) => ({ at: i, fact }));
        // Redeliveries come after the original, interleaved anywhere with later changes.
        for (const { of, offset } of redeliveries) {
          sequence.push({ at: of + 0.5 + offset, fact: once[of] as GitlabFact });
        }
        sequence.sort((a, b) => a.at - b.at);
        expect(await run(sequence.map((s) => s.fact))).toEqual(await run(once));
      }),
      { numRuns: 150 },
    );
  });

  it("GitLab's second delivery of a change (a new correlation id) right after the first adds no step", async () => {
    const copies = fc.array(fc.integer({ min: 1, max: 3 }), { minLength: 8, maxLength: 8 });
    await fc.assert(
      fc.asyncProperty(
        fc.array(fc.nat(POOL.length - 1), { minLength: 1, maxLength: 8 }),
        copies,
        async (changes, counts) => {
          const once = changes.map((pool, i) => POOL[pool]?.(`c-${i}`) as GitlabFact);
          const twice = changes.flatMap((pool, i) =>
            Array.from({ length: counts[i] ?? 1 }, (_, copy) => POOL[pool]?.(`c-${i}-${copy}`) as GitlabFact),
          );
          expect(withoutCorrelation(await run(twice))).toEqual(withoutCorrelation(await run(once)));
        },
      ),
      { numRuns: 150 },
    );
  });
});
