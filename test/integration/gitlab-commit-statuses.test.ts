/**
 * GitlabCommitStatuses against a small GitLab over node:http that keeps commit statuses the way
 * GitLab does (app/services/ci/create_commit_status_service.rb): a POST moves the pending or running
 * status of that name and ref if there is one (a move it cannot make is a 400 "Cannot transition
 * status"), and otherwise adds a new status, even after a finished one. It lists statuses with their
 * times (created_at, started_at, finished_at, from its clock), checks PRIVATE-TOKEN, and can be told
 * to throttle or fail. Also report-status over it: whatever GitLab answers, the step never fails, a
 * finished status is never reopened by a late event, and a new run of the commit shows again.
 */
import { createServer, type IncomingMessage, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import { afterAll, beforeAll, beforeEach, describe, expect, it } from "vitest";
import { createReportStatusConsumer } from "../../functions/report-status/consumer.js";
import { GitlabCommitStatuses } from "../../shared/adapters/gitlab-commit-statuses.js";
import type { Detail } from "../../shared/domain/catalog.js";
import { ConfigError, UnavailableError } from "../../shared/errors.js";
import type { CommitStatus } from "../../shared/ports.js";
import { type ReportEvent, reportStatus } from "../../shared/services/report-status.js";
import { FixedClock, RecordingAuditLog } from "../fakes/index.js";

const TOKEN = "glpat-test-SECRET-0123456789";
/** GitLab's time when a test starts: a moment into the second the events of a test are published in. */
const GITLAB_NOW = new Date("2026-11-21T10:00:00.400Z");
const T0 = new Date("2026-11-21T10:00:00Z");
const SHA = "0123456789abcdef0123456789abcdef01234567";

interface Fault {
  times: number;
  status: number;
  retryAfter?: string;
  location?: string;
  body?: string;
}

interface StoredStatus {
  id: number;
  project: string;
  sha: string;
  name: string;
  ref: string | null;
  /** The pipeline it was sent to with `pipeline_id`; null for one sent with a ref (not modelled). */
  pipeline_id: number | null;
  status: string;
  target_url: string | null;
  created_at: string;
  started_at: string | null;
  finished_at: string | null;
}

/**
 * The moves GitLab's state machine refuses from pending and running (`enqueue!` from pending or
 * running, `run!` from running); from `created`, a new status, every state is allowed.
 */
const REFUSED: Record<string, string[]> = { pending: ["pending"], running: ["pending", "running"] };

class FakeGitlab {
  readonly statuses: StoredStatus[] = [];
  readonly requests: {
    method: string;
    path: string;
    token: string | undefined;
    body: Record<string, unknown>;
  }[] = [];
  faults: Fault[] = [];
  /**
   * The project's pipelines on the commit. A merge request pipeline's `ref` is
   * `refs/merge-requests/<iid>/head`, while its webhook names the source branch (`source_ref`).
   */
  pipelines: { id: number; sha: string; ref: string }[] = [];
  /** Like a GitLab from before the list's `pipeline_id` filter: it lists every pipeline's statuses. */
  ignoresPipelineFilter = false;
  /** GitLab's clock, for the statuses' times. */
  clock = new FixedClock(GITLAB_NOW);
  root = "";
  url = "";
  readonly #server = createServer((req, res) => {
    this.#handle(req, res).catch(() => res.destroy());
  });

  async start() {
    await new Promise<void>((resolve) => this.#server.listen(0, "127.0.0.1", resolve));
    this.url = `http://127.0.0.1:${(this.#server.address() as AddressInfo).port}`;
  }
  async close() {
    this.#server.closeAllConnections();
    await new Promise((resolve) => this.#server.close(resolve));
  }

  async #handle(req: IncomingMessage, res: ServerResponse) {
    const chunks: Buffer[] = [];
    for await (const chunk of req) chunks.push(chunk as Buffer);
    const path = (req.url ?? "").slice(this.root.length);
    const body = JSON.parse(Buffer.concat(chunks).toString("utf8") || "{}") as Record<string, unknown>;
    const token = req.headers["private-token"] as string | undefined;
    this.requests.push({ method: req.method ?? "", path, token, body });
    const send = (status: number, json: unknown, headers: Record<string, string> = {}) => {
      res.writeHead(status, { "content-type": "application/json", ...headers });
      res.end(JSON.stringify(json));
    };
    const fault = this.faults[0];
    if (fault) {
      if (--fault.times <= 0) this.faults.shift();
      return send(fault.status, fault.body ? JSON.parse(fault.body) : { message: `${fault.status}` }, {
        ...(fault.retryAfter ? { "retry-after": fault.retryAfter } : {}),
        ...(fault.location ? { location: fault.location } : {}),
      });
    }
    if (token !== TOKEN) return send(401, { message: "401 Unauthorized" });
    const url = new URL(path, "http://gitlab");
    const list = /^\/api\/v4\/projects\/(\d+)\/repository\/commits\/([0-9a-f]+)\/statuses$/.exec(
      url.pathname,
    );
    if (req.method === "GET" && list) {
      if (list[1] === "403") return send(403, { message: "403 Forbidden" });
      const q = url.searchParams;
      const found = this.statuses.filter(
        (s) =>
          s.project === list[1] &&
          s.sha === list[2] &&
          (!q.get("name") || s.name === q.get("name")) &&
          (!q.get("ref") || s.ref === q.get("ref")) &&
          (this.ignoresPipelineFilter ||
            !q.get("pipeline_id") ||
            s.pipeline_id === Number(q.get("pipeline_id"))),
      );
      return send(200, q.get("sort") === "desc" ? found.toReversed() : found);
    }
    const match = /^\/api\/v4\/projects\/(\d+)\/statuses\/([0-9a-f]+)$/.exec(url.pathname);
    if (req.method !== "POST" || !match) return send(404, { error: "404 Not Found" });
    if (match[1] === "403") return send(403, { message: "403 Forbidden" });
    const [, project = "", sha = ""] = match;
    const name = String(body.name);
    let ref = typeof body.ref === "string" ? body.ref : null;
    let pipelineId: number | null = null;
    // Ci::CreateCommitStatusService: a pipeline_id must name a pipeline of this SHA and, when given,
    // this ref (`for_ref`); the status takes the pipeline's ref when none is given.
    if (body.pipeline_id !== undefined) {
      const pipeline = this.pipelines.find(
        (p) => p.id === body.pipeline_id && p.sha === sha && (ref === null || p.ref === ref),
      );
      if (!pipeline) return send(404, { message: "404 Pipeline for pipeline_id, sha and ref Not Found" });
      ref ??= pipeline.ref;
      pipelineId = pipeline.id;
    }
    // GenericCommitStatus: `validates :target_url, addressable_url: true, length: { maximum: 255 }`.
    if (body.target_url !== undefined) {
      const url = String(body.target_url);
      if (!/^https?:\/\/[^\s]+$/.test(url)) {
        return send(400, { message: { target_url: ["is blocked: Only allowed schemes are http, https"] } });
      }
      if (url.length > 255) {
        return send(400, { message: { target_url: ["is too long (maximum is 255 characters)"] } });
      }
    }
    // PostgreSQL's text holds no NUL (Rails raises "string contains null byte"): GitLab fails.
    if (String(body.description ?? "").includes("\u0000"))
      return send(500, { message: "500 Internal Server Error" });
    const state = String(body.state);
    const open = this.statuses.findLast(
      (s) =>
        s.project === project &&
        s.sha === sha &&
        s.name === name &&
        s.ref === ref &&
        // find_or_build_external_commit_status looks in the pipeline the status goes to.
        (pipelineId === null || s.pipeline_id === pipelineId) &&
        (s.status === "pending" || s.status === "running"),
    );
    if (open && REFUSED[open.status]?.includes(state)) {
      return send(400, { message: `Cannot transition status via :run from :${open.status}` });
    }
    const now = this.clock.now().toISOString();
    const next = open ?? {
      id: this.statuses.length + 1,
      project,
      sha,
      name,
      ref,
      pipeline_id: pipelineId,
      status: state,
      target_url: null,
      created_at: now,
      started_at: null,
      finished_at: null,
    };
    if (!open) this.statuses.push(next);
    next.status = state;
    // CommitStatus's state machine: `run` records started_at, a move to a finished state finished_at.
    if (state === "running") next.started_at = now;
    if (["success", "failed", "canceled"].includes(state)) next.finished_at = now;
    if (body.target_url) next.target_url = String(body.target_url);
    send(201, { ...next, project: undefined });
  }

  /** What the MR shows for a name: its newest status. */
  shown(name: string) {
    return this.statuses.findLast((s) => s.name === name);
  }
}

