/**
 * The local flow end to end (issue 5): GitLab's merge request payload, sent signed over HTTP like
 * `kubler send`, to the local runtime on the embedded cluster. Opened: plan-steps asks for a build,
 * build-image creates the Job, the simulated build ends, reconcile reports Build Finished, the review
 * environment is deployed. Closed: it is stopped and deleted. Every event is read from events.jsonl.
 */
import { existsSync, mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type LocalRuntime, startLocalRuntime } from "../../cli/local-runtime.js";
import { type Fixture, loadFixture, sendFixture } from "../../cli/send.js";
import { loadLocalConfig } from "../../shared/config.js";
import type { BusEnvelope } from "../../shared/domain/catalog.js";
import { namespaceFor } from "../../shared/domain/environment.js";

const PROJECTS = join(import.meta.dirname, "../../examples/projects");
const PROJECT = "flightjs/flight-management";
const ENVIRONMENT = "review/feature/booking-validation";
const NAMESPACE = namespaceFor(PROJECT, ENVIRONMENT);
const SHA = "e59094b8de0f2f91abbe4760a52d9137260252d8";
const gitlab = { instance: "http://gitlab.example.com", projectId: 2, projectPath: PROJECT };

let runtime: LocalRuntime;
let dataDir: string;

beforeAll(async () => {
  dataDir = mkdtempSync(join(tmpdir(), "kubler-flow-"));
  const config = loadLocalConfig({ PORT: "0", KUBLER_DATA_DIR: dataDir, KUBLER_PROJECTS_DIR: PROJECTS });
  runtime = await startLocalRuntime(config, { simulatedRolloutMs: 0, onError: () => {} });
}, 30_000);

afterAll(async () => {
  await runtime?.close();
  rmSync(dataDir, { recursive: true, force: true });
});

function events(): BusEnvelope[] {
  const path = join(dataDir, "events.jsonl");
  if (!existsSync(path)) return [];
  return readFileSync(path, "utf8")
    .split("\n")
    .filter(Boolean)
    .map((line) => JSON.parse(line) as BusEnvelope);
}

/** The events so far once one of `detailType` is in events.jsonl. */
async function until(detailType: string, count = 1): Promise<BusEnvelope[]> {
  const deadline = Date.now() + 20_000;
  for (;;) {
    const all = events();
    if (all.filter((e) => e["detail-type"] === detailType).length >= count) return all;
    if (Date.now() > deadline) {
      throw new Error(`no ${detailType} in events.jsonl: ${all.map((e) => e["detail-type"]).join(" → ")}`);
    }
    await new Promise((resolve) => setTimeout(resolve, 25));
  }
}

function mergeRequest(action: "open" | "close"): Fixture {
  const fixture = loadFixture("merge_request");
  const payload = JSON.parse(fixture.body);
  payload.object_attributes.action = action;
  payload.object_attributes.state = action === "open" ? "opened" : "closed";
  return { ...fixture, body: JSON.stringify(payload) };
}

async function send(fixture: Fixture, idempotencyKey: string): Promise<Response> {
  return sendFixture(fixture, {
    url: runtime.url,
    signingKey: runtime.generatedSecrets?.signingKey,
    idempotencyKey,
  });
}

