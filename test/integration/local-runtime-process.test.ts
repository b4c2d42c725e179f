/**
 * End to end: `kubler start` as a real process, through the same entry `npm start` uses, a signed GitLab fixture over HTTP, and the published
 * envelope read back from events.jsonl.
 */
import { execFile } from "node:child_process";
import { existsSync, mkdtempSync, readFileSync, symlinkSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { promisify } from "node:util";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { readLocalSecrets } from "../../cli/local-secrets.js";
import { loadFixture, sendFixture } from "../../cli/send.js";
import { isolatedKublerEnv, type KublerProcess, ROOT, startKublerProcess } from "./kubler-process.js";

let runtime: KublerProcess;
let url: string;
const dataDir = mkdtempSync(join(tmpdir(), "kubler-e2e-"));

beforeAll(async () => {
  runtime = await startKublerProcess({
    ...process.env,
    PORT: "0",
    KUBLER_DATA_DIR: dataDir,
    KUBLER_WEBHOOK_SECRET: "",
    KUBLER_WEBHOOK_SIGNING_KEY: "",
  });
  url = runtime.url;
}, 20_000);

afterAll(() => {
  runtime?.stop();
});

function readLines(path: string): Record<string, unknown>[] {
  const lines = existsSync(path) ? readFileSync(path, "utf8").split("\n").filter(Boolean) : [];
  return lines.map((line) => JSON.parse(line));
}

async function waitForLines(
  path: string,
  count: number,
  which: (line: Record<string, unknown>) => boolean = () => true,
): Promise<Record<string, unknown>[]> {
  const deadline = Date.now() + 10_000;
  for (;;) {
    const lines = readLines(path).filter(which);
    if (lines.length >= count || Date.now() > deadline) return lines;
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

describe("kubler start (process)", () => {
  it("prints where it listens, the generated secret and the data dir", () => {
    const secrets = readLocalSecrets(dataDir);
    expect(secrets).not.toBeNull();
    expect(runtime.output()).toContain(`signing token  ${secrets?.signingKey}`);
    // Outside the working directory, so printed whole rather than as ../../tmp/…
    expect(runtime.output()).toContain(`data dir   ${dataDir}/`);
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
    // plan-steps audits its own decision on the same delivery (the project has no kubler.yaml).
    const audit = await waitForLines(join(dataDir, "audit.jsonl"), 1, (a) => a.action === "webhook.receive");
    expect(audit.at(-1)).toMatchObject({
      action: "webhook.receive",
      outcome: "success",
      correlationId: "e2e-key-1",
    });
  });

  it("exits with the reason, instead of hanging, when its port is taken", async () => {
    const taken = new URL(url).port;
    const second = mkdtempSync(join(tmpdir(), "kubler-e2e-"));
    const start = run(process.execPath, ["bin/kubler.js", "start"], {
      cwd: ROOT,
      env: { ...process.env, PORT: taken, KUBLER_DATA_DIR: second },
      timeout: 30_000,
    });
    const failure = (await start.then(
      () => null,
      (error: unknown) => error,
    )) as { code?: unknown; killed?: boolean; stderr?: string } | null;
    expect(failure?.killed).toBe(false);
    expect(failure?.code).toBe(1);
    expect(failure?.stderr).toContain(`kubler: configuration: 127.0.0.1:${taken} is already in use`);
  }, 40_000);

  it("exits with the reason, instead of hanging, when a data dir file is damaged after the cluster started", async () => {
    const damaged = mkdtempSync(join(tmpdir(), "kubler-e2e-damaged-"));
    // The job-credentials key, cut short by a kill -9 while the first start wrote it.
    writeFileSync(join(damaged, "local-oidc-key.json"), '{"kid":');
    const start = run(process.execPath, ["bin/kubler.js", "start"], {
      cwd: ROOT,
      env: { ...isolatedKublerEnv(damaged), PORT: "0" },
      timeout: 30_000,
    });
    const failure = (await start.then(
      () => null,
      (error: unknown) => error,
    )) as { code?: unknown; killed?: boolean; stderr?: string } | null;
    expect(failure?.killed).toBe(false);
    expect(failure?.code).toBe(1);
    expect(failure?.stderr).toContain("local-oidc-key.json is not a key file written by kubler");
    // The embedded cluster it started is gone with it: no kubeconfig naming a server nobody runs.
    expect(existsSync(join(damaged, "kubeconfig"))).toBe(false);
    expect(existsSync(join(damaged, "kubler.lock"))).toBe(false);
  }, 40_000);

  it("answers a resend with the same key as a duplicate", async () => {
    const secrets = readLocalSecrets(dataDir);
    // Signed again, as GitLab resends a signed delivery: the key of a signed delivery is its webhook-id.
    const response = await sendFixture(loadFixture("push"), {
      url,
      signingKey: secrets?.signingKey,
      idempotencyKey: "e2e-key-1",
    });
    expect(response.status).toBe(200);
    expect(await response.json()).toMatchObject({ duplicate: true });
  });
});

const run = promisify(execFile);
/** Another `kubler` command against the running runtime, as an operator would type it. */
async function kubler(...args: string[]): Promise<string> {
  const { stdout } = await run(process.execPath, ["bin/kubler.js", ...args], {
    cwd: ROOT,
    env: { ...process.env, PORT: new URL(url).port, KUBLER_DATA_DIR: dataDir, KUBECONFIG: "" },
  });
  return stdout;
}

describe("environments on the embedded cluster (process)", () => {
  const SHA = "abcdef0123456789abcdef0123456789abcdef01";

  it("deploys the sample project from `kubler deploy` and lists it in `kubler environments`", async () => {
    expect(runtime.output()).toContain("embedded in-memory Kubernetes API");
    expect(runtime.output()).toContain("simulated");
    expect(await kubler("deploy", "--sha", SHA, "--pipeline", "7", "--mr", "16")).toContain(
      "Deploy Requested",
    );
    const [finished] = await waitForLines(
      join(dataDir, "events.jsonl"),
      1,
      (e) => e["detail-type"] === "Deploy Finished",
    );
    expect(finished?.detail).toMatchObject({
      status: "succeeded",
      sha: SHA,
      environment: "review/feature/booking-validation",
      url: "https://review-feature-booking-validation.apps.example.com",
    });
    // events.jsonl and audit.jsonl are flushed separately: the decision's line may land a tick later.
    const audit = await waitForLines(
      join(dataDir, "audit.jsonl"),
      1,
      (a) => a.action === "environment.deploy" && a.outcome === "success",
    );
    expect(audit.at(-1)).toMatchObject({ outcome: "success", function: "deploy-environment" });

    const [listed] = (await kubler("environments", "--json"))
      .trim()
      .split("\n")
      .map((l) => JSON.parse(l));
    expect(listed).toMatchObject({
      projectPath: "flightjs/flight-management",
      environment: "review/feature/booking-validation",
      sha: SHA,
      status: "succeeded",
      ttl: "72h",
    });
    const report = JSON.parse(await kubler("sweep", "--dry-run", "--json"));
    expect(report).toMatchObject({ dryRun: true, examined: 1, expired: [], deleted: [], failed: [] });
    // Three more processes, each importing the Kubernetes client: slow on a loaded machine.
  }, 90_000);

  it("refuses an event from a caller without the secret, and a malformed one naming the field", async () => {
    const post = (token: string, body: unknown) =>
      fetch(`${url}/local/events`, {
        method: "POST",
        headers: { "content-type": "application/json", "x-gitlab-token": token },
        body: JSON.stringify(body),
      });
    expect((await post("wrong", { detailType: "Deploy Requested", detail: {} })).status).toBe(401);
    const token = readLocalSecrets(dataDir)?.token ?? "";
    const bad = await post(token, { detailType: "Deploy Requested", detail: { environment: "x" } });
    expect(bad.status).toBe(400);
    expect(((await bad.json()) as { message: string }).message).toContain("correlationId");
  });
});

describe("a second kubler start on the same data dir (process)", () => {
  it("exits with one line naming the data dir and the pid holding it, leaving the first reachable", async () => {
    const holder = JSON.parse(readFileSync(join(dataDir, "kubler.lock"), "utf8")) as {
      pid: number;
      url: string;
    };
    expect(holder.url).toBe(url);
    const failure = (await run(process.execPath, ["bin/kubler.js", "start"], {
      cwd: ROOT,
      env: { ...process.env, PORT: "0", KUBLER_DATA_DIR: dataDir },
      timeout: 30_000,
    }).then(
      () => null,
      (error: unknown) => error,
    )) as { code?: unknown; killed?: boolean; stderr?: string } | null;
    expect(failure?.killed).toBe(false);
    expect(failure?.code).toBe(1);
    const lines = (failure?.stderr ?? "").split("\n").filter((line) => line.startsWith("kubler:"));
    expect(lines).toEqual([
      `kubler: configuration: KUBLER_DATA_DIR ${dataDir} is in use by another kubler start (pid ${holder.pid}, listening at ${holder.url}): stop it, or set KUBLER_DATA_DIR to another directory`,
    ]);
    // The CLI's way to the first runtime's cluster is still there, and so is the first runtime.
    expect(existsSync(join(dataDir, "kubeconfig"))).toBe(true);
    expect((await fetch(`${url}/healthz`)).status).toBe(200);
  }, 40_000);
});

describe.skipIf(!existsSync("/dev/full"))("kubler start stopped on a full disk", () => {
  it("says which file could not be written and exits 1, without a stack trace", async () => {
    const dir = mkdtempSync(join(tmpdir(), "kubler-e2e-full-"));
    // events.jsonl on a disk with no room left: the webhook's line is accepted, then cannot be written.
    symlinkSync("/dev/full", join(dir, "events.jsonl"));
    const full = await startKublerProcess({
      ...isolatedKublerEnv(dir),
      PORT: "0",
    });
    const token = readLocalSecrets(dir)?.token ?? "";
    const response = await sendFixture(loadFixture("push"), { url: full.url, token });
    expect(response.status).toBe(202);
    await full.waitFor(/could not write .*events\.jsonl/);
    const exited = full.exited();
    full.stop();
    expect(await exited).toBe(1);
    expect(full.output()).toMatch(
      /kubler: stopped, but could not write .*events\.jsonl: ENOSPC.*; free space before the next start/,
    );
    expect(full.output()).not.toMatch(/\n\s+at |Node\.js v/);
    // The rest was closed: the data dir's lock is released.
    expect(existsSync(join(dir, "kubler.lock"))).toBe(false);
  }, 40_000);
});
