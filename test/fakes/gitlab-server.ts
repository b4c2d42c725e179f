/**
 * A small GitLab over node:http, for a process told `GITLAB_URL=<url>`: the REST API v4 endpoints
 * Kubler calls (raw files and the tree at a commit or at `HEAD`, the default branch; commit statuses)
 * behind a `PRIVATE-TOKEN` check, and the CI ID tokens' JWKS at `/oauth/discovery/keys`. Every
 * request is recorded.
 */
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import type { LocalOidcIssuer } from "../../shared/local/local-oidc-issuer.js";

export interface GitlabRequest {
  method: string;
  /** Under `/api/v4`, decoded, query excluded: `/projects/15/repository/files/kubler.yaml/raw`. */
  path: string;
  query: URLSearchParams;
  /** The `PRIVATE-TOKEN` header. */
  token: string | undefined;
  body: Record<string, unknown> | null;
}

/**
 * @example
 * const gitlab = await startFakeGitlab({ token: "glpat-x", keys: [LocalOidcIssuer.generate("k1")] });
 * gitlab.commit(15, sha, { "kubler.yaml": "version: 1\n…" });
 */
export async function startFakeGitlab(options: { token: string; keys?: LocalOidcIssuer[] }) {
  /** `<project id>@<sha>` → path → text. */
  const commits = new Map<string, Map<string, string>>();
  /** Project id → the SHA its default branch points to (`ref=HEAD`). */
  const heads = new Map<string, string>();
  /** As GitLab resolves a `ref`: `HEAD` is the default branch's commit. */
  const at = (projectId: string, ref: string | null) =>
    commits.get(`${projectId}@${ref === "HEAD" ? heads.get(projectId) : ref}`);
  const requests: GitlabRequest[] = [];
  let statusIds = 0;

  const server: Server = createServer((request, response) => {
    const chunks: Buffer[] = [];
    request.on("data", (chunk: Buffer) => chunks.push(chunk));
    request.on("end", () => {
      const url = new URL(request.url ?? "/", "http://gitlab");
      const send = (status: number, body: unknown, type = "application/json") => {
        response.writeHead(status, { "content-type": type });
        response.end(typeof body === "string" && type !== "application/json" ? body : JSON.stringify(body));
      };
      if (url.pathname === "/oauth/discovery/keys") {
        send(200, { keys: (options.keys ?? []).flatMap((issuer) => issuer.jwks().keys) });
        return;
      }
      if (!url.pathname.startsWith("/api/v4/")) return send(404, { message: "404 Not Found" });
      const text = Buffer.concat(chunks).toString("utf8");
      const header = request.headers["private-token"];
      const seen: GitlabRequest = {
        method: request.method ?? "GET",
        path: decodeURIComponent(url.pathname.slice("/api/v4".length)),
        query: url.searchParams,
        token: typeof header === "string" ? header : undefined,
        body: text ? (JSON.parse(text) as Record<string, unknown>) : null,
      };
      requests.push(seen);
      if (seen.token !== options.token) return send(401, { message: "401 Unauthorized" });

      const file = /^\/projects\/(\d+)\/repository\/files\/(.+)\/raw$/.exec(seen.path);
      if (file && seen.method === "GET") {
        const content = at(file[1] as string, seen.query.get("ref"))?.get(file[2] as string);
        if (content === undefined) return send(404, { message: "404 File Not Found" });
        return send(200, content, "text/plain");
      }
      const tree = /^\/projects\/(\d+)\/repository\/tree$/.exec(seen.path);
      if (tree && seen.method === "GET") {
        const files = at(tree[1] as string, seen.query.get("ref")) ?? new Map<string, string>();
        const dir = seen.query.get("path") ?? "";
        const entries = [...files.keys()]
          .filter((path) => (dir ? path.startsWith(`${dir}/`) : true))
          .map((path) => path.slice(dir ? dir.length + 1 : 0))
          .filter((name) => !name.includes("/"))
          .map((name) => ({
            id: name,
            name,
            type: "blob",
            path: dir ? `${dir}/${name}` : name,
            mode: "100644",
          }));
        if (entries.length === 0) return send(404, { message: "404 Tree Not Found" });
        return send(200, entries);
      }
      if (/^\/projects\/\d+\/repository\/commits\/[0-9a-f]+\/statuses$/.test(seen.path)) {
        return send(200, []);
      }
      const status = /^\/projects\/(\d+)\/statuses\/([0-9a-f]+)$/.exec(seen.path);
      if (status && seen.method === "POST") {
        return send(201, { id: ++statusIds, sha: status[2], ...seen.body, status: seen.body?.state });
      }
      send(404, { message: "404 Not Found" });
    });
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  return {
    url,
    requests,
    /**
     * Puts `files` (path → text) in project `projectId`'s repository at `sha`. A project's first commit
     * is its default branch's (`HEAD`) until `head` moves it, as in a new repository.
     */
    commit(projectId: number, sha: string, files: Record<string, string>) {
      commits.set(`${projectId}@${sha}`, new Map(Object.entries(files)));
      if (!heads.has(String(projectId))) heads.set(String(projectId), sha);
    },
    /** Points project `projectId`'s default branch (`ref=HEAD`) at `sha`; null: an empty repository. */
    head(projectId: number, sha: string | null) {
      if (sha === null) heads.delete(String(projectId));
      else heads.set(String(projectId), sha);
    },
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  };
}

export type FakeGitlab = Awaited<ReturnType<typeof startFakeGitlab>>;
