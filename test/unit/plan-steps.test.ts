/**
 * `planSteps` (DESIGN §4 "Plan") over every GitLab fixture, normalized by the ingress's own
 * normalizer, under a sample kubler.yaml with an image (Kubler builds) and without (the project's CI
 * builds); then the cases the fixtures do not show (close, merge, deletions, stop jobs, forks).
 */
import { readdirSync, readFileSync } from "node:fs";
import { describe, expect, it } from "vitest";
import { normalizeGitlabEvent } from "../../shared/domain/gitlab-event.js";
import { parseKublerManifest } from "../../shared/domain/kubler-manifest.js";
import {
  type GitlabFact,
  isRefusedByStop,
  matchesGlob,
  mergeRequestEnded,
  type Plan,
  planSteps,
  triageFact,
} from "../../shared/domain/plan-steps.js";

const FIXTURES_DIR = new URL("../fixtures/gitlab/webhooks/", import.meta.url);
const CORRELATION_ID = "corr-1";

const WITH_IMAGE = parseKublerManifest(`
version: 1
image:
  name: registry.example.com/group/app
deploy:
  manifests: deploy/
  image: app
environments:
  - name: review/{branch}
    on: merge_request
    ttl: 72h
  - name: staging
    on: { branch: master }
  - name: production
    on: { tag: "v*" }
`);
const { image: _, ...withoutImage } = WITH_IMAGE;
const WITHOUT_IMAGE = { ...withoutImage, deploy: { ...WITH_IMAGE.deploy, image: undefined } };

function readFixture(file: string): { event_header: string; payload: Record<string, unknown> } {
  return JSON.parse(readFileSync(new URL(file, FIXTURES_DIR), "utf8"));
}

/** GitLab documents some MR deliveries only in part: laid over the full MR example, as GitLab sends them. */
function payloadOf(file: string): { header: string; payload: Record<string, unknown> } {
  const { event_header, payload } = readFixture(file);
  // The reviewers-only partial is no delivery GitLab sends on its own: kept as it is (rejected).
  if (!file.startsWith("merge_request_partial_") || !payload.object_attributes) {
    return { header: event_header, payload };
  }
  const full = readFixture("merge_request.json").payload;
  return {
    header: event_header,
    payload: {
      ...full,
      ...payload,
      object_attributes: {
        ...(full.object_attributes as object),
        ...(payload.object_attributes as object | undefined),
      },
    },
  };
}

/** The fact the ingress would publish for a fixture, or why it publishes none. */
function factOf(file: string): GitlabFact | string {
  const { header, payload } = payloadOf(file);
  try {
    const result = normalizeGitlabEvent({
      eventHeader: header,
      payload,
      instance: null,
      correlationId: CORRELATION_ID,
    });
    return result.kind === "fact" ? (result.entry as GitlabFact) : `ingress ignores it: ${result.reason}`;
  } catch (error) {
    return `ingress rejects it: ${(error as Error).message}`;
  }
}

const MR_SHA = "e59094b8de0f2f91abbe4760a52d9137260252d8";
const mrGitlab = {
  instance: "http://gitlab.example.com",
  projectId: 2,
  projectPath: "flightjs/flight-management",
};
const reviewStep = {
  correlationId: CORRELATION_ID,
  gitlab: mrGitlab,
  environment: "review/feature/booking-validation",
  sha: MR_SHA,
  ref: "feature/booking-validation",
  pipelineId: null,
  mrIid: 16,
  // The matched rule's: the deploy takes the TTL from here, not by matching the name again.
  ttl: "72h",
  // Who asked: the deploy's audit line names them ("who deployed what where").
  user: "agarcia",
  // GitLab's object_attributes.updated_at: what orders it against another update delivered reversed.
  gitlabAt: "2026-01-16T05:56:25.000Z",
};
const build = (detail: object, sha: string, reason: string): Plan =>
  ({ kind: "steps", reason, steps: [{ entry: { detailType: "Build Requested", detail }, sha }] }) as Plan;
const NOT_A_FACT = expect.stringMatching(/^ingress (ignores|rejects) it: /);

type Expected = { withImage: Plan | string; withoutImage: Plan | string };

