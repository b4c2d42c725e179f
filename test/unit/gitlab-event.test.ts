import { readdirSync, readFileSync } from "node:fs";
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import type { BusEntry } from "../../shared/domain/catalog.js";
import {
  GITLAB_EVENT_HEADERS,
  type GitlabDelivery,
  type Normalized,
  normalizeGitlabEvent,
} from "../../shared/domain/gitlab-event.js";
import { BadRequestError } from "../../shared/errors.js";

const FIXTURES_DIR = new URL("../fixtures/gitlab/webhooks/", import.meta.url);
const CORRELATION_ID = "corr-1";

interface Fixture {
  event_header: string;
  payload: unknown;
}

function loadFixture(file: string): Fixture {
  return JSON.parse(readFileSync(new URL(file, FIXTURES_DIR), "utf8")) as Fixture;
}

/** A fresh, mutable copy of a fixture's payload. */
function payloadOf(file: string): Record<string, unknown> {
  return loadFixture(file).payload as Record<string, unknown>;
}

function normalize(eventHeader: string, payload: unknown, instance: string | null = null): Normalized {
  const delivery: GitlabDelivery = { eventHeader, payload, instance, correlationId: CORRELATION_ID };
  return normalizeGitlabEvent(delivery);
}

function entryOf(result: Normalized): BusEntry {
  if (result.kind !== "fact") throw new Error(`expected a fact, got ignored: ${result.reason}`);
  return result.entry;
}

function detailOf(result: Normalized): Record<string, unknown> {
  return entryOf(result).detail as unknown as Record<string, unknown>;
}

function expectBadRequest(run: () => unknown, message: string): void {
  let thrown: unknown;
  try {
    run();
  } catch (error) {
    thrown = error;
  }
  expect(thrown).toBeInstanceOf(BadRequestError);
  expect((thrown as Error).message).toBe(message);
}

const PUSH: Normalized = {
  kind: "fact",
  entry: {
    detailType: "Push",
    detail: {
      correlationId: CORRELATION_ID,
      gitlab: { instance: "http://example.com", projectId: 15, projectPath: "mike/diaspora" },
      ref: "refs/heads/master",
      branch: "master",
      before: "95790bf891e76fee5e1747ab589903a6a1f80f22",
      after: "da1560886d4f094c3e6c9ef40349f7d38b5d27d7",
      change: "updated",
      totalCommits: 4,
      user: "jsmith",
    },
  },
  summary: "Push mike/diaspora master 95790bf→da15608",
};

const MERGE_REQUEST: Normalized = {
  kind: "fact",
  entry: {
    detailType: "Merge Request",
    detail: {
      correlationId: CORRELATION_ID,
      gitlab: {
        instance: "http://gitlab.example.com",
        projectId: 2,
        projectPath: "flightjs/flight-management",
      },
      action: "open",
      iid: 16,
      state: "opened",
      sourceBranch: "feature/booking-validation",
      targetBranch: "main",
      sourceProjectId: 2,
      lastCommitSha: "e59094b8de0f2f91abbe4760a52d9137260252d8",
      oldrev: null,
      updatedAt: "2026-01-16T05:56:25.000Z",
      url: "http://gitlab.example.com/flightjs/flight-management/-/merge_requests/16",
      user: "agarcia",
    },
  },
  summary: "Merge Request flightjs/flight-management !16 open feature/booking-validation→main",
};

const JOB: Normalized = {
  kind: "fact",
  entry: {
    detailType: "Job",
    detail: {
      correlationId: CORRELATION_ID,
      gitlab: { instance: "http://192.168.64.1:3005", projectId: 380, projectPath: "gitlab-org/gitlab-test" },
      jobId: 1977,
      name: "test",
      stage: "test",
      status: "created",
      ref: "gitlab-script-trigger",
      tag: false,
      sha: "2293ada6b400935a1378653304eaf6221e0fdb8f",
      pipelineId: 2366,
      environment: null,
      environmentAction: null,
      user: "user",
    },
  },
  summary: "Job gitlab-org/gitlab-test test #1977 created gitlab-script-trigger 2293ada",
};

/**
 * What each acted-on fixture yields. Fixtures whose header is ignored need no entry (they must be
 * ignored); a new fixture of an acted-on event fails until it gets one here.
 */
