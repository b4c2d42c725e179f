/**
 * End to end, for the audit trail: `kubler start` as a real process, decisions driven over HTTP and
 * with `kubler` commands, then asserted from `$KUBLER_DATA_DIR/audit.jsonl` (the documented records
 * of docs/audit.md, schema-valid, no secret in any line) and read back with `kubler audit`.
 */
import { execFile } from "node:child_process";
import { existsSync, mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { promisify } from "node:util";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { loadFixture, sendFixture } from "../../cli/send.js";
import type { AuditRecord } from "../../shared/domain/audit.js";
import { parseAuditRecord } from "../../shared/domain/audit-schema.js";
import { type KublerProcess, ROOT, startKublerProcess } from "./kubler-process.js";

const TOKEN = "e2e-webhook-token-7f3a9c";
const SIGNING_KEY = "whsec_ZTJlLXNpZ25pbmcta2V5LWZvci1hdWRpdC10ZXN0cw==";
const WRONG_TOKEN = "glpat-Wr0ngWr0ngWr0ngWr0ng12";
const CORRELATION = "e2e-audit-correlation-1";
const GITLAB = {
  instance: "https://gitlab.example.com",
  projectId: 2,
  projectPath: "flightjs/flight-management",
};
const ENVIRONMENT = "review/feature/audit-trail";
const dataDir = mkdtempSync(join(tmpdir(), "kubler-audit-e2e-"));
const auditPath = join(dataDir, "audit.jsonl");
// The credentials policy (DESIGN §5) the local runtime loads.
const policyFile = join(dataDir, "policy.yaml");
writeFileSync(
  policyFile,
  [
    // No issuer: the local runtime's own, which `kubler credentials` signs with.
    "audience: kubler",
    "rules:",
    "  - name: review-apps",
    '    match: { project_path: "flightjs/*", environment: "review/*" }',
    '    aws: { roleArn: "arn:aws:iam::123456789012:role/kubler-review", maxDurationSeconds: 3600 }',
    "    kubernetes: { namespace: environment, role: kubler-deployer }",
    "",
  ].join("\n"),
);
const env = {
  ...process.env,
  PORT: "0",
  KUBLER_DATA_DIR: dataDir,
  KUBLER_WEBHOOK_SECRET: TOKEN,
  KUBLER_WEBHOOK_SIGNING_KEY: SIGNING_KEY,
  KUBLER_WEBHOOK_MAX_BODY_BYTES: "65536",
  KUBECONFIG: "",
  KUBLER_AUDIT_LOG_GROUPS: "",
  KUBLER_POLICY_FILE: policyFile,
};
let runtime: KublerProcess;
let url: string;

beforeAll(async () => {
  runtime = await startKublerProcess(env);
  url = runtime.url;
}, 20_000);

afterAll(() => {
  runtime?.stop();
});

function auditLines(): string[] {
  return existsSync(auditPath) ? readFileSync(auditPath, "utf8").split("\n").filter(Boolean) : [];
}

async function waitForRecord(which: (r: AuditRecord) => boolean): Promise<AuditRecord> {
  const deadline = Date.now() + 15_000;
  for (;;) {
    const found = auditLines()
      .map((line) => JSON.parse(line) as AuditRecord)
      .find(which);
    if (found) return found;
    if (Date.now() > deadline) throw new Error(`no such audit record in:\n${auditLines().join("\n")}`);
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

const run = promisify(execFile);
async function kubler(...args: string[]): Promise<string> {
  const { stdout } = await run(process.execPath, ["bin/kubler.js", ...args], {
    cwd: ROOT,
    env: { ...env, PORT: new URL(url).port },
  });
  return stdout;
}

function postEvent(detailType: string, detail: unknown): Promise<Response> {
  return fetch(`${url}/local/events`, {
    method: "POST",
    headers: { "content-type": "application/json", "x-gitlab-token": TOKEN },
    body: JSON.stringify({ detailType, detail }),
  });
}

const webhook = (r: AuditRecord) => r.action === "webhook.receive";

describe("gitlab-webhook decisions in the audit trail (process)", () => {
  it("a published delivery: success, with the delivery's key as correlation id, sender and project", async () => {
    const response = await sendFixture(loadFixture("push"), {
      url,
      signingKey: SIGNING_KEY,
      idempotencyKey: "e2e-push-1",
    });
    expect(response.status).toBe(202);
    const record = await waitForRecord(
      (r) => webhook(r) && r.correlationId === "e2e-push-1" && r.outcome === "success",
    );
    expect(record).toMatchObject({
      function: "gitlab-webhook",
      reason: expect.stringMatching(/^published /),
      actor: { userAgent: "GitLab/19.0.0" },
      subject: { project: "mike/diaspora", projectId: 15, detailType: "Push" },
      gitlab: { event: "Push Hook", idempotencyKey: "e2e-push-1" },
    });
  });

  it("the published fact reaches plan-steps over the bus with the same correlation id", async () => {
    const planned = await waitForRecord(
      (r) => r.function === "plan-steps" && r.correlationId === "e2e-push-1",
    );
    expect(planned).toMatchObject({ action: "plan.steps", gitlab: { instance: expect.any(String) } });
  });

  it("a resend with the same key: ignored as a duplicate", async () => {
    // Signed again, as GitLab resends a signed delivery: the key of a signed delivery is its webhook-id.
    const response = await sendFixture(loadFixture("push"), {
      url,
      signingKey: SIGNING_KEY,
      idempotencyKey: "e2e-push-1",
    });
    expect(response.status).toBe(200);
    await waitForRecord(
      (r) =>
        webhook(r) &&
        r.correlationId === "e2e-push-1" &&
        r.outcome === "ignored" &&
        /duplicate/.test(r.reason),
    );
  });

  it("a wrong X-Gitlab-Token: deny, and the token it sent is not in the trail", async () => {
    const response = await sendFixture(loadFixture("push"), {
      url,
      token: WRONG_TOKEN,
      idempotencyKey: "e2e-deny-1",
    });
    expect(response.status).toBe(401);
    const record = await waitForRecord((r) => webhook(r) && r.correlationId === "e2e-deny-1");
    expect(record).toMatchObject({
      outcome: "deny",
      reason: "X-Gitlab-Token does not match any configured secret",
    });
  });

  it("an event Kubler does not act on: ignored, with the reason", async () => {
    const response = await sendFixture(loadFixture("issue"), {
      url,
      token: TOKEN,
      idempotencyKey: "e2e-issue-1",
    });
    expect(response.status).toBe(200);
    const record = await waitForRecord((r) => webhook(r) && r.correlationId === "e2e-issue-1");
    expect(record).toMatchObject({ outcome: "ignored", gitlab: { event: "Issue Hook" } });
  });

  it("a body that is not JSON, and one over the size limit: failure, with the reason", async () => {
    const post = (key: string, body: string) =>
      fetch(`${url}/webhooks/gitlab`, {
        method: "POST",
        headers: { "x-gitlab-event": "Push Hook", "x-gitlab-token": TOKEN, "idempotency-key": key },
        body,
      });
    expect((await post("e2e-bad-json", "{nope")).status).toBe(400);
    expect((await post("e2e-too-large", "x".repeat(70_000))).status).toBe(413);
    expect(await waitForRecord((r) => webhook(r) && r.correlationId === "e2e-bad-json")).toMatchObject({
      outcome: "failure",
      reason: "body is not valid JSON",
    });
    expect(await waitForRecord((r) => webhook(r) && r.correlationId === "e2e-too-large")).toMatchObject({
      outcome: "failure",
      reason: "body is larger than the 65536 byte limit",
    });
  });
});

describe("environment decisions in the audit trail, followed by correlation id (process)", () => {
  it("deploy, stop and sweep are audited; one correlation id ties the deploy to its cleanup", async () => {
    const deploy = await postEvent("Deploy Requested", {
      correlationId: CORRELATION,
      gitlab: GITLAB,
      environment: ENVIRONMENT,
      sha: "0123456789abcdef0123456789abcdef01234567",
      ref: "feature/audit-trail",
      pipelineId: 41,
      mrIid: 7,
    });
    expect(deploy.status).toBeLessThan(300);
    const deployed = await waitForRecord(
      (r) => r.action === "environment.deploy" && r.correlationId === CORRELATION,
    );
    expect(deployed).toMatchObject({
      outcome: "success",
      function: "deploy-environment",
      actor: { function: "deploy-environment" },
      subject: { project: GITLAB.projectPath, environment: ENVIRONMENT, status: "succeeded" },
      gitlab: { instance: GITLAB.instance, event: "Deploy Requested" },
    });

    await postEvent("Environment Stop Requested", {
      correlationId: CORRELATION,
      gitlab: GITLAB,
      environment: ENVIRONMENT,
      reason: "stopped",
    });
    const stopped = await waitForRecord(
      (r) => r.action === "environment.stop" && r.correlationId === CORRELATION,
    );
    expect(stopped).toMatchObject({
      outcome: "success",
      function: "cleanup-environments",
      reason: "deleted (stopped)",
      subject: { environment: ENVIRONMENT, stopReason: "stopped" },
    });

    // report-status hears Deploy Finished and Environment Deleted under the same correlation id.
    await waitForRecord(
      (r) =>
        r.action === "status.report" &&
        r.correlationId === CORRELATION &&
        r.gitlab?.event === "Deploy Finished",
    );

    await kubler("sweep");
    const swept = await waitForRecord((r) => r.action === "environment.sweep");
    expect(swept).toMatchObject({
      outcome: "success",
      function: "cleanup-environments",
      correlationId: null,
    });

    const timeline = (await kubler("audit", "--correlation", CORRELATION)).split("\n");
    expect(timeline[0]).toMatch(
      new RegExp(`^correlation ${CORRELATION} \\(${GITLAB.projectPath}\\): \\d+ step\\(s\\) over `),
    );
    const actions = timeline
      .slice(3)
      .map((line) => line.split(/\s{2,}/).find((cell) => /^environment\./.test(cell)));
    expect(actions.filter(Boolean)).toEqual(
      expect.arrayContaining(["environment.deploy", "environment.stop"]),
    );
    expect(actions.indexOf("environment.deploy")).toBeLessThan(actions.indexOf("environment.stop"));
  }, 40_000);
});

describe("build and credentials decisions in the audit trail (process)", () => {
  const MR_KEY = "e2e-mr-open-1";

  it("a merge request opened: planned, built, reported by reconcile and deployed, under its delivery's key", async () => {
    const response = await sendFixture(loadFixture("merge_request"), {
      url,
      token: TOKEN,
      idempotencyKey: MR_KEY,
    });
    expect(response.status).toBe(202);
    const of = (fn: string, action: string) =>
      waitForRecord((r) => r.function === fn && r.action === action && r.correlationId === MR_KEY);
    expect(await of("plan-steps", "plan.steps")).toMatchObject({
      outcome: "success",
      subject: { project: "flightjs/flight-management" },
    });
    expect(await of("build-image", "image.build")).toMatchObject({
      outcome: "success",
      gitlab: { event: "Build Requested" },
    });
    expect(await of("reconcile", "image.build")).toMatchObject({
      outcome: "success",
      reason: expect.stringMatching(/^built and pushed .*\(sha256:[0-9a-f]{64}\)$/),
    });
    expect(await of("deploy-environment", "environment.deploy")).toMatchObject({
      outcome: "success",
      gitlab: { event: "Build Finished" },
      // Who deployed: the merge request's user, carried through the build Job to the deploy.
      actor: { function: "deploy-environment", gitlabUser: "agarcia" },
    });
  }, 40_000);

  it("credentials issued for that environment (allow) and refused for another project (deny)", async () => {
    const answer = await kubler(
      "credentials",
      "--project",
      "flightjs/flight-management",
      "--project-id",
      "2",
      "--environment",
      "review/feature/booking-validation",
    );
    const issued = await waitForRecord((r) => r.action === "credentials.issue" && r.outcome === "allow");
    const { aws, kubernetes } = JSON.parse(answer) as {
      aws: { secretAccessKey: string; sessionToken: string };
      kubernetes: { token: string };
    };
    const trail = auditLines().join("\n");
    for (const secret of [aws.secretAccessKey, aws.sessionToken, kubernetes.token]) {
      expect(secret.length).toBeGreaterThan(8);
      expect(trail).not.toContain(secret);
    }
    expect(issued).toMatchObject({
      function: "job-credentials",
      subject: {
        rule: "review-apps",
        roleArn: "arn:aws:iam::123456789012:role/kubler-review",
        expiresAt: expect.any(String),
      },
    });
    const refused = await kubler("credentials", "--project", "someone/else").then(
      () => null,
      (error: { code?: number }) => error,
    );
    expect(refused?.code).toBe(1);
    expect(
      await waitForRecord((r) => r.action === "credentials.issue" && r.outcome === "deny"),
    ).toMatchObject({ function: "job-credentials", reason: expect.stringContaining("no rule matches") });
  }, 40_000);
});

describe("the audit file as a whole (process)", () => {
  it("every line is a schema-valid, versioned record, and no secret is in any of them", () => {
    const lines = auditLines();
    expect(lines.length).toBeGreaterThanOrEqual(9);
    for (const line of lines) expect(parseAuditRecord(JSON.parse(line)).auditVersion).toBe(1);
    const text = lines.join("\n");
    for (const secret of [TOKEN, SIGNING_KEY, SIGNING_KEY.slice("whsec_".length), WRONG_TOKEN]) {
      expect(text).not.toContain(secret);
    }
  });

  it("`kubler audit` answers the saved queries and filters from the local file", async () => {
    const rejected = (await kubler("audit", "--query", "rejected-webhooks", "--json"))
      .trim()
      .split("\n")
      .map((line) => JSON.parse(line));
    expect(rejected).toEqual(
      expect.arrayContaining([
        expect.objectContaining({
          records: "1",
          reason: "X-Gitlab-Token does not match any configured secret",
        }),
        expect.objectContaining({ records: "1", reason: "body is not valid JSON" }),
      ]),
    );
    const deploys = (
      await kubler("audit", "--query", "deploys-to-environment", "--environment", ENVIRONMENT, "--json")
    )
      .trim()
      .split("\n")
      .map((line) => JSON.parse(line));
    expect(deploys.map((r) => [r.action, r.outcome, r.correlationId])).toEqual([
      ["environment.deploy", "success", CORRELATION],
    ]);
    const table = await kubler("audit", "--action", "webhook.receive", "--outcome", "deny");
    expect(table.split("\n")[1]).toMatch(/gitlab-webhook\s+webhook\.receive\s+deny\s/);
  }, 20_000);
});