/** Every fixture file: what it plans with an image, and without. Strings: the ingress's verdict. */
const TABLE: Record<string, Expected> = {
  "merge_request.json": {
    withImage: build(
      reviewStep,
      MR_SHA,
      "merge request !16 opened: build e59094b8 for review/feature/booking-validation",
    ),
    withoutImage: {
      kind: "ignored",
      reason:
        "merge request !16 opened: kubler.yaml has no image, so review/feature/booking-validation deploys when the project's pipeline for e59094b8 succeeds",
    },
  },
  "merge_request_partial_update_oldrev.json": {
    withImage: build(
      // The documented partial's oldrev is the full example's last commit: the chain as GitLab wrote it.
      { ...reviewStep, previousSha: MR_SHA },
      MR_SHA,
      "merge request !16 has new commits: build e59094b8 for review/feature/booking-validation",
    ),
    withoutImage: {
      kind: "ignored",
      reason:
        "merge request !16 has new commits: kubler.yaml has no image, so review/feature/booking-validation deploys when the project's pipeline for e59094b8 succeeds",
    },
  },
  "merge_request_partial_system_initiated.json": {
    withImage: { kind: "ignored", reason: "merge request !16 updated without new commits" },
    withoutImage: { kind: "ignored", reason: "merge request !16 updated without new commits" },
  },
  "merge_request_partial_rerequest_review.json": {
    withImage: { kind: "ignored", reason: "merge request !16 updated without new commits" },
    withoutImage: { kind: "ignored", reason: "merge request !16 updated without new commits" },
  },
  "push.json": {
    withImage: build(
      {
        correlationId: CORRELATION_ID,
        gitlab: { instance: "http://example.com", projectId: 15, projectPath: "mike/diaspora" },
        environment: "staging",
        sha: "da1560886d4f094c3e6c9ef40349f7d38b5d27d7",
        ref: "master",
        pipelineId: null,
        mrIid: null,
        ttl: null,
        user: "jsmith",
        // The push's `before`: a deploy of it is older, whenever it arrives.
        previousSha: "95790bf891e76fee5e1747ab589903a6a1f80f22",
      },
      "da1560886d4f094c3e6c9ef40349f7d38b5d27d7",
      "push to master: build da156088 for staging",
    ),
    withoutImage: {
      kind: "ignored",
      reason:
        "push to master: kubler.yaml has no image, so staging deploys when the project's pipeline for da156088 succeeds",
    },
  },
  "tag_push.json": {
    withImage: build(
      {
        correlationId: CORRELATION_ID,
        gitlab: { instance: "http://example.com", projectId: 1, projectPath: "jsmith/example" },
        environment: "production",
        sha: "82b3d5ae55f7080f1e6022629cdb57bfae7cccc7",
        ref: "v1.0.0",
        pipelineId: null,
        mrIid: null,
        ttl: null,
        user: "jsmith",
      },
      "82b3d5ae55f7080f1e6022629cdb57bfae7cccc7",
      "tag v1.0.0 pushed: build 82b3d5ae for production",
    ),
    withoutImage: {
      kind: "ignored",
      reason:
        "tag v1.0.0 pushed: kubler.yaml has no image, so production deploys when the project's pipeline for 82b3d5ae succeeds",
    },
  },
  "pipeline.json": {
    withImage: {
      kind: "ignored",
      reason: "pipeline 31 succeeded: kubler.yaml has an image, so Kubler builds and deploys",
    },
    withoutImage: {
      kind: "steps",
      reason: "pipeline 31 succeeded: deploy bcbb5ec3 to review/master",
      steps: [
        {
          entry: {
            detailType: "Deploy Requested",
            detail: {
              correlationId: CORRELATION_ID,
              gitlab: {
                instance: "http://192.168.64.1:3005",
                projectId: 1,
                projectPath: "gitlab-org/gitlab-test",
              },
              environment: "review/master",
              sha: "bcbb5ec396a2c0f828686f14fac9b80b780504f2",
              ref: "master",
              pipelineId: 31,
              mrIid: 1,
              ttl: "72h",
              user: "root",
            },
          },
          sha: "bcbb5ec396a2c0f828686f14fac9b80b780504f2",
        },
      ],
    },
  },
  "job.json": {
    withImage: { kind: "ignored", reason: "job 1977 created: not a finished stop job" },
    withoutImage: { kind: "ignored", reason: "job 1977 created: not a finished stop job" },
  },
  "deployment.json": {
    withImage: {
      kind: "ignored",
      reason: "deployment 15 to staging success: only a stop job stops an environment",
    },
    withoutImage: {
      kind: "ignored",
      reason: "deployment 15 to staging success: only a stop job stops an environment",
    },
  },
  "release.json": {
    withImage: { kind: "ignored", reason: "release v1.1 create: tag pushes deploy" },
    withoutImage: { kind: "ignored", reason: "release v1.1 create: tag pushes deploy" },
  },
};

