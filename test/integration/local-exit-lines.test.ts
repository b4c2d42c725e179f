/**
 * Lines accepted before the process exits are in the files after it: `process.exit` (a second
 * Ctrl-C, `kubler start | head` going away) does not wait for JsonlFile's 20 ms batch.
 */
import { execFile } from "node:child_process";
import { existsSync, mkdtempSync, readFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { promisify } from "node:util";
import { describe, expect, it } from "vitest";

const ROOT = join(import.meta.dirname, "../..");

/** Runs an ES module script in its own node (TypeScript through tsx), in the repository. */
function runScript(script: string, env: NodeJS.ProcessEnv): Promise<unknown> {
  return promisify(execFile)(process.execPath, ["--import", "tsx", "--input-type=module", "-e", script], {
    cwd: ROOT,
    env: { ...process.env, ...env },
    timeout: 30_000,
  }).catch((error: { code?: number }) => {
    // The scripts exit 130, as a second Ctrl-C does.
    if (error.code !== 130) throw error;
  });
}

const lines = (path: string) =>
  existsSync(path) ? readFileSync(path, "utf8").split("\n").filter(Boolean) : [];

describe("lines accepted before process.exit", () => {
  it("a JsonlFile writes what it gathered when the process exits without closing it", async () => {
    const dir = mkdtempSync(join(tmpdir(), "kubler-exit-"));
    const script = [
      'const { JsonlFile } = await import("./shared/local/jsonl-file.ts");',
      "const file = new JsonlFile(process.env.FILE);",
      "file.append({ n: 1 });",
      "file.append({ n: 2 });",
      "process.exit(130);",
    ].join("\n");
    await runScript(script, { FILE: join(dir, "events.jsonl") });
    expect(lines(join(dir, "events.jsonl"))).toEqual(['{"n":1}', '{"n":2}']);
  }, 40_000);

  it("an accepted webhook's envelope and audit line survive a runtime that exits at once (a second Ctrl-C)", async () => {
    const dir = mkdtempSync(join(tmpdir(), "kubler-exit-"));
    const script = [
      'const { readFileSync } = await import("node:fs");',
      'const { startLocalRuntime } = await import("./cli/local-runtime.ts");',
      'const { loadLocalConfig } = await import("./shared/config.ts");',
      'const runtime = await startLocalRuntime(loadLocalConfig({ PORT: "0", KUBLER_DATA_DIR: process.env.KUBLER_DATA_DIR }), { simulatedRolloutMs: 0 });',
      'const push = JSON.parse(readFileSync("test/fixtures/gitlab/webhooks/push.json", "utf8"));',
      "const response = await fetch(runtime.url + '/webhooks/gitlab', {",
      '  method: "POST",',
      "  headers: {",
      '    "content-type": "application/json",',
      '    "x-gitlab-event": push.event_header,',
      '    "x-gitlab-token": runtime.generatedSecrets.token,',
      '    "idempotency-key": "exit-lines-1",',
      "  },",
      "  body: JSON.stringify(push.payload),",
      "});",
      "if (response.status !== 202) throw new Error('not accepted: ' + response.status);",
      "process.exit(130);",
    ].join("\n");
    await runScript(script, { KUBLER_DATA_DIR: dir });
    expect(lines(join(dir, "events.jsonl")).some((line) => line.includes('"detail-type":"Push"'))).toBe(true);
    expect(
      lines(join(dir, "audit.jsonl")).some(
        (line) => line.includes('"action":"webhook.receive"') && line.includes("exit-lines-1"),
      ),
    ).toBe(true);
  }, 40_000);
});
