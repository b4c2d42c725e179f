import { mkdirSync, mkdtempSync, writeFileSync } from "node:fs";
import { createServer as createHttpServer } from "node:http";
import { type AddressInfo, createServer, type Socket } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import {
  describeAnswer,
  gitlabHeaders,
  listFixtures,
  loadFixture,
  SEND_TIMEOUT_MS,
  sendFixture,
} from "../../cli/send.js";
import { UsageError } from "../../cli/usage-error.js";
import { createGitlabWebhookApp } from "../../functions/gitlab-webhook/app.js";
import { createWebhookCredentials } from "../../shared/domain/webhook-auth.js";
import { MemoryDedupeStore } from "../../shared/local/memory-dedupe-store.js";
import { FixedClock, RecordingAuditLog, RecordingPublisher, sequentialIds } from "../fakes/index.js";

describe("loadFixture", () => {
  const dir = mkdtempSync(join(tmpdir(), "kubler-send-"));

  it("loads a fixture by name", () => {
    expect(loadFixture("push")).toMatchObject({ name: "push", eventHeader: "Push Hook" });
  });

  it("says a missing payload is missing, and lists the fixtures", () => {
    expect(() => loadFixture(join(dir, "absent.json"))).toThrow(/no GitLab payload .*; try one of: .*push/);
  });

  it("takes a name or path that is not there for a usage mistake, one that cannot be read for a failure", () => {
    expect(() => loadFixture("no-such-event")).toThrow(UsageError);
    expect(() => loadFixture(join(dir, "absent.json"))).toThrow(UsageError);
    const folder = join(dir, "folder.json");
    mkdirSync(folder);
    expect(() => loadFixture(folder)).toThrow(`${folder} is a directory, not a file`);
    expect(() => loadFixture(folder)).not.toThrow(UsageError);
  });

  it("says a file that exists but is not JSON is not valid JSON", () => {
    const bad = join(dir, "bad.json");
    writeFileSync(bad, "{bad");
    expect(() => loadFixture(bad)).toThrow(`${bad} is not valid JSON`);
  });

  it("says what shape a JSON file must have, even for null", () => {
    const empty = join(dir, "null.json");
    writeFileSync(empty, "null");
    expect(() => loadFixture(empty)).toThrow(`${empty} must be { "event_header"`);
  });
});

describe("GitLab's partial payloads", () => {
  const SIGNING_KEY = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
  const PARTIAL = "merge_request_partial_update_oldrev";

  /** What the webhook answers a fixture, sent as `send` sends it. */
  async function answer(name: string) {
    const clock = new FixedClock();
    const app = createGitlabWebhookApp({
      credentials: createWebhookCredentials({ signingKeys: [SIGNING_KEY], tokens: [] }),
      maxBodyBytes: 5 * 1024 * 1024,
      publisher: new RecordingPublisher(sequentialIds("evt")),
      dedupe: new MemoryDedupeStore(clock),
      audit: new RecordingAuditLog(),
      logError: () => {},
      clock,
      newId: sequentialIds("corr"),
    });
    const fixture = loadFixture(name);
    const headers = gitlabHeaders(fixture, { url: "http://x", signingKey: SIGNING_KEY, now: clock.now() });
    const res = await app.request("/webhooks/gitlab", { method: "POST", headers, body: fixture.body });
    return describeAnswer(fixture, res.status, await res.text());
  }

  it("are not offered: send lists whole deliveries only", () => {
    const offered = listFixtures();
    expect(offered).toEqual(expect.arrayContaining(["merge_request", "push", "tag_push", "issue"]));
    expect(offered.filter((name) => name.includes("partial"))).toEqual([]);
    expect(loadFixture(PARTIAL).partial).toBe(true);
    expect(loadFixture("merge_request").partial).toBe(false);
  });

  it("are still sent when named, and their 400 says why and which whole one to send", async () => {
    const [first, why, ...rest] = await answer(PARTIAL);
    expect(first).toMatch(
      /^Merge Request Hook \(merge_request_partial_update_oldrev\) → 400 .*project\.id.* is missing/,
    );
    expect(why).toMatch(
      /as expected: merge_request_partial_update_oldrev is part of a delivery, as GitLab's docs show it/,
    );
    expect(why).toMatch(/for a whole Merge Request Hook: npm run send -- merge_request$/);
    expect(rest).toEqual([]);
  });

  it("leave a whole delivery's answer as it is", async () => {
    expect(await answer("merge_request")).toEqual([
      expect.stringMatching(/^Merge Request Hook \(merge_request\) → 202 /),
    ]);
  });
});

describe("send to something that is not a running Kubler", () => {
  it("gives up after GitLab's 10 s instead of waiting for ever on a server that never answers (Ctrl-Z'd)", async () => {
    const sockets: Socket[] = [];
    // Accepts and reads, never answers: what a stopped (Ctrl-Z) process's listening socket does.
    const silent = createServer((socket) => sockets.push(socket));
    await new Promise<void>((listening) => silent.listen(0, "127.0.0.1", listening));
    const { port } = silent.address() as AddressInfo;
    try {
      const sent = sendFixture(loadFixture("push"), {
        url: `http://127.0.0.1:${port}`,
        token: "t",
        timeoutMs: 100,
      });
      await expect(sent).rejects.toThrow(
        /^no answer within 0\.1 s \(GitLab gives up at 10 s\); a runtime stopped with Ctrl-Z/,
      );
      expect(SEND_TIMEOUT_MS).toBe(10_000);
    } finally {
      for (const socket of sockets) socket.destroy();
      silent.close();
    }
  });

  it("still hands back an answer without a body (204), read within the same limit", async () => {
    const server = createHttpServer((_, res) => res.writeHead(204).end());
    await new Promise<void>((listening) => server.listen(0, "127.0.0.1", listening));
    const { port } = server.address() as AddressInfo;
    try {
      const response = await sendFixture(loadFixture("push"), {
        url: `http://127.0.0.1:${port}`,
        token: "t",
      });
      expect(response.status).toBe(204);
      expect(await response.text()).toBe("");
    } finally {
      server.close();
    }
  });

  it("prints another program's answer without obeying its escapes", () => {
    const [line] = describeAnswer(loadFixture("push"), 404, "\u001b[2JNot Found\u001b]0;owned\u0007");
    expect(line).toBe("Push Hook (push) → 404 \\x1b[2JNot Found\\x1b]0;owned\\x07");
  });
});