const FILES = readdirSync(FIXTURES_DIR)
  .filter((f) => f.endsWith(".json"))
  .sort();

describe("planSteps over every GitLab fixture", () => {
  it("has a row for every fixture that is a fact, and nothing else is one", () => {
    const facts = FILES.filter((f) => typeof factOf(f) !== "string");
    expect(facts.sort()).toEqual(Object.keys(TABLE).sort());
  });

  it.each(FILES)("%s", (file) => {
    const fact = factOf(file);
    const expected = TABLE[file];
    if (typeof fact === "string") {
      expect(expected).toBeUndefined();
      expect(fact).toEqual(NOT_A_FACT);
      return;
    }
    expect(planSteps(fact, WITH_IMAGE)).toEqual(expected?.withImage);
    expect(planSteps(fact, WITHOUT_IMAGE)).toEqual(expected?.withoutImage);
  });
});

function mergeRequest(
  overrides: Partial<Extract<GitlabFact, { detailType: "Merge Request" }>["detail"]>,
): GitlabFact {
  const fact = factOf("merge_request.json") as Extract<GitlabFact, { detailType: "Merge Request" }>;
  return { detailType: "Merge Request", detail: { ...fact.detail, ...overrides } };
}
function push(overrides: Partial<Extract<GitlabFact, { detailType: "Push" }>["detail"]>): GitlabFact {
  const fact = factOf("push.json") as Extract<GitlabFact, { detailType: "Push" }>;
  return { detailType: "Push", detail: { ...fact.detail, ...overrides } };
}
function pipeline(overrides: Partial<Extract<GitlabFact, { detailType: "Pipeline" }>["detail"]>): GitlabFact {
  const fact = factOf("pipeline.json") as Extract<GitlabFact, { detailType: "Pipeline" }>;
  return { detailType: "Pipeline", detail: { ...fact.detail, ...overrides } };
}
function job(overrides: Partial<Extract<GitlabFact, { detailType: "Job" }>["detail"]>): GitlabFact {
  const fact = factOf("job.json") as Extract<GitlabFact, { detailType: "Job" }>;
  return { detailType: "Job", detail: { ...fact.detail, ...overrides } };
}
const stop = (detail: object, sha: string, reason: string): Plan =>
  ({
    kind: "steps",
    reason,
    steps: [{ entry: { detailType: "Environment Stop Requested", detail }, sha }],
  }) as Plan;

