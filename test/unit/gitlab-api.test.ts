/**
 * The GitLab transport's own points that its adapters' tests (test/integration/gitlab-*.test.ts,
 * which cover retries, timeouts, limits and redirects over HTTP) do not reach.
 */
import { describe, expect, it } from "vitest";
import { GitlabApi } from "../../shared/adapters/gitlab-api.js";
import { UnavailableError } from "../../shared/errors.js";

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
});