const EXPECTED: Record<string, Normalized | { error: string }> = {
  "push.json": PUSH,
  "tag_push.json": {
    kind: "fact",
    entry: {
      detailType: "Tag Push",
      detail: {
        correlationId: CORRELATION_ID,
        gitlab: { instance: "http://example.com", projectId: 1, projectPath: "jsmith/example" },
        ref: "refs/tags/v1.0.0",
        tag: "v1.0.0",
        before: "0000000000000000000000000000000000000000",
        after: "82b3d5ae55f7080f1e6022629cdb57bfae7cccc7",
        checkoutSha: "82b3d5ae55f7080f1e6022629cdb57bfae7cccc7",
        change: "created",
        user: "jsmith",
      },
    },
    summary: "Tag Push jsmith/example v1.0.0 created at 82b3d5a",
  },
  "merge_request.json": MERGE_REQUEST,
  // GitLab documents these as fragments of a delivery: without the project (and iid, branches)
  // there is nothing to act on, and a real delivery always has them, so the fragment is a bad request.
  "merge_request_partial_update_oldrev.json": {
    error: 'Merge Request Hook payload: "project.id" is missing',
  },
  "merge_request_partial_system_initiated.json": {
    error: 'Merge Request Hook payload: "project.id" is missing',
  },
  "merge_request_partial_rerequest_review.json": {
    error: 'Merge Request Hook payload: "project.id" is missing',
  },
  // Only a `reviewers` array: not an MR event GitLab sends on its own. Rejected (400) rather than
  // ignored so a proxy or tool that mangles deliveries is noticed instead of silently dropped.
  "merge_request_partial_reviewers_state.json": {
    error: 'Merge Request Hook payload: "object_attributes" is missing',
  },
  "pipeline.json": {
    kind: "fact",
    entry: {
      detailType: "Pipeline",
      detail: {
        correlationId: CORRELATION_ID,
        gitlab: { instance: "http://192.168.64.1:3005", projectId: 1, projectPath: "gitlab-org/gitlab-test" },
        pipelineId: 31,
        status: "success",
        ref: "master",
        tag: false,
        sha: "bcbb5ec396a2c0f828686f14fac9b80b780504f2",
        source: "merge_request_event",
        mrIid: 1,
        mrSourceProjectId: 1,
        mrSourceBranch: "test",
        user: "root",
      },
    },
    summary: "Pipeline gitlab-org/gitlab-test #31 success master bcbb5ec",
  },
  "job.json": JOB,
  "deployment.json": {
    kind: "fact",
    entry: {
      detailType: "Deployment",
      detail: {
        correlationId: CORRELATION_ID,
        gitlab: {
          instance: "http://10.126.0.2:3000",
          projectId: 30,
          projectPath: "root/test-deployment-webhooks",
        },
        deploymentId: 15,
        status: "success",
        environment: "staging",
        environmentSlug: "staging",
        ref: null,
        sha: "279484c09fbe69ededfced8c1bb6e6d24616b468",
        deployableId: 796,
        user: "root",
      },
    },
    summary: "Deployment root/test-deployment-webhooks staging success 279484c",
  },
  "release.json": {
    kind: "fact",
    entry: {
      detailType: "Release",
      detail: {
        correlationId: CORRELATION_ID,
        gitlab: {
          instance: "https://example.com",
          projectId: 2,
          projectPath: "gitlab-org/release-webhook-example",
        },
        action: "create",
        tag: "v1.1",
        name: "v1.1",
        sha: "ee0a3fb31ac16e11b9dbb596ad16d4af654d08f8",
        url: "https://example.com/gitlab-org/release-webhook-example/-/releases/v1.1",
      },
    },
    summary: "Release gitlab-org/release-webhook-example v1.1 create",
  },
};

const FIXTURE_FILES = readdirSync(FIXTURES_DIR)
  .filter((file) => file.endsWith(".json"))
  .sort();

describe("normalizeGitlabEvent: every GitLab fixture", () => {
  it("finds the fixtures", () => {
    expect(FIXTURE_FILES.length).toBeGreaterThan(20);
    for (const file of Object.keys(EXPECTED)) expect(FIXTURE_FILES).toContain(file);
  });

  it.each(FIXTURE_FILES)("%s", (file) => {
    const { event_header: header, payload } = loadFixture(file);
    const expected = EXPECTED[file];
    if (expected === undefined) {
      const handling = (GITLAB_EVENT_HEADERS as Record<string, string>)[header];
      if (handling !== "ignored")
        throw new Error(`${file} (${header}) is acted on: add its expectation to EXPECTED`);
      expect(normalize(header, payload)).toEqual({
        kind: "ignored",
        reason: `"${header}" events are not acted on`,
      });
    } else if ("error" in expected) {
      expectBadRequest(() => normalize(header, payload), expected.error);
    } else {
      expect(normalize(header, payload)).toEqual(expected);
    }
  });
});

