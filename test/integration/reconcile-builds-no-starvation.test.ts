/**
 * No build Job lives forever, and none starves reconcile: a failed build whose log cannot be read
 * is reported without it, Jobs that cost a run its whole budget every time (their log reads timing
 * out, their publish failing) cannot keep those after them waiting, and a Job of Kubler's that lost
 * its project or commit annotations is let go (or replaced by a new request) instead of 409s for
 * good. Against the embedded Kubernetes API over HTTP, through the real adapter.
 */
import { describe, expect, it } from "vitest";
import { RECONCILE_LIMITS } from "../../functions/reconcile/limits.js";
import { BUILD_ANNOTATION, buildJobName, ttlAfterFinished } from "../../shared/domain/build-job.js";
import type { Detail } from "../../shared/domain/catalog.js";
import { LABEL } from "../../shared/domain/environment.js";
import type { KubeObject } from "../../shared/domain/kube-object.js";
import { KubernetesUnavailableError, PublishError } from "../../shared/errors.js";
import { buildImage } from "../../shared/services/build-image.js";
import { type ReconcileBuildsDeps, reconcileBuilds } from "../../shared/services/reconcile-builds.js";
import {
  BUILDS_NAMESPACE,
  exampleBuildRequest,
  exampleStagingRequest,
  EXAMPLE_FAILING_SHA as FAILING_SHA,
  EXAMPLE_BUILD_PROJECT as gitlab,
  EXAMPLE_BUILD_SHA as SHA,
  untilJobFinished,
  useBuildTestBed,
} from "../fakes/build-deps.js";
import type { FixedClock } from "../fakes/index.js";

const MINUTE_MS = 60_000;

const bed = useBuildTestBed();

const request = exampleBuildRequest;
const staging = (sha: string) => exampleStagingRequest({ sha });
const jobOf = (sha: string) =>
  bed.k8s.store.get("batch/v1", "Job", BUILDS_NAMESPACE, buildJobName(gitlab, sha)) as KubeObject;
const finished = () => bed.publisher.entries.map((e) => e.detail as Detail<"Build Finished">);
const heard = () => finished().map((d) => `${d.environment} ${d.sha.slice(0, 1)} ${d.status}`);

async function built(sha: string, environment = "review/feature-x", correlationId = "c-1") {
  await buildImage(bed.build, request({ sha, environment, correlationId }));
  await untilJobFinished(bed.k8s, BUILDS_NAMESPACE, buildJobName(gitlab, sha));
}

/** The Job as a hand edit left it: `drop` removed from its annotations (or labels). */
function damage(sha: string, drop: { annotation?: string; label?: string }) {
  const job = jobOf(sha);
  const annotations = { ...job.metadata.annotations };
  const labels = { ...job.metadata.labels };
  if (drop.annotation) delete annotations[drop.annotation];
  if (drop.label) delete labels[drop.label];
  bed.k8s.store.put({ ...job, metadata: { ...job.metadata, annotations, labels } });
}

/** A run as the handler makes it: its budget from now, on the bed's clock. */
function run(deps: Partial<ReconcileBuildsDeps> = {}) {
  const { clock } = bed.reconcile;
  return reconcileBuilds({
    ...bed.reconcile,
    deadline: new Date(clock.now().getTime() + RECONCILE_LIMITS.buildsBudgetMs),
    ...deps,
  });
}