describe("local flow: merge request opened → deployed → closed → deleted", () => {
  it("builds and deploys the review environment when the merge request opens", async () => {
    const response = await send(mergeRequest("open"), "mr-open-1");
    expect(response.status).toBe(202);

    const all = await until("Deploy Finished");
    expect(all.map((e) => e["detail-type"])).toEqual([
      "Merge Request",
      "Build Requested",
      "Build Finished",
      "Deploy Finished",
    ]);
    const [fact, build, built, deployed] = all as [BusEnvelope, BusEnvelope, BusEnvelope, BusEnvelope];
    expect(fact).toMatchObject({
      source: "kubler.gitlab",
      detail: { action: "open", iid: 16, correlationId: "mr-open-1" },
    });
    const step = {
      correlationId: "mr-open-1",
      gitlab,
      environment: ENVIRONMENT,
      sha: SHA,
      ref: "feature/booking-validation",
      mrIid: 16,
    };
    expect(build).toMatchObject({ source: "kubler", detail: step });
    expect(built.detail).toMatchObject({
      ...step,
      status: "succeeded",
      imageDigest: expect.stringMatching(/^sha256:[0-9a-f]{64}$/),
    });
    expect(deployed.detail).toMatchObject({
      ...step,
      status: "succeeded",
      namespace: NAMESPACE,
      url: "https://review-feature-booking-validation.apps.example.com",
    });

    // On the embedded cluster: the build Job ran, and the environment runs the image it built.
    const jobs = await runtime.environments.cluster.list("batch/v1", "Job", {
      labelSelector: "app.kubernetes.io/managed-by=kubler",
    });
    expect(jobs.items).toHaveLength(1);
    const app = await runtime.environments.cluster.get({
      apiVersion: "apps/v1",
      kind: "Deployment",
      namespace: NAMESPACE,
      name: "flight-management",
    });
    const digest = (built.detail as { imageDigest: string }).imageDigest;
    expect(JSON.stringify(app)).toContain(`registry.example.com/flightjs/flight-management@${digest}`);
  }, 30_000);

  it("plans nothing again for GitLab's second delivery of the same change, nor for a resend", async () => {
    expect((await send(mergeRequest("open"), "mr-open-1")).status).toBe(200); // the same key: a resend
    expect((await send(mergeRequest("open"), "mr-open-2")).status).toBe(202); // a second delivery
    const all = await until("Merge Request", 2);
    // plan-steps audits the second delivery as a duplicate, and publishes nothing for it.
    const audit = await waitForAudit((a) => a.correlationId === "mr-open-2" && a.action === "plan.steps");
    expect(audit).toMatchObject({
      outcome: "ignored",
      reason: expect.stringMatching(/^duplicate: Build Requested/),
    });
    expect(events().filter((e) => e["detail-type"] === "Build Requested")).toHaveLength(1);
    expect(all.filter((e) => e["detail-type"] === "Merge Request")).toHaveLength(2);
  }, 30_000);

  it("stops and deletes the environment when the merge request closes", async () => {
    expect((await send(mergeRequest("close"), "mr-close-1")).status).toBe(202);
    const all = await until("Environment Deleted");
    const after = all.slice(all.findIndex((e) => e.detail.correlationId === "mr-close-1"));
    expect(after.map((e) => e["detail-type"])).toEqual([
      "Merge Request",
      "Environment Stop Requested",
      "Environment Deleted",
    ]);
    expect(after[1]?.detail).toEqual({
      correlationId: "mr-close-1",
      gitlab,
      environment: ENVIRONMENT,
      reason: "closed",
      // Who closed it, for the environment.stop audit line.
      user: "agarcia",
      // When the close reached Kubler: cleanup orders the stop by it, not by when plan-steps published it.
      factAt: new Date(String(after[0]?.time)).toISOString(),
    });
    expect(after[2]?.detail).toMatchObject({
      correlationId: "mr-close-1",
      environment: ENVIRONMENT,
      namespace: NAMESPACE,
      user: "agarcia",
      // What ran there, for its final status: deployed from the merge request, not from a pipeline.
      sha: SHA,
      pipelineId: null,
    });
  }, 30_000);
});

async function waitForAudit(
  which: (record: Record<string, unknown>) => boolean,
): Promise<Record<string, unknown>> {
  const path = join(dataDir, "audit.jsonl");
  const deadline = Date.now() + 20_000;
  for (;;) {
    const lines = existsSync(path) ? readFileSync(path, "utf8").split("\n").filter(Boolean) : [];
    const found = lines.map((line) => JSON.parse(line) as Record<string, unknown>).find(which);
    if (found) return found;
    if (Date.now() > deadline) throw new Error("no such audit line");
    await new Promise((resolve) => setTimeout(resolve, 25));
  }
}
