/**
 * Reconcile against the embedded Kubernetes API over HTTP, through the real adapter: the backstop for
 * rollouts whose function died and schedules that were lost, asserted from the cluster and the bus.
 */
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { createKubernetesCluster } from "../../shared/adapters/kubernetes-cluster.js";
import {
  ANNOTATION,
  type EnvironmentState,
  environmentNamespace,
  LABEL,
  namespaceFor,
} from "../../shared/domain/environment.js";
import {
  type KubeObject,
  type MemoryKubernetes,
  startMemoryKubernetes,
} from "../../shared/local/memory-kubernetes/index.js";
import {
  EXPIRY_GRACE_MS,
  type ReconcileDeps,
  reconcileEnvironments,
} from "../../shared/services/reconcile-environments.js";
import { answerDroppingProxy, throughProxy } from "../fakes/answer-dropping-proxy.js";
import { FixedClock, RecordingAuditLog, RecordingPublisher, sequentialIds } from "../fakes/index.js";

const NOW = new Date("2026-11-21T10:00:00Z");
const MINUTE = 60_000;
const HOUR = 60 * MINUTE;
const PROJECT = "flightjs/flight-management";
const ENVIRONMENT = "review/feature/booking-validation";
const NAMESPACE = namespaceFor(PROJECT, ENVIRONMENT);
const SHA = "1111111111111111111111111111111111111111";
const SHA_2 = "2222222222222222222222222222222222222222";
const gitlab = { instance: "https://gitlab.example.com", projectId: 2, projectPath: PROJECT };

let k8s: MemoryKubernetes;
let deps: ReconcileDeps & { publisher: RecordingPublisher; audit: RecordingAuditLog; clock: FixedClock };

beforeEach(async () => {
  k8s = await startMemoryKubernetes({ namespaceFinalizeMs: 5 });
  deps = {
    cluster: createKubernetesCluster({ kubeconfig: k8s.kubeconfig, sleep: async () => {} }),
    publisher: new RecordingPublisher(),
    audit: new RecordingAuditLog(),
    clock: new FixedClock(NOW),
    newId: sequentialIds("reconcile"),
  };
});
afterEach(() => k8s.close());

function state(overrides: Partial<EnvironmentState> = {}): EnvironmentState {
  return {
    namespace: NAMESPACE,
    gitlab,
    environment: ENVIRONMENT,
    sha: SHA,
    ref: "feature/booking-validation",
    pipelineId: 100,
    mrIid: 16,
    ttl: "72h",
    expiresAt: new Date(NOW.getTime() + 72 * HOUR),
    deployedAt: null,
    requestedAt: new Date(NOW.getTime() - 10 * MINUTE),
    status: "deploying",
    rolloutDeadline: new Date(NOW.getTime() - MINUTE),
    correlationId: "corr-deploy",
    url: "https://review-feature-booking-validation.apps.example.com",
    lastGoodDigest: null,
    ...overrides,
  };
}

function seed(overrides: Partial<EnvironmentState> = {}): KubeObject {
  return k8s.store.put(environmentNamespace(state(overrides)));
}

function stored(name = NAMESPACE): KubeObject | undefined {
  return k8s.store.get("v1", "Namespace", undefined, name);
}

async function waitUntil(condition: () => boolean, what: string): Promise<void> {
  for (let i = 0; i < 400; i++) {
    if (condition()) return;
    await new Promise((resolve) => setTimeout(resolve, 5));
  }
  throw new Error(`timed out waiting until ${what}`);
}

function terminating(ns: KubeObject): KubeObject {
  return {
    ...ns,
    metadata: { ...ns.metadata, deletionTimestamp: new Date(NOW.getTime() - MINUTE).toISOString() },
    status: { phase: "Terminating" },
  };
}

