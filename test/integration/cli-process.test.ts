/**
 * The `kubler` command as an operator types it, in its own process: arguments, help, and the
 * messages of what goes wrong (never a stack trace).
 */
import { execFile } from "node:child_process";
import { once } from "node:events";
import { existsSync, mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { promisify } from "node:util";
import { serve } from "@hono/node-server";
import { afterAll, describe, expect, it, vi } from "vitest";
import { LocalRuntimePublisher } from "../../cli/environment-commands.js";
import { createLocalEventsApp } from "../../cli/local-events-app.js";
import { readLocalSecrets } from "../../cli/local-secrets.js";
import { loadFixture, sendFixture } from "../../cli/send.js";
import { systemClock } from "../../shared/clock.js";
import { createWebhookCredentials } from "../../shared/domain/webhook-auth.js";
import { RecordingAuditLog } from "../fakes/index.js";
import { isolatedKublerEnv, ROOT, runKubler, startKublerProcess } from "./kubler-process.js";

const run = promisify(execFile);
const dataDir = mkdtempSync(join(tmpdir(), "kubler-cli-"));
const env = isolatedKublerEnv(dataDir);

/** `kubler …`: its exit code, stdout and stderr, whatever the code. */
const kubler = (...args: string[]) => runKubler(env, ...args);

const NO_STACK = /\n\s+at |"stack"/;

describe("arguments and help", () => {
  it("refuses an unknown option to start with its usage (rc 2), and prints it for --help (rc 0)", async () => {
    const [bogus, help] = await Promise.all([kubler("start", "--bogus"), kubler("start", "--help")]);
    expect(bogus.code).toBe(2);
    expect(bogus.stderr).toContain("kubler start: Unknown option '--bogus'");
    expect(bogus.stderr).toContain("usage:\n  kubler start");
    expect(help).toMatchObject({ code: 0, stderr: "" });
    expect(help.stdout).toMatch(/^usage:\n {2}kubler start /);
  }, 30_000);

  it.each(["deploy", "environments", "sweep", "credentials", "send", "audit"])(
    "kubler %s --help prints its usage (rc 0)",
    async (command) => {
      const { code, stdout, stderr } = await kubler(command, "--help");
      expect({ code, stderr }).toEqual({ code: 0, stderr: "" });
      expect(stdout).toMatch(new RegExp(`^usage:\\s+kubler ${command}`));
    },
    30_000,
  );
});

describe("send", () => {
  it("says in its usage that it also takes a payload file, as README's merge request walkthrough uses it", async () => {
    const { code, stdout } = await kubler("send", "--help");
    expect(code).toBe(0);
    expect(stdout).toMatch(/^usage:\s+kubler send <event\|file\.json>/);
    expect(stdout).toContain('{ "event_header": …, "payload": … }');
  }, 30_000);

  it.each([
    [["push", "merge_request"], "one event or file at a time"],
    // --token takes no value: the text after it was dropped and the shell's secret sent instead.
    [["push", "--token", "not-the-secret"], "--token takes no value"],
  ])(
    "refuses what it would not send (kubler send %j) with its usage (rc 2)",
    async (args, said) => {
      const { code, stdout, stderr } = await runKubler(
        { ...env, PORT: "1", KUBLER_WEBHOOK_SECRET: "the-runtime-secret" },
        "send",
        ...args,
      );
      expect(code).toBe(2);
      expect(stdout).toBe("");
      expect(stderr).toContain(said);
      expect(stderr).toContain("usage:\n  kubler send");
      expect(stderr).not.toContain("not-the-secret");
    },
    30_000,
  );
});

describe("messages", () => {
  it("stops quietly (rc 0) when the reader of its output goes away", async () => {
    const record = (i: number) =>
      JSON.stringify({
        audit: true,
        auditVersion: 1,
        action: "environment.deploy",
        outcome: "success",
        reason: `deployed ${i}`,
        actor: { function: "deploy-environment" },
        subject: { project: "group/app", environment: "staging" },
        correlationId: `c-${i}`,
        gitlab: null,
        function: "deploy-environment",
        at: "2026-03-02T11:00:00.000Z",
      });
    const dir = mkdtempSync(join(tmpdir(), "kubler-cli-epipe-"));
    // Far more than a pipe's buffer: the writes go on after `head` has left.
    writeFileSync(join(dir, "audit.jsonl"), Array.from({ length: 3000 }, (_, i) => record(i)).join("\n"));
    const { stdout, stderr } = await run(
      "bash",
      ["-o", "pipefail", "-c", "node bin/kubler.js audit --since all --limit 3000 | head -1"],
      { cwd: ROOT, env: { ...env, KUBLER_DATA_DIR: dir }, timeout: 20_000 },
    );
    expect(stdout).toMatch(/^AT\s+FUNCTION/);
    expect(stderr).not.toContain("EPIPE");
    expect(stderr).not.toMatch(NO_STACK);
  }, 30_000);

  it.each([
    [["deploy", "--pipeline", "99999999999999999999"], "--pipeline"],
    [["deploy", "--project-id", "0"], "--project-id"],
    [["credentials", "--project-id", "abc"], "--project-id"],
    [
      ["stop", "--project", "a/b", "--environment", "e", "--project-id", "99999999999999999999"],
      "--project-id",
    ],
  ])(
    "refuses a number that is not a GitLab id, naming the flag, with its usage (rc 2): kubler %j",
    async (args, flag) => {
      // A secret in this shell, so the arguments are what is refused, not a missing runtime.
      const { code, stderr } = await runKubler(
        { ...env, KUBLER_WEBHOOK_SECRET: "not-a-real-secret" },
        ...args,
      );
      expect(code).toBe(2);
      expect(stderr).toContain(`kubler ${args[0]}: ${flag} must be a whole number from 1`);
      expect(stderr).toMatch(new RegExp(`\\nusage:\\s+kubler ${args[0]}`));
      expect(stderr).not.toMatch(NO_STACK);
    },
    30_000,
  );

  it("refuses an empty --key, which the runtime would answer as an unsigned delivery (401), with its usage (rc 2)", async () => {
    const { code, stderr } = await runKubler(
      { ...env, PORT: "1", KUBLER_WEBHOOK_SIGNING_KEY: "whsec_ZTJlLXNpZ25pbmcta2V5LWZvci1jbGktdGVzdHM=" },
      "send",
      "push",
      "--key",
      "",
    );
    expect(code).toBe(2);
    expect(stderr).toContain("kubler send: --key is empty");
    expect(stderr).toContain("usage:\n  kubler send");
  }, 30_000);

  it.each(["abc\ndef", "ключ-1"])(
    "refuses a --key no HTTP header can carry (%j), rather than asking whether npm start runs",
    async (key) => {
      const { code, stderr } = await runKubler(
        { ...env, PORT: "1", KUBLER_WEBHOOK_SIGNING_KEY: "whsec_ZTJlLXNpZ25pbmcta2V5LWZvci1jbGktdGVzdHM=" },
        "send",
        "push",
        "--key",
        key,
      );
      expect(code).toBe(2);
      expect(stderr).toContain("kubler send: --key must be printable ASCII");
      expect(stderr).toContain("usage:\n  kubler send");
      expect(stderr).not.toContain("could not reach");
      expect(stderr).not.toMatch(NO_STACK);
    },
    30_000,
  );

  it("says a payload file that is not JSON is not valid JSON", async () => {
    const bad = join(dataDir, "bad.json");
    writeFileSync(bad, "{not json");
    const { code, stderr } = await kubler("send", bad);
    expect(code).toBe(1);
    expect(stderr).toContain(`${bad} is not valid JSON`);
  }, 30_000);

  it("asks for the runtime's secret in this shell when deploy has none", async () => {
    const { code, stderr } = await kubler("deploy");
    expect(code).toBe(1);
    expect(stderr).toContain(
      "if it runs with KUBLER_WEBHOOK_SECRET or KUBLER_WEBHOOK_SIGNING_KEY, export the same here",
    );
  }, 30_000);

  it("asks whether `npm start` runs when its embedded cluster does not answer", async () => {
    const port = await new Promise<number>((resolve) => {
      const server = createServer().listen(0, "127.0.0.1", () => {
        const { port } = server.address() as { port: number };
        server.close(() => resolve(port));
      });
    });
    const dir = mkdtempSync(join(tmpdir(), "kubler-cli-dead-"));
    // What a killed `npm start` leaves behind: the kubeconfig of a server that is gone.
    writeFileSync(
      join(dir, "kubeconfig"),
      [
        "apiVersion: v1",
        "kind: Config",
        `clusters: [{ name: embedded, cluster: { server: 'http://127.0.0.1:${port}' } }]`,
        "users: [{ name: kubler, user: { token: local } }]",
        "contexts: [{ name: embedded, context: { cluster: embedded, user: kubler } }]",
        "current-context: embedded",
        "",
      ].join("\n"),
    );
    const { code, stderr } = await runKubler({ ...env, KUBLER_DATA_DIR: dir }, "environments");
    expect(code).toBe(1);
    expect(stderr).toContain("the embedded cluster of the local runtime does not answer");
    expect(stderr).toContain("is `npm start` running?");
    // kubler stop, reading the environment's namespace there, says the same.
    const stop = await runKubler(
      { ...env, KUBLER_DATA_DIR: dir },
      ...["stop", "--project", "group/app", "--environment", "review/x"],
    );
    expect(stop.code).toBe(1);
    expect(stop.stderr).toContain("the embedded cluster of the local runtime does not answer");
    expect(stop.stderr).not.toMatch(NO_STACK);
    // kubler sweep too, rather than a report of one failed listing.
    const sweep = await runKubler({ ...env, KUBLER_DATA_DIR: dir }, "sweep");
    expect(sweep.code).toBe(1);
    expect(sweep.stderr).toContain("is `npm start` running?");
    expect(sweep.stderr).not.toMatch(NO_STACK);
  }, 30_000);
});

describe("kubler deploy with the runtime's signing key only", () => {
  const key = "whsec_ZTJlLXNpZ25pbmcta2V5LWZvci1jbGktdGVzdHM=";
  const published: unknown[] = [];
  const server = serve({
    port: 0,
    hostname: "127.0.0.1",
    fetch: createLocalEventsApp({
      credentials: createWebhookCredentials({ signingKeys: [key], tokens: [] }),
      publisher: {
        publish: async (entries) => {
          published.push(...entries);
          return entries.map(() => "event-1");
        },
      },
      audit: new RecordingAuditLog(),
      logError: () => undefined,
      clock: systemClock,
    }).fetch,
  });
  afterAll(() => {
    server.close();
  });
  const url = () => `http://127.0.0.1:${(server.address() as { port: number }).port}`;
  const entry = { detailType: "Environment Deleted", detail: {} } as never;

  it("signs what it publishes, as a webhook is signed", async () => {
    if (!server.listening) await once(server, "listening");
    const publisher = new LocalRuntimePublisher(url(), { token: null, signingKey: key });
    // The detail is refused (400), after the signature was accepted.
    await expect(publisher.publish([entry])).rejects.toThrow(/refused the event: (?!.*export)/);
    const wrong = new LocalRuntimePublisher(url(), { token: "not-the-token", signingKey: null });
    await expect(wrong.publish([entry])).rejects.toThrow(
      "export the same KUBLER_WEBHOOK_SECRET or KUBLER_WEBHOOK_SIGNING_KEY it was started with in this shell",
    );
  });
});

describe("kubler start, stopped twice", () => {
  it("says which deliveries a second Ctrl-C abandons", async () => {
    const dir = mkdtempSync(join(tmpdir(), "kubler-cli-stop-"));
    const runtime = await startKublerProcess({ ...env, PORT: "0", KUBLER_DATA_DIR: dir });
    const token = readLocalSecrets(dir)?.token ?? "";
    // A deploy on the embedded cluster: its simulated rollout keeps the delivery running ~1.5 s.
    const response = await fetch(`${runtime.url}/local/events`, {
      method: "POST",
      headers: { "content-type": "application/json", "x-gitlab-token": token },
      body: JSON.stringify({
        detailType: "Deploy Requested",
        detail: {
          correlationId: "cli-stop-1",
          gitlab: {
            instance: "https://gitlab.example.com",
            projectId: 2,
            projectPath: "flightjs/flight-management",
          },
          environment: "review/feature/booking-validation",
          sha: "abcdef0123456789abcdef0123456789abcdef01",
          ref: "feature/booking-validation",
          pipelineId: 1,
          mrIid: null,
        },
      }),
    });
    expect(response.status).toBe(202);
    const exited = runtime.exited();
    runtime.stop("SIGINT");
    await runtime.waitFor(/stopping…/);
    runtime.stop("SIGINT");
    expect(await exited).toBe(130);
    expect(runtime.output()).toMatch(
      /kubler: stopped at once, abandoning 1 delivery\(ies\) still running: deploy-environment on Deploy Requested \S+ \(the events are in .*events\.jsonl\)/,
    );
  }, 30_000);
});

describe("kubler start, its terminal closed (SIGHUP)", () => {
  it("stops as on Ctrl-C: the accepted webhook's envelope written, the data dir released, exit 0", async () => {
    const dir = mkdtempSync(join(tmpdir(), "kubler-cli-hup-"));
    const runtime = await startKublerProcess({ ...env, PORT: "0", KUBLER_DATA_DIR: dir });
    const token = readLocalSecrets(dir)?.token ?? "";
    const response = await sendFixture(loadFixture("push"), {
      url: runtime.url,
      token,
      idempotencyKey: "hup-1",
    });
    expect(response.status).toBe(202);
    const exited = runtime.exited();
    runtime.stop("SIGHUP");
    expect(await exited).toBe(0);
    expect(readFileSync(join(dir, "events.jsonl"), "utf8")).toContain('"detail-type":"Push"');
    expect(readFileSync(join(dir, "audit.jsonl"), "utf8")).toContain('"idempotencyKey":"hup-1"');
    expect(existsSync(join(dir, "kubler.lock"))).toBe(false);
  }, 30_000);
});

describe("commands find the runtime where it listens", () => {
  it("send reaches a runtime started on another port without PORT exported again (the data dir's lock says where)", async () => {
    const dir = mkdtempSync(join(tmpdir(), "kubler-cli-port-"));
    const runtime = await startKublerProcess({ ...env, PORT: "0", KUBLER_DATA_DIR: dir });
    try {
      const { code, stdout, stderr } = await runKubler(
        { ...env, KUBLER_DATA_DIR: dir, PORT: "" },
        "send",
        "push",
      );
      expect(stderr).toBe("");
      expect(code).toBe(0);
      expect(stdout).toMatch(/→ 202/);
      // This runtime took it, not whatever else might listen on the default port. events.jsonl is
      // written every 20 ms by the runtime's own timer: waited for, as a loaded machine may starve it.
      await runtime.waitFor(/Push/);
      const events = join(dir, "events.jsonl");
      await vi.waitFor(() => expect(readFileSync(events, "utf8")).toContain('"detail-type":"Push"'), {
        timeout: 10_000,
        interval: 20,
      });
    } finally {
      runtime.stop();
      await runtime.exited();
    }
  }, 30_000);
});

describe("kubler credentials, in a script", () => {
  it('prints a refusal on stderr, so `eval "$(kubler credentials --format env)"` or `| jq` never reads it as credentials', async () => {
    const dir = mkdtempSync(join(tmpdir(), "kubler-cli-credentials-"));
    const runtime = await startKublerProcess({ ...env, PORT: "0", KUBLER_DATA_DIR: dir });
    try {
      const local = { ...env, KUBLER_DATA_DIR: dir, PORT: "" };
      const denied = await runKubler(local, "credentials", "--project", "someone/else", "--format", "env");
      expect(denied.code).toBe(1);
      expect(denied.stdout).toBe("");
      expect(denied.stderr).toMatch(/^kubler credentials: 403 \{.*"no rule matches this job/);
      const issued = await runKubler(local, "credentials", "--format", "env");
      expect(issued.code).toBe(0);
      expect(issued.stdout).toMatch(/^export AWS_ACCESS_KEY_ID='LOCALKUBLER/m);
    } finally {
      runtime.stop();
      await runtime.exited();
    }
  }, 30_000);
});