describe("planSteps", () => {
  it.each([
    ["close", "closed"],
    ["merge", "merged"],
  ] as const)("stops the review environment when a merge request is %sd", (action, reason) => {
    const expected = stop(
      {
        correlationId: CORRELATION_ID,
        gitlab: mrGitlab,
        environment: "review/feature/booking-validation",
        reason,
        // Who merged or closed it: the environment.stop audit line names them.
        user: "agarcia",
      },
      MR_SHA,
      `merge request !16 ${reason}: stop review/feature/booking-validation`,
    );
    expect(planSteps(mergeRequest({ action, state: reason }), WITH_IMAGE)).toEqual(expected);
    // Whoever built the image, the environment goes.
    expect(planSteps(mergeRequest({ action, state: reason }), WITHOUT_IMAGE)).toEqual(expected);
  });

  it("a merged merge request's stop names who merged it, not the author of its commits, and when GitLab said so", () => {
    const merged = mergeRequest({ action: "merge", state: "merged", user: "maintainer" });
    const plan = planSteps(merged, WITH_IMAGE, "2026-11-21T10:00:00.000Z");
    // factAt: cleanup orders the stop by the merge, not by when plan-steps got round to publishing it.
    expect(plan).toMatchObject({
      steps: [
        { entry: { detail: { reason: "merged", user: "maintainer", factAt: "2026-11-21T10:00:00.000Z" } } },
      ],
    });
  });

  it("takes an MR action named like an Object property for an unknown action, not a stop", () => {
    for (const action of ["constructor", "toString", "__proto__", "hasOwnProperty"]) {
      expect(planSteps(mergeRequest({ action }), WITH_IMAGE)).toEqual({
        kind: "ignored",
        reason: `merge request !16 action "${action}" does not change an environment`,
      });
    }
  });

  it("builds again when a merge request is reopened", () => {
    expect(planSteps(mergeRequest({ action: "reopen" }), WITH_IMAGE)).toMatchObject({
      kind: "steps",
      reason: "merge request !16 reopened: build e59094b8 for review/feature/booking-validation",
    });
  });

  it.each([
    [{ action: "approved" }, 'merge request !16 action "approved" does not change an environment'],
    [{ action: null }, "merge request !16 without an action (old GitLab) does not change an environment"],
    [{ lastCommitSha: null }, "merge request !16 has no last commit"],
    [{ sourceProjectId: 99 }, "merge request !16 comes from a fork (project 99): not built or deployed"],
  ])("ignores a merge request with %j", (overrides, reason) => {
    expect(planSteps(mergeRequest(overrides), WITH_IMAGE)).toEqual({ kind: "ignored", reason });
  });

  it.each(["close", "merge"])(
    "a fork's merge request %sd stops nothing: its branch name may be that of the project's own review environment",
    (action) => {
      expect(planSteps(mergeRequest({ action, sourceProjectId: 99 }), WITH_IMAGE)).toEqual({
        kind: "ignored",
        reason: "merge request !16 comes from a fork (project 99): not built or deployed",
      });
    },
  );

  it("fills {mr_iid} in a review environment's name", () => {
    const manifest = { ...WITH_IMAGE, environments: [{ name: "mr-{mr_iid}", on: "merge_request" as const }] };
    expect(planSteps(mergeRequest({}), manifest)).toMatchObject({
      steps: [{ entry: { detail: { environment: "mr-16" } } }],
    });
  });

  it("names a review environment after a branch with braces in its name (git allows them)", () => {
    expect(planSteps(mergeRequest({ sourceBranch: "fix-{tag}" }), WITH_IMAGE)).toMatchObject({
      kind: "steps",
      steps: [{ entry: { detail: { environment: "review/fix-{tag}", ref: "fix-{tag}" } } }],
    });
  });

  it("stops a deleted branch's review environment, reading kubler.yaml at the commit it removed", () => {
    const before = "95790bf891e76fee5e1747ab589903a6a1f80f22";
    const fact = push({ branch: "feature/x", change: "deleted", after: "0".repeat(40) });
    expect(triageFact(fact)).toEqual({ kind: "read", sha: before });
    expect(planSteps(fact, WITH_IMAGE)).toEqual(
      stop(
        {
          correlationId: CORRELATION_ID,
          gitlab: { instance: "http://example.com", projectId: 15, projectPath: "mike/diaspora" },
          environment: "review/feature/x",
          reason: "branch_deleted",
          user: "jsmith",
        },
        before,
        "branch feature/x deleted: stop review/feature/x",
      ),
    );
  });

  it("cannot name a deleted branch's review environment that needs {mr_iid}", () => {
    const manifest = { ...WITH_IMAGE, environments: [{ name: "mr-{mr_iid}", on: "merge_request" as const }] };
    expect(planSteps(push({ change: "deleted" }), manifest)).toEqual({
      kind: "ignored",
      reason: "environment mr-{mr_iid} needs {mr_iid}, which this event does not carry",
    });
  });

  it.each([
    [push({ branch: "develop" }), "no rule matches ref develop"],
    [mergeRequest({}), "no rule matches ref feature/booking-validation (merge request !16)"],
    [push({ branch: "x", change: "deleted" }), "no rule matches ref x (branch deleted)"],
  ])("ignores what no rule matches: %#", (fact, reason) => {
    const manifest = { ...WITH_IMAGE, environments: [{ name: "qa", on: { tag: "qa-*" } }] };
    expect(planSteps(fact, manifest)).toEqual({ kind: "ignored", reason });
  });

  it("matches branch and tag globs, the first matching rule winning", () => {
    const manifest = {
      ...WITH_IMAGE,
      environments: [
        { name: "hotfix", on: { branch: "release/*/hotfix" } },
        { name: "release-{branch}", on: { branch: "release/*" } },
        { name: "rc", on: { tag: "v?.?-rc*" } },
      ],
    };
    const env = (plan: Plan) =>
      plan.kind === "steps" ? plan.steps[0]?.entry.detail.environment : plan.reason;
    expect(env(planSteps(push({ branch: "release/1.2/hotfix" }), manifest))).toBe("hotfix");
    expect(env(planSteps(push({ branch: "release/1.2" }), manifest))).toBe("release-release/1.2");
    const tag = factOf("tag_push.json") as Extract<GitlabFact, { detailType: "Tag Push" }>;
    expect(env(planSteps({ ...tag, detail: { ...tag.detail, tag: "v1.2-rc1" } }, manifest))).toBe("rc");
    expect(env(planSteps(tag, manifest))).toBe("no rule matches ref v1.0.0 (tag)");
  });

  it("builds the commit an annotated tag points to, not the tag object", () => {
    // For an annotated tag, `after` is the tag object's SHA (git rev-parse refs/tags/v1.1.0);
    // `checkout_sha` is its commit (lib/gitlab/data_builder/push.rb).
    const tagObject = "8a2a6eb295bb170b34c24c76c49ed0e9b2eaf34b";
    const commit = "5937ac0a7beb003549fc5fd26fc247adbce4a52e";
    const { payload } = payloadOf("tag_push.json");
    const normalized = normalizeGitlabEvent({
      eventHeader: "Tag Push Hook",
      payload: { ...payload, after: tagObject, checkout_sha: commit },
      instance: null,
      correlationId: CORRELATION_ID,
    });
    const fact = (normalized.kind === "fact" && normalized.entry) as GitlabFact;
    expect(triageFact(fact)).toEqual({ kind: "read", sha: commit });
    expect(planSteps(fact, WITH_IMAGE)).toMatchObject({
      kind: "steps",
      steps: [{ entry: { detailType: "Build Requested", detail: { sha: commit } }, sha: commit }],
    });
  });

  it("keeps a release environment when its tag is deleted", () => {
    const tag = factOf("tag_push.json") as Extract<GitlabFact, { detailType: "Tag Push" }>;
    expect(planSteps({ ...tag, detail: { ...tag.detail, change: "deleted" } }, WITH_IMAGE)).toEqual({
      kind: "ignored",
      reason: "tag v1.0.0 deleted: a release environment stays",
    });
  });

  it("deploys a successful branch or tag pipeline to its ref's environment when the project builds its image", () => {
    expect(planSteps(pipeline({ mrIid: null, source: "push" }), WITHOUT_IMAGE)).toMatchObject({
      steps: [
        { entry: { detailType: "Deploy Requested", detail: { environment: "staging", pipelineId: 31 } } },
      ],
    });
    expect(planSteps(pipeline({ mrIid: null, ref: "v2.0.0", tag: true }), WITHOUT_IMAGE)).toMatchObject({
      steps: [{ entry: { detail: { environment: "production", ref: "v2.0.0" } } }],
    });
    expect(planSteps(pipeline({ mrIid: null, ref: "develop" }), WITHOUT_IMAGE)).toEqual({
      kind: "ignored",
      reason: "no rule matches ref develop",
    });
  });

  it("deploys nothing for a branch named like a full ref (refs/heads/master): not the environment of the branch it names", () => {
    // GitLab's pipeline webhook names a branch by its short name, so a ref that starts with refs/heads/
    // is a branch literally so named, which git allows and GitLab took on push until it validated
    // pushed branch names (git push origin HEAD:refs/heads/refs/heads/master). Taken for master, any
    // developer's pipeline deployed their commit to master's environment, past master's protection.
    expect(planSteps(pipeline({ mrIid: null, ref: "refs/heads/master" }), WITHOUT_IMAGE)).toEqual({
      kind: "ignored",
      reason: "pipeline 31 ran on refs/heads/master, not on a branch",
    });
    expect(planSteps(pipeline({ mrIid: null, ref: "refs/tags/v2.0.0" }), WITHOUT_IMAGE)).toEqual({
      kind: "ignored",
      reason: "pipeline 31 ran on refs/tags/v2.0.0, not on a branch",
    });
    expect(
      planSteps(pipeline({ mrIid: null, ref: "refs/tags/v2.0.0", tag: true }), WITHOUT_IMAGE),
    ).toMatchObject({ kind: "ignored" });
    expect(planSteps(pipeline({ ref: "refs/heads/feature" }), WITHOUT_IMAGE)).toMatchObject({
      kind: "ignored",
    });
  });

  it("deploys a merge request pipeline run on refs/merge-requests/<iid>/head to its source branch's review environment", () => {
    // GitLab runs a detached merge request pipeline in the target project on the MR's ref_path
    // (MergeRequests::CreatePipelineService), so `ref` names no branch: the MR's source branch does.
    const { payload } = payloadOf("pipeline.json");
    const attributes = payload.object_attributes as Record<string, unknown>;
    const normalized = normalizeGitlabEvent({
      eventHeader: "Pipeline Hook",
      payload: { ...payload, object_attributes: { ...attributes, ref: "refs/merge-requests/1/head" } },
      instance: null,
      correlationId: CORRELATION_ID,
    });
    const fact = (normalized.kind === "fact" && normalized.entry) as GitlabFact;
    expect(planSteps(fact, WITHOUT_IMAGE)).toMatchObject({
      kind: "steps",
      reason: "pipeline 31 succeeded: deploy bcbb5ec3 to review/test",
      steps: [
        {
          entry: {
            detailType: "Deploy Requested",
            detail: { environment: "review/test", ref: "test", mrIid: 1, pipelineId: 31 },
          },
        },
      ],
    });
    // Without the MR's source project, a fork's branch cannot be told from the project's own: its
    // commit would replace that branch's review environment.
    const unknownSource = pipeline({ ref: "refs/merge-requests/1/head", mrSourceProjectId: null });
    expect(planSteps(unknownSource, WITHOUT_IMAGE)).toEqual({
      kind: "ignored",
      reason:
        "pipeline 31 ran on refs/merge-requests/1/head for merge request !1, whose source project it does not name: not deployed",
    });
  });

  it("takes a merge request ref for no branch when the pipeline names no merge request (old GitLab, a deleted MR)", () => {
    const everyBranch = {
      ...WITHOUT_IMAGE,
      environments: [{ name: "{branch}", on: { branch: "*" } }],
    } as typeof WITHOUT_IMAGE;
    const old = pipeline({ mrIid: null, mrSourceProjectId: null, ref: "refs/merge-requests/1/head" });
    expect(planSteps(old, everyBranch)).toEqual({
      kind: "ignored",
      reason: "pipeline 31 ran on refs/merge-requests/1/head, not on a branch",
    });
  });

  it("ignores pipelines that did not succeed, or ran on a merge train", () => {
    expect(planSteps(pipeline({ status: "failed" }), WITHOUT_IMAGE)).toEqual({
      kind: "ignored",
      reason: "pipeline 31 failed",
    });
    // A merge train's commit also carries the merge requests ahead of it: not this MR's review.
    expect(planSteps(pipeline({ ref: "refs/merge-requests/1/train" }), WITHOUT_IMAGE)).toEqual({
      kind: "ignored",
      reason: "pipeline 31 ran on refs/merge-requests/1/train, not on a branch",
    });
  });

  it("deploys a merged-results pipeline (refs/merge-requests/<iid>/merge) to its MR's review environment", () => {
    // With merged results pipelines on, a mergeable MR's pipelines run only on …/merge (GitLab falls
    // back to …/head when it cannot merge): ignoring them left such projects without review deploys.
    const merged = pipeline({ ref: "refs/merge-requests/1/merge", sha: "d".repeat(40) });
    expect(planSteps(merged, WITHOUT_IMAGE)).toMatchObject({
      kind: "steps",
      reason: `pipeline 31 succeeded: deploy dddddddd to review/test`,
      steps: [
        {
          entry: {
            detailType: "Deploy Requested",
            detail: {
              environment: "review/test",
              ref: "test",
              mrIid: 1,
              pipelineId: 31,
              sha: "d".repeat(40),
            },
          },
        },
      ],
    });
    // The same fork rule as …/head: without the MR's source project, no deploy.
    const unknownSource = pipeline({ ref: "refs/merge-requests/1/merge", mrSourceProjectId: null });
    expect(planSteps(unknownSource, WITHOUT_IMAGE)).toEqual({
      kind: "ignored",
      reason:
        "pipeline 31 ran on refs/merge-requests/1/merge for merge request !1, whose source project it does not name: not deployed",
    });
  });

  it("stops an environment when its GitLab stop job succeeds", () => {
    // The Job Hook names the job's environment and action (lib/gitlab/data_builder/build.rb).
    const { payload } = payloadOf("job.json");
    const normalized = normalizeGitlabEvent({
      eventHeader: "Job Hook",
      payload: {
        ...payload,
        build_status: "success",
        environment: { name: "review/feature-x", action: "stop" },
      },
      instance: null,
      correlationId: CORRELATION_ID,
    });
    const fact = (normalized.kind === "fact" && normalized.entry) as GitlabFact;
    expect(fact.detail).toMatchObject({ environment: "review/feature-x", environmentAction: "stop" });
    expect(planSteps(fact, WITH_IMAGE)).toEqual(
      stop(
        {
          correlationId: CORRELATION_ID,
          gitlab: {
            instance: "http://192.168.64.1:3005",
            projectId: 380,
            projectPath: "gitlab-org/gitlab-test",
          },
          environment: "review/feature-x",
          reason: "stopped",
          user: "user",
        },
        "2293ada6b400935a1378653304eaf6221e0fdb8f",
        "stop job 1977 (test) succeeded: stop review/feature-x",
      ),
    );
    expect(
      planSteps(job({ environment: "review/x", environmentAction: "start", status: "success" }), WITH_IMAGE),
    ).toEqual({ kind: "ignored", reason: "job 1977 success: not a finished stop job" });
    expect(
      planSteps(job({ environment: "qa", environmentAction: "stop", status: "success" }), WITH_IMAGE),
    ).toEqual({
      kind: "ignored",
      reason: "no rule matches environment qa (stop job 1977)",
    });
  });
});

