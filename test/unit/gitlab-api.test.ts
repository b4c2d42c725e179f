/**
 * The GitLab transport's own points that its adapters' tests (test/integration/gitlab-*.test.ts,
 * which cover retries, timeouts, limits and redirects over HTTP) do not reach.
 */
import { createServer } from "node:http";
import type { AddressInfo } from "node:net";
import { describe, expect, it } from "vitest";
import { GitlabApi } from "../../shared/adapters/gitlab-api.js";
import { ConfigError, UnavailableError } from "../../shared/errors.js";

const TOKEN = "glpat-0123456789abcdefghij";

const api = (answer: () => Response) =>
  new GitlabApi({
    baseUrl: "https://gitlab.example.com",
    token: async () => TOKEN,
    fetch: async () => answer(),
    sleep: async () => {},
  });

describe("GitlabApi", () => {
  it("scrubs the token out of GitLab's message before cutting it to 200 characters, so no half of it is left", async () => {
    const message = `${"x".repeat(190)}${TOKEN} was refused`;
    const answer = await api(() => Response.json({ message }, { status: 400 })).request("GET", "/user", {
      what: "the user",
    });
    expect(answer.message).toBe(`${"x".repeat(190)}[GITLAB_AP`);
    expect(answer.message).not.toContain(TOKEN.slice(0, 10));
  });

  it("says a GET was not served and a POST not taken once the attempts are spent", async () => {
    const down = api(() => new Response("", { status: 503 }));
    await expect(down.request("GET", "/version", { what: "the version" })).rejects.toThrow(
      new UnavailableError(
        "GitLab at https://gitlab.example.com/api/v4 did not serve the version after 4 attempt(s); last problem: HTTP 503",
      ),
    );
    await expect(
      down.request("POST", "/projects/1/statuses/abc1234", { what: "a status", body: "{}" }),
    ).rejects.toThrow(/did not take a status after 4 attempt\(s\)/);
  });

  it("refuses a GITLAB_URL that already ends in /api/v4, which would ask /api/v4/api/v4 and get 404s", () => {
    for (const baseUrl of ["https://gitlab.example.com/api/v4", "https://example.com/gitlab/api/v4/"]) {
      expect(() => new GitlabApi({ baseUrl, token: async () => TOKEN })).toThrow(
        new ConfigError(
          "GITLAB_URL is the instance's address, without /api/v4 (e.g. https://gitlab.example.com or https://example.com/gitlab)",
        ),
      );
    }
    expect(new GitlabApi({ baseUrl: "https://example.com/gitlab/", token: async () => TOKEN }).root).toBe(
      "https://example.com/gitlab/api/v4",
    );
  });

  describe("when GitLab refuses the token (401)", () => {
    /** A GitLab that refuses every token, and a token source that gives a new one each time it is asked. */
    const refusing = (token: (refused?: string) => Promise<string>, maxAttempts?: number) => {
      const sent: string[] = [];
      const client = new GitlabApi({
        baseUrl: "https://gitlab.example.com",
        token,
        fetch: async (_, init) => {
          sent.push(new Headers(init?.headers).get("private-token") ?? "");
          return Response.json({ message: "401 Unauthorized" }, { status: 401 });
        },
        sleep: async () => {},
        ...(maxAttempts ? { maxAttempts } : {}),
      });
      return { sent, ask: () => client.request("GET", "/version", { what: "the version" }) };
    };

    it("asks for the token once more and sends a new one once, even with one attempt: no loop", async () => {
      const asked: (string | undefined)[] = [];
      const { sent, ask } = refusing(async (refused) => {
        asked.push(refused);
        return `glpat-${asked.length}-0123456789abcdef`;
      }, 1);
      expect((await ask()).status).toBe(401);
      expect(asked).toEqual([undefined, "glpat-1-0123456789abcdef"]);
      expect(sent).toEqual(["glpat-1-0123456789abcdef", "glpat-2-0123456789abcdef"]);
    });

    it("keeps the 401, sent once, when the token is the same or cannot be read again", async () => {
      const same = refusing(async () => TOKEN);
      expect((await same.ask()).status).toBe(401);
      expect(same.sent).toEqual([TOKEN]);
      const failing = refusing(async (refused) => {
        if (refused) throw new UnavailableError("Secrets Manager did not answer for secret kubler/gitlab");
        return TOKEN;
      });
      expect((await failing.ask()).status).toBe(401);
      expect(failing.sent).toEqual([TOKEN]);
    });

    it("names GITLAB_API_TOKEN, not the value, when the new token cannot be sent in a header", async () => {
      const { sent, ask } = refusing(async (refused) => (refused ? "glpat-new token" : TOKEN));
      await expect(ask()).rejects.toThrow(
        new ConfigError("GITLAB_API_TOKEN has characters that cannot be sent in an HTTP header"),
      );
      expect(sent).toEqual([TOKEN]);
    });
  });

  describe("when fetch throws", () => {
    /** How undici fails: `TypeError: fetch failed` around the system or TLS error that caused it. */
    const failed = (code: string | undefined, message: string) =>
      new TypeError("fetch failed", { cause: Object.assign(new Error(message), code ? { code } : {}) });
    const throwing = (error: () => unknown) => {
      let calls = 0;
      const client = new GitlabApi({
        baseUrl: "https://gitlab.example.com",
        token: async () => TOKEN,
        fetch: async () => {
          calls++;
          throw error();
        },
        sleep: async () => {},
      });
      const ask = () => client.request("GET", "/version", { what: "the version" }).catch((e: unknown) => e);
      return { ask, calls: () => calls };
    };

    it.each([
      ["ECONNRESET", "socket hang up"],
      ["ECONNREFUSED", "connect ECONNREFUSED 10.0.0.1:443"],
      ["ETIMEDOUT", "connect ETIMEDOUT"],
      ["EAI_AGAIN", "getaddrinfo EAI_AGAIN gitlab.example.com"],
      ["UND_ERR_SOCKET", "other side closed"],
      ["UND_ERR_CONNECT_TIMEOUT", "Connect Timeout Error"],
    ])("retries %s, then is unavailable", async (code, message) => {
      const { ask, calls } = throwing(() => failed(code, message));
      const error = await ask();
      expect(error).toBeInstanceOf(UnavailableError);
      expect((error as Error).message).toMatch(new RegExp(`after 4 attempt\\(s\\); last problem: ${code}$`));
      expect(calls()).toBe(4);
    });

    it.each([
      ["CERT_HAS_EXPIRED", "certificate has expired"],
      ["DEPTH_ZERO_SELF_SIGNED_CERT", "self-signed certificate"],
      ["SELF_SIGNED_CERT_IN_CHAIN", "self-signed certificate in certificate chain"],
      ["UNABLE_TO_VERIFY_LEAF_SIGNATURE", "unable to verify the first certificate"],
      ["ERR_TLS_CERT_ALTNAME_INVALID", "Hostname/IP does not match certificate's altnames"],
    ])("sends once and names GITLAB_URL when TLS fails with %s", async (code, message) => {
      const { ask, calls } = throwing(() => failed(code, message));
      const error = await ask();
      expect(error).toBeInstanceOf(ConfigError);
      expect((error as Error).message).toBe(
        `GitLab at https://gitlab.example.com/api/v4: TLS failed (${code}: ${message}); check GITLAB_URL (scheme and host) and the server's certificate`,
      );
      expect(calls()).toBe(1);
    });

    it("sends once and names GITLAB_URL for a URL fetch will not send to, or a host that does not exist", async () => {
      for (const [error, says] of [
        [
          new TypeError("Failed to parse URL from https://gitlab.example.com/api/v4/x y", {
            cause: Object.assign(new TypeError("Invalid URL"), { code: "ERR_INVALID_URL" }),
          }),
          "not a URL fetch will send to (Invalid URL)",
        ],
        [failed(undefined, "bad port"), "not a URL fetch will send to (bad port)"],
        [
          failed("ENOTFOUND", "getaddrinfo ENOTFOUND gitlab.example.com"),
          "the host does not resolve (ENOTFOUND)",
        ],
      ] as const) {
        const { ask, calls } = throwing(() => error);
        const thrown = await ask();
        expect(thrown).toBeInstanceOf(ConfigError);
        expect((thrown as Error).message).toBe(
          `GitLab at https://gitlab.example.com/api/v4: ${says}; check GITLAB_URL`,
        );
        expect(calls()).toBe(1);
      }
    });

    it("does not retry a failure it does not know, and never repeats the token", async () => {
      const { ask, calls } = throwing(() =>
        failed("ERR_SOMETHING", `refused header PRIVATE-TOKEN: ${TOKEN}`),
      );
      const error = await ask();
      expect(error).not.toBeInstanceOf(UnavailableError);
      expect((error as Error).message).toBe(
        "GitLab at https://gitlab.example.com/api/v4 could not be asked: ERR_SOMETHING: refused header PRIVATE-TOKEN: [GITLAB_API_TOKEN]",
      );
      expect(calls()).toBe(1);
    });

    it("takes a real TLS failure (https to a plain-HTTP port) as a ConfigError, sent once", async () => {
      let requests = 0;
      const server = createServer((_, res) => res.end());
      server.on("connection", () => requests++);
      await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
      try {
        const { port } = server.address() as AddressInfo;
        const client = new GitlabApi({
          baseUrl: `https://127.0.0.1:${port}`,
          token: async () => TOKEN,
          sleep: async () => {},
        });
        const error = await client
          .request("GET", "/version", { what: "the version" })
          .catch((e: unknown) => e);
        expect(error).toBeInstanceOf(ConfigError);
        expect((error as Error).message).toMatch(/TLS failed \(ERR_SSL_[A-Z_]+: [a-z ]+\); check GITLAB_URL/);
        expect((error as Error).message).not.toContain(TOKEN);
        expect(requests).toBe(1);
      } finally {
        server.closeAllConnections();
        await new Promise((resolve) => server.close(resolve));
      }
    });
  });
});