describe("a failed build whose log cannot be read", () => {
  it("is reported at once without log lines, saying they could not be read, and gets its TTL", async () => {
    await built(FAILING_SHA);
    // Its pod on an unreachable node: the API server cannot reach the kubelet, every run.
    const unreachable = bed.k8s.faults.add({
      verb: "get",
      resource: "pods",
      subresource: "log",
      status: 503,
    });

    const report = await run();

    expect(unreachable.hits).toBeGreaterThan(0);
    expect(report.reported).toEqual([`${buildJobName(gitlab, FAILING_SHA)} → review/feature-x: failed`]);
    expect(finished()[0]).toMatchObject({ status: "failed", sha: FAILING_SHA });
    expect(finished()[0]?.reason).not.toContain("--- last log lines ---");
    expect(bed.audit.records.at(-1)).toMatchObject({
      action: "image.build",
      outcome: "failure",
      reason: expect.stringMatching(/^BackoffLimitExceeded: .* \(log not read: .*HTTP 503/),
    });
    expect(ttlAfterFinished(jobOf(FAILING_SHA))).toBeGreaterThan(0);
  });

  it("is reported without them when the read does not answer within reconcile's per-Job limit", async () => {
    await built(FAILING_SHA);
    const hung = bed.k8s.faults.add({ verb: "get", resource: "pods", subresource: "log", hang: true });

    // The bed's client waits 10 s an attempt: only the per-Job limit ends the read this soon.
    const report = await run({ logReadMs: 50 });

    expect(hung.hits).toBe(1);
    expect(report.reported).toHaveLength(1);
    expect(bed.audit.records.at(-1)?.reason).toMatch(/\(log not read: .*no answer within 50 ms\)$/);
  });
});

describe("Jobs that cost reconcile its whole budget every run", () => {
  const LAST = "d".repeat(40);
  /** Three Jobs listed before a fourth, `LAST`, that nothing slows down. */
  async function threeSlowThenOne() {
    const slow = ["a", "b", "c"].map((c) => c.repeat(40));
    for (const sha of slow) await built(sha);
    await built(LAST);
    const names = [...slow, LAST].map((sha) => buildJobName(gitlab, sha));
    const listed = bed.k8s.store.list("batch/v1", "Job", BUILDS_NAMESPACE).map((job) => job.metadata.name);
    expect(listed.filter((name) => names.includes(name))).toEqual(names);
    return slow;
  }

  it("do not keep the Jobs after them waiting when their log reads time out", async () => {
    const slow = await threeSlowThenOne();
    const { cluster } = bed.reconcile;
    const clock = bed.reconcile.clock as FixedClock;
    // A call timed out and retried after the longest wait (2 × 4 s + 5 s, reconcile's client), and
    // the Job's other calls: three of them are past the run's 40 s budget.
    const timingOut: ReconcileBuildsDeps["cluster"] = {
      get: (ref) => cluster.get(ref),
      list: (apiVersion, kind, options) => cluster.list(apiVersion, kind, options),
      apply: (object) => cluster.apply(object),
      create: (object) => cluster.create(object),
      delete: (ref, preconditions) => cluster.delete(ref, preconditions),
      removeFinalizers: (ref, preconditions, options) =>
        cluster.removeFinalizers(ref, preconditions, options),
      readLog: async () => {
        clock.advance(13_500);
        throw new KubernetesUnavailableError("read log: failed after 2 attempt(s); no answer", 0);
      },
    };
    const failing = (sha: string) => {
      const job = jobOf(sha);
      bed.k8s.store.put({
        ...job,
        status: {
          failed: 1,
          conditions: [{ type: "Failed", status: "True", reason: "BackoffLimitExceeded" }],
        },
      });
    };
    for (const sha of slow) failing(sha);

    // Each run's order starts elsewhere: the Jobs one run had no time for are the next one's first.
    await run({ cluster: timingOut });
    clock.advance(MINUTE_MS);
    await run({ cluster: timingOut });

    expect(heard().sort()).toEqual([
      "review/feature-x a failed",
      "review/feature-x b failed",
      "review/feature-x c failed",
      "review/feature-x d succeeded",
    ]);
  });

  it("do not keep the Jobs after them waiting when their publish keeps failing", async () => {
    const slow = await threeSlowThenOne();
    const clock = bed.reconcile.clock as FixedClock;
    // Each refused after the publisher's four attempts, taking a slow run's share of the clock.
    const refusing: ReconcileBuildsDeps["publisher"] = {
      publish: async (entries) => {
        const sha = (entries[0]?.detail as Detail<"Build Finished"> | undefined)?.sha ?? "";
        if (!slow.includes(sha)) return bed.publisher.publish(entries);
        clock.advance(14_000);
        throw new PublishError(`${entries.length} of ${entries.length} events failed to publish`, [0]);
      },
    };

    for (let minute = 0; minute < 4 && heard().length === 0; minute++) {
      await run({ publisher: refusing });
      clock.advance(MINUTE_MS);
    }

    expect(heard()).toEqual(["review/feature-x d succeeded"]);
    // The others are still waiting, retried each run.
    for (const sha of slow) expect(ttlAfterFinished(jobOf(sha))).toBeUndefined();
  });
});

describe("a build Job of Kubler's that lost its project or commit annotations", () => {
  it("is let go by reconcile with a TTL, each waiter audited as not reported with the annotation it lacks", async () => {
    await built(FAILING_SHA);
    damage(FAILING_SHA, { annotation: BUILD_ANNOTATION.SHA });

    const report = await run();

    expect(report.skipped[0]?.reason).toMatch(/^not reconciled: .*has no annotation kubler\.dev\/sha/);
    expect(ttlAfterFinished(jobOf(FAILING_SHA))).toBeGreaterThan(0);
    expect(bed.audit.records).toContainEqual(
      expect.objectContaining({
        action: "image.build",
        outcome: "failure",
        correlationId: "c-1",
        reason: expect.stringMatching(/^not reported to review\/feature-x: .*no annotation kubler\.dev\/sha/),
      }),
    );
    expect(bed.audit.records.at(-1)).toMatchObject({ action: "image.reconcile", outcome: "failure" });
    // Let go once: the next run has nothing to do with it.
    expect((await run()).skipped).toEqual([]);
    // A new request for the commit builds it again rather than a 409.
    expect((await buildImage(bed.build, staging(FAILING_SHA))).kind).toBe("created");
  });

  it.each([
    [
      "failed",
      FAILING_SHA,
      { annotation: BUILD_ANNOTATION.PROJECT_PATH },
      "annotation kubler.dev/project-path",
    ],
    ["succeeded", SHA, { label: LABEL.PROJECT_ID }, "label kubler.dev/project-id"],
  ])(
    "whose build %s is replaced by a new request for its commit, its waiters told it failed and why, not a 409 or a wait for good",
    async (_, sha, drop, named) => {
      await built(sha);
      damage(sha, drop);
      const uid = jobOf(sha).metadata.uid;

      const outcome = await buildImage(bed.build, staging(sha));

      expect(outcome.kind).toBe("created");
      expect(jobOf(sha).metadata.uid).not.toBe(uid);
      expect(finished()).toEqual([
        expect.objectContaining({ environment: "review/feature-x", gitlab, sha, status: "failed" }),
      ]);
      expect(finished()[0]?.reason).toContain(named);
      await untilJobFinished(bed.k8s, BUILDS_NAMESPACE, buildJobName(gitlab, sha));
      await run();
      expect(finished().map((d) => d.environment)).toEqual(["review/feature-x", "staging"]);
    },
  );

  it("is never touched without Kubler's build label", async () => {
    await built(FAILING_SHA);
    damage(FAILING_SHA, { annotation: BUILD_ANNOTATION.SHA, label: LABEL.MANAGED_BY });
    const before = jobOf(FAILING_SHA);

    await run();
    await buildImage(bed.build, staging(FAILING_SHA)).catch(() => {});

    expect(jobOf(FAILING_SHA)).toMatchObject({
      metadata: { uid: before.metadata.uid, resourceVersion: before.metadata.resourceVersion },
    });
    // Its waiter is not told (nothing of its is read); the new request hears it cannot be built.
    expect(finished().map((d) => `${d.environment} ${d.status}`)).toEqual(["staging failed"]);
  });

  it.each([
    ["failed", FAILING_SHA],
    ["succeeded", SHA],
  ])(
    "whose build %s and was reported is neither replaced nor joined without Kubler's build label: the request fails saying so",
    async (_, sha) => {
      await built(sha);
      await run();
      damage(sha, { label: LABEL.MANAGED_BY });
      const before = jobOf(sha);
      const told = finished().length;

      const outcome = await buildImage(bed.build, staging(sha));

      // DESIGN's label contract: without managed-by kubler nothing is touched (deleted, or joined
      // by writing its annotations: reconcile, listing by the label, would never report it).
      expect(jobOf(sha)).toMatchObject({
        metadata: { uid: before.metadata.uid, resourceVersion: before.metadata.resourceVersion },
      });
      expect(outcome).toMatchObject({
        kind: "failed",
        reason: expect.stringMatching(/is not Kubler's.*delete it/),
      });
      expect(finished().slice(told)).toEqual([
        expect.objectContaining({ environment: "staging", sha, status: "failed" }),
      ]);
    },
  );
});