describe("normalizeGitlabEvent: headers", () => {
  it("ignores confidential issues and notes", () => {
    expect(normalize("Confidential Issue Hook", payloadOf("issue.json"))).toEqual({
      kind: "ignored",
      reason: '"Confidential Issue Hook" events are not acted on',
    });
    expect(normalize("Confidential Note Hook", payloadOf("note_issue.json"))).toEqual({
      kind: "ignored",
      reason: '"Confidential Note Hook" events are not acted on',
    });
  });

  it("normalizes a System Hook push like a Push Hook, with the system hook in error messages", () => {
    const result = normalize("System Hook", payloadOf("push.json"));
    expect(result).toEqual(PUSH);
    const broken = { ...payloadOf("push.json"), after: "nope" };
    expectBadRequest(
      () => normalize("System Hook", broken),
      'System Hook (push) payload: "after" must be a commit SHA',
    );
  });

  it("normalizes System Hook tag pushes and merge requests", () => {
    expect(entryOf(normalize("System Hook", payloadOf("tag_push.json"))).detailType).toBe("Tag Push");
    expect(normalize("System Hook", payloadOf("merge_request.json"))).toEqual(MERGE_REQUEST);
  });

  it("ignores the other System Hook events", () => {
    expect(normalize("System Hook", payloadOf("project_create.json"))).toEqual({
      kind: "ignored",
      reason: '"System Hook" "project_create" events are not acted on',
    });
    expect(normalize("System Hook", { event_name: "repository_update", project_id: 1 })).toEqual({
      kind: "ignored",
      reason: '"System Hook" "repository_update" events are not acted on',
    });
    expect(normalize("System Hook", { object_kind: 42 })).toEqual({
      kind: "ignored",
      reason: '"System Hook" event without object_kind or event_name is not acted on',
    });
    // An inherited key is not an event name.
    expect(normalize("System Hook", { event_name: "constructor" }).kind).toBe("ignored");
  });

  it("treats the old Build Hook as a Job Hook", () => {
    expect(normalize("Build Hook", payloadOf("job.json"))).toEqual(JOB);
  });

  it("ignores an unknown header, naming it", () => {
    expect(normalize("Epic Hook 2.0", payloadOf("issue.json"))).toEqual({
      kind: "ignored",
      reason: 'unknown event "Epic Hook 2.0"',
    });
    const long = normalize("X".repeat(5000), {});
    expect(long.kind === "ignored" && long.reason.length).toBeLessThan(200);
  });

  it("tolerates case and surrounding whitespace in the header", () => {
    expect(normalize("  push hook ", payloadOf("push.json"))).toEqual(PUSH);
  });

  it("rejects an empty header", () => {
    expectBadRequest(() => normalize("  ", payloadOf("push.json")), "X-Gitlab-Event header is missing");
  });
});

