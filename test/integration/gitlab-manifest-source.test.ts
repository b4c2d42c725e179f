import { createServer, type IncomingMessage, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import { afterAll, beforeAll, beforeEach, describe, expect, it } from "vitest";
import {
  DEFAULT_MAX_FILE_BYTES,
  GitlabManifestSource,
  type GitlabManifestSourceOptions,
} from "../../shared/adapters/gitlab-manifest-source.js";
import { ManifestFilesError } from "../../shared/domain/deploy-manifests.js";
import { ManifestError } from "../../shared/domain/kubler-manifest.js";
import { ConfigError, UnavailableError } from "../../shared/errors.js";

const TOKEN = "glpat-test-SECRET-0123456789";
const SHA = "0123456789abcdef0123456789abcdef01234567";
const PROJECT = { projectId: 15, projectPath: "group/app" };

/** A file in the fake repository: its text, its bytes, or a symbolic link to another path. */
type Blob = string | Buffer | { link: string };

interface Fault {
  /** Requests it answers, from now on. */
  times: number;
  /** Only requests whose path (relative root removed) matches. */
  match?: RegExp;
  status?: number;
  retryAfter?: string;
  body?: string;
  /** Never answer. */
  hang?: boolean;
  /** Send the headers and half the body, then never finish. */
  hangBody?: boolean;
  /** Answer with a redirect to this URL. */
  redirect?: string;
  /** Declare a 200 body of this many bytes, then send none of it. */
  declareLength?: number;
}

interface Seen {
  /** Relative root removed, query excluded, as sent (`deploy%2Fapp.yaml` stays encoded). */
  path: string;
  rawUrl: string;
  query: URLSearchParams;
  token: string | undefined;
}

/**
 * A tiny GitLab: the raw file and tree endpoints of API v4 over in-memory repositories, with
 * PRIVATE-TOKEN checks, offset (x-next-page) or keyset (Link rel=next) pagination, a relative root,
 * and injected failures.
 */
class FakeGitlab {
  /** `projectId` → sha → path → blob. */
  readonly repos = new Map<number, Map<string, Map<string, Blob>>>();
  /** Projects the token may not read (403). */
  readonly forbidden = new Set<number>();
  readonly requests: Seen[] = [];
  faults: Fault[] = [];
  root = "";
  pagination: "offset" | "keyset" = "offset";
  /** Send raw files without Content-Length (chunked), as a streaming server would. */
  chunked = false;
  url = "";
  readonly #server = createServer((req, res) => this.#handle(req, res));

  async start(): Promise<void> {
    await new Promise<void>((resolve) => this.#server.listen(0, "127.0.0.1", resolve));
    this.url = `http://127.0.0.1:${(this.#server.address() as AddressInfo).port}`;
  }

  async close(): Promise<void> {
    this.#server.closeAllConnections();
    await new Promise((resolve) => this.#server.close(resolve));
  }

  reset(): void {
    this.repos.clear();
    this.forbidden.clear();
    this.requests.length = 0;
    this.faults = [];
    this.root = "";
    this.pagination = "offset";
    this.chunked = false;
  }

  commit(projectId: number, sha: string, files: Record<string, Blob>): void {
    const commits = this.repos.get(projectId) ?? new Map<string, Map<string, Blob>>();
    commits.set(sha, new Map(Object.entries(files)));
    this.repos.set(projectId, commits);
  }

  fail(fault: Fault): void {
    this.faults.push(fault);
  }

  /** Requests whose path matches, in order. */
  sent(match: RegExp): Seen[] {
    return this.requests.filter((request) => match.test(request.path));
  }

  #handle(req: IncomingMessage, res: ServerResponse) {
    const rawUrl = req.url ?? "/";
    const [rawPath = "", search = ""] = rawUrl.split("?");
    if (!rawPath.startsWith(`${this.root}/api/v4/`)) {
      res.writeHead(404, { "content-type": "text/html" }).end("<html>Not Found</html>");
      return;
    }
    const path = rawPath.slice(this.root.length);
    const query = new URLSearchParams(search);
    const token = req.headers["private-token"];
    this.requests.push({ path, rawUrl, query, token: typeof token === "string" ? token : undefined });

    const fault = this.faults.find((f) => f.times > 0 && (!f.match || f.match.test(path)));
    if (fault) {
      fault.times--;
      if (fault.hang) return;
      if (fault.declareLength !== undefined) {
        res.writeHead(200, { "content-length": String(fault.declareLength) }).flushHeaders();
        return;
      }
      if (fault.redirect) {
        res.writeHead(302, { location: fault.redirect }).end();
        return;
      }
      if (!fault.hangBody) {
        const headers: Record<string, string> = { "content-type": "application/json" };
        if (fault.retryAfter) headers["retry-after"] = fault.retryAfter;
        res
          .writeHead(fault.status ?? 500, headers)
          .end(fault.body ?? '{"message":"500 Internal Server Error"}');
        return;
      }
    }
    if (token !== TOKEN) return json(res, 401, { message: "401 Unauthorized" });

    const file = /^\/api\/v4\/projects\/(\d+)\/repository\/files\/([^/]+)\/raw$/.exec(path);
    const tree = /^\/api\/v4\/projects\/(\d+)\/repository\/tree$/.exec(path);
    const projectId = Number((file ?? tree)?.[1]);
    const commits = this.repos.get(projectId);
    if (!(file || tree)) return json(res, 404, { error: "404 Not Found" });
    if (!commits) return json(res, 404, { message: "404 Project Not Found" });
    if (this.forbidden.has(projectId)) return json(res, 403, { message: "403 Forbidden" });
    const files = commits.get(query.get("ref") ?? "");

    if (file) {
      if (!files) return json(res, 404, { message: "404 Commit Not Found" });
      const blob = files.get(decodeURIComponent(file[2] ?? ""));
      if (blob === undefined) return json(res, 404, { message: "404 File Not Found" });
      const text = typeof blob === "string" || Buffer.isBuffer(blob) ? blob : blob.link;
      if (fault?.hangBody) {
        res.writeHead(200, { "content-type": "text/plain" });
        res.write(text.slice(0, text.length / 2));
        return;
      }
      if (this.chunked) {
        res.writeHead(200, { "content-type": "text/plain" });
        for (let at = 0; at < text.length; at += 64 * 1024) res.write(text.slice(at, at + 64 * 1024));
        res.end();
        return;
      }
      res.writeHead(200, { "content-type": "text/plain" }).end(text);
      return;
    }
    if (!files) return json(res, 404, { message: "404 Tree Not Found" });
    this.#tree(res, files, query, path);
  }

  /** Entries directly under `path`: subdirectories first, then files, each by name (as GitLab). */
  #tree(res: ServerResponse, files: Map<string, Blob>, query: URLSearchParams, path: string) {
    const dir = query.get("path") ?? "";
    const prefix = dir ? `${dir}/` : "";
    const trees = new Set<string>();
    const blobs: { name: string; mode: string }[] = [];
    for (const [filePath, blob] of files) {
      if (!filePath.startsWith(prefix)) continue;
      const [name = "", ...rest] = filePath.slice(prefix.length).split("/");
      if (rest.length > 0) trees.add(name);
      else
        blobs.push({ name, mode: typeof blob === "string" || Buffer.isBuffer(blob) ? "100644" : "120000" });
    }
    const entries = [
      ...[...trees].sort().map((name) => ({ name, type: "tree", mode: "040000" })),
      ...blobs.sort((a, b) => a.name.localeCompare(b.name)).map((blob) => ({ ...blob, type: "blob" })),
    ].map((entry) => ({ id: "0".repeat(40), path: `${prefix}${entry.name}`, ...entry }));
    // GitLab 17.7+: a missing path is a 404.
    if (entries.length === 0) return json(res, 404, { message: "404 invalid revision or path Not Found" });

    const perPage = Number(query.get("per_page") ?? 20);
    let start: number;
    if (this.pagination === "offset") {
      start = (Number(query.get("page") ?? 1) - 1) * perPage;
    } else {
      const after = query.get("page_token");
      start = after ? entries.findIndex((entry) => entry.name === after) + 1 : 0;
    }
    const page = entries.slice(start, start + perPage);
    const more = start + perPage < entries.length;
    const headers: Record<string, string> = {};
    if (this.pagination === "offset") {
      const current = Math.floor(start / perPage) + 1;
      headers["x-page"] = String(current);
      headers["x-next-page"] = more ? String(current + 1) : "";
    } else if (more) {
      // Deliberately another host, and only the keyset parameters: a client must not send its token
      // there, and must keep its own ref and path.
      const next = new URLSearchParams({ page_token: page.at(-1)?.name ?? "", pagination: "keyset" });
      headers.link = `<https://elsewhere.invalid${path}?${next}>; rel="next"`;
    }
    json(res, 200, page, headers);
  }
}

function json(
  res: ServerResponse,
  status: number,
  body: unknown,
  headers: Record<string, string> = {},
): void {
  res.writeHead(status, { "content-type": "application/json", ...headers }).end(JSON.stringify(body));
}

const gitlab = new FakeGitlab();
beforeAll(() => gitlab.start());
afterAll(() => gitlab.close());
beforeEach(() => gitlab.reset());

/** A source on the fake whose backoff sleeps are recorded, not waited. */
function connect(options: Partial<GitlabManifestSourceOptions> = {}) {
  const sleeps: number[] = [];
  const source = new GitlabManifestSource({
    baseUrl: gitlab.url,
    token: async () => TOKEN,
    sleep: async (ms) => {
      sleeps.push(ms);
    },
    random: () => 0.5,
    ...options,
  });
  return { source, sleeps };
}

async function failure(promise: Promise<unknown>): Promise<Error> {
  const error = await promise.then(
    () => null,
    (e: unknown) => e,
  );
  if (!(error instanceof Error)) throw new Error("expected the call to fail");
  return error;
}

const MANIFEST = "version: 1\ndeploy:\n  manifests: deploy/\n";

describe("GitlabManifestSource.readManifest", () => {
  it("reads kubler.yaml at the SHA by numeric project id, with the token in PRIVATE-TOKEN", async () => {
    gitlab.commit(15, SHA, { "kubler.yaml": MANIFEST });
    gitlab.commit(15, "other", { "kubler.yaml": "version: 2\n" });

    expect(await connect().source.readManifest(PROJECT, SHA)).toBe(MANIFEST);
    expect(gitlab.requests).toEqual([
      expect.objectContaining({
        path: "/api/v4/projects/15/repository/files/kubler.yaml/raw",
        token: TOKEN,
      }),
    ]);
    expect(gitlab.requests[0]?.query.get("ref")).toBe(SHA);
  });

  it("is null when the commit has no kubler.yaml (the project is not opted in)", async () => {
    gitlab.commit(15, SHA, { "README.md": "hello" });
    expect(await connect().source.readManifest(PROJECT, SHA)).toBeNull();
    expect(gitlab.requests).toHaveLength(1);
  });

  it("reports a token GitLab refuses (401) as a ConfigError naming GITLAB_API_TOKEN and the project, never the token", async () => {
    gitlab.commit(15, SHA, { "kubler.yaml": MANIFEST });
    const error = await failure(
      connect({ token: async () => "glpat-WRONG-987654" }).source.readManifest(PROJECT, SHA),
    );

    expect(error).toBeInstanceOf(ConfigError);
    expect(error.message).toContain("GITLAB_API_TOKEN");
    expect(error.message).toContain("project 15 (group/app)");
    expect(error.message).not.toContain("glpat-WRONG-987654");
    expect(gitlab.requests).toHaveLength(1); // not retried
  });

  it("reports a token without access to the project (403, or GitLab's 404 Project Not Found) as a ConfigError, not as no kubler.yaml", async () => {
    gitlab.commit(15, SHA, { "kubler.yaml": MANIFEST });
    gitlab.forbidden.add(15);
    const forbidden = await failure(connect().source.readManifest(PROJECT, SHA));
    expect(forbidden).toBeInstanceOf(ConfigError);
    expect(forbidden.message).toMatch(/GITLAB_API_TOKEN .*project 15 \(group\/app\).*403/);

    const unseen = await failure(
      connect().source.readManifest({ projectId: 99, projectPath: "group/gone" }, SHA),
    );
    expect(unseen).toBeInstanceOf(ConfigError);
    expect(unseen.message).toContain("project 99 (group/gone)");
    expect(unseen.message).toContain("GITLAB_API_TOKEN");
  });

  it("never repeats the token, even when GitLab's error message does", async () => {
    gitlab.fail({ times: 1, status: 400, body: JSON.stringify({ message: `bad token ${TOKEN}` }) });
    const error = await failure(connect().source.readManifest(PROJECT, SHA));
    expect(error.message).toContain("HTTP 400");
    expect(error.message).not.toContain(TOKEN);
  });

  it("retries 500s with full-jitter backoff and returns the file once GitLab recovers", async () => {
    gitlab.commit(15, SHA, { "kubler.yaml": MANIFEST });
    gitlab.fail({ times: 2, status: 500 });
    const { source, sleeps } = connect({ baseDelayMs: 200 });

    expect(await source.readManifest(PROJECT, SHA)).toBe(MANIFEST);
    expect(gitlab.requests).toHaveLength(3);
    // random 0.5 of a ceiling of 200, then 400.
    expect(sleeps).toEqual([100, 200]);
  });

  it("honours Retry-After on a 429, capped", async () => {
    gitlab.commit(15, SHA, { "kubler.yaml": MANIFEST });
    gitlab.fail({ times: 1, status: 429, retryAfter: "3" });
    gitlab.fail({ times: 1, status: 429, retryAfter: "3600" });
    const { source, sleeps } = connect();

    expect(await source.readManifest(PROJECT, SHA)).toBe(MANIFEST);
    expect(sleeps).toEqual([3_000, 5_000]);
    expect(gitlab.requests).toHaveLength(3);
  });

  it("gives up after maxAttempts on a persistent 503 with an UnavailableError", async () => {
    gitlab.commit(15, SHA, { "kubler.yaml": MANIFEST });
    gitlab.fail({ times: 100, status: 503 });
    const { source, sleeps } = connect({ maxAttempts: 3 });

    const error = await failure(source.readManifest(PROJECT, SHA));
    expect(error).toBeInstanceOf(UnavailableError);
    expect(error.message).toMatch(
      /kubler\.yaml of project 15 \(group\/app\).*after 3 attempt\(s\).*HTTP 503/,
    );
    expect(gitlab.requests).toHaveLength(3);
    expect(sleeps).toHaveLength(2);
  });

  it("retries an attempt that gets no answer within timeoutMs", async () => {
    gitlab.commit(15, SHA, { "kubler.yaml": MANIFEST });
    gitlab.fail({ times: 1, hang: true });
    expect(await connect({ timeoutMs: 200 }).source.readManifest(PROJECT, SHA)).toBe(MANIFEST);
    expect(gitlab.requests).toHaveLength(2);
  });

  it("times out a body that stops half-way, and ends in UnavailableError when every attempt hangs", async () => {
    gitlab.commit(15, SHA, { "kubler.yaml": MANIFEST });
    gitlab.fail({ times: 1, hangBody: true });
    gitlab.fail({ times: 1, hang: true });
    const started = Date.now();
    const error = await failure(
      connect({ timeoutMs: 200, maxAttempts: 2 }).source.readManifest(PROJECT, SHA),
    );

    expect(error).toBeInstanceOf(UnavailableError);
    expect(error.message).toContain("no answer within 200 ms");
    expect(gitlab.requests).toHaveLength(2);
    expect(Date.now() - started).toBeLessThan(5_000);
  });

  it("bounds an attempt even when fetch ignores its abort signal", async () => {
    let calls = 0;
    const deaf: typeof fetch = async () => {
      calls++;
      return new Promise<Response>(() => {});
    };
    const error = await failure(
      connect({ fetch: deaf, timeoutMs: 50, maxAttempts: 2 }).source.readManifest(PROJECT, SHA),
    );
    expect(error).toBeInstanceOf(UnavailableError);
    expect(error.message).toContain("no answer within 50 ms");
    expect(calls).toBe(2);
  });

  it("refuses a body whose declared length is over the limit without waiting for it", async () => {
    gitlab.fail({ times: 1, declareLength: 2 * DEFAULT_MAX_FILE_BYTES });
    const error = await failure(connect({ timeoutMs: 5_000 }).source.readManifest(PROJECT, SHA));
    expect(error).toBeInstanceOf(ManifestError);
  });

  it("retries a dropped connection", async () => {
    gitlab.commit(15, SHA, { "kubler.yaml": MANIFEST });
    let calls = 0;
    const flaky: typeof fetch = async (input, init) => {
      calls++;
      if (calls === 1) throw new TypeError("fetch failed", { cause: { code: "ECONNRESET" } });
      return fetch(input, init);
    };
    expect(await connect({ fetch: flaky }).source.readManifest(PROJECT, SHA)).toBe(MANIFEST);
    expect(calls).toBe(2);
  });

  it("refuses a kubler.yaml over the file limit (1 MiB by default)", async () => {
    gitlab.commit(15, SHA, { "kubler.yaml": `# ${"x".repeat(DEFAULT_MAX_FILE_BYTES)}` });
    const error = await failure(connect().source.readManifest(PROJECT, SHA));
    expect(error).toBeInstanceOf(ManifestError);
    expect(error.message).toContain(`larger than ${DEFAULT_MAX_FILE_BYTES} bytes`);

    gitlab.commit(15, SHA, { "kubler.yaml": "x".repeat(DEFAULT_MAX_FILE_BYTES) });
    expect(await connect().source.readManifest(PROJECT, SHA)).toHaveLength(DEFAULT_MAX_FILE_BYTES);
  });

  it("refuses a kubler.yaml that is not UTF-8 (Latin-1, UTF-16), naming the line, rather than reading U+FFFD", async () => {
    gitlab.commit(15, SHA, { "kubler.yaml": Buffer.from(`${MANIFEST}# café\n`, "latin1") });
    const latin1 = await failure(connect().source.readManifest(PROJECT, SHA));
    expect(latin1).toBeInstanceOf(ManifestError);
    const line = `${MANIFEST}# café\n`.split("\n").length - 1;
    expect(latin1.message).toBe(
      `kubler.yaml: not UTF-8 text at ${SHA} (line ${line}): save the file as UTF-8`,
    );
    const utf16 = Buffer.concat([Buffer.from([0xff, 0xfe]), Buffer.from(MANIFEST, "utf16le")]);
    gitlab.commit(15, SHA, { "kubler.yaml": utf16 });
    expect((await failure(connect().source.readManifest(PROJECT, SHA))).message).toContain("not UTF-8 text");
    // A byte-order mark in UTF-8 is UTF-8.
    gitlab.commit(15, SHA, { "kubler.yaml": Buffer.from(`\uFEFF${MANIFEST}# café\n`) });
    expect(await connect().source.readManifest(PROJECT, SHA)).toContain("café");
  });

  it("sends requests under a relative root (https://host/gitlab → /gitlab/api/v4/...)", async () => {
    gitlab.root = "/gitlab";
    gitlab.commit(15, SHA, { "kubler.yaml": MANIFEST });

    expect(await connect({ baseUrl: `${gitlab.url}/gitlab/` }).source.readManifest(PROJECT, SHA)).toBe(
      MANIFEST,
    );
    expect(gitlab.requests.map((request) => request.rawUrl)).toEqual([
      `/gitlab/api/v4/projects/15/repository/files/kubler.yaml/raw?ref=${SHA}`,
    ]);
  });

  it("does not take a 404 that is not GitLab's API for a missing kubler.yaml (GITLAB_URL without its relative root)", async () => {
    gitlab.root = "/gitlab";
    gitlab.commit(15, SHA, { "kubler.yaml": MANIFEST });
    const error = await failure(connect({ baseUrl: gitlab.url }).source.readManifest(PROJECT, SHA));
    expect(error).toBeInstanceOf(ConfigError);
    expect(error.message).toContain("GITLAB_URL");
  });

  it("does not follow a redirect, which would carry the token to another host", async () => {
    const elsewhere = new FakeGitlab();
    await elsewhere.start();
    try {
      gitlab.fail({
        times: 1,
        redirect: `${elsewhere.url}/api/v4/projects/15/repository/files/kubler.yaml/raw`,
      });
      const error = await failure(connect().source.readManifest(PROJECT, SHA));
      expect(error).toBeInstanceOf(ConfigError);
      expect(error.message).toContain("GITLAB_URL");
      expect(elsewhere.requests).toHaveLength(0);
    } finally {
      await elsewhere.close();
    }
  });

  it("refuses a bad GITLAB_URL or token before sending anything, naming the variable", async () => {
    expect(() => connect({ baseUrl: "gitlab.example.com" })).toThrow(/GITLAB_URL/);
    expect(() => connect({ baseUrl: "https://user:pw@gitlab.example.com" })).toThrow(ConfigError);
    expect(() => connect({ baseUrl: "https://user:pw@gitlab.example.com" })).not.toThrow(/pw/);

    const empty = await failure(connect({ token: async () => "  \n" }).source.readManifest(PROJECT, SHA));
    expect(empty).toBeInstanceOf(ConfigError);
    expect(empty.message).toContain("GITLAB_API_TOKEN");
    const header = await failure(
      connect({ token: async () => "glpat-a\nb" }).source.readManifest(PROJECT, SHA),
    );
    expect(header).toBeInstanceOf(ConfigError);
    expect(header.message).not.toContain("glpat-a");
    expect(gitlab.requests).toHaveLength(0);
  });
});

describe("GitlabManifestSource.readDirectory", () => {
  /** `deploy/` with `count` YAML files, a README, a script and a subdirectory with YAML of its own. */
  function repository(count: number): Record<string, Blob> {
    const files: Record<string, Blob> = {
      "kubler.yaml": MANIFEST,
      "deploy/README.md": "not yaml",
      "deploy/run.sh": "#!/bin/sh",
      "deploy/overlays/prod.yaml": "kind: Deployment",
      "deploy/overlays/deeper/more.yml": "kind: Service",
      "deploy/legacy.yaml/old.yaml": "kind: Service",
      "other/app.yaml": "kind: ConfigMap",
    };
    for (let i = 0; i < count; i++) {
      files[`deploy/app-${String(i).padStart(3, "0")}.${i % 2 ? "yml" : "yaml"}`] = `kind: ConfigMap # ${i}`;
    }
    return files;
  }

  it("lists every page of the tree and reads only the YAML files directly under the directory, sorted by path", async () => {
    gitlab.commit(15, SHA, repository(150));
    const files = await connect().source.readDirectory(PROJECT, SHA, "deploy/");

    expect(files.size).toBe(150);
    expect([...files.keys()]).toEqual([...files.keys()].sort());
    expect([...files.keys()].slice(0, 2)).toEqual(["deploy/app-000.yaml", "deploy/app-001.yml"]);
    expect(files.get("deploy/app-149.yml")).toBe("kind: ConfigMap # 149");
    expect([...files.keys()].some((path) => !/^deploy\/app-\d{3}\.ya?ml$/.test(path))).toBe(false);

    const pages = gitlab.sent(/\/repository\/tree$/);
    expect(pages.map((page) => page.query.get("page"))).toEqual([null, "2"]);
    for (const page of pages) {
      expect(page.query.get("path")).toBe("deploy");
      expect(page.query.get("ref")).toBe(SHA);
      expect(page.query.get("per_page")).toBe("100");
      expect(page.token).toBe(TOKEN);
    }
    const reads = gitlab.sent(/\/raw$/);
    expect(reads).toHaveLength(150);
    expect(reads.map((read) => read.rawUrl)).toContain(
      `/api/v4/projects/15/repository/files/deploy%2Fapp-000.yaml/raw?ref=${SHA}`,
    );
  });

  // kubectl apply -f dir/ applies .json files too: they were skipped, their objects lost without a word.
  it("reads the .json files with the YAML ones, sorted by path, counted together against the limits", async () => {
    gitlab.commit(15, SHA, {
      "kubler.yaml": MANIFEST,
      "deploy/b.yaml": "kind: Service",
      "deploy/a.json": '{"kind": "Deployment"}',
      "deploy/c.yml": "kind: ConfigMap",
      "deploy/tsconfig.jsonc": "{}",
      "deploy/sub/nested.json": "{}",
    });
    const files = await connect().source.readDirectory(PROJECT, SHA, "deploy");
    expect([...files]).toEqual([
      ["deploy/a.json", '{"kind": "Deployment"}'],
      ["deploy/b.yaml", "kind: Service"],
      ["deploy/c.yml", "kind: ConfigMap"],
    ]);

    const many = await failure(connect({ maxFiles: 2 }).source.readDirectory(PROJECT, SHA, "deploy"));
    expect(many).toBeInstanceOf(ManifestFilesError);
    expect(many.message).toBe(`deploy: more than 2 manifest files (*.yaml, *.yml, *.json) at ${SHA}`);

    gitlab.commit(15, SHA, { "deploy/a.json": { link: "../base/a.json" } });
    const link = await failure(connect().source.readDirectory(PROJECT, SHA, "deploy"));
    expect(link).toBeInstanceOf(ManifestFilesError);
    expect(link.message).toContain("deploy/a.json is a symbolic link");
  });

  it("follows keyset pagination (Link rel=next) without sending the token to the link's host", async () => {
    gitlab.pagination = "keyset";
    gitlab.commit(15, SHA, repository(250));
    const files = await connect({ maxFiles: 300 }).source.readDirectory(PROJECT, SHA, "deploy");

    expect(files.size).toBe(250);
    const pages = gitlab.sent(/\/repository\/tree$/);
    expect(pages).toHaveLength(3);
    expect(pages[1]?.query.get("page_token")).toEqual(expect.any(String));
    for (const page of pages) {
      expect(page.query.get("ref")).toBe(SHA);
      expect(page.query.get("path")).toBe("deploy");
    }
  });

  it("reads with at most 4 requests in flight", async () => {
    gitlab.commit(15, SHA, repository(20));
    let inFlight = 0;
    let most = 0;
    const counting: typeof fetch = async (input, init) => {
      inFlight++;
      most = Math.max(most, inFlight);
      try {
        const response = await fetch(input, init);
        await new Promise((resolve) => setTimeout(resolve, 5));
        return response;
      } finally {
        inFlight--;
      }
    };
    expect((await connect({ fetch: counting }).source.readDirectory(PROJECT, SHA, "deploy")).size).toBe(20);
    expect(most).toBe(4);
  });

  it("reads the repository root for . and retries a failed file read", async () => {
    gitlab.commit(15, SHA, { "kubler.yaml": MANIFEST, "app.yml": "kind: Service", "deploy/x.yaml": "x" });
    gitlab.fail({ times: 1, status: 502, match: /app\.yml\/raw$/ });
    const files = await connect().source.readDirectory(PROJECT, SHA, ".");

    expect([...files.entries()]).toEqual([
      ["app.yml", "kind: Service"],
      ["kubler.yaml", MANIFEST],
    ]);
    expect(gitlab.sent(/\/repository\/tree$/)[0]?.query.has("path")).toBe(false);
    expect(gitlab.sent(/app\.yml\/raw$/)).toHaveLength(2);
  });

  it("is an empty map when the directory does not exist at the SHA", async () => {
    gitlab.commit(15, SHA, repository(3));
    const files = await connect().source.readDirectory(PROJECT, SHA, "missing/");
    expect(files.size).toBe(0);
    expect(gitlab.sent(/\/raw$/)).toHaveLength(0);
  });

  it("refuses directories outside the repository before asking GitLab", async () => {
    const { source } = connect();
    for (const directory of ["../secrets", "deploy/../../x", "/etc", ".."]) {
      const error = await failure(source.readDirectory(PROJECT, SHA, directory));
      expect(error).toBeInstanceOf(ManifestFilesError);
      expect(error.message).toContain(JSON.stringify(directory));
    }
    expect(gitlab.requests).toHaveLength(0);
  });

  it("refuses a file over the size limit, whether or not GitLab declares its length", async () => {
    gitlab.commit(15, SHA, { "deploy/a.yaml": "kind: Service", "deploy/big.yaml": "x".repeat(300 * 1024) });
    for (const chunked of [false, true]) {
      gitlab.chunked = chunked;
      const error = await failure(
        connect({ maxFileBytes: 256 * 1024 }).source.readDirectory(PROJECT, SHA, "deploy"),
      );
      expect(error).toBeInstanceOf(ManifestFilesError);
      expect(error.message).toBe(`deploy/big.yaml: larger than ${256 * 1024} bytes at ${SHA}`);
    }
  });

  it("refuses directories with too many manifest files, or too many bytes in all, before holding them", async () => {
    gitlab.commit(15, SHA, repository(201));
    const many = await failure(connect().source.readDirectory(PROJECT, SHA, "deploy"));
    expect(many).toBeInstanceOf(ManifestFilesError);
    expect(many.message).toContain("more than 200 manifest files");
    expect(gitlab.sent(/\/raw$/)).toHaveLength(0);

    gitlab.commit(15, SHA, repository(10));
    const heavy = await failure(connect({ maxTotalBytes: 100 }).source.readDirectory(PROJECT, SHA, "deploy"));
    expect(heavy).toBeInstanceOf(ManifestFilesError);
    expect(heavy.message).toContain("more than 100 bytes");
  });

  it("refuses a manifest that is not UTF-8, rather than deploying U+FFFD in its place", async () => {
    const config = "apiVersion: v1\nkind: ConfigMap\nmetadata: { name: a }\ndata: { greeting: café }\n";
    gitlab.commit(15, SHA, { "deploy/a.yaml": Buffer.from(config, "latin1") });
    const error = await failure(connect().source.readDirectory(PROJECT, SHA, "deploy"));
    expect(error).toBeInstanceOf(ManifestFilesError);
    expect(error.message).toBe(`deploy/a.yaml: not UTF-8 text at ${SHA} (line 4): save the file as UTF-8`);
  });

  it("refuses a symbolic link rather than deploying its target's path as YAML", async () => {
    gitlab.commit(15, SHA, { "deploy/app.yaml": { link: "../base/app.yaml" } });
    const error = await failure(connect().source.readDirectory(PROJECT, SHA, "deploy"));
    expect(error).toBeInstanceOf(ManifestFilesError);
    expect(error.message).toContain("deploy/app.yaml is a symbolic link");
  });

  it("reports a refused token on the tree as a ConfigError without the token", async () => {
    gitlab.commit(15, SHA, repository(2));
    const error = await failure(
      connect({ token: async () => "glpat-WRONG-987654" }).source.readDirectory(PROJECT, SHA, "deploy"),
    );
    expect(error).toBeInstanceOf(ConfigError);
    expect(error.message).toContain("GITLAB_API_TOKEN");
    expect(error.message).not.toContain("glpat-WRONG-987654");
  });

  it("sends the tree and file requests under a relative root", async () => {
    gitlab.root = "/gitlab";
    gitlab.commit(15, SHA, repository(2));
    const files = await connect({ baseUrl: `${gitlab.url}/gitlab` }).source.readDirectory(
      PROJECT,
      SHA,
      "deploy",
    );
    expect(files.size).toBe(2);
    expect(gitlab.requests.length).toBe(3);
    for (const request of gitlab.requests)
      expect(request.rawUrl).toMatch(/^\/gitlab\/api\/v4\/projects\/15\//);
  });
});
