/**
 * One rule for every `kubler` command, in its own process: a mistake in how it was called (an
 * unknown flag, a flag's value, a missing or extra argument) exits 2 with `kubler <command>: <what>`
 * and the command's usage; what fails while it runs (nothing listening, a cluster that does not
 * answer) exits 1 with its own message and no usage. A script can tell the two apart.
 */
import { mkdirSync, mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { isolatedKublerEnv, runKubler } from "./kubler-process.js";

const dataDir = mkdtempSync(join(tmpdir(), "kubler-usage-"));
// A secret in this shell and a port nothing listens on: the arguments are what is refused, and a
// value that slipped through would fail later as an operational error (rc 1), not pass.
const env = { ...isolatedKublerEnv(dataDir), PORT: "1", KUBLER_WEBHOOK_SECRET: "not-a-real-secret" };

const NO_STACK = /\n\s+at |"stack"/;

describe("a usage mistake exits 2 with the command's usage", () => {
  it.each([
    [["start", "now"], "Unexpected argument 'now'"],
    [["environments", "all"], "Unexpected argument 'all'"],
    [["sweep", "--dry-run=yes"], "--dry-run"],
    [["send"], "which event?"],
    [["send", "no-such-event"], 'no GitLab payload "no-such-event"'],
    [["send", "push", "--key", ""], "--key is empty"],
    [["deploy", "--pipeline", "abc"], "--pipeline must be a whole number from 1"],
    [["deploy", "--environment", ""], "--environment must name the environment"],
    [["deploy", "--sha", "yesterday"], "--sha must be a commit SHA"],
    [["credentials", "--project-id", "abc"], "--project-id must be a whole number from 1"],
    [["credentials", "--format", "yaml"], '--format must be one of json, env, kubeconfig, got "yaml"'],
    [["stop", "--environment", "review/x"], "--project and --environment are required"],
    [["stop", "--project", "a/b", "--environment", "e", "--reason", "bored"], "--reason must be one of"],
    [
      ["audit", "--since", "yesterday"],
      '--since: expected a duration like 24h or 7d, or an ISO 8601 time; got "yesterday"',
    ],
    // Refused by parseArgs (a value that looks like a flag), and by the value check once given as one.
    [["audit", "--limit", "-3"], "--limit"],
    [["audit", "--limit=-3"], '--limit must be a whole number ≥ 1, got "-3"'],
    [["audit", "--outcome", "maybe"], '--outcome: "maybe" is not one of'],
  ])(
    "kubler %j",
    async (args, said) => {
      const [command] = args;
      const { code, stdout, stderr } = await runKubler(env, ...args);
      expect({ code, stdout }).toEqual({ code: 2, stdout: "" });
      expect(stderr).toMatch(new RegExp(`^kubler ${command}: `));
      expect(stderr).toContain(said);
      expect(stderr).toMatch(new RegExp(`\\nusage:\\s+kubler ${command}`));
      expect(stderr).not.toMatch(NO_STACK);
    },
    30_000,
  );
});

describe("an operational failure exits 1 with its own message, without the usage", () => {
  it.each([
    // Called right; nothing listens on port 1.
    [["deploy", "--pipeline", "7"], "could not reach the local runtime"],
    // Called right; no cluster to read (no KUBECONFIG, no runtime started in this data dir).
    [["environments"], "no cluster: set KUBECONFIG"],
  ])(
    "kubler %j",
    async (args, said) => {
      const { code, stderr } = await runKubler(env, ...args);
      expect(code).toBe(1);
      expect(stderr).toContain(said);
      expect(stderr).not.toContain("usage:");
      expect(stderr).not.toMatch(NO_STACK);
    },
    30_000,
  );

  it("kubler audit on a trail it cannot read", async () => {
    const dir = mkdtempSync(join(tmpdir(), "kubler-usage-audit-"));
    mkdirSync(join(dir, "audit.jsonl"));
    const { code, stderr } = await runKubler({ ...env, KUBLER_DATA_DIR: dir }, "audit");
    expect(code).toBe(1);
    expect(stderr).toContain("audit.jsonl is a directory, not a file");
    expect(stderr).not.toContain("usage:");
  }, 30_000);
});

it("kubler --help says what its exit codes mean", async () => {
  const { code, stdout } = await runKubler(env, "--help");
  expect(code).toBe(0);
  expect(stdout).toContain("exit status: 0 done, 1 failed (the message says why), 2 usage mistake");
}, 30_000);