describe("normalizeGitlabEvent: push", () => {
  it("sees a branch deletion in an all-zero after", () => {
    const payload = {
      ...payloadOf("push.json"),
      after: "0000000000000000000000000000000000000000",
      checkout_sha: null,
      commits: [],
      total_commits_count: 0,
    };
    const result = normalize("Push Hook", payload);
    expect(detailOf(result)).toMatchObject({
      after: "0000000000000000000000000000000000000000",
      change: "deleted",
      totalCommits: 0,
    });
    expect(result.kind === "fact" && result.summary).toBe("Push mike/diaspora master deleted (was 95790bf)");
  });

  it("sees a branch creation in an all-zero before", () => {
    const payload = { ...payloadOf("push.json"), before: "0000000000000000000000000000000000000000" };
    const result = normalize("Push Hook", payload);
    expect(detailOf(result)).toMatchObject({ change: "created" });
    expect(result.kind === "fact" && result.summary).toBe("Push mike/diaspora master created at da15608");
  });

  it("reads an old push without a project object (project_id + repository only)", () => {
    const { project: _, user_username: __, total_commits_count: ___, ...old } = payloadOf("push.json");
    // Path and instance come from repository.homepage; the (capped) commit list stands in for the count.
    const detail = { ...(PUSH.kind === "fact" && PUSH.entry.detail), totalCommits: 2, user: null };
    expect(normalize("Push Hook", old)).toEqual({ ...PUSH, entry: { detailType: "Push", detail } });
  });

  it("accepts ids sent as numeric strings and upper-case SHAs", () => {
    const payload = {
      ...payloadOf("push.json"),
      project: { id: "15", path_with_namespace: "mike/diaspora" },
      after: "DA1560886D4F094C3E6C9EF40349F7D38B5D27D7",
      total_commits_count: "4",
    };
    expect(detailOf(normalize("Push Hook", payload))).toMatchObject({
      gitlab: { projectId: 15 },
      after: "da1560886d4f094c3e6c9ef40349f7d38b5d27d7",
      totalCommits: 4,
    });
  });

  it.each([
    [{ after: undefined }, 'Push Hook payload: "after" is missing'],
    [{ after: null }, 'Push Hook payload: "after" is missing'],
    [{ after: "not-a-sha" }, 'Push Hook payload: "after" must be a commit SHA'],
    [{ before: 95790 }, 'Push Hook payload: "before" must be a commit SHA'],
    [{ ref: undefined }, 'Push Hook payload: "ref" is missing'],
    [{ ref: "" }, 'Push Hook payload: "ref" must not be empty'],
    [{ ref: ["refs/heads/x"] }, 'Push Hook payload: "ref" must be a string'],
    [{ ref: "refs/tags/v1" }, 'Push Hook payload: "ref" must start with refs/heads/'],
    [{ ref: "refs/heads/" }, 'Push Hook payload: "ref" must start with refs/heads/'],
    [{ project: undefined, project_id: undefined }, 'Push Hook payload: "project.id" is missing'],
    [{ project: { id: -1 } }, 'Push Hook payload: "project.id" must be an id'],
    [{ project: { id: 1.5 } }, 'Push Hook payload: "project.id" must be an id'],
    [{ project: [15], project_id: undefined }, 'Push Hook payload: "project.id" is missing'],
    [{ project_id: "15abc", project: undefined }, 'Push Hook payload: "project_id" must be an id'],
    [{ total_commits_count: "many" }, 'Push Hook payload: "total_commits_count" must be an id'],
    [
      { project: { id: 15 }, repository: undefined },
      'Push Hook payload: "project.path_with_namespace" is missing',
    ],
  ])("rejects %j", (change, message) => {
    const payload: Record<string, unknown> = { ...payloadOf("push.json"), ...change };
    for (const [key, value] of Object.entries(change)) if (value === undefined) delete payload[key];
    expectBadRequest(() => normalize("Push Hook", payload), message);
  });

  it("treats wrongly typed optional fields as absent when they are only context", () => {
    const payload = { ...payloadOf("push.json"), commits: "x", total_commits_count: null, user_username: "" };
    expect(detailOf(normalize("Push Hook", payload))).toMatchObject({ totalCommits: 0, user: null });
  });

  // Not a 400: any developer can push such a branch, and GitLab counts 4xx toward disabling the hook.
  it("ignores a push whose ref is so long that the detail would exceed 8 KB, naming the field", () => {
    const payload = { ...payloadOf("push.json"), ref: `refs/heads/${"a".repeat(9000)}` };
    expect(normalize("Push Hook", payload)).toEqual({
      kind: "ignored",
      reason:
        "Push Hook payload of mike/diaspora: a field is too long " +
        "(the Push detail's \"ref\" is 9011 characters; the detail would be over the bus's 8 KB limit)",
    });
  });

  it("measures the detail in bytes, not characters: a branch of 2,000 three-byte characters is too long", () => {
    const payload = { ...payloadOf("push.json"), ref: `refs/heads/${"字".repeat(2000)}` };
    expect(normalize("Push Hook", payload)).toEqual({
      kind: "ignored",
      reason:
        "Push Hook payload of mike/diaspora: a field is too long " +
        "(the Push detail's \"ref\" is 2011 characters; the detail would be over the bus's 8 KB limit)",
    });
  });
});