describe("matchesGlob", () => {
  it.each([
    ["main", "main", true],
    ["main", "main2", false],
    ["v*", "v1.2.3", true],
    ["v*", "1.2.3", false],
    ["release/*", "release/1/2", true],
    ["v?", "v1", true],
    ["v?", "v10", false],
    ["a.b", "axb", false],
    ["(x)+", "(x)+", true],
  ])("%s against %s is %s", (glob, value, matches) => {
    expect(matchesGlob(glob, value)).toBe(matches);
  });
});

describe("isRefusedByStop", () => {
  const at = (time: string) => new Date(`2026-11-21T${time}Z`);

  it("refuses what GitLab asked for before a stop or in its second, and takes what came after", () => {
    expect(isRefusedByStop(at("10:00:59"), at("10:01:00"))).toBe(true);
    expect(isRefusedByStop(at("10:01:00"), at("10:01:00"))).toBe(true);
    expect(isRefusedByStop(at("10:01:01"), at("10:01:00"))).toBe(false);
  });
});

describe("mergeRequestEnded", () => {
  const at = (time: string) => new Date(`2026-11-21T${time}Z`);

  it("ends a merged MR for good, and a closed one until a reopen in or after its close's second", () => {
    expect(mergeRequestEnded(16, { merged: null, closed: null, reopened: null })).toBeNull();
    expect(mergeRequestEnded(16, { merged: at("10:00:00"), closed: null, reopened: at("10:05:00") })).toBe(
      "merge request !16 was merged (2026-11-21T10:00:00.000Z)",
    );
    expect(mergeRequestEnded(16, { merged: null, closed: at("10:01:00"), reopened: at("10:00:59") })).toBe(
      "merge request !16 was closed (2026-11-21T10:01:00.000Z) and not reopened since",
    );
    expect(
      mergeRequestEnded(16, { merged: null, closed: at("10:01:00"), reopened: at("10:01:00") }),
    ).toBeNull();
    expect(
      mergeRequestEnded(16, { merged: null, closed: at("10:01:00"), reopened: at("10:01:01") }),
    ).toBeNull();
  });
});
