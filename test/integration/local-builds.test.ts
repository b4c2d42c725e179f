/**
 * The builds half of the local runtime, in process on the embedded cluster: a `Build Requested` on
 * the bus becomes a build Job, the simulated build finishes, the short reconcile tick reports it,
 * and the sample project is deployed; every step's commit status lands in commit-statuses.jsonl,
 * labelled as not sent (no GitLab configured).
 */
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it, vi } from "vitest";
import type { BusEnvelope } from "../../shared/domain/catalog.js";
import { EXAMPLE_PROJECTS, type LocalTestRuntime, startLocalTestRuntime } from "../fakes/local-runtime.js";

const SHA = "da1560886d4f094c3e6c9ef40349f7d38b5d27d7";
const published: BusEnvelope[] = [];
let local: LocalTestRuntime;

beforeAll(async () => {
  local = await startLocalTestRuntime(
    "kubler-builds-",
    { KUBLER_WEBHOOK_SECRET: "local-test-secret", KUBLER_PROJECTS_DIR: EXAMPLE_PROJECTS },
    { bus: { published: (envelope) => published.push(envelope) }, onError: () => {} },
  );
});
afterAll(() => local.close());

const statuses = () =>
  readFileSync(join(local.dataDir, "commit-statuses.jsonl"), "utf8")
    .split("\n")
    .filter(Boolean)
    .map(
      (line) =>
        JSON.parse(line) as {
          state: string;
          name: string;
          sha: string;
          local: string;
          targetUrl: string | null;
        },
    );

describe("local builds", () => {
  it("builds, reports and deploys a requested build, with its commit statuses in a local file", async () => {
    await local.runtime.bus.publish([
      {
        detailType: "Build Requested",
        detail: {
          correlationId: "local-build-1",
          gitlab: {
            instance: "https://gitlab.example.com",
            projectId: 1,
            projectPath: "flightjs/flight-management",
          },
          environment: "review/feature-x",
          sha: SHA,
          ref: "feature-x",
          pipelineId: null,
          mrIid: 1,
        },
      },
    ]);
    await vi.waitFor(() => expect(published.map((e) => e["detail-type"])).toContain("Deploy Finished"), {
      timeout: 15_000,
      interval: 50,
    });
    const built = published.find((e) => e["detail-type"] === "Build Finished");
    expect(built?.detail).toMatchObject({
      status: "succeeded",
      imageDigest: expect.stringMatching(/^sha256:/),
    });
    expect(published.find((e) => e["detail-type"] === "Deploy Finished")?.detail).toMatchObject({
      status: "succeeded",
    });
    await vi.waitFor(
      () => expect(statuses().map((s) => s.state)).toEqual(["pending", "running", "success"]),
      {
        timeout: 5_000,
        interval: 25,
      },
    );
    const [first] = statuses();
    expect(first).toMatchObject({ name: "kubler/review/feature-x", sha: SHA });
    expect(first?.local).toMatch(/^not sent/);
    expect(statuses()[2]?.targetUrl).toBe("https://review-feature-x.apps.example.com");
  }, 20_000);
});