describe("normalizeGitlabEvent: merge requests", () => {
  const full = () => payloadOf("merge_request.json");
  const withAttributes = (extra: object) => {
    const payload = full();
    return { ...payload, object_attributes: { ...(payload.object_attributes as object), ...extra } };
  };

  it("reads oldrev on an update with new commits (the documented partial, on a full delivery)", () => {
    const partial = payloadOf("merge_request_partial_update_oldrev.json").object_attributes as object;
    expect(detailOf(normalize("Merge Request Hook", withAttributes(partial)))).toMatchObject({
      action: "update",
      oldrev: "e59094b8de0f2f91abbe4760a52d9137260252d8",
    });
  });

  it("keeps a system-initiated update a plain update without oldrev (nothing to rebuild)", () => {
    const partial = payloadOf("merge_request_partial_system_initiated.json").object_attributes as object;
    expect(detailOf(normalize("Merge Request Hook", withAttributes(partial)))).toMatchObject({
      action: "update",
      oldrev: null,
    });
  });

  it.each([
    ["2026-01-16 05:56:25 UTC", "2026-01-16T05:56:25.000Z"], // newer GitLab (Ruby's Time#to_s)
    ["2013-12-03T17:23:34Z", "2013-12-03T17:23:34.000Z"], // older GitLab
    ["2025-01-08T00:46:14.429Z", "2025-01-08T00:46:14.429Z"],
    ["2026-01-16 07:56:25 +0200", "2026-01-16T05:56:25.000Z"],
    ["2026-01-16T07:56:25+02:00", "2026-01-16T05:56:25.000Z"],
    ["2015-04-08T21: 00:25-07:00", null], // malformed as one of GitLab's documented examples is
    ["2026-02-30 10:00:00 UTC", null], // no such day
    // Real days whose instant, once in UTC, is outside the years 0000-9999 an RFC 3339 time can write.
    ["9999-12-31 23:59:59 -1400", null],
    ["0000-01-01T00:00:00+14:00", null],
    ["yesterday", null],
    [1768542985, null],
    [undefined, null],
  ])(
    "reads GitLab's time of the change, updated_at %j, as %j (what orders updates delivered reversed)",
    (updatedAt, expected) => {
      const payload = withAttributes({ updated_at: updatedAt });
      if (updatedAt === undefined) delete (payload.object_attributes as Record<string, unknown>).updated_at;
      expect(detailOf(normalize("Merge Request Hook", payload))).toMatchObject({ updatedAt: expected });
    },
  );

  it("reads an MR from old GitLab without action", () => {
    const payload = full();
    delete (payload.object_attributes as Record<string, unknown>).action;
    const result = normalize("Merge Request Hook", payload);
    expect(detailOf(result)).toMatchObject({ action: null, state: "opened", iid: 16 });
    expect(result.kind === "fact" && result.summary).toBe(
      "Merge Request flightjs/flight-management !16 (no action) feature/booking-validation→main",
    );
  });

  it("falls back to the target project when there is no project object", () => {
    const { project: _, ...payload } = full();
    expect(detailOf(normalize("Merge Request Hook", payload))).toMatchObject({
      gitlab: {
        instance: "http://gitlab.example.com",
        projectId: 2,
        projectPath: "flightjs/flight-management",
      },
    });
  });

  it("accepts a numeric-string iid and nulls absent optional fields", () => {
    const payload = full();
    const attributes = payload.object_attributes as Record<string, unknown>;
    attributes.iid = "16";
    for (const key of ["last_commit", "state", "source_project_id", "url"]) delete attributes[key];
    delete payload.user;
    expect(detailOf(normalize("Merge Request Hook", payload))).toMatchObject({
      iid: 16,
      lastCommitSha: null,
      state: null,
      sourceProjectId: null,
      url: null,
      user: null,
    });
  });

  it.each([
    [{ iid: "sixteen" }, 'Merge Request Hook payload: "object_attributes.iid" must be an id'],
    [{ iid: null }, 'Merge Request Hook payload: "object_attributes.iid" is missing'],
    [{ source_branch: null }, 'Merge Request Hook payload: "object_attributes.source_branch" is missing'],
    [{ target_branch: 7 }, 'Merge Request Hook payload: "object_attributes.target_branch" must be a string'],
    [{ oldrev: "zzz" }, 'Merge Request Hook payload: "object_attributes.oldrev" must be a commit SHA'],
    [
      { last_commit: { id: "short" } },
      'Merge Request Hook payload: "object_attributes.last_commit.id" must be a commit SHA',
    ],
  ])("rejects object_attributes %j", (extra, message) => {
    expectBadRequest(() => normalize("Merge Request Hook", withAttributes(extra)), message);
  });

  it("rejects object_attributes that is not an object", () => {
    expectBadRequest(
      () => normalize("Merge Request Hook", { ...full(), object_attributes: [1] }),
      'Merge Request Hook payload: "object_attributes" must be an object',
    );
  });
});

