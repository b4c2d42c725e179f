/**
 * Image mode (Kubler builds the image) when GitLab's queue delivers two pushes, or two merge request
 * updates, of one environment reversed: each goes the real way, from GitLab's payload (normalized by
 * the ingress's code) through plan-steps, build-image, the embedded cluster's build Job and reconcile's
 * Build Finished to deploy-environment, with the builds finishing in either order. The newer commit
 * must end up running, and the older one be refused as stale (superseded, audited).
 */
import { readFileSync, rmSync } from "node:fs";
import { join } from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { buildJobName } from "../../shared/domain/build-job.js";
import type { Detail } from "../../shared/domain/catalog.js";
import { namespaceFor, readEnvironment } from "../../shared/domain/environment.js";
import { normalizeGitlabEvent } from "../../shared/domain/gitlab-event.js";
import type { GitlabFact } from "../../shared/domain/plan-steps.js";
import { DirectoryManifestSource } from "../../shared/local/directory-manifest-source.js";
import { MemoryDedupeStore } from "../../shared/local/memory-dedupe-store.js";
import { buildImage } from "../../shared/services/build-image.js";
import { deployEnvironment } from "../../shared/services/deploy-environment.js";
import { planStepsFor } from "../../shared/services/plan-steps.js";
import { reconcileBuilds } from "../../shared/services/reconcile-builds.js";
import {
  BUILDS_NAMESPACE,
  type BuildTestBed,
  startBuildTestBed,
  untilJobFinished,
} from "../fakes/build-deps.js";
import { type DeployTestDeps, deployTestDeps } from "../fakes/deploy-deps.js";
import { RecordingPublisher } from "../fakes/index.js";

const PROJECT = "flightjs/flight-management";
const REVIEW = "review/feature/booking-validation";
const STAGING = "staging";
const [X, A, B] = ["0123456", "a", "b"].map((c) => c.repeat(40).slice(0, 40)) as [string, string, string];
const FIXTURES = new URL("../fixtures/gitlab/webhooks/", import.meta.url);
/** The sample project, read by plan-steps and build-image (the deploy reads its own copy). */
const manifests = new DirectoryManifestSource(join(import.meta.dirname, "../../examples/projects"));

const fixture = (name: string) =>
  (JSON.parse(readFileSync(new URL(name, FIXTURES), "utf8")) as { payload: Record<string, unknown> }).payload;

function normalized(eventHeader: string, payload: unknown, correlationId: string): GitlabFact {
  const result = normalizeGitlabEvent({
    eventHeader,
    payload,
    instance: "https://gitlab.example.com",
    correlationId,
  });
  if (result.kind !== "fact") throw new Error(`not a fact: ${result.reason}`);
  return result.entry as GitlabFact;
}

/** GitLab's Merge Request Hook for a push to the MR's branch (merge_request.json as an `update`). */
function mergeRequestUpdate(from: string, to: string, updatedAt: string): GitlabFact {
  const payload = structuredClone(fixture("merge_request.json"));
  const attributes = payload.object_attributes as Record<string, unknown>;
  Object.assign(attributes, { action: "update", oldrev: from, updated_at: updatedAt });
  (attributes.last_commit as Record<string, unknown>).id = to;
  return normalized("Merge Request Hook", payload, `mr-${to.slice(0, 4)}-from-${from.slice(0, 4)}`);
}

/** GitLab's Push Hook (push.json) to the sample project's main, from `before` to `after`. */
function push(before: string, after: string): GitlabFact {
  const payload = structuredClone(fixture("push.json"));
  Object.assign(payload, { before, after, checkout_sha: after, ref: "refs/heads/main", project_id: 2 });
  Object.assign(payload.project as Record<string, unknown>, {
    id: 2,
    path_with_namespace: PROJECT,
    web_url: `https://gitlab.example.com/${PROJECT}`,
  });
  return normalized("Push Hook", payload, `push-${after.slice(0, 4)}-from-${before.slice(0, 4)}`);
}

let bed: BuildTestBed<DirectoryManifestSource>;
let deploy: DeployTestDeps;
let projects: string;
let steps: RecordingPublisher;
let dedupe: MemoryDedupeStore;

beforeEach(async () => {
  // The build Jobs run on the same embedded cluster the environments are deployed to.
  bed = await startBuildTestBed(manifests, { failingSha: "f".repeat(40) });
  ({ deps: deploy, projects } = deployTestDeps(bed.k8s, "kubler-out-of-order-"));
  steps = new RecordingPublisher();
  dedupe = new MemoryDedupeStore(deploy.clock);
});
afterEach(async () => {
  await bed.close();
  rmSync(projects, { recursive: true, force: true });
});