describe("reconcileEnvironments", () => {
  it("fails a rollout past its deadline once: Deploy Finished failed, and the namespace says failed", async () => {
    seed();

    const report = await reconcileEnvironments(deps);

    expect(report).toEqual({ examined: 1, rolloutsFailed: [NAMESPACE], stopsRequested: [], skipped: [] });
    const reason = `rollout did not finish by its deadline ${new Date(NOW.getTime() - MINUTE).toISOString()}`;
    expect(deps.publisher.entries).toEqual([
      {
        detailType: "Deploy Finished",
        detail: {
          correlationId: "corr-deploy",
          gitlab,
          environment: ENVIRONMENT,
          sha: SHA,
          ref: "feature/booking-validation",
          pipelineId: 100,
          mrIid: 16,
          status: "failed",
          namespace: NAMESPACE,
          url: "https://review-feature-booking-validation.apps.example.com",
          reason,
        },
      },
    ]);
    const annotations = stored()?.metadata.annotations;
    expect(annotations).toMatchObject({
      [ANNOTATION.STATUS]: "failed",
      [ANNOTATION.ROLLOUT_DEADLINE]: "",
      [ANNOTATION.FAILURE_REPORTED]: "true",
      // The rest of the contract is kept as it was.
      [ANNOTATION.SHA]: SHA,
      [ANNOTATION.EXPIRES_AT]: new Date(NOW.getTime() + 72 * HOUR).toISOString(),
      [ANNOTATION.TTL]: "72h",
      [ANNOTATION.PIPELINE_ID]: "100",
      [ANNOTATION.CORRELATION_ID]: "corr-deploy",
    });
    expect(stored()?.metadata.labels).toMatchObject({
      [LABEL.MANAGED_BY]: "kubler",
      [LABEL.PROJECT_ID]: "2",
    });
    expect(deps.audit.records).toHaveLength(1);
    expect(deps.audit.last()).toMatchObject({
      action: "environment.rollout",
      outcome: "success",
      reason: `${reason}: Deploy Finished failed published`,
      correlationId: "corr-deploy",
    });

    const again = await reconcileEnvironments(deps);
    deps.clock.advance(HOUR);
    const later = await reconcileEnvironments(deps);

    expect(again.rolloutsFailed).toEqual([]);
    expect(later.rolloutsFailed).toEqual([]);
    expect(deps.publisher.entries).toHaveLength(1);
    expect(deps.audit.records).toHaveLength(1);
  });

  it.each([
    ["the stuck deploy finishing", { status: "succeeded" as const, rolloutDeadline: null, deployedAt: NOW }],
    [
      "a newer deploy",
      {
        sha: SHA_2,
        pipelineId: 101,
        correlationId: "corr-newer",
        rolloutDeadline: new Date(NOW.getTime() + 10 * MINUTE),
      },
    ],
  ])(
    "lets %s between the list and the mark win: nothing marked, nothing published, audited as skipped",
    async (_, wrote) => {
      seed();
      // Hold reconcile's mark long enough for the deploy to write the namespace first.
      const slow = k8s.faults.add({
        verb: "apply",
        resource: "namespaces",
        name: NAMESPACE,
        latencyMs: 300,
        times: 1,
      });
      const reconciling = reconcileEnvironments(deps);
      await waitUntil(() => slow.hits === 1, "reconcile's mark is on its way");
      const deployed = await deps.cluster.apply(environmentNamespace(state(wrote)));

      const report = await reconciling;

      expect(report.rolloutsFailed).toEqual([]);
      expect(report.skipped).toEqual([
        { namespace: NAMESPACE, reason: expect.stringContaining("not marked failed, nothing published") },
      ]);
      expect(deps.publisher.entries).toEqual([]);
      expect(deps.audit.records).toEqual([
        expect.objectContaining({
          action: "environment.rollout",
          outcome: "ignored",
          reason: expect.stringMatching(/^skipped: changed since it was listed/),
        }),
      ]);
      expect(stored()).toEqual(deployed);

      // Nothing left for a later run either: what the deploy wrote is all there is.
      await reconcileEnvironments(deps);
      expect(deps.publisher.entries).toEqual([]);
    },
  );

  it("loses no Deploy Finished when the publish fails: the next run publishes it once, then not again", async () => {
    seed();
    deps.publisher.failNext = 1;

    const first = await reconcileEnvironments(deps);

    expect(first.rolloutsFailed).toEqual([]);
    expect(first.skipped).toEqual([
      { namespace: NAMESPACE, reason: expect.stringContaining("not reconciled") },
    ]);
    expect(deps.publisher.entries).toEqual([]);
    // The run's one summary line says what it could not do (its report goes nowhere in AWS).
    expect(deps.audit.records).toEqual([
      expect.objectContaining({
        action: "environment.reconcile",
        outcome: "failure",
        reason: expect.stringMatching(/^examined 1, skipped 1 \(1 failed\): .*: not reconciled: /),
        subject: { examined: 1, skipped: first.skipped },
      }),
    ]);
    deps.audit.records.length = 0;
    // Marked failed, and marked as not reported: later runs publish it.
    expect(stored()?.metadata.annotations).toMatchObject({
      [ANNOTATION.STATUS]: "failed",
      [ANNOTATION.FAILURE_REPORTED]: "false",
    });

    const second = await reconcileEnvironments(deps);
    const third = await reconcileEnvironments(deps);

    expect(second).toEqual({ examined: 1, rolloutsFailed: [NAMESPACE], stopsRequested: [], skipped: [] });
    expect(third).toEqual({ examined: 1, rolloutsFailed: [], stopsRequested: [], skipped: [] });
    expect(deps.publisher.entries).toEqual([
      {
        detailType: "Deploy Finished",
        detail: expect.objectContaining({ status: "failed", sha: SHA, correlationId: "corr-deploy" }),
      },
    ]);
    expect(deps.audit.records).toEqual([
      expect.objectContaining({ action: "environment.rollout", outcome: "success" }),
    ]);
    expect(stored()?.metadata.annotations).toMatchObject({
      [ANNOTATION.STATUS]: "failed",
      [ANNOTATION.FAILURE_REPORTED]: "true",
    });
  });

  it("publishes again, rather than never, when saying it was reported fails", async () => {
    seed();
    // The mark goes through; the write after the publish fails.
    k8s.faults.add({ verb: "apply", resource: "namespaces", name: NAMESPACE, times: 1 });
    k8s.faults.add({ verb: "apply", resource: "namespaces", name: NAMESPACE, status: 500, times: 1 });
    deps.cluster = createKubernetesCluster({ kubeconfig: k8s.kubeconfig, maxAttempts: 1 });

    const first = await reconcileEnvironments(deps);
    const second = await reconcileEnvironments(deps);
    const third = await reconcileEnvironments(deps);

    expect(first.skipped).toEqual([{ namespace: NAMESPACE, reason: expect.stringContaining("HTTP 500") }]);
    expect(second.rolloutsFailed).toEqual([NAMESPACE]);
    expect(third.rolloutsFailed).toEqual([]);
    // Twice, never zero times: report-status does not write the same final state twice.
    expect(deps.publisher.entries.map((e) => e.detailType)).toEqual(["Deploy Finished", "Deploy Finished"]);
    expect(deps.audit.records.map((r) => `${r.action} ${r.outcome}`)).toEqual([
      "environment.rollout success",
      "environment.reconcile failure",
      "environment.rollout success",
    ]);
    expect(stored()?.metadata.annotations?.[ANNOTATION.FAILURE_REPORTED]).toBe("true");
  });

  it("publishes nothing when the mark fails; the next run fails the rollout", async () => {
    seed();
    k8s.faults.add({ verb: "apply", resource: "namespaces", name: NAMESPACE, status: 500, times: 1 });
    deps.cluster = createKubernetesCluster({ kubeconfig: k8s.kubeconfig, maxAttempts: 1 });

    const first = await reconcileEnvironments(deps);

    expect(first.skipped).toEqual([{ namespace: NAMESPACE, reason: expect.stringContaining("HTTP 500") }]);
    expect(deps.publisher.entries).toEqual([]);
    expect(stored()?.metadata.annotations?.[ANNOTATION.STATUS]).toBe("deploying");

    const second = await reconcileEnvironments(deps);

    expect(second.rolloutsFailed).toEqual([NAMESPACE]);
    expect(deps.publisher.entries).toHaveLength(1);
  });

  it("says the rollout is marked failed, not that nothing was, when its mark went through but the answer was lost; the next run publishes it once", async () => {
    seed();
    const { server } = throughProxy(k8s.kubeconfig);
    const proxy = await answerDroppingProxy(
      server,
      (method, path, body) =>
        method === "PATCH" &&
        path.startsWith(`/api/v1/namespaces/${NAMESPACE}?`) &&
        body.includes(`"${ANNOTATION.FAILURE_REPORTED}":"false"`),
    );
    const direct = deps.cluster;
    deps.cluster = createKubernetesCluster({
      kubeconfig: throughProxy(k8s.kubeconfig, proxy.url).kubeconfig,
      sleep: async () => {},
    });
    try {
      const first = await reconcileEnvironments(deps);

      expect(proxy.dropped()).toBe(1);
      expect(stored()?.metadata.annotations).toMatchObject({
        [ANNOTATION.STATUS]: "failed",
        [ANNOTATION.FAILURE_REPORTED]: "false",
      });
      expect(first.skipped).toEqual([
        {
          namespace: NAMESPACE,
          reason: expect.stringMatching(
            /^marked failed since it was listed, not reported yet .*: the next run publishes it/,
          ),
        },
      ]);
      expect(deps.audit.last()).toMatchObject({
        action: "environment.rollout",
        outcome: "ignored",
        reason: expect.not.stringContaining("not marked failed"),
      });
    } finally {
      (deps.cluster as ReturnType<typeof createKubernetesCluster>).close();
      deps.cluster = direct;
      await proxy.close();
    }
    const second = await reconcileEnvironments(deps);
    expect(second.rolloutsFailed).toEqual([NAMESPACE]);
    expect(deps.publisher.entries).toHaveLength(1);
  });

  it("does not report a failure a new deploy attempt has replaced", async () => {
    seed({ status: "failed", rolloutDeadline: null, failureReported: false });
    // A new attempt writes the namespace before any run publishes the old failure.
    const attempt = state({ sha: SHA_2, pipelineId: 101, rolloutDeadline: new Date(NOW.getTime() + MINUTE) });
    await deps.cluster.apply(environmentNamespace(attempt));
    expect(stored()?.metadata.annotations?.[ANNOTATION.FAILURE_REPORTED]).toBe("");

    const report = await reconcileEnvironments(deps);

    expect(report.rolloutsFailed).toEqual([]);
    expect(deps.publisher.entries).toEqual([]);
  });

  it("does not report a pending failure when a redeploy writes the namespace after the list", async () => {
    seed({ status: "failed", rolloutDeadline: null, failureReported: false });
    const cluster = deps.cluster;
    // A redeploy of the same commit, between this run's list and its publish.
    const redeploy = state({ correlationId: "corr-retry", status: "deploying" });
    deps.cluster = {
      ...cluster,
      apply: (object: KubeObject) => cluster.apply(object),
      list: async (...args: Parameters<typeof cluster.list>) => {
        const page = await cluster.list(...args);
        await cluster.apply(environmentNamespace(redeploy));
        return page;
      },
    } as typeof cluster;

    const report = await reconcileEnvironments(deps);

    expect(report.rolloutsFailed).toEqual([]);
    expect(deps.publisher.entries).toEqual([]);
    expect(stored()?.metadata.annotations).toMatchObject({
      [ANNOTATION.STATUS]: "deploying",
      [ANNOTATION.CORRELATION_ID]: "corr-retry",
    });
  });

  it("keeps a deploy that writes the namespace while the failure is being published", async () => {
    seed();
    const newer = state({ sha: SHA_2, pipelineId: 101, rolloutDeadline: new Date(NOW.getTime() + MINUTE) });
    const recorder = deps.publisher;
    deps.publisher = Object.assign(Object.create(recorder) as RecordingPublisher, {
      publish: async (entries: Parameters<RecordingPublisher["publish"]>[0]) => {
        await deps.cluster.apply(environmentNamespace(newer));
        return recorder.publish(entries);
      },
    });

    await reconcileEnvironments(deps);

    expect(recorder.entries).toHaveLength(1);
    // Saying the failure went out does not write the old commit over the new attempt.
    expect(stored()?.metadata.annotations).toMatchObject({
      [ANNOTATION.SHA]: SHA_2,
      [ANNOTATION.STATUS]: "deploying",
      [ANNOTATION.FAILURE_REPORTED]: "",
    });
  });

  it("keeps going past an environment it cannot update, and reports it", async () => {
    const first = namespaceFor(PROJECT, "review/a");
    const second = namespaceFor(PROJECT, "review/b");
    const expired = namespaceFor(PROJECT, "review/c");
    seed({ namespace: first, environment: "review/a" });
    seed({ namespace: second, environment: "review/b" });
    seed({
      namespace: expired,
      environment: "review/c",
      status: "succeeded",
      expiresAt: new Date(NOW.getTime() - EXPIRY_GRACE_MS),
    });
    // Its mark fails, so nothing is published for it.
    k8s.faults.add({ verb: "apply", resource: "namespaces", name: first, status: 500 });
    deps.cluster = createKubernetesCluster({
      kubeconfig: k8s.kubeconfig,
      maxAttempts: 2,
      sleep: async () => {},
    });

    const report = await reconcileEnvironments(deps, 1);

    expect(report.rolloutsFailed).toEqual([second]);
    expect(report.stopsRequested).toEqual([expired]);
    expect(report.skipped).toEqual([{ namespace: first, reason: expect.stringContaining("HTTP 500") }]);
    expect(stored(first)?.metadata.annotations?.[ANNOTATION.STATUS]).toBe("deploying");
    expect(deps.publisher.entries.map((e) => e.detailType).sort()).toEqual([
      "Deploy Finished",
      "Environment Stop Requested",
    ]);
  });

  it("leaves a rollout before its deadline alone", async () => {
    const before = seed({ rolloutDeadline: new Date(NOW.getTime() + MINUTE) });

    const report = await reconcileEnvironments(deps);

    expect(report).toEqual({ examined: 1, rolloutsFailed: [], stopsRequested: [], skipped: [] });
    expect(deps.publisher.entries).toEqual([]);
    expect(stored()).toEqual(before);
    expect(k8s.stats.byVerb.apply).toBeUndefined();
  });

  it("leaves finished deploys alone whatever their old deadline said", async () => {
    const before = seed({ status: "succeeded", rolloutDeadline: new Date(NOW.getTime() - HOUR) });
    await reconcileEnvironments(deps);
    expect(deps.publisher.entries).toEqual([]);
    expect(stored()).toEqual(before);
  });

  it("leaves an environment expired within the grace period to its schedule, stuck rollout or not", async () => {
    const names = ["a", "b"].map((e) => namespaceFor(PROJECT, `review/${e}`));
    const seeded = [
      seed({ namespace: names[0] as string, status: "succeeded", rolloutDeadline: null, expiresAt: NOW }),
      seed({
        namespace: names[1] as string,
        expiresAt: new Date(NOW.getTime() - EXPIRY_GRACE_MS + 1),
      }),
    ];

    const report = await reconcileEnvironments(deps);

    expect(report).toEqual({ examined: 2, rolloutsFailed: [], stopsRequested: [], skipped: [] });
    expect(deps.publisher.entries).toEqual([]);
    for (const ns of seeded) expect(stored(ns.metadata.name)).toEqual(ns);
  });

  it("requests the stop of an expired environment whose schedule was lost", async () => {
    const before = seed({
      status: "succeeded",
      rolloutDeadline: null,
      expiresAt: new Date(NOW.getTime() - EXPIRY_GRACE_MS - MINUTE),
    });

    const report = await reconcileEnvironments(deps);

    expect(report).toEqual({ examined: 1, rolloutsFailed: [], stopsRequested: [NAMESPACE], skipped: [] });
    expect(deps.publisher.entries).toEqual([
      {
        detailType: "Environment Stop Requested",
        detail: { correlationId: "corr-deploy", gitlab, environment: ENVIRONMENT, reason: "expired" },
      },
    ]);
    expect(deps.audit.last()).toMatchObject({
      action: "environment.expire",
      outcome: "success",
      correlationId: "corr-deploy",
    });
    // Reconcile only asks; the stop (cleanup) deletes.
    expect(stored()).toEqual(before);
    expect(k8s.stats.byVerb.delete).toBeUndefined();
  });

  it("asks nothing of environments that are terminating, never expire or have not expired yet", async () => {
    const expired = {
      status: "succeeded" as const,
      rolloutDeadline: null,
      expiresAt: new Date(NOW.getTime() - HOUR),
    };
    const names = ["a", "b", "c", "d"].map((e) => namespaceFor(PROJECT, `review/${e}`));
    const seeded = [
      k8s.store.put(terminating(environmentNamespace(state({ ...expired, namespace: names[0] as string })))),
      // A rollout stuck past its deadline while the namespace is being deleted: nothing to report.
      k8s.store.put(terminating(environmentNamespace(state({ namespace: names[1] as string })))),
      seed({ namespace: names[2] as string, status: "succeeded", ttl: "never", expiresAt: null }),
      seed({ namespace: names[3] as string, status: "succeeded", expiresAt: new Date(NOW.getTime() + 1) }),
    ];

    const report = await reconcileEnvironments(deps);

    expect(report).toEqual({ examined: 4, rolloutsFailed: [], stopsRequested: [], skipped: [] });
    expect(deps.publisher.entries).toEqual([]);
    expect(deps.audit.records).toEqual([]);
    for (const ns of seeded) expect(stored(ns.metadata.name)).toEqual(ns);
  });

  it("never acts on or touches an unmanaged namespace, whatever its annotations say", async () => {
    const lookalike = (name: string, managedBy?: string): KubeObject => {
      const ns = environmentNamespace(state({ namespace: name, expiresAt: new Date(NOW.getTime() - HOUR) }));
      const labels = { ...ns.metadata.labels };
      if (managedBy === undefined) delete labels[LABEL.MANAGED_BY];
      else labels[LABEL.MANAGED_BY] = managedBy;
      return k8s.store.put({ ...ns, metadata: { ...ns.metadata, labels } });
    };
    const seeded = [
      lookalike("team-payments"),
      lookalike("helm-release", "helm"),
      lookalike("shouty", "Kubler"),
    ];

    const report = await reconcileEnvironments(deps);

    expect(report).toEqual({ examined: 0, rolloutsFailed: [], stopsRequested: [], skipped: [] });
    expect(deps.publisher.entries).toEqual([]);
    expect(deps.audit.records).toEqual([]);
    for (const ns of seeded) expect(stored(ns.metadata.name)).toEqual(ns);
    expect(k8s.stats.byVerb.apply).toBeUndefined();
  });

  it("skips and reports a managed namespace whose contract cannot be read, touching it not", async () => {
    const ns = environmentNamespace(state());
    ns.metadata.annotations = { ...ns.metadata.annotations, [ANNOTATION.ROLLOUT_DEADLINE]: "soon" };
    const before = k8s.store.put(ns);

    const report = await reconcileEnvironments(deps);

    expect(report.skipped).toEqual([
      { namespace: NAMESPACE, reason: expect.stringContaining(`annotation ${ANNOTATION.ROLLOUT_DEADLINE}`) },
    ]);
    expect(deps.audit.records).toEqual([
      expect.objectContaining({
        action: "environment.reconcile",
        outcome: "ignored",
        reason: expect.stringContaining(`skipped 1 (0 failed): ${NAMESPACE}: `),
      }),
    ]);
    expect(deps.publisher.entries).toEqual([]);
    expect(stored()).toEqual(before);
  });

  it("goes through every page, handling each environment once", async () => {
    const stuck: string[] = [];
    const expired: string[] = [];
    for (let i = 0; i < 25; i++) {
      const namespace = namespaceFor(PROJECT, `review/mr-${i}`);
      const environment = `review/mr-${i}`;
      if (i % 5 === 0) {
        seed({ namespace, environment });
        stuck.push(namespace);
      } else if (i % 5 === 1) {
        seed({ namespace, environment, status: "succeeded", expiresAt: new Date(NOW.getTime() - HOUR) });
        expired.push(namespace);
      } else {
        seed({ namespace, environment, status: "succeeded", rolloutDeadline: null });
      }
    }
    k8s.stats.reset();

    const report = await reconcileEnvironments(deps, 10);

    expect(k8s.stats.byVerb.list).toBe(3);
    expect(report.examined).toBe(25);
    expect([...report.rolloutsFailed].sort()).toEqual([...stuck].sort());
    expect([...report.stopsRequested].sort()).toEqual([...expired].sort());
    expect(deps.publisher.entries).toHaveLength(stuck.length + expired.length);
    for (const name of stuck) expect(stored(name)?.metadata.annotations?.[ANNOTATION.STATUS]).toBe("failed");
  });

  it("lists again from the first page when a continue token expires, handling each environment once", async () => {
    const expired: string[] = [];
    for (let i = 0; i < 25; i++) {
      const namespace = namespaceFor(PROJECT, `review/mr-${i}`);
      seed({
        namespace,
        environment: `review/mr-${i}`,
        status: "succeeded",
        expiresAt: new Date(NOW.getTime() - HOUR),
      });
      expired.push(namespace);
    }
    const gone = k8s.faults.add({ verb: "list", continued: true, status: 410, message: TOO_OLD, times: 1 });
    k8s.stats.reset();

    const report = await reconcileEnvironments(deps, 10);

    expect(gone.hits).toBe(1);
    // Page 1, the expired page 2, then pages 1 to 3 again.
    expect(k8s.stats.byVerb.list).toBe(5);
    expect(report.examined).toBe(25);
    expect([...report.stopsRequested].sort()).toEqual([...expired].sort());
    expect(deps.publisher.entries).toHaveLength(25);
  });

  it("fails the run when the continue token keeps expiring, after a bounded number of restarts", async () => {
    for (let i = 0; i < 3; i++) seed({ namespace: namespaceFor(PROJECT, `review/mr-${i}`) });
    const gone = k8s.faults.add({ verb: "list", continued: true, status: 410, message: TOO_OLD });

    await expect(reconcileEnvironments(deps, 1)).rejects.toThrow(/too old/);
    expect(gone.hits).toBe(4);
  });
});

const TOO_OLD =
  "The provided continue parameter is too old to display a consistent list result. You can start a new list without the continue parameter.";