describe("normalizeGitlabEvent: pipelines, jobs, deployments, releases", () => {
  it("reads a branch pipeline without merge request", () => {
    const payload = { ...payloadOf("pipeline.json"), merge_request: null };
    expect(detailOf(normalize("Pipeline Hook", payload))).toMatchObject({ mrIid: null });
  });

  it("requires the pipeline's tag flag", () => {
    const payload = payloadOf("pipeline.json");
    delete (payload.object_attributes as Record<string, unknown>).tag;
    expectBadRequest(
      () => normalize("Pipeline Hook", payload),
      'Pipeline Hook payload: "object_attributes.tag" is missing',
    );
  });

  it("reads a job from old GitLab without project (project_id + repository)", () => {
    const { project: _, ...payload } = payloadOf("job.json");
    expect(normalize("Job Hook", payload)).toEqual(JOB);
  });

  it("takes the job's pipeline id from commit.id when pipeline_id is absent, never as a SHA", () => {
    const { pipeline_id: _, ...payload } = payloadOf("job.json");
    expect(detailOf(normalize("Job Hook", payload))).toMatchObject({
      pipelineId: 2366,
      sha: "2293ada6b400935a1378653304eaf6221e0fdb8f",
    });
  });

  it("reads a job's environment name", () => {
    const payload = {
      ...payloadOf("job.json"),
      environment: { name: "review/feature-x", action: "start", deployment_tier: "development" },
    };
    expect(detailOf(normalize("Job Hook", payload))).toMatchObject({ environment: "review/feature-x" });
  });

  it("rejects a job without sha", () => {
    const { sha: _, ...payload } = payloadOf("job.json");
    expectBadRequest(() => normalize("Job Hook", payload), 'Job Hook payload: "sha" is missing');
  });

  it("reads a deployment's ref (newer GitLab) and falls back to short_sha without commit_url", () => {
    const { commit_url: _, ...payload }: Record<string, unknown> = {
      ...payloadOf("deployment.json"),
      ref: "main",
    };
    expect(detailOf(normalize("Deployment Hook", payload))).toMatchObject({ ref: "main", sha: "279484c0" });
  });

  it("accepts GitLab 12's deployment payload: no deployment_id, no status_changed_at", () => {
    // The fields of GitLab 12's Gitlab::DataBuilder::Deployment.build, nothing else.
    const current = payloadOf("deployment.json");
    const old = Object.fromEntries(
      [
        "object_kind",
        "status",
        "deployable_id",
        "deployable_url",
        "environment",
        "project",
        "short_sha",
        "user",
        "user_url",
        "commit_url",
        "commit_title",
      ].map((field) => [field, current[field]]),
    );
    expect(detailOf(normalize("Deployment Hook", old))).toMatchObject({
      deploymentId: null,
      environment: "staging",
      status: "success",
      sha: "279484c09fbe69ededfced8c1bb6e6d24616b468",
    });
  });

  it("rejects a deployment without environment", () => {
    const { environment: _, ...payload } = payloadOf("deployment.json");
    expectBadRequest(
      () => normalize("Deployment Hook", payload),
      'Deployment Hook payload: "environment" is missing',
    );
  });

  it("clips a long release name and rejects a release without tag", () => {
    const long = normalize("Release Hook", { ...payloadOf("release.json"), name: "n".repeat(1000) });
    expect((detailOf(long).name as string).length).toBe(255);
    const { tag: _, ...payload } = payloadOf("release.json");
    expectBadRequest(() => normalize("Release Hook", payload), 'Release Hook payload: "tag" is missing');
  });
});