function status(overrides: Partial<CommitStatus> = {}): CommitStatus {
  return {
    projectId: 15,
    projectPath: "group/app",
    sha: SHA,
    state: "running",
    name: "kubler/review/feature-x",
    ref: "feature-x",
    pipelineId: null,
    targetUrl: null,
    description: "Deploying",
    ...overrides,
  };
}

/** A deploy's events, with GitLab's instance known only once it has started. */
function details() {
  const step = {
    correlationId: "c-2",
    gitlab: { instance: gitlab.url, projectId: 15, projectPath: "group/app" },
    environment: "review/feature-x",
    sha: SHA,
    ref: "feature-x",
    pipelineId: null,
    mrIid: 3,
  };
  const built: Detail<"Build Finished"> = {
    ...step,
    status: "succeeded",
    imageDigest: `sha256:${"b".repeat(64)}`,
    reason: null,
  };
  const deployed: Detail<"Deploy Finished"> = {
    ...step,
    status: "succeeded",
    namespace: "group-app-review-feature-x-1a2b3c4d",
    url: "https://review-x.apps.example.com",
    reason: null,
  };
  // As an event from before Environment Deleted carried the pipeline: none.
  const deleted: Detail<"Environment Deleted"> = {
    correlationId: "c-3",
    gitlab: step.gitlab,
    environment: step.environment,
    namespace: deployed.namespace,
    sha: SHA,
    ref: "feature-x",
  };
  return { step, built, deployed, deleted };
}

