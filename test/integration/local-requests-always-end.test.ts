/**
 * A request always ends, and only requests get commit statuses (4a3f647), on the local runtime: a
 * push to a project without kubler.yaml is planned as ignored and reaches GitLab as nothing at all;
 * a Build Requested or Deploy Requested published by hand for such a project (`kubler deploy
 * --project nope/nope`) ends failed, its status moved to failed, and the failed build deploys nothing.
 */
import { existsSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it, vi } from "vitest";
import { loadFixture, sendFixture } from "../../cli/send.js";
import type { AuditRecord } from "../../shared/domain/audit.js";
import type { BusEnvelope } from "../../shared/domain/catalog.js";
import { EXAMPLE_PROJECTS, type LocalTestRuntime, startLocalTestRuntime } from "../fakes/local-runtime.js";

const SHA = "da1560886d4f094c3e6c9ef40349f7d38b5d27d7";
const published: BusEnvelope[] = [];
const audits: AuditRecord[] = [];
let local: LocalTestRuntime;

beforeAll(async () => {
  local = await startLocalTestRuntime(
    "kubler-unopted-",
    { KUBLER_PROJECTS_DIR: EXAMPLE_PROJECTS },
    {
      bus: { published: (envelope) => published.push(envelope) },
      onAudit: (record) => audits.push(record),
      onError: () => {},
    },
  );
}, 30_000);
afterAll(() => local?.close());

const lines = <T>(file: string): T[] => {
  const path = join(local.dataDir, file);
  if (!existsSync(path)) return [];
  return readFileSync(path, "utf8")
    .split("\n")
    .filter(Boolean)
    .map((line) => JSON.parse(line) as T);
};
type Status = { state: string; name: string; sha: string; description: string };
const step = (correlationId: string, environment: string) => ({
  correlationId,
  gitlab: { instance: "https://gitlab.example.com", projectId: 404, projectPath: "nope/nope" },
  environment,
  sha: SHA,
  ref: "main",
  pipelineId: null,
  mrIid: null,
});

describe("local runtime: a project that is not opted in", () => {
  it("a push to it publishes no request and sets no commit status", async () => {
    const response = await sendFixture(loadFixture("push"), {
      url: local.runtime.url,
      signingKey: local.runtime.generatedSecrets?.signingKey,
      idempotencyKey: "push-unopted",
    });
    expect(response.status).toBe(202);
    await local.runtime.bus.drain();
    expect(audits).toContainEqual(
      expect.objectContaining({ action: "plan.steps", outcome: "ignored", correlationId: "push-unopted" }),
    );
    expect(published.map((e) => e["detail-type"])).toEqual(["Push"]);
    expect(audits.filter((a) => a.correlationId === "push-unopted").map((a) => a.function)).toEqual([
      "gitlab-webhook",
      "plan-steps",
    ]);
    expect(lines<Status>("commit-statuses.jsonl")).toEqual([]);
  });

  it("a deploy asked for by hand ends failed: running, then failed, once", async () => {
    await local.runtime.bus.publish([
      { detailType: "Deploy Requested", detail: step("deploy-nope", "staging") },
    ]);
    await local.runtime.bus.drain();
    await vi.waitFor(
      () => expect(lines<Status>("commit-statuses.jsonl").map((s) => s.state)).toEqual(["running", "failed"]),
      { timeout: 10_000, interval: 25 },
    );
    const finished = published.filter((e) => e["detail-type"] === "Deploy Finished");
    expect(finished.map((e) => e.detail)).toMatchObject([
      { status: "failed", reason: `no kubler.yaml at ${SHA}: the project is not opted in` },
    ]);
    expect(lines<Status>("commit-statuses.jsonl")[1]).toMatchObject({
      name: "kubler/staging",
      description: `Deploy failed: no kubler.yaml at ${SHA}: the project is not opted in`,
    });
  });

  it("a build asked for by hand ends failed, and its failed Build Finished deploys nothing", async () => {
    published.length = 0;
    await local.runtime.bus.publish([
      { detailType: "Build Requested", detail: step("build-nope", "review/x") },
    ]);
    await local.runtime.bus.drain();
    await vi.waitFor(
      () =>
        expect(
          lines<Status>("commit-statuses.jsonl")
            .filter((s) => s.name === "kubler/review/x")
            .map((s) => s.state),
        ).toEqual(["pending", "failed"]),
      { timeout: 10_000, interval: 25 },
    );
    expect(published.map((e) => [e["detail-type"], (e.detail as { status?: string }).status])).toEqual([
      ["Build Requested", undefined],
      ["Build Finished", "failed"],
    ]);
    expect(
      audits.filter((a) => a.correlationId === "build-nope").map((a) => [a.function, a.outcome]),
    ).toEqual([
      ["report-status", "success"],
      ["build-image", "failure"],
      ["report-status", "success"],
    ]);
  });
});