describe("normalizeGitlabEvent: hostile and malformed payloads", () => {
  it.each([[null], [[]], ["x"], [42], [true]])("rejects a %j payload", (payload) => {
    expectBadRequest(() => normalize("Push Hook", payload), "Push Hook payload: must be a JSON object");
    expectBadRequest(() => normalize("Issue Hook", payload), "Issue Hook payload: must be a JSON object");
  });

  it("never reads or copies __proto__ / constructor keys", () => {
    const raw = readFileSync(new URL("push.json", FIXTURES_DIR), "utf8");
    const fixture = JSON.parse(raw) as { payload: Record<string, unknown> };
    const hostile = JSON.parse(
      JSON.stringify(fixture.payload).replace(
        /^\{/,
        '{"__proto__":{"polluted":"yes","user_username":"evil"},"constructor":{"prototype":{"polluted":"yes"}},',
      ),
    ) as Record<string, unknown>;
    expect(Object.hasOwn(hostile, "__proto__")).toBe(true);
    const detail = detailOf(normalize("Push Hook", hostile));
    expect(({} as Record<string, unknown>).polluted).toBeUndefined();
    expect(Object.keys(detail)).not.toContain("polluted");
    expect(detail.user).toBe("jsmith");
  });

  it("does not take a project id from an inherited or __proto__ key", () => {
    const payload = JSON.parse(
      '{"ref":"refs/heads/main","before":"95790bf891e76fee5e1747ab589903a6a1f80f22",' +
        '"after":"da1560886d4f094c3e6c9ef40349f7d38b5d27d7",' +
        '"project":{"__proto__":{"id":99,"path_with_namespace":"evil/x"}}}',
    ) as unknown;
    expectBadRequest(() => normalize("Push Hook", payload), 'Push Hook payload: "project.id" is missing');
    expect(({} as Record<string, unknown>).id).toBeUndefined();
  });

  it("throws only BadRequestError, whatever the payload", () => {
    const headers = [...Object.keys(GITLAB_EVENT_HEADERS), "Unknown Hook"];
    fc.assert(
      fc.property(fc.constantFrom(...headers), fc.anything(), (header, payload) => {
        expectOnlyBadRequest(() => normalize(header, payload));
      }),
      { numRuns: 300 },
    );
  });

  it("throws only BadRequestError when any field of a real payload is replaced", () => {
    const acted = FIXTURE_FILES.filter((file) => {
      const header = loadFixture(file).event_header as keyof typeof GITLAB_EVENT_HEADERS;
      return GITLAB_EVENT_HEADERS[header] !== "ignored";
    });
    fc.assert(
      fc.property(fc.constantFrom(...acted), fc.nat(), fc.nat(), fc.jsonValue(), (file, i, j, value) => {
        const { event_header: header, payload } = loadFixture(file);
        replaceSomewhere(payload, i, j, value);
        expectOnlyBadRequest(() => normalize(header, payload));
      }),
      { numRuns: 300 },
    );
  });
});

describe("normalizeGitlabEvent: instance", () => {
  it("uses the X-Gitlab-Instance value when sent", () => {
    const detail = detailOf(normalize("Push Hook", payloadOf("push.json"), "https://gitlab.example.com/"));
    expect(detail.gitlab).toEqual({
      instance: "https://gitlab.example.com",
      projectId: 15,
      projectPath: "mike/diaspora",
    });
  });

  it("falls back to the origin of the project's web_url, with its port", () => {
    const detail = detailOf(normalize("Pipeline Hook", payloadOf("pipeline.json"), null));
    expect(detail.gitlab).toMatchObject({ instance: "http://192.168.64.1:3005" });
    expect(detailOf(normalize("Push Hook", payloadOf("push.json"), "  ")).gitlab).toMatchObject({
      instance: "http://example.com",
    });
  });

  it('says "unknown" when no URL in the payload names the instance', () => {
    const payload = {
      ...payloadOf("push.json"),
      project: { id: 15, path_with_namespace: "mike/diaspora", web_url: "javascript:alert(1)" },
      repository: { url: "git@example.com:mike/diaspora.git" },
    };
    expect(detailOf(normalize("Push Hook", payload)).gitlab).toMatchObject({ instance: "unknown" });
  });
});

function expectOnlyBadRequest(run: () => unknown): void {
  try {
    run();
  } catch (error) {
    if (!(error instanceof BadRequestError)) throw error;
  }
}

/** Replaces one value somewhere in a JSON tree (the i-th container, its j-th key). */
function replaceSomewhere(root: unknown, i: number, j: number, value: unknown): void {
  const containers: Record<string, unknown>[] = [];
  const visit = (node: unknown) => {
    if (typeof node !== "object" || node === null) return;
    containers.push(node as Record<string, unknown>);
    for (const child of Object.values(node)) visit(child);
  };
  visit(root);
  const container = containers[i % containers.length];
  if (!container) return;
  const keys = Object.keys(container);
  const key = keys[j % Math.max(keys.length, 1)];
  if (key !== undefined) container[key] = value;
}
