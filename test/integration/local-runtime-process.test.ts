/**
 * End to end: `kubler start` as a real process, through the same entry `npm start` uses, a signed GitLab fixture over HTTP, and the published
 * envelope read back from events.jsonl.
 */
import { type ChildProcess, spawn } from "node:child_process";
import { existsSync, mkdtempSync, readFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { readLocalSecrets } from "../../cli/local-secrets.js";
import { loadFixture, sendFixture } from "../../cli/send.js";

const ROOT = join(import.meta.dirname, "../..");
let server: ChildProcess;
let url: string;
let output = "";
const dataDir = mkdtempSync(join(tmpdir(), "kubler-e2e-"));

beforeAll(async () => {
  server = spawn(process.execPath, ["bin/kubler.js", "start"], {
    cwd: ROOT,
    env: {
      ...process.env,
      PORT: "0",
      KUBLER_DATA_DIR: dataDir,
      KUBLER_WEBHOOK_SECRET: "",
      KUBLER_WEBHOOK_SIGNING_KEY: "",
    },
    stdio: ["ignore", "pipe", "pipe"],
  });
  server.stderr?.on("data", (chunk) => {
    output += chunk;
  });
  url = await new Promise<string>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`server did not start:\n${output}`)), 15_000);
    server.stdout?.on("data", (chunk) => {
      output += chunk;
      // The banner's last line ("try it") means it has been printed whole.
      const match = /listening\s+(http:\/\/\S+)[\s\S]*try it/.exec(output);
      if (match?.[1]) {
        clearTimeout(timer);
        resolve(match[1]);
      }
    });
    server.once("exit", (code) => reject(new Error(`server exited with ${code}:\n${output}`)));
  });
}, 20_000);

afterAll(() => {
  server?.kill("SIGTERM");
});

async function waitForLines(path: string, count: number): Promise<Record<string, unknown>[]> {
  const deadline = Date.now() + 5_000;
  for (;;) {
    const lines = existsSync(path) ? readFileSync(path, "utf8").split("\n").filter(Boolean) : [];
    if (lines.length >= count || Date.now() > deadline) return lines.map((line) => JSON.parse(line));
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

describe("kubler start (process)", () => {
  it("prints where it listens, the generated secret and the data dir", () => {
    const secrets = readLocalSecrets(dataDir);
    expect(secrets).not.toBeNull();
    expect(output).toContain(`signing token  ${secrets?.signingKey}`);
    expect(output).toContain("data dir");
  });

  it("accepts a signed GitLab push and writes the envelope to events.jsonl", async () => {
    const secrets = readLocalSecrets(dataDir);
    const response = await sendFixture(loadFixture("push"), {
      url,
      signingKey: secrets?.signingKey,
      idempotencyKey: "e2e-key-1",
    });
    expect(response.status).toBe(202);
    const { eventIds } = (await response.json()) as { eventIds: string[] };

    const [envelope] = await waitForLines(join(dataDir, "events.jsonl"), 1);
    expect(envelope).toMatchObject({
      version: "0",
      id: eventIds[0],
      "detail-type": "Push",
      source: "kubler.gitlab",
      detail: {
        correlationId: "e2e-key-1",
        gitlab: { projectId: 15, projectPath: "mike/diaspora" },
        branch: "master",
        change: "updated",
      },
    });
    const audit = await waitForLines(join(dataDir, "audit.jsonl"), 1);
    expect(audit.at(-1)).toMatchObject({
      action: "webhook.receive",
      outcome: "success",
      correlationId: "e2e-key-1",
    });
  });

  it("answers a resend with the same key as a duplicate", async () => {
    const secrets = readLocalSecrets(dataDir);
    const response = await sendFixture(loadFixture("push"), {
      url,
      token: secrets?.token,
      idempotencyKey: "e2e-key-1",
    });
    expect(response.status).toBe(200);
    expect(await response.json()).toMatchObject({ duplicate: true });
  });
});