/** GitLab's fact, planned as it reached Kubler at `arrivedAt`, and built: its Build Finished, to deploy. */
async function planAndBuild(fact: GitlabFact, arrivedAt: string): Promise<Detail<"Build Finished">> {
  const from = steps.entries.length;
  const planned = await planStepsFor(
    {
      manifests,
      publisher: steps,
      dedupe,
      stops: deploy.stops,
      audit: deploy.audit,
      clock: deploy.clock,
    },
    fact,
    new Date(arrivedAt),
  );
  expect(planned).toMatchObject({ kind: "published" });
  const [request] = steps.entries.slice(from);
  if (request?.detailType !== "Build Requested") throw new Error("no build planned");
  await buildImage(bed.build, request.detail);
  await untilJobFinished(bed.k8s, BUILDS_NAMESPACE, buildJobName(request.detail.gitlab, request.detail.sha));
  await reconcileBuilds(bed.reconcile);
  const finished = bed.publisher.entries.findLast(
    (e) => e.detailType === "Build Finished" && e.detail.correlationId === request.detail.correlationId,
  );
  if (finished?.detailType !== "Build Finished") throw new Error("no Build Finished");
  return finished.detail;
}

function deployBuilt(detail: Detail<"Build Finished">, at: string) {
  return deployEnvironment(deploy, { detailType: "Build Finished", detail, time: new Date(at) });
}

function running(environment: string) {
  const namespace = bed.k8s.store.get("v1", "Namespace", undefined, namespaceFor(PROJECT, environment));
  const read = namespace ? readEnvironment(namespace) : null;
  return read?.kind === "managed" ? read.environment : null;
}

function deployFinished() {
  return deploy.publisher.entries.flatMap((e) =>
    e.detailType === "Deploy Finished" ? [{ sha: e.detail.sha, status: e.detail.status }] : [],
  );
}

function staleAudit(sha: string) {
  return deploy.audit.records.find(
    (r) => r.action === "environment.deploy" && r.outcome === "ignored" && r.subject.sha === sha,
  );
}

describe("two merge request updates delivered reversed (A, then B on top of it)", () => {
  // GitLab made A's update at 10:00:01 and B's at 10:00:05; its queue delivered B's first.
  const updateA = () => mergeRequestUpdate(X, A, "2026-11-21 10:00:01 UTC");
  const updateB = () => mergeRequestUpdate(A, B, "2026-11-21 10:00:05 UTC");

  it("B built first: B runs, and A's deploy is refused as stale, audited and reported superseded", async () => {
    const b = await planAndBuild(updateB(), "2026-11-21T10:00:10Z");
    const a = await planAndBuild(updateA(), "2026-11-21T10:00:11Z");
    expect(await deployBuilt(b, "2026-11-21T10:01:00Z")).toMatchObject({ kind: "succeeded" });
    expect(await deployBuilt(a, "2026-11-21T10:02:00Z")).toMatchObject({
      kind: "ignored",
      reason: expect.stringMatching(/^stale: /),
    });

    expect(running(REVIEW)).toMatchObject({ sha: B, status: "succeeded", previousSha: A });
    expect(deployFinished()).toEqual([
      { sha: B, status: "succeeded" },
      { sha: A, status: "superseded" },
    ]);
    expect(staleAudit(A)?.reason).toBe(
      `stale: ${A} is from GitLab's change at 2026-11-21T10:00:01.000Z, before the one (2026-11-21T10:00:05.000Z) of ${B}, the last attempted asked for at 2026-11-21T10:00:10.000Z`,
    );
  }, 20_000);

  it("A built first: A runs, then B replaces it, though B's update reached Kubler first", async () => {
    const b = await planAndBuild(updateB(), "2026-11-21T10:00:10Z");
    const a = await planAndBuild(updateA(), "2026-11-21T10:00:11Z");
    await deployBuilt(a, "2026-11-21T10:01:00Z");
    expect(await deployBuilt(b, "2026-11-21T10:02:00Z")).toMatchObject({ kind: "succeeded" });

    expect(running(REVIEW)).toMatchObject({ sha: B, status: "succeeded" });
    expect(deployFinished()).toEqual([
      { sha: A, status: "succeeded" },
      { sha: B, status: "succeeded" },
    ]);
  }, 20_000);

  it("in one second of GitLab's time, the chain orders them: A, which B was pushed on top of, is stale", async () => {
    const b = await planAndBuild(mergeRequestUpdate(A, B, "2026-11-21 10:00:05 UTC"), "2026-11-21T10:00:10Z");
    const a = await planAndBuild(mergeRequestUpdate(X, A, "2026-11-21 10:00:05 UTC"), "2026-11-21T10:00:11Z");
    await deployBuilt(b, "2026-11-21T10:01:00Z");
    await deployBuilt(a, "2026-11-21T10:02:00Z");

    expect(running(REVIEW)).toMatchObject({ sha: B });
    expect(staleAudit(A)?.reason).toBe(
      `stale: ${B}, the last attempted, was pushed on top of ${A}, this one (${A}→${B} asked for at 2026-11-21T10:00:10.000Z)`,
    );
  }, 20_000);

  it("a force push back to A after B is a new change: built and deployed again over B, whatever arrives late", async () => {
    const a = await planAndBuild(updateA(), "2026-11-21T10:00:02Z");
    await deployBuilt(a, "2026-11-21T10:01:00Z");
    // The force push from B back to A (10:00:09) reached Kubler before B's update (10:00:05).
    const back = await planAndBuild(
      mergeRequestUpdate(B, A, "2026-11-21 10:00:09 UTC"),
      "2026-11-21T10:00:10Z",
    );
    const b = await planAndBuild(updateB(), "2026-11-21T10:00:11Z");
    expect(await deployBuilt(back, "2026-11-21T10:02:00Z")).toMatchObject({ kind: "succeeded" });
    expect(await deployBuilt(b, "2026-11-21T10:03:00Z")).toMatchObject({ kind: "ignored" });

    expect(running(REVIEW)).toMatchObject({ sha: A, previousSha: B });
    expect(deployFinished()).toEqual([
      { sha: A, status: "succeeded" },
      { sha: A, status: "succeeded" },
      { sha: B, status: "superseded" },
    ]);
  }, 20_000);

  it("the first update to A, delivered after the force push back to A, is no reason to report A canceled while it runs", async () => {
    // GitLab: X→A at 10:00:01, A→B at 10:00:05, B→A at 10:00:09; its queue delivered X→A last.
    const back = await planAndBuild(
      mergeRequestUpdate(B, A, "2026-11-21 10:00:09 UTC"),
      "2026-11-21T10:00:10Z",
    );
    const b = await planAndBuild(updateB(), "2026-11-21T10:00:11Z");
    const a = await planAndBuild(updateA(), "2026-11-21T10:00:12Z");
    expect(await deployBuilt(back, "2026-11-21T10:01:00Z")).toMatchObject({ kind: "succeeded" });
    expect(await deployBuilt(b, "2026-11-21T10:02:00Z")).toMatchObject({ kind: "ignored" });
    // The very commit that runs: not older than itself, whatever GitLab's time of this update.
    expect(await deployBuilt(a, "2026-11-21T10:03:00Z")).toMatchObject({ kind: "succeeded" });
    // The bus delivering B's Build Finished again still finds B older than what runs: the late update
    // to A did not lower what the namespace orders by.
    expect(await deployBuilt(b, "2026-11-21T10:04:00Z")).toMatchObject({ kind: "ignored" });

    expect(running(REVIEW)).toMatchObject({ sha: A, status: "succeeded" });
    expect(deployFinished()).toEqual([
      { sha: A, status: "succeeded" },
      { sha: B, status: "superseded" },
      { sha: A, status: "succeeded" },
      { sha: B, status: "superseded" },
    ]);
  }, 20_000);
});

