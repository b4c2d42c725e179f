/**
 * GitlabCommitStatuses against a small GitLab over node:http that keeps commit statuses the way
 * GitLab's API does (a state machine per name + ref: the same state twice, or going back, is a 400
 * "Cannot transition status"), checks PRIVATE-TOKEN, and can be told to throttle or fail. Also
 * report-status over it: whatever GitLab answers, the step never fails.
 */
import { createServer, type IncomingMessage, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import { afterAll, beforeAll, beforeEach, describe, expect, it } from "vitest";
import { GitlabCommitStatuses } from "../../shared/adapters/gitlab-commit-statuses.js";
import { ConfigError, UnavailableError } from "../../shared/errors.js";
import type { CommitStatus } from "../../shared/ports.js";
import { reportStatus } from "../../shared/services/report-status.js";
import { FixedClock, RecordingAuditLog } from "../fakes/index.js";

const TOKEN = "glpat-test-SECRET-0123456789";
const SHA = "0123456789abcdef0123456789abcdef01234567";

interface Fault {
  times: number;
  status: number;
  retryAfter?: string;
  body?: string;
}

/** GitLab's order of states: a status can move forward only (lib/api/commit_statuses.rb + CommitStatus state machine). */
const ORDER = ["pending", "running", "success", "failed", "canceled"];

class FakeGitlab {
  readonly statuses = new Map<string, { state: string; target_url?: string; description?: string }>();
  readonly requests: { path: string; token: string | undefined; body: Record<string, unknown> }[] = [];
  faults: Fault[] = [];
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
    this.requests.push({ path, token, body });
    const send = (status: number, json: unknown, headers: Record<string, string> = {}) => {
      res.writeHead(status, { "content-type": "application/json", ...headers });
      res.end(JSON.stringify(json));
    };
    const fault = this.faults[0];
    if (fault) {
      if (--fault.times <= 0) this.faults.shift();
      return send(fault.status, fault.body ? JSON.parse(fault.body) : { message: `${fault.status}` }, {
        ...(fault.retryAfter ? { "retry-after": fault.retryAfter } : {}),
      });
    }
    if (token !== TOKEN) return send(401, { message: "401 Unauthorized" });
    const match = /^\/api\/v4\/projects\/(\d+)\/statuses\/([0-9a-f]+)$/.exec(path);
    if (req.method !== "POST" || !match) return send(404, { error: "404 Not Found" });
    if (match[1] === "403") return send(403, { message: "403 Forbidden" });
    const key = `${match[1]}/${match[2]}/${body.name}/${body.ref ?? ""}`;
    const current = this.statuses.get(key);
    const state = String(body.state);
    if (current && ORDER.indexOf(state) <= ORDER.indexOf(current.state)) {
      return send(400, { message: `Cannot transition status via :run from :${current.state}` });
    }
    const next = { ...current, state, ...(body.target_url ? { target_url: String(body.target_url) } : {}) };
    this.statuses.set(key, next);
    send(201, {
      id: 1,
      sha: match[2],
      ref: body.ref,
      status: state,
      name: body.name,
      target_url: next.target_url ?? null,
    });
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
  gitlab.statuses.clear();
  gitlab.requests.length = 0;
  gitlab.faults = [];
  gitlab.root = "";
  slept = [];
});

describe("GitlabCommitStatuses", () => {
  it("posts the status to /projects/:id/statuses/:sha with the token as PRIVATE-TOKEN", async () => {
    expect(
      await statuses().set(
        status({ state: "success", targetUrl: "https://review-x.apps.example.com", pipelineId: 77 }),
      ),
    ).toBe("set");
    expect(gitlab.requests).toEqual([
      {
        path: `/api/v4/projects/15/statuses/${SHA}`,
        token: TOKEN,
        body: {
          state: "success",
          name: "kubler/review/feature-x",
          ref: "feature-x",
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

  it("takes GitLab refusing a transition it already made as unchanged", async () => {
    const client = statuses();
    expect(await client.set(status({ state: "running" }))).toBe("set");
    expect(await client.set(status({ state: "running" }))).toBe("unchanged");
    expect(await client.set(status({ state: "pending" }))).toBe("unchanged");
    expect(await client.set(status({ state: "success" }))).toBe("set");
  });

  it("waits as long as a 429's Retry-After says, then sends again", async () => {
    gitlab.faults = [{ times: 1, status: 429, retryAfter: "2" }];
    expect(await statuses().set(status())).toBe("set");
    expect(slept).toEqual([2_000]);
    expect(gitlab.requests).toHaveLength(2);
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
    const detail = {
      correlationId: "c-1",
      gitlab: { instance: gitlab.url, projectId: 15, projectPath: "group/app" },
      environment: "review/feature-x",
      sha: SHA,
      ref: "feature-x",
      pipelineId: null,
      mrIid: 3,
      status: "succeeded" as const,
      namespace: "group-app-review-feature-x-1a2b3c4d",
      url: "https://review-x.apps.example.com",
      reason: null,
    };
    gitlab.faults = [{ times: 10, status: 500 }];
    expect(await reportStatus(deps, { detailType: "Deploy Finished", detail })).toMatchObject({
      kind: "failed",
    });
    expect(audit.last()).toMatchObject({ action: "status.report", outcome: "failure" });
    expect(audit.last()?.reason).toContain("did not take status kubler/review/feature-x (success)");

    gitlab.faults = [];
    expect(await reportStatus(deps, { detailType: "Deploy Finished", detail })).toEqual({
      kind: "set",
      state: "success",
    });
    expect([...gitlab.statuses.values()]).toEqual([
      { state: "success", target_url: "https://review-x.apps.example.com" },
    ]);
  });
});
