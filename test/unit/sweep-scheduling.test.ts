/**
 * How the sweep spends its concurrency: the limiter's order, and list pages going ahead
 * of queued deletes (only a page's `continue` unlocks the next, so a page kept waiting serializes
 * the sweep). Over a cluster whose calls finish when the test says so.
 */
import { describe, expect, it } from "vitest";
import { environmentNamespace, namespaceFor } from "../../shared/domain/environment.js";
import type { KubeObject } from "../../shared/domain/kube-object.js";
import type { EnvironmentCluster, FinalizerRemover, ListPage } from "../../shared/ports.js";
import { createLimiter, sweepExpiredEnvironments } from "../../shared/services/cleanup-environments.js";
import { FixedClock, RecordingAuditLog, RecordingPublisher, RecordingScheduler } from "../fakes/index.js";

const NOW = new Date("2026-11-21T10:00:00Z");
const tick = () => new Promise((resolve) => setImmediate(resolve));

/** A task per call that runs until `finish()`; `started` lists the tasks in the order they began. */
function gate() {
  const started: string[] = [];
  const pending: (() => void)[] = [];
  return {
    started,
    task: (name: string) => () =>
      new Promise<string>((resolve) => {
        started.push(name);
        pending.push(() => resolve(name));
      }),
    finishOldest: () => pending.shift()?.(),
  };
}

describe("createLimiter", () => {
  it("runs at most `max` at once, the rest in the order they came", async () => {
    const limit = createLimiter(2);
    const { started, task, finishOldest } = gate();
    const all = ["a", "b", "c", "d"].map((name) => limit(task(name)));
    await tick();
    expect(started).toEqual(["a", "b"]);
    finishOldest();
    await tick();
    expect(started).toEqual(["a", "b", "c"]);
    for (let i = 0; i < 3; i++) {
      finishOldest();
      await tick();
    }
    expect(started).toEqual(["a", "b", "c", "d"]);
    await expect(Promise.all(all)).resolves.toEqual(["a", "b", "c", "d"]);
  });

  it("starts a task given `first` ahead of every waiting one", async () => {
    const limit = createLimiter(1);
    const { started, task, finishOldest } = gate();
    const all = [limit(task("a")), limit(task("b")), limit(task("c")), limit(task("page"), { first: true })];
    await tick();
    for (let i = 0; i < 4; i++) {
      finishOldest();
      await tick();
    }
    await Promise.all(all);
    expect(started).toEqual(["a", "page", "b", "c"]);
  });
});

describe("sweepExpiredEnvironments scheduling", () => {
  it("asks for the next page before the deletes queued from this one", async () => {
    const namespaces = Array.from({ length: 6 }, (_, i) => expiredNamespace(i));
    const calls: string[] = [];
    const cluster: EnvironmentCluster & FinalizerRemover = {
      async list(_apiVersion, _kind, options = {}): Promise<ListPage> {
        const from = Number(options.continue ?? 0);
        calls.push(`list ${from}`);
        await tick();
        const to = from + (options.limit ?? namespaces.length);
        return { items: namespaces.slice(from, to), continue: to < namespaces.length ? String(to) : null };
      },
      async delete(ref) {
        calls.push(`delete ${ref.name}`);
        await tick();
        return "deleted";
      },
      get: () => Promise.reject(new Error("not used")),
      apply: () => Promise.reject(new Error("not used")),
      createToken: () => Promise.reject(new Error("not used")),
      removeFinalizers: () => Promise.reject(new Error("not used")),
    };
    const report = await sweepExpiredEnvironments(
      {
        cluster,
        scheduler: new RecordingScheduler(),
        publisher: new RecordingPublisher(),
        audit: new RecordingAuditLog(),
        clock: new FixedClock(NOW),
      },
      { concurrency: 1, pageSize: 3, newId: () => "sweep-1" },
    );
    expect(report.deleted).toHaveLength(6);
    const name = (i: number) => `delete ${namespaces[i]?.metadata.name}`;
    expect(calls).toEqual(["list 0", "list 3", name(0), name(1), name(2), name(3), name(4), name(5)]);
  });
});

function expiredNamespace(i: number): KubeObject {
  const projectPath = "group/app";
  const environment = `review/mr-${i}`;
  return {
    ...environmentNamespace({
      namespace: namespaceFor(projectPath, environment),
      gitlab: { instance: "https://gitlab.example.com", projectId: 15, projectPath },
      environment,
      sha: "1".repeat(40),
      ref: `mr-${i}`,
      pipelineId: 100 + i,
      mrIid: i,
      ttl: "1h",
      expiresAt: new Date(NOW.getTime() - 60_000),
      deployedAt: new Date(NOW.getTime() - 3_660_000),
      requestedAt: new Date(NOW.getTime() - 3_660_000),
      status: "succeeded",
      rolloutDeadline: null,
      correlationId: `corr-${i}`,
      url: null,
      lastGoodDigest: null,
    }),
  };
}