const gitlab = new FakeGitlab();
let slept: number[];
const statuses = (options: { token?: string; baseUrl?: string } = {}) =>
  new GitlabCommitStatuses({
    baseUrl: options.baseUrl ?? `${gitlab.url}${gitlab.root}`,
    token: async () => options.token ?? TOKEN,
    sleep: async (ms) => {
      slept.push(ms);
    },
    random: () => 0.5,
  });

beforeAll(() => gitlab.start());
afterAll(() => gitlab.close());
beforeEach(() => {
  gitlab.statuses.length = 0;
  gitlab.requests.length = 0;
  gitlab.faults = [];
  gitlab.pipelines = [];
  gitlab.ignoresPipelineFilter = false;
  gitlab.clock = new FixedClock(GITLAB_NOW);
  gitlab.root = "";
  slept = [];
});

describe("GitlabCommitStatuses", () => {
  it("posts the status to /projects/:id/statuses/:sha with the token as PRIVATE-TOKEN", async () => {
    gitlab.pipelines.push({ id: 77, sha: SHA, ref: "feature-x" });
    expect(
      await statuses().set(
        status({ state: "success", targetUrl: "https://review-x.apps.example.com", pipelineId: 77 }),
      ),
    ).toBe("set");
    expect(gitlab.requests).toEqual([
      {
        method: "POST",
        path: `/api/v4/projects/15/statuses/${SHA}`,
        token: TOKEN,
        body: {
          state: "success",
          name: "kubler/review/feature-x",
          // No ref beside a pipeline id: GitLab takes the pipeline's (see the merge request test).
          pipeline_id: 77,
          target_url: "https://review-x.apps.example.com",
          description: "Deploying",
        },
      },
    ]);
  });

  it("keeps GitLab's relative root, and cuts a long description to 255 characters", async () => {
    gitlab.root = "/gitlab";
    await statuses().set(status({ description: "x".repeat(1_000) }));
    expect(gitlab.requests[0]?.path).toBe(`/api/v4/projects/15/statuses/${SHA}`);
    expect(String(gitlab.requests[0]?.body.description)).toHaveLength(255);
  });

  it("sets the status of a merge request pipeline, whose ref is refs/merge-requests/<iid>/head, not the branch the event names", async () => {
    gitlab.pipelines.push({ id: 88, sha: SHA, ref: "refs/merge-requests/3/head" });
    const audit = new RecordingAuditLog();
    const deps = { statuses: statuses(), audit, clock: new FixedClock() };
    const { step, deployed } = details();
    const mr = { ...step, pipelineId: 88 };
    expect(await reportStatus(deps, { detailType: "Deploy Requested", detail: mr, time: T0 })).toEqual({
      kind: "set",
      state: "running",
    });
    expect(
      await reportStatus(deps, {
        detailType: "Deploy Finished",
        detail: { ...deployed, pipelineId: 88 },
        time: T0,
      }),
    ).toEqual({ kind: "set", state: "success" });
    expect(gitlab.statuses).toEqual([
      expect.objectContaining({ status: "success", ref: "refs/merge-requests/3/head" }),
    ]);
    // The status is found again under the pipeline's ref, so a late Deploy Requested does not reopen it.
    expect(await reportStatus(deps, { detailType: "Deploy Requested", detail: mr, time: T0 })).toMatchObject({
      kind: "ignored",
    });
    expect(gitlab.statuses).toHaveLength(1);
  });

  it("cancels a deleted environment's status in the merge request pipeline that deployed it, not under its branch", async () => {
    // The branch has a pipeline of its own on the commit: a status sent with its ref would land there.
    gitlab.pipelines.push(
      { id: 87, sha: SHA, ref: "feature-x" },
      { id: 88, sha: SHA, ref: "refs/merge-requests/3/head" },
    );
    const deps = { statuses: statuses(), audit: new RecordingAuditLog(), clock: new FixedClock() };
    const { deployed, deleted: older } = details();
    await reportStatus(deps, {
      detailType: "Deploy Finished",
      detail: { ...deployed, pipelineId: 88 },
      time: T0,
    });
    gitlab.clock.advance(60_000);
    gitlab.requests.length = 0;
    const deleted = { ...older, pipelineId: 88 };
    expect(
      await reportStatus(deps, { detailType: "Environment Deleted", detail: deleted, time: T0 }),
    ).toEqual({ kind: "set", state: "canceled" });
    const post = gitlab.requests.find((r) => r.method === "POST");
    expect(post?.body).toMatchObject({ state: "canceled", pipeline_id: 88 });
    expect(post?.body).not.toHaveProperty("ref");
    // The merge request pipeline shows the environment gone, not its last success.
    expect(gitlab.statuses.map((s) => [s.ref, s.status])).toEqual([
      ["refs/merge-requests/3/head", "success"],
      ["refs/merge-requests/3/head", "canceled"],
    ]);

    // An Environment Deleted from before the pipeline was carried: under the branch, as it always was.
    gitlab.requests.length = 0;
    expect(await reportStatus(deps, { detailType: "Environment Deleted", detail: older, time: T0 })).toEqual({
      kind: "set",
      state: "canceled",
    });
    expect(gitlab.requests.find((r) => r.method === "POST")?.body).toMatchObject({
      state: "canceled",
      ref: "feature-x",
    });
    expect(gitlab.requests.find((r) => r.method === "POST")?.body).not.toHaveProperty("pipeline_id");
    expect(gitlab.statuses.at(-1)).toMatchObject({ ref: "feature-x", status: "canceled" });
  });

  it("sets a new pipeline's final status of a commit whose older pipeline already has it, and leaves no running behind", async () => {
    // A project that builds its own image: a second pipeline for the commit deploys it again (fix
    // forward, a recreated environment). Its Deploy Finished is reported before its Deploy Requested
    // (reports run concurrently, a retried invocation), or its running was not set (GitLab failed).
    gitlab.pipelines.push(
      { id: 100, sha: SHA, ref: "refs/merge-requests/3/head" },
      { id: 101, sha: SHA, ref: "refs/merge-requests/3/head" },
    );
    const deps = { statuses: statuses(), audit: new RecordingAuditLog(), clock: new FixedClock() };
    const { step, deployed } = details();
    const at = (seconds: number) => new Date(T0.getTime() + seconds * 1_000);
    for (const event of [
      { detailType: "Deploy Requested", detail: { ...step, pipelineId: 100 }, time: T0 },
      { detailType: "Deploy Finished", detail: { ...deployed, pipelineId: 100 }, time: T0 },
    ] satisfies ReportEvent[]) {
      await reportStatus(deps, event);
    }
    gitlab.clock.advance(600_000);
    for (const ignoresPipelineFilter of [false, true]) {
      gitlab.ignoresPipelineFilter = ignoresPipelineFilter;
      gitlab.statuses.splice(1);
      expect(
        await reportStatus(deps, {
          detailType: "Deploy Finished",
          detail: { ...deployed, pipelineId: 101 },
          time: at(630),
        }),
      ).toEqual({ kind: "set", state: "success" });
      // Published before pipeline 101's success was set: late, so it does not reopen it.
      expect(
        await reportStatus(deps, {
          detailType: "Deploy Requested",
          detail: { ...step, pipelineId: 101 },
          time: at(600),
        }),
      ).toMatchObject({ kind: "ignored" });
      expect(gitlab.statuses.map((s) => [s.pipeline_id, s.status])).toEqual([
        [100, "success"],
        [101, "success"],
      ]);
    }
    expect(gitlab.requests.filter((r) => r.method === "GET").at(-1)?.path).toContain("&pipeline_id=101&");
  });

  it("sets the status without a URL GitLab would refuse: not http(s), or over 255 characters", async () => {
    const client = statuses();
    const long = `https://review-x.apps.example.com/${"a".repeat(240)}`;
    for (const targetUrl of [long, "review-x.apps.example.com", "ftp://review-x.apps.example.com"]) {
      gitlab.requests.length = 0;
      expect(
        await client.set(status({ name: `kubler/${targetUrl.length}`, state: "success", targetUrl })),
      ).toBe("set");
      expect(gitlab.requests[0]?.body).not.toHaveProperty("target_url");
    }
    expect(gitlab.statuses.map((s) => s.status)).toEqual(["success", "success", "success"]);
    const fits = `https://review-x.apps.example.com/${"a".repeat(221)}`;
    expect(await client.set(status({ state: "success", targetUrl: fits }))).toBe("set");
    expect(gitlab.statuses.at(-1)?.target_url).toBe(fits);
  });

  it("sends a failure reason with control characters or a character cut in two as a description GitLab can store", async () => {
    const reason = "Build failed: \u001b[31merror\u001b[0m: exit\u0000 1\r\tat step 3";
    expect(await statuses().set(status({ state: "failed", description: reason }))).toBe("set");
    const sent = String(gitlab.requests[0]?.body.description);
    expect(sent).toBe("Build failed:  [31merror [0m: exit  1 at step 3");
    expect(slept).toEqual([]);

    // 254 characters, then an emoji (two UTF-16 units): cut between characters, not inside one.
    await statuses().set(status({ name: "kubler/y", description: `${"x".repeat(254)}😀 and more` }));
    const cut = String(gitlab.requests[1]?.body.description);
    expect(cut).toBe(`${"x".repeat(254)}😀`);
    expect(cut).not.toMatch(/\p{Surrogate}/u);
  });

  it("takes GitLab refusing a transition it already made as unchanged", async () => {
    const client = statuses();
    expect(await client.set(status({ state: "running" }))).toBe("set");
    expect(await client.set(status({ state: "running" }))).toBe("unchanged");
    expect(await client.set(status({ state: "pending" }))).toBe("unchanged");
    expect(await client.set(status({ state: "success" }))).toBe("set");
  });

  it("reads the newest status of a name on the commit and ref, with when it last moved, null when there is none", async () => {
    const client = statuses();
    const key = {
      projectId: 15,
      projectPath: "group/app",
      sha: SHA,
      name: "kubler/review/feature-x",
      ref: "feature-x",
    };
    expect(await client.latest(key)).toBeNull();
    await client.set(status({ state: "success" }));
    expect(await client.latest(key)).toEqual({ state: "success", at: GITLAB_NOW });
    gitlab.clock.advance(60_000);
    // GitLab does not refuse this: it adds a new running status beside the success (why `latest` exists).
    expect(await client.set(status({ state: "running" }))).toBe("set");
    await client.set(status({ name: "kubler/staging", state: "failed" }));
    gitlab.clock.advance(1_000);
    await client.set(status({ ref: "main", state: "pending" }));
    gitlab.clock.advance(1_000);
    await client.set(status({ ref: "main", state: "canceled" }));
    expect(gitlab.statuses.map((s) => s.status)).toEqual(["success", "running", "failed", "canceled"]);
    expect(await client.latest(key)).toEqual({ state: "running", at: new Date("2026-11-21T10:01:00.400Z") });
    // A status moved from pending to canceled: when it finished, not when it was created.
    expect(await client.latest({ ...key, ref: "main" })).toEqual({
      state: "canceled",
      at: new Date("2026-11-21T10:01:02.400Z"),
    });
    const get = gitlab.requests.at(-1);
    expect(get?.method).toBe("GET");
    expect(get?.token).toBe(TOKEN);
    expect(get?.path).toBe(
      `/api/v4/projects/15/repository/commits/${SHA}/statuses?name=kubler%2Freview%2Ffeature-x&ref=main&all=false&order_by=id&sort=desc&per_page=100`,
    );
  });

  it("takes the latest of the times GitLab gives, in any offset, and none when none parses", async () => {
    const key = { projectId: 15, projectPath: "group/app", sha: SHA, name: "kubler/x", ref: null };
    const stored = {
      project: "15",
      sha: SHA,
      name: "kubler/x",
      ref: null,
      pipeline_id: null,
      target_url: null,
    };
    gitlab.statuses.push({
      ...stored,
      id: 1,
      status: "success",
      created_at: "2026-11-21T11:00:00.000+01:00",
      started_at: null,
      finished_at: "2026-11-21T11:00:02.250+01:00",
    });
    expect(await statuses().latest(key)).toEqual({
      state: "success",
      at: new Date("2026-11-21T10:00:02.250Z"),
    });
    gitlab.statuses.push({
      ...stored,
      id: 2,
      status: "skipped",
      created_at: "",
      started_at: null,
      finished_at: null,
    });
    expect(await statuses().latest(key)).toEqual({ state: "skipped", at: null });
  });

  it("refuses a list it cannot read, and names the role when GitLab forbids reading", async () => {
    const key = { projectId: 15, projectPath: "group/app", sha: SHA, name: "kubler/x", ref: null };
    gitlab.faults = [{ times: 1, status: 404, body: JSON.stringify({ message: "404 Commit Not Found" }) }];
    await expect(statuses().latest(key)).rejects.toThrow(
      "GitLab answered HTTP 404 reading status kubler/x on group/app@0123456789ab: 404 Commit Not Found",
    );
    await expect(statuses().latest({ ...key, projectId: 403 })).rejects.toThrow(ConfigError);
  });

  it("waits as long as a 429's Retry-After says, then sends again", async () => {
    gitlab.faults = [{ times: 1, status: 429, retryAfter: "2" }];
    expect(await statuses().set(status())).toBe("set");
    expect(slept).toEqual([2_000]);
    expect(gitlab.requests).toHaveLength(2);
  });

  it("sends a status again when GitLab answers 409: another update of the commit's statuses held its lock", async () => {
    // Ci::CreateCommitStatusService takes a lock per project and SHA: two environments of one
    // commit, or another CI tool, setting statuses at the same moment; the API documents 409.
    gitlab.faults = [
      { times: 1, status: 409, body: JSON.stringify({ message: "409 Conflict: another update" }) },
    ];
    expect(await statuses().set(status({ state: "success" }))).toBe("set");
    expect(gitlab.requests.map((r) => r.method)).toEqual(["POST", "POST"]);
    expect(gitlab.statuses.map((s) => s.status)).toEqual(["success"]);
    expect(slept).toEqual([100]);

    gitlab.requests.length = 0;
    gitlab.faults = [{ times: 10, status: 409 }];
    await expect(statuses().set(status({ name: "kubler/y" }))).rejects.toThrow(
      /after 4 attempt\(s\); last problem: HTTP 409$/,
    );
    expect(gitlab.requests).toHaveLength(4);
  });

  it("retries 5xx with backoff, a bounded number of times, then is unavailable", async () => {
    gitlab.faults = [{ times: 10, status: 502 }];
    const error = await statuses()
      .set(status())
      .catch((e: unknown) => e);
    expect(error).toBeInstanceOf(UnavailableError);
    expect((error as Error).message).toMatch(/after 4 attempt\(s\); last problem: HTTP 502$/);
    expect(gitlab.requests).toHaveLength(4);
    expect(slept).toEqual([100, 200, 400]);
  });

  it("gives latest's GET its own, shorter limits, and leaves the POST's as they are", async () => {
    const client = new GitlabCommitStatuses({
      baseUrl: gitlab.url,
      token: async () => TOKEN,
      maxAttempts: 3,
      latest: { maxAttempts: 1 },
      sleep: async (ms) => {
        slept.push(ms);
      },
      random: () => 0.5,
    });
    const key = { projectId: 15, projectPath: "group/app", sha: SHA, name: "kubler/x", ref: null };
    gitlab.faults = [{ times: 10, status: 502 }];

    await expect(client.latest(key)).rejects.toThrow(/after 1 attempt\(s\); last problem: HTTP 502$/);
    expect(gitlab.requests).toHaveLength(1);
    await expect(client.set(status())).rejects.toThrow(/after 3 attempt\(s\)/);
    expect(gitlab.requests).toHaveLength(4);
  });

  it("gives up latest's GET on its own time limit, not the POST's", async () => {
    let sent = 0;
    const client = new GitlabCommitStatuses({
      baseUrl: gitlab.url,
      token: async () => TOKEN,
      // A GitLab that never answers.
      fetch: () => {
        sent++;
        return new Promise<Response>(() => {});
      },
      timeoutMs: 60_000,
      latest: { maxAttempts: 1, timeoutMs: 50 },
    });
    const started = Date.now();
    await expect(
      client.latest({ projectId: 15, projectPath: "group/app", sha: SHA, name: "kubler/x", ref: null }),
    ).rejects.toThrow(/no answer within 50 ms/);
    expect(Date.now() - started).toBeLessThan(2_000);
    expect(sent).toBe(1);
  });

  it("names the token on 401 and the missing role on 403, without ever repeating the token", async () => {
    const refused = await statuses({ token: "glpat-wrong-SECRET" })
      .set(status())
      .catch((e: unknown) => e);
    expect(refused).toBeInstanceOf(ConfigError);
    expect((refused as Error).message).toContain("GitLab refused GITLAB_API_TOKEN (HTTP 401)");
    expect((refused as Error).message).not.toContain("SECRET");
    const forbidden = await statuses()
      .set(status({ projectId: 403 }))
      .catch((e: unknown) => e);
    expect(forbidden).toBeInstanceOf(ConfigError);
    expect((forbidden as Error).message).toContain("needs the api scope and at least the Developer role");
    expect(gitlab.requests).toHaveLength(2);
  });

  it("says on 404 Project Not Found that the token may not see the project, not only that it is gone", async () => {
    // GitLab answers 404, not 403, for a project the token's user is not a member of (a group token
    // after the project moved to another group), as for a deleted one.
    gitlab.faults = [{ times: 2, status: 404, body: JSON.stringify({ message: "404 Project Not Found" }) }];
    const error = await statuses()
      .set(status())
      .catch((e: unknown) => e);
    expect((error as Error).message).toBe(
      "GitLab answered HTTP 404 setting status kubler/review/feature-x (running) on group/app@0123456789ab: 404 Project Not Found; " +
        "the project was deleted, or GITLAB_API_TOKEN's user is not a member of it (GitLab hides a project the token cannot see)",
    );
    await expect(
      statuses().latest({ projectId: 15, projectPath: "group/app", sha: SHA, name: "kubler/x", ref: null }),
    ).rejects.toThrow(/GITLAB_API_TOKEN's user is not a member/);
  });

  it("says on 403 that a protected branch or tag needs more than the Developer role", async () => {
    // GitLab answers a Developer setting a status on a protected ref (a `v*` tag, main) 403 Forbidden.
    const forbidden = await statuses()
      .set(status({ projectId: 403, ref: "v1.2.0" }))
      .catch((e: unknown) => e);
    expect(forbidden).toBeInstanceOf(ConfigError);
    expect((forbidden as Error).message).toMatch(/protected branch or tag.*Maintainer/);
  });

  it("names GITLAB_URL when GitLab redirects (http to https, a moved instance), without following", async () => {
    gitlab.faults = [
      { times: 2, status: 301, location: "https://gitlab.example.com/api/v4/projects/15/statuses/x?a=b" },
    ];
    const error = await statuses()
      .set(status())
      .catch((e: unknown) => e);
    expect(error).toBeInstanceOf(ConfigError);
    expect((error as Error).message).toBe(
      "GitLab redirected (HTTP 301) setting status kubler/review/feature-x (running) on group/app@0123456789ab to https://gitlab.example.com; set GITLAB_URL to the address the API is served at",
    );
    const read = await statuses()
      .latest({ projectId: 15, projectPath: "group/app", sha: SHA, name: "kubler/x", ref: null })
      .catch((e: unknown) => e);
    expect(read).toBeInstanceOf(ConfigError);
    expect(gitlab.requests).toHaveLength(2);
  });

  it("reports another refusal with GitLab's message, and does not retry it", async () => {
    gitlab.faults = [
      { times: 1, status: 404, body: JSON.stringify({ message: `404 Commit Not Found ${TOKEN}` }) },
    ];
    const error = await statuses()
      .set(status())
      .catch((e: unknown) => e);
    expect((error as Error).message).toBe(
      `GitLab answered HTTP 404 setting status kubler/review/feature-x (running) on group/app@0123456789ab: 404 Commit Not Found [GITLAB_API_TOKEN]`,
    );
    expect(gitlab.requests).toHaveLength(1);
  });
});

describe("report-status over GitLab's API", () => {
  it("never fails the step, whatever GitLab answers: it audits instead", async () => {
    const audit = new RecordingAuditLog();
    const deps = { statuses: statuses(), audit, clock: new FixedClock() };
    const { deployed: detail } = details();
    gitlab.faults = [{ times: 10, status: 500 }];
    expect(await reportStatus(deps, { detailType: "Deploy Finished", detail, time: T0 })).toMatchObject({
      kind: "failed",
    });
    expect(audit.last()).toMatchObject({ action: "status.report", outcome: "failure" });
    expect(audit.last()?.reason).toContain("did not take status kubler/review/feature-x (success)");

    gitlab.faults = [];
    expect(await reportStatus(deps, { detailType: "Deploy Finished", detail, time: T0 })).toEqual({
      kind: "set",
      state: "success",
    });
    expect(gitlab.statuses).toEqual([
      expect.objectContaining({ status: "success", target_url: "https://review-x.apps.example.com" }),
    ]);
  });

  it("leaves a finished status finished when a Build Finished or Build Requested comes late or again", async () => {
    const audit = new RecordingAuditLog();
    const deps = { statuses: statuses(), audit, clock: new FixedClock() };
    const { step, built, deployed } = details();
    await reportStatus(deps, { detailType: "Build Requested", detail: step, time: T0 });
    await reportStatus(deps, { detailType: "Build Finished", detail: built, time: T0 });
    await reportStatus(deps, { detailType: "Deploy Finished", detail: deployed, time: T0 });
    expect(gitlab.shown("kubler/review/feature-x")?.status).toBe("success");

    // Published before the success was set (10:00:00.400), so late: redelivered, or overtaken.
    expect(await reportStatus(deps, { detailType: "Build Finished", detail: built, time: T0 })).toMatchObject(
      {
        kind: "ignored",
        reason: "already success: a late or repeated Build Finished does not reopen it as running",
      },
    );
    expect(await reportStatus(deps, { detailType: "Build Requested", detail: step, time: T0 })).toMatchObject(
      {
        kind: "ignored",
      },
    );
    expect(gitlab.shown("kubler/review/feature-x")?.status).toBe("success");
    expect(gitlab.statuses).toHaveLength(1);
    expect(gitlab.requests.filter((r) => r.method === "POST")).toHaveLength(3);
  });

  it("shows a new run of the commit after a failed one, and adds no second canceled for a repeated stop", async () => {
    const deps = { statuses: statuses(), audit: new RecordingAuditLog(), clock: new FixedClock() };
    const { step, built, deployed, deleted } = details();
    const at = (seconds: number) => new Date(T0.getTime() + seconds * 1_000);
    await reportStatus(deps, { detailType: "Build Requested", detail: step, time: T0 });
    await reportStatus(deps, {
      detailType: "Build Finished",
      detail: { ...built, status: "failed", imageDigest: null, reason: "exit 1" },
      time: T0,
    });
    // The pipeline retried a minute later: same SHA, ref and name.
    gitlab.clock.advance(60_000);
    const outcomes = [];
    for (const event of [
      { detailType: "Build Requested", detail: step, time: at(60) },
      { detailType: "Build Finished", detail: built, time: at(61) },
      { detailType: "Deploy Requested", detail: step, time: at(62) },
      { detailType: "Deploy Finished", detail: deployed, time: at(63) },
    ] satisfies ReportEvent[]) {
      outcomes.push(await reportStatus(deps, event));
    }
    // Running twice is GitLab's refused transition: unchanged, not ignored as late.
    expect(outcomes.map((o) => o.kind)).toEqual(["set", "set", "unchanged", "set"]);
    expect(gitlab.statuses.map((s) => s.status)).toEqual(["failed", "success"]);

    // The environment stopped, and the stop retried: one canceled, not two.
    gitlab.clock.advance(60_000);
    for (const time of [at(120), at(125)]) {
      await reportStatus(deps, { detailType: "Environment Deleted", detail: deleted, time });
    }
    expect(gitlab.statuses.map((s) => s.status)).toEqual(["failed", "success", "canceled"]);
    expect(gitlab.shown("kubler/review/feature-x")?.status).toBe("canceled");
  });

  it("ignores the final canceled of a `ttl: never` environment whose pipeline or commit GitLab no longer has, sent once", async () => {
    gitlab.pipelines.push({ id: 88, sha: SHA, ref: "refs/merge-requests/3/head" });
    const audit = new RecordingAuditLog();
    const deps = { statuses: statuses(), audit, clock: new FixedClock() };
    const consume = createReportStatusConsumer(deps);
    const { deployed, deleted } = details();
    await reportStatus(deps, {
      detailType: "Deploy Finished",
      detail: { ...deployed, pipelineId: 88 },
      time: T0,
    });
    // Months later: GitLab's pipeline expiry deleted pipeline 88, then the environment is stopped.
    gitlab.pipelines.length = 0;
    gitlab.requests.length = 0;
    const envelope = (detail: Detail<"Environment Deleted">) => ({
      version: "0",
      id: "e-1",
      source: "kubler",
      account: "123456789012",
      region: "eu-west-1",
      resources: [],
      "detail-type": "Environment Deleted",
      time: "2027-03-01T10:00:00Z",
      detail,
    });
    const outcome = await consume(envelope({ ...deleted, pipelineId: 88 }));
    expect(outcome).toEqual({ kind: "ignored", reason: expect.stringContaining("no longer exists") });
    expect(audit.last()).toMatchObject({ action: "status.report", outcome: "ignored" });
    expect(audit.last()?.reason).toMatch(/pipeline or commit no longer exists.*404 Pipeline for pipeline_id/);
    expect(gitlab.requests.filter((r) => r.method === "POST")).toHaveLength(1);
    expect(slept).toEqual([]);

    // The branch is gone too and GitLab finds no ref; or the commit itself is gone (force-pushed away).
    for (const message of ["404 References for commit Not Found", "404 Commit Not Found"]) {
      gitlab.requests.length = 0;
      gitlab.faults = [{ times: 2, status: 404, body: JSON.stringify({ message }) }];
      const gone = await consume(envelope({ ...deleted, pipelineId: 88 }));
      expect(gone).toMatchObject({ kind: "ignored" });
      expect(audit.last()?.outcome).toBe("ignored");
      expect(audit.last()?.reason).toContain(message);
      // The list said so: no POST follows, which GitLab would refuse the same way.
      expect(gitlab.requests.map((r) => r.method)).toEqual(["GET"]);
    }
  });

  it("still fails on a 404 that may be Kubler's mistake or configuration: an unknown route, a project the token cannot see", async () => {
    const audit = new RecordingAuditLog();
    const deps = { statuses: statuses(), audit, clock: new FixedClock() };
    const { deleted } = details();
    for (const body of [{ error: "404 Not Found" }, { message: "404 Project Not Found" }, "<html>"]) {
      gitlab.faults = [{ times: 2, status: 404, body: JSON.stringify(body) }];
      expect(
        await reportStatus(deps, { detailType: "Environment Deleted", detail: deleted, time: T0 }),
      ).toMatchObject({ kind: "failed" });
      expect(audit.last()?.outcome).toBe("failure");
    }
  });
});