describe("two pushes to a branch delivered reversed (no time of GitLab's own: the chain orders them)", () => {
  it("B built first: B runs, and A's deploy is refused as stale", async () => {
    const b = await planAndBuild(push(A, B), "2026-11-21T10:00:10Z");
    const a = await planAndBuild(push(X, A), "2026-11-21T10:00:11Z");
    await deployBuilt(b, "2026-11-21T10:01:00Z");
    expect(await deployBuilt(a, "2026-11-21T10:02:00Z")).toMatchObject({ kind: "ignored" });

    expect(running(STAGING)).toMatchObject({ sha: B, status: "succeeded" });
    expect(deployFinished()).toEqual([
      { sha: B, status: "succeeded" },
      { sha: A, status: "superseded" },
    ]);
    expect(staleAudit(A)?.reason).toMatch(
      new RegExp(`^stale: ${B}, the last attempted, was pushed on top of ${A}`),
    );
  }, 20_000);

  it("A built first: B replaces it, though B's push reached Kubler first", async () => {
    const b = await planAndBuild(push(A, B), "2026-11-21T10:00:10Z");
    const a = await planAndBuild(push(X, A), "2026-11-21T10:00:11Z");
    await deployBuilt(a, "2026-11-21T10:01:00Z");
    expect(await deployBuilt(b, "2026-11-21T10:02:00Z")).toMatchObject({ kind: "succeeded" });
    expect(running(STAGING)).toMatchObject({ sha: B });
  }, 20_000);

  it("a force push back to A after B deploys A again", async () => {
    await deployBuilt(await planAndBuild(push(X, A), "2026-11-21T10:00:01Z"), "2026-11-21T10:01:00Z");
    await deployBuilt(await planAndBuild(push(A, B), "2026-11-21T10:00:05Z"), "2026-11-21T10:02:00Z");
    const back = await planAndBuild(push(B, A), "2026-11-21T10:00:09Z");
    expect(await deployBuilt(back, "2026-11-21T10:03:00Z")).toMatchObject({ kind: "succeeded" });
    expect(running(STAGING)).toMatchObject({ sha: A, previousSha: B });
  }, 20_000);
});
