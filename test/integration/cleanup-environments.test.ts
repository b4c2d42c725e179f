/**
 * Cleanup (stop and sweep) against the embedded Kubernetes API over HTTP, through the real adapter:
 * what was deleted, and above all what was not, is asserted from the cluster itself.
 */
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import fc from "fast-check";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { createCleanupConsumer } from "../../functions/cleanup-environments/consumer.js";
import {
  type CreateKubernetesClusterOptions,
  createKubernetesCluster,
} from "../../shared/adapters/kubernetes-cluster.js";
import type { Detail } from "../../shared/domain/catalog.js";
import {
  ANNOTATION,
  type EnvironmentState,
  environmentNamespace,
  LABEL,
  namespaceFor,
} from "../../shared/domain/environment.js";
import { DirectoryManifestSource } from "../../shared/local/directory-manifest-source.js";
import { MemoryDedupeStore } from "../../shared/local/memory-dedupe-store.js";
import { MemoryEnvironmentStops } from "../../shared/local/memory-environment-stops.js";
import {
  type KubeObject,
  type MemoryKubernetes,
  startMemoryKubernetes,
} from "../../shared/local/memory-kubernetes/index.js";
import {
  type SweepOptions,
  stopEnvironment,
  sweepExpiredEnvironments,
} from "../../shared/services/cleanup-environments.js";
import { planStepsFor } from "../../shared/services/plan-steps.js";
import {
  CLEANUP_NOW,
  type CleanupTestDeps,
  REVIEW,
  reportedStatuses,
  reviewState,
  startCleanupCluster,
  stopEnvelope,
  stopRequested,
  waitUntil,
} from "../fakes/cleanup-deps.js";
import { FixedClock, RecordingAuditLog, RecordingPublisher, sequentialIds } from "../fakes/index.js";

const NOW = CLEANUP_NOW;
const MINUTE = 60_000;
const HOUR = 60 * MINUTE;
const { project: PROJECT, environment: ENVIRONMENT, namespace: NAMESPACE, gitlab } = REVIEW;
const INSTANCE = gitlab.instance;
const STOP_REASONS = ["merged", "closed", "branch_deleted", "stopped", "expired"] as const;

let k8s: MemoryKubernetes;
let deps: CleanupTestDeps;

beforeEach(async () => {
  ({ k8s, deps } = await startCleanupCluster());
});
afterEach(() => k8s.close());

/** The real adapter on this test's server; backoff sleeps are not waited. */
function connect(options: CreateKubernetesClusterOptions = {}) {
  return createKubernetesCluster({ kubeconfig: k8s.kubeconfig, sleep: async () => {}, ...options });
}

/** Stores a managed environment's namespace, with the contract, exactly as Kubler writes it. */
function seed(overrides: Partial<EnvironmentState> = {}): KubeObject {
  return k8s.store.put(environmentNamespace(reviewState(overrides)));
}

function seedPlain(name: string, labels: Record<string, string>, annotations: Record<string, string> = {}) {
  return k8s.store.put({ apiVersion: "v1", kind: "Namespace", metadata: { name, labels, annotations } });
}

function stored(name: string): KubeObject | undefined {
  return k8s.store.get("v1", "Namespace", undefined, name);
}

function namespaces(): Map<string, KubeObject> {
  return new Map(k8s.store.list("v1", "Namespace").map((ns) => [ns.metadata.name, ns]));
}

/**
 * The stop plan-steps publishes for a merge request closed at `closedAt` (the close's envelope
 * time), handled only now: the real use case over a project directory and in-memory stores.
 */
async function planLateClose(closedAt: Date): Promise<Detail<"Environment Stop Requested">> {
  const projects = mkdtempSync(join(tmpdir(), "kubler-cleanup-plan-"));
  try {
    mkdirSync(join(projects, PROJECT), { recursive: true });
    writeFileSync(
      join(projects, PROJECT, "kubler.yaml"),
      `version: 1
image: { name: registry.example.com/${PROJECT} }
deploy: { manifests: deploy/ }
environments:
  - { name: "review/{branch}", on: merge_request }
`,
    );
    const clock = new FixedClock(NOW);
    const publisher = new RecordingPublisher();
    const outcome = await planStepsFor(
      {
        manifests: new DirectoryManifestSource(projects),
        publisher,
        dedupe: new MemoryDedupeStore(clock),
        stops: new MemoryEnvironmentStops(clock),
        audit: new RecordingAuditLog(),
        clock,
      },
      {
        detailType: "Merge Request",
        detail: {
          correlationId: "corr-close",
          gitlab,
          action: "close",
          iid: 16,
          state: "closed",
          sourceBranch: "feature/booking-validation",
          targetBranch: "main",
          sourceProjectId: gitlab.projectId,
          lastCommitSha: "1111111111111111111111111111111111111111",
          oldrev: null,
          url: null,
          user: "agarcia",
        },
      },
      closedAt,
    );
    const [entry] = publisher.entries;
    if (outcome.kind !== "published" || entry?.detailType !== "Environment Stop Requested") {
      throw new Error(`plan-steps published no stop: ${JSON.stringify(outcome)}`);
    }
    return entry.detail;
  } finally {
    rmSync(projects, { recursive: true, force: true });
  }
}

describe("stopEnvironment", () => {
  it("deletes the project's namespace, cancels its schedule, publishes Environment Deleted once and audits it", async () => {
    seed();
    k8s.store.put({
      apiVersion: "v1",
      kind: "ConfigMap",
      metadata: { name: "flight-management", namespace: NAMESPACE },
      data: { a: "b" },
    });

    const outcome = await stopEnvironment(deps, stopRequested());

    expect(outcome).toEqual({ kind: "deleted", namespace: NAMESPACE });
    await waitUntil(() => stored(NAMESPACE) === undefined, `${NAMESPACE} is gone`);
    expect(k8s.store.list("v1", "ConfigMap", NAMESPACE)).toEqual([]);
    expect(deps.publisher.entries).toEqual([
      {
        detailType: "Environment Deleted",
        detail: {
          correlationId: "corr-stop",
          gitlab,
          environment: ENVIRONMENT,
          namespace: NAMESPACE,
          // What ran there, for the commit's final status in GitLab, in the pipeline that deployed it.
          sha: "1111111111111111111111111111111111111111",
          ref: "feature/booking-validation",
          pipelineId: 100,
        },
      },
    ]);
    expect(deps.scheduler.calls).toEqual([`cancel ${NAMESPACE}`]);
    expect(deps.audit.records).toHaveLength(1);
    expect(deps.audit.last()).toMatchObject({
      action: "environment.stop",
      outcome: "success",
      reason: "deleted (merged)",
      correlationId: "corr-stop",
      subject: { environment: ENVIRONMENT, namespace: NAMESPACE, stopReason: "merged" },
    });
  });

  it("names who asked for the stop in its audit line and its Environment Deleted: the GitLab user, or the operator", async () => {
    seed();
    await stopEnvironment(deps, stopRequested({ user: "agarcia" }));
    expect(deps.audit.last()).toMatchObject({
      action: "environment.stop",
      outcome: "success",
      actor: { function: "cleanup-environments", gitlabUser: "agarcia" },
    });
    expect(deps.audit.last()?.actor).not.toHaveProperty("operator");
    expect(deps.publisher.entries.at(-1)?.detail).toMatchObject({ user: "agarcia" });

    const operator = "aws:arn:aws:sts::123456789012:assumed-role/Admin/alice";
    await stopEnvironment(deps, stopRequested({ reason: "stopped", requestedBy: operator }));
    expect(deps.audit.last()).toMatchObject({
      action: "environment.stop",
      outcome: "success",
      actor: { function: "cleanup-environments", operator },
    });
    expect(deps.audit.last()?.actor).not.toHaveProperty("gitlabUser");
    expect(deps.publisher.entries.at(-1)?.detail).toMatchObject({ requestedBy: operator });

    // An expiry stop: nobody asked; the reason says why.
    await stopEnvironment(deps, stopRequested({ reason: "expired" }));
    expect(deps.audit.last()?.actor).toEqual({ function: "cleanup-environments" });
  });

  it("publishes a null pipeline in Environment Deleted when the namespace records none, the stop's and the sweep's", async () => {
    seed({ pipelineId: null });
    await stopEnvironment(deps, stopRequested());
    const expired = namespaceFor(PROJECT, "review/expired");
    seed({
      namespace: expired,
      environment: "review/expired",
      pipelineId: null,
      expiresAt: new Date(NOW.getTime() - HOUR),
    });
    await sweepExpiredEnvironments(deps, { newId: sequentialIds("sweep") });
    expect(deps.publisher.entries.map((e) => e.detail)).toEqual([
      expect.objectContaining({
        namespace: NAMESPACE,
        sha: "1111111111111111111111111111111111111111",
        pipelineId: null,
      }),
      expect.objectContaining({
        namespace: expired,
        sha: "1111111111111111111111111111111111111111",
        pipelineId: null,
      }),
    ]);
  });

  it("succeeds when the namespace is already gone, and still publishes Environment Deleted", async () => {
    const outcome = await stopEnvironment(deps, stopRequested({ reason: "closed" }));

    expect(outcome).toEqual({ kind: "already_gone", namespace: NAMESPACE });
    expect(deps.publisher.entries).toEqual([
      {
        detailType: "Environment Deleted",
        detail: { correlationId: "corr-stop", gitlab, environment: ENVIRONMENT, namespace: NAMESPACE },
      },
    ]);
    expect(deps.scheduler.calls).toEqual([`cancel ${NAMESPACE}`]);
    expect(deps.audit.last()).toMatchObject({
      action: "environment.stop",
      outcome: "success",
      reason: "already gone (closed)",
    });
  });

  it("succeeds again when the stop is redelivered while the namespace is still terminating", async () => {
    await k8s.close();
    k8s = await startMemoryKubernetes({ namespaceFinalizeMs: 2_000 });
    deps.cluster = connect();
    seed();
    await stopEnvironment(deps, stopRequested());
    expect(stored(NAMESPACE)?.metadata.deletionTimestamp).toEqual(expect.any(String));

    const again = await stopEnvironment(deps, stopRequested({ reason: "stopped" }));

    // Not deleted again, but the commit is told again: the earlier stop may not have told it.
    expect(again).toEqual({ kind: "already_gone", namespace: NAMESPACE });
    expect(deps.publisher.entries.map((e) => e.detailType)).toEqual([
      "Environment Deleted",
      "Environment Deleted",
    ]);
    expect(deps.publisher.entries[1]?.detail).toEqual({
      correlationId: "corr-stop",
      gitlab,
      environment: ENVIRONMENT,
      namespace: NAMESPACE,
      sha: "1111111111111111111111111111111111111111",
      ref: "feature/booking-validation",
      pipelineId: 100,
    });
    expect(deps.audit.records.map((r) => [r.outcome, r.reason])).toEqual([
      ["success", "deleted (merged)"],
      ["success", "already being deleted by an earlier stop (stopped)"],
    ]);
  });

  it("still gives the commit its final status when the stop that deleted the namespace failed to publish", async () => {
    await k8s.close();
    k8s = await startMemoryKubernetes({ namespaceFinalizeMs: 2_000 });
    deps.cluster = connect();
    seed();
    deps.publisher.failNext = 1;
    await expect(stopEnvironment(deps, stopRequested())).rejects.toThrow(/failed to publish/);
    expect(stored(NAMESPACE)?.metadata.deletionTimestamp).toEqual(expect.any(String));
    expect(deps.publisher.entries).toEqual([]);

    // The bus retries, finds the namespace terminating; then a redelivery of the same stop.
    await stopEnvironment(deps, stopRequested());
    await stopEnvironment(deps, stopRequested());

    expect(deps.publisher.entries.map((e) => e.detail)).toEqual([
      expect.objectContaining({ sha: "1111111111111111111111111111111111111111" }),
      expect.objectContaining({ sha: "1111111111111111111111111111111111111111" }),
    ]);
    const { outcomes, written } = await reportedStatuses(deps);
    expect(outcomes).toEqual([
      { kind: "set", state: "canceled" },
      { kind: "unchanged", state: "canceled" },
    ]);
    expect(written).toEqual([
      expect.objectContaining({ state: "canceled", sha: "1111111111111111111111111111111111111111" }),
    ]);
  });

  it("tells the commit it was stopped even when cancelling the schedule fails, before the bus's retry finds the namespace gone", async () => {
    seed();
    const cancel = deps.scheduler.cancel.bind(deps.scheduler);
    deps.scheduler.cancel = async () => {
      throw new Error(
        "could not delete schedule kubler/x after 5 attempt(s): AccessDeniedException (HTTP 403)",
      );
    };
    await expect(stopEnvironment(deps, stopRequested())).rejects.toThrow(/AccessDeniedException/);
    // The bus retries a minute or more later: the namespace has long finished terminating.
    await waitUntil(() => !stored(NAMESPACE), "the namespace is gone");
    deps.scheduler.cancel = cancel;
    await stopEnvironment(deps, stopRequested());

    expect(deps.publisher.entries[0]?.detail).toMatchObject({
      namespace: NAMESPACE,
      sha: "1111111111111111111111111111111111111111",
      pipelineId: 100,
    });
    expect(deps.scheduler.calls).toEqual([`cancel ${NAMESPACE}`]);
  });

  it("refuses a namespace of that name that Kubler does not manage, touching nothing", async () => {
    // Everything of the contract but the label that says Kubler manages it.
    const contract = environmentNamespace(reviewState({ expiresAt: new Date(NOW.getTime() - HOUR) }));
    const { [LABEL.MANAGED_BY]: _, ...labels } = contract.metadata.labels ?? {};
    const before = seedPlain(NAMESPACE, { ...labels, team: "payments" }, contract.metadata.annotations);

    const outcome = await stopEnvironment(deps, stopRequested());

    expect(outcome).toMatchObject({
      kind: "refused",
      namespace: NAMESPACE,
      reason: expect.stringContaining("app.kubernetes.io/managed-by=kubler"),
    });
    expect(stored(NAMESPACE)).toEqual(before);
    expect(k8s.stats.byVerb.delete).toBeUndefined();
    expect(deps.publisher.entries).toEqual([]);
    expect(deps.scheduler.calls).toEqual([]);
    expect(deps.audit.last()).toMatchObject({ action: "environment.stop", outcome: "deny" });
  });

  it("refuses a managed namespace of that name that belongs to another project, touching nothing", async () => {
    const before = seed({ gitlab: { ...gitlab, projectId: 99 } });

    const outcome = await stopEnvironment(deps, stopRequested());

    expect(outcome).toMatchObject({
      kind: "refused",
      reason: expect.stringContaining("belongs to project 99, not 2"),
    });
    expect(stored(NAMESPACE)).toEqual(before);
    expect(k8s.stats.byVerb.delete).toBeUndefined();
    expect(deps.publisher.entries).toEqual([]);
    expect(deps.scheduler.calls).toEqual([]);
    expect(deps.audit.last()).toMatchObject({ action: "environment.stop", outcome: "deny" });
  });

  it("refuses a namespace of that name another environment of the project holds (a hash collision), touching nothing", async () => {
    // Once a long project path fills a namespace name's readable part, two environments' names
    // differ by an 8-hex-digit hash alone: a branch found to collide must not stop production.
    const before = seed({
      environment: "production",
      ref: "v1.0.0",
      mrIid: null,
      ttl: "never",
      expiresAt: null,
    });

    const outcome = await stopEnvironment(deps, stopRequested());

    expect(outcome).toMatchObject({
      kind: "refused",
      reason: expect.stringContaining(`belongs to environment production, not ${ENVIRONMENT}`),
    });
    expect(stored(NAMESPACE)).toEqual(before);
    expect(k8s.stats.byVerb.delete).toBeUndefined();
    expect(deps.publisher.entries).toEqual([]);
    expect(deps.scheduler.calls).toEqual([]);
    expect(deps.audit.last()).toMatchObject({ action: "environment.stop", outcome: "deny" });
  });

  it("refuses a managed namespace whose contract cannot be read, touching nothing", async () => {
    const ns = environmentNamespace(reviewState());
    ns.metadata.annotations = { ...ns.metadata.annotations, [ANNOTATION.EXPIRES_AT]: "next tuesday" };
    const before = k8s.store.put(ns);

    const outcome = await stopEnvironment(deps, stopRequested());

    expect(outcome).toMatchObject({
      kind: "refused",
      reason: expect.stringContaining("kubler.dev/expires-at"),
    });
    expect(stored(NAMESPACE)).toEqual(before);
  });

  it("ignores an expiry stop for an environment a redeploy extended, touching nothing", async () => {
    const before = seed({ expiresAt: new Date(NOW.getTime() + MINUTE) });

    const outcome = await stopEnvironment(deps, stopRequested({ reason: "expired" }));

    expect(outcome).toMatchObject({
      kind: "ignored",
      reason: `not expired: expires at ${new Date(NOW.getTime() + MINUTE).toISOString()}`,
    });
    expect(stored(NAMESPACE)).toEqual(before);
    expect(k8s.stats.byVerb.delete).toBeUndefined();
    expect(deps.publisher.entries).toEqual([]);
    expect(deps.scheduler.calls).toEqual([]);
    expect(deps.audit.last()).toMatchObject({ action: "environment.stop", outcome: "ignored" });
  });

  it("ignores an expiry stop for an environment that never expires", async () => {
    const before = seed({ ttl: "never", expiresAt: null });
    const outcome = await stopEnvironment(deps, stopRequested({ reason: "expired" }));
    expect(outcome).toMatchObject({ kind: "ignored", reason: "not expired: expires at never" });
    expect(stored(NAMESPACE)).toEqual(before);
  });

  it("deletes on an expiry stop once the environment has expired", async () => {
    seed({ expiresAt: NOW });
    const outcome = await stopEnvironment(deps, stopRequested({ reason: "expired" }));
    expect(outcome).toEqual({ kind: "deleted", namespace: NAMESPACE });
    await waitUntil(() => stored(NAMESPACE) === undefined, `${NAMESPACE} is gone`);
  });

  it("ignores a stop delivered after a deploy GitLab asked for after it (late redelivery, DLQ redrive), touching nothing", async () => {
    // Closed at 09:00 (stop published then), reopened and pushed at 09:30: plan-steps and deploy let
    // the push through, since it came after the stop. The stop, retried or redriven, arrives now.
    const before = seed({ factAt: new Date("2026-11-21T09:30:00Z") });
    const consume = createCleanupConsumer(deps);

    const outcome = await consume(stopEnvelope(stopRequested({ reason: "closed" }), "2026-11-21T09:00:00Z"));

    expect(outcome).toMatchObject({
      kind: "ignored",
      namespace: NAMESPACE,
      reason: expect.stringMatching(/^stale: /),
    });
    expect(stored(NAMESPACE)).toEqual(before);
    expect(k8s.stats.byVerb.delete).toBeUndefined();
    expect(deps.publisher.entries).toEqual([]);
    expect(deps.scheduler.calls).toEqual([]);
    expect(deps.audit.last()).toMatchObject({ action: "environment.stop", outcome: "ignored" });

    // A stop published after the deploy's fact (or in its very second) still deletes.
    expect(await consume(stopEnvelope(stopRequested({ reason: "closed" }), "2026-11-21T09:30:00Z"))).toEqual({
      kind: "deleted",
      namespace: NAMESPACE,
    });
  });

  it("ignores a close's stop that plan-steps published late, after a reopen and a newer deploy: it is ordered by GitLab's close, not its bus time", async () => {
    // Closed at 09:00, reopened and pushed at 09:30 and deployed. The close reaches plan-steps only
    // now (a Lambda retry, a throttled queue, a redriven dead letter), so its stop's bus time is now.
    const before = seed({ factAt: new Date("2026-11-21T09:30:00Z") });
    const planned = await planLateClose(new Date("2026-11-21T09:00:00Z"));
    const consume = createCleanupConsumer(deps);

    const outcome = await consume(stopEnvelope(planned, NOW.toISOString()));

    expect(outcome).toMatchObject({
      kind: "ignored",
      namespace: NAMESPACE,
      reason: expect.stringMatching(/^stale: .*2026-11-21T09:00:00\.000Z.*2026-11-21T09:30:00\.000Z/),
    });
    expect(stored(NAMESPACE)).toEqual(before);
    expect(k8s.stats.byVerb.delete).toBeUndefined();
    expect(deps.publisher.entries).toEqual([]);
    expect(deps.scheduler.calls).toEqual([]);

    // A stop with no GitLab fact behind it (kubler stop, the expiry schedule) is ordered by its bus
    // time, as before: published now, after the deploy's fact, it deletes.
    expect(await consume(stopEnvelope(stopRequested({ reason: "stopped" }), NOW.toISOString()))).toEqual({
      kind: "deleted",
      namespace: NAMESPACE,
    });
  });

  it("deletes on a close's stop whose close came with or after the deploy's fact, whatever its bus time", async () => {
    seed({ factAt: new Date("2026-11-21T09:30:00Z") });
    const consume = createCleanupConsumer(deps);
    // A tie (same second) goes to the stop, as with the stops a deploy heeds.
    const closedThen = stopRequested({ reason: "closed", factAt: "2026-11-21T09:30:00.000Z" });
    expect(await consume(stopEnvelope(closedThen, "2026-11-21T09:00:00Z"))).toEqual({
      kind: "deleted",
      namespace: NAMESPACE,
    });
  });

  it("never deletes what the event's project does not own, whatever the event says", async () => {
    // Bystanders: other projects' (expired) environments, an unmanaged look-alike, the system ones.
    const seedBystanders = () => {
      seedPlain("payments", { team: "payments" }, { [ANNOTATION.EXPIRES_AT]: "2020-01-01T00:00:00Z" });
      for (const [projectId, path] of [
        [1, "group/app"],
        [2, PROJECT],
        [3, "other/project"],
      ] as const) {
        seed({
          namespace: namespaceFor(path, "review/x"),
          gitlab: { instance: INSTANCE, projectId, projectPath: path },
          environment: "review/x",
          expiresAt: new Date(NOW.getTime() - HOUR),
        });
      }
    };

    const event = fc.record({
      correlationId: fc.string({ minLength: 1, maxLength: 20 }),
      gitlab: fc.record({
        instance: fc.oneof(fc.constant(INSTANCE), fc.string({ minLength: 1, maxLength: 40 })),
        projectId: fc.oneof(fc.constantFrom(1, 2, 3), fc.integer({ min: 0, max: 999_999_999_999_999 })),
        projectPath: fc.oneof(
          fc.constantFrom("group/app", PROJECT, "other/project"),
          fc.string({ minLength: 1, maxLength: 120 }),
        ),
      }),
      environment: fc.oneof(fc.constant("review/x"), fc.string({ minLength: 1, maxLength: 120 })),
      reason: fc.constantFrom(...STOP_REASONS),
    });
    // What sits at namespaceFor(event): nothing, or something the event's project does not own (or
    // whose contract cannot be read, or another of its environments), or, as the control, the
    // project's own environment.
    const occupant = fc.constantFrom(
      "none",
      "unmanaged",
      "managed-by-other-tool",
      "other-project",
      "owner-only-in-annotation",
      "bad-project-label",
      "malformed-expiry",
      "other-environment",
      "owned",
    );

    await fc.assert(
      fc.asyncProperty(event, occupant, fc.boolean(), async (detail, kind, expired) => {
        const name = namespaceFor(detail.gitlab.projectPath, detail.environment);
        const id = detail.gitlab.projectId;
        const expiresAt = new Date(NOW.getTime() + (expired ? -HOUR : HOUR));
        const own = environmentNamespace(
          reviewState({ namespace: name, gitlab: detail.gitlab, environment: detail.environment, expiresAt }),
        );
        const labels = own.metadata.labels ?? {};
        const annotations = own.metadata.annotations ?? {};
        const put = (changes: { labels?: Record<string, string>; annotations?: Record<string, string> }) =>
          k8s.store.put({
            ...own,
            metadata: {
              name,
              labels: { ...labels, ...changes.labels },
              annotations: { ...annotations, ...changes.annotations },
            },
          });
        seedBystanders();
        if (kind === "none" && stored(name)) {
          // A shrink may repeat an event: clear what an earlier run left at its name.
          await connect().delete({ apiVersion: "v1", kind: "Namespace", name });
          await waitUntil(() => !stored(name), `${name} is gone`);
        }
        if (kind === "unmanaged") seedPlain(name, { team: "payments" }, annotations);
        if (kind === "managed-by-other-tool") put({ labels: { [LABEL.MANAGED_BY]: "helm" } });
        if (kind === "other-project") put({ labels: { [LABEL.PROJECT_ID]: String(id + 1) } });
        if (kind === "owner-only-in-annotation") {
          put({
            labels: { [LABEL.PROJECT_ID]: String(id + 7) },
            annotations: { [ANNOTATION.PROJECT_ID]: String(id) },
          });
        }
        if (kind === "bad-project-label") put({ labels: { [LABEL.PROJECT_ID]: `${id} ` } });
        if (kind === "malformed-expiry") put({ annotations: { [ANNOTATION.EXPIRES_AT]: "tomorrow" } });
        if (kind === "other-environment") {
          // Another environment of the same project whose name hashes alike (see heldByAnother).
          put({
            labels: { [LABEL.ENVIRONMENT]: "production" },
            annotations: { [ANNOTATION.ENVIRONMENT_NAME]: "production" },
          });
        }
        if (kind === "owned") put({});
        const before = namespaces();

        const outcome = await stopEnvironment(deps, detail);

        const after = namespaces();
        // The event's own environment under the name of its project's earlier path (the project was
        // renamed): a namespace recording its project id, instance and full environment name, which
        // bystanders and earlier runs' namespaces may. Looked for when nothing of its own is at `name`.
        const lookedFor = kind !== "owned" && kind !== "malformed-expiry";
        const recordsEvent = ({ metadata: { name: key, labels = {}, annotations = {} } }: KubeObject) =>
          lookedFor &&
          key !== name &&
          labels[LABEL.MANAGED_BY] === "kubler" &&
          labels[LABEL.PROJECT_ID] === String(id) &&
          annotations[ANNOTATION.ENVIRONMENT_NAME] === detail.environment &&
          annotations[ANNOTATION.INSTANCE] === detail.gitlab.instance.replace(/\/+$/, "");
        const candidates = [...before.values()].filter(recordsEvent);
        const earlier = candidates
          .filter((ns) => !ns.metadata.deletionTimestamp)
          .map((ns) => ns.metadata.name);
        for (const [key, ns] of before) {
          if (ns.metadata.deletionTimestamp) continue; // an earlier run's deletion, still finalizing
          const mayGo =
            (kind === "owned" && key === name) ||
            (earlier.length > 0 && key === outcome.namespace && outcome.kind === "deleted");
          if (!mayGo) expect(after.get(key), `${key} was touched`).toEqual(ns);
        }
        if (earlier.length > 0) {
          // Deleted, or refused or ignored on the checks made at a computed name (malformed, not expired…).
          expect(earlier).toContain(outcome.namespace);
          expect(outcome.kind).not.toBe("already_gone");
          return;
        }
        if (outcome.namespace !== name) {
          // Only an earlier run's namespace of this identity, still finalizing: not deleted again.
          expect(candidates.map((ns) => ns.metadata.name)).toContain(outcome.namespace);
          expect(outcome.kind).toBe("already_gone");
          return;
        }
        const deleted = kind === "owned" && (detail.reason !== "expired" || expired);
        expect(outcome.kind).toBe(
          deleted ? "deleted" : kind === "none" ? "already_gone" : kind === "owned" ? "ignored" : "refused",
        );
        // Terminating, or already finalized (namespaceFinalizeMs is short).
        if (deleted) {
          const left = after.get(name);
          expect(left === undefined || left.metadata.deletionTimestamp !== undefined, `${name} left`).toBe(
            true,
          );
        }
      }),
      { numRuns: 100 },
    );
  });
});

describe("sweepExpiredEnvironments", () => {
  // Enough for 3 pages of 500; few deletions, since every request is a real HTTP round trip.
  const MIX = { expired: 60, live: 840, never: 150, malformed: 100, terminating: 50 } as const;
  const MANAGED = Object.values(MIX).reduce((a, b) => a + b, 0);

  /**
   * 1,200 managed namespaces, named like real ones (so every kind is spread over every page), and
   * unmanaged ones whose annotations say they expired. Returns the names by kind.
   */
  function seedMix(): Record<keyof typeof MIX | "unmanaged", string[]> {
    const names: Record<keyof typeof MIX | "unmanaged", string[]> = {
      expired: [],
      live: [],
      never: [],
      malformed: [],
      terminating: [],
      unmanaged: [],
    };
    let n = 0;
    const add = (kind: keyof typeof names, make: (s: EnvironmentState) => KubeObject) => {
      n++;
      const path = `group-${n % 7}/app-${n % 13}`;
      const environment = `review/mr-${n}`;
      const s = reviewState({
        namespace: namespaceFor(path, environment),
        gitlab: { instance: INSTANCE, projectId: 1000 + (n % 13), projectPath: path },
        environment,
        correlationId: `corr-${n}`,
      });
      names[kind].push(k8s.store.put(make(s)).metadata.name);
    };
    for (let i = 0; i < MIX.expired; i++) {
      // The first expires exactly now: expired is "at or before".
      add("expired", (s) => environmentNamespace({ ...s, expiresAt: new Date(NOW.getTime() - i * MINUTE) }));
    }
    for (let i = 0; i < MIX.live; i++) {
      add("live", (s) => environmentNamespace({ ...s, expiresAt: new Date(NOW.getTime() + 1 + i * MINUTE) }));
    }
    for (let i = 0; i < MIX.never; i++) {
      add("never", (s) => environmentNamespace({ ...s, ttl: "never", expiresAt: null }));
    }
    for (let i = 0; i < MIX.malformed; i++) {
      add("malformed", (s) => {
        const ns = environmentNamespace(s);
        const bad = i % 2 === 0 ? "yesterday" : "2026-11-20T10:00:00"; // no zone: not RFC 3339
        ns.metadata.annotations = { ...ns.metadata.annotations, [ANNOTATION.EXPIRES_AT]: bad };
        return ns;
      });
    }
    for (let i = 0; i < MIX.terminating; i++) {
      add("terminating", (s) => {
        const ns = environmentNamespace({ ...s, expiresAt: new Date(NOW.getTime() - HOUR) });
        ns.metadata.deletionTimestamp = new Date(NOW.getTime() - MINUTE).toISOString();
        return { ...ns, status: { phase: "Terminating" } };
      });
    }
    for (let i = 0; i < 40; i++) {
      add("unmanaged", (s) => {
        const ns = environmentNamespace({ ...s, expiresAt: new Date(NOW.getTime() - HOUR) });
        const labels = { ...ns.metadata.labels };
        if (i % 3 === 0) delete labels[LABEL.MANAGED_BY];
        else if (i % 3 === 1) labels[LABEL.MANAGED_BY] = "helm";
        // Kubler's, but not an environment (the builds namespace): never examined, never deleted.
        else delete labels[LABEL.ENVIRONMENT];
        return { ...ns, metadata: { ...ns.metadata, labels } };
      });
    }
    return names;
  }

  function sweep(options: Partial<SweepOptions> = {}) {
    return sweepExpiredEnvironments(deps, { newId: sequentialIds("sweep"), ...options });
  }

  const sorted = (items: { namespace: string }[]) => items.map((i) => i.namespace).sort();

  it("deletes exactly the expired managed environments, over 3 pages of 500, and reports every kind", async () => {
    const names = seedMix();
    const before = namespaces();
    k8s.stats.reset();

    const report = await sweep();

    expect(report.dryRun).toBe(false);
    expect(report.examined).toBe(MANAGED);
    expect(sorted(report.expired)).toEqual([...names.expired].sort());
    expect(sorted(report.deleted)).toEqual([...names.expired].sort());
    expect(report.failed).toEqual([]);
    expect(sorted(report.skipped)).toEqual([...names.malformed, ...names.terminating].sort());
    for (const item of report.skipped) {
      expect(item.reason).toMatch(
        names.malformed.includes(item.namespace)
          ? /annotation kubler\.dev\/expires-at is not an RFC 3339 time/
          : /already terminating/,
      );
    }
    expect(report.deleted.find((d) => d.namespace === names.expired[0])?.reason).toBe(
      `expired at ${NOW.toISOString()}`,
    );
    expect(k8s.stats.byVerb.list).toBe(Math.ceil(MANAGED / 500));
    expect(k8s.stats.byVerb.delete).toBe(MIX.expired);

    await waitUntil(() => names.expired.every((name) => !stored(name)), "the expired namespaces are gone");
    const after = namespaces();
    for (const [name, ns] of before) {
      if (names.expired.includes(name)) expect(after.has(name), name).toBe(false);
      else expect(after.get(name), `${name} was touched`).toEqual(ns);
    }
  });

  it("publishes Environment Deleted, cancels the schedule and audits each deletion, plus one summary", async () => {
    const names = seedMix();

    await sweep();

    const published = deps.publisher.entries;
    expect(published).toHaveLength(MIX.expired);
    expect(new Set(published.map((e) => e.detailType))).toEqual(new Set(["Environment Deleted"]));
    expect(published.map((e) => (e.detail as { namespace: string }).namespace).sort()).toEqual(
      [...names.expired].sort(),
    );
    const first = published.find(
      (e) => (e.detail as { namespace: string }).namespace === names.expired[0],
    )?.detail;
    expect(first).toEqual({
      correlationId: "corr-1",
      gitlab: { instance: INSTANCE, projectId: 1001, projectPath: "group-1/app-1" },
      environment: "review/mr-1",
      namespace: names.expired[0],
      sha: "1111111111111111111111111111111111111111",
      ref: "feature/booking-validation",
      pipelineId: 100,
    });
    expect(deps.scheduler.calls.sort()).toEqual(names.expired.map((name) => `cancel ${name}`).sort());

    const deletions = deps.audit.records.filter((r) => r.action === "environment.sweep.delete");
    expect(deletions).toHaveLength(MIX.expired);
    expect(deletions.map((r) => r.subject.namespace).sort()).toEqual([...names.expired].sort());
    expect(deletions.every((r) => r.outcome === "success")).toBe(true);
    const summaries = deps.audit.records.filter((r) => r.action === "environment.sweep");
    expect(summaries).toHaveLength(1);
    expect(summaries[0]).toMatchObject({
      outcome: "success",
      reason: `examined ${MANAGED}, expired 60, deleted 60, failed 0, skipped 150`,
    });
    expect(deps.audit.last()?.action).toBe("environment.sweep");
  });

  it("in dry-run mode reports what is expired and deletes, publishes and cancels nothing", async () => {
    const names = seedMix();
    const before = namespaces();
    k8s.stats.reset();

    const report = await sweep({ dryRun: true });

    expect(report).toMatchObject({ dryRun: true, examined: MANAGED, deleted: [], failed: [] });
    expect(sorted(report.expired)).toEqual([...names.expired].sort());
    expect(report.skipped).toHaveLength(MIX.malformed + MIX.terminating);
    expect(k8s.stats.byVerb.delete).toBeUndefined();
    await new Promise((resolve) => setTimeout(resolve, 20)); // longer than namespaceFinalizeMs
    expect(namespaces()).toEqual(before);
    expect(deps.publisher.entries).toEqual([]);
    expect(deps.scheduler.calls).toEqual([]);
    expect(deps.audit.records).toHaveLength(1);
    expect(deps.audit.last()).toMatchObject({
      action: "environment.sweep",
      reason: `dry run: examined ${MANAGED}, expired 60, deleted 0, failed 0, skipped 150`,
    });
  });

  it("keeps going past a delete that fails, and reports exactly that one as failed", async () => {
    const names = seedMix();
    const broken = names.expired[30] as string;
    const fault = k8s.faults.add({ verb: "delete", resource: "namespaces", name: broken, status: 500 });
    deps.cluster = connect({ maxAttempts: 2 });
    const before = stored(broken);

    const report = await sweep();

    expect(fault.hits).toBe(2);
    expect(report.failed).toEqual([{ namespace: broken, reason: expect.stringContaining("HTTP 500") }]);
    expect(report.deleted).toHaveLength(MIX.expired - 1);
    expect(sorted(report.deleted)).toEqual(names.expired.filter((name) => name !== broken).sort());
    await waitUntil(
      () => names.expired.every((name) => name === broken || !stored(name)),
      "the other expired namespaces are gone",
    );
    expect(stored(broken)).toEqual(before);
    expect(deps.publisher.entries).toHaveLength(MIX.expired - 1);
    expect(deps.publisher.entries.some((e) => (e.detail as { namespace: string }).namespace === broken)).toBe(
      false,
    );
    expect(deps.audit.last()).toMatchObject({
      action: "environment.sweep",
      outcome: "failure",
      reason: `examined ${MANAGED}, expired 60, deleted 59, failed 1, skipped 150`,
    });
  });

  it("lists again from the first page when a continue token expires, deleting each expired one once", async () => {
    const names = seedMix();
    const gone = k8s.faults.add({ verb: "list", continued: true, status: 410, message: TOO_OLD, times: 1 });
    k8s.stats.reset();

    const report = await sweep();

    expect(gone.hits).toBe(1);
    // Page 1, the expired page 2, then pages 1 to 3 again.
    expect(k8s.stats.byVerb.list).toBe(5);
    expect(report.examined).toBe(MANAGED);
    expect(report.expired.map((i) => i.namespace).sort()).toEqual([...names.expired].sort());
    expect(report.deleted.map((i) => i.namespace).sort()).toEqual([...names.expired].sort());
    expect(sorted(report.skipped)).toEqual([...names.malformed, ...names.terminating].sort());
    expect(report.failed).toEqual([]);
    expect(k8s.stats.byVerb.delete).toBe(MIX.expired);
    expect(deps.publisher.entries).toHaveLength(MIX.expired);
    expect(deps.audit.last()).toMatchObject({ action: "environment.sweep", outcome: "success" });
  });

  it("reports a list that keeps failing, with what it deleted from the first page, and still writes its summary", async () => {
    const names = seedMix();
    const gone = k8s.faults.add({ verb: "list", continued: true, status: 410, message: TOO_OLD });

    const report = await sweep();

    // The first list, then 1 + 3 restarts whose second page expired each time.
    expect(gone.hits).toBe(4);
    expect(report.failed).toEqual([{ namespace: "(list)", reason: expect.stringContaining("too old") }]);
    expect(report.deleted.length).toBeGreaterThan(0);
    expect(report.deleted.length).toBeLessThan(MIX.expired);
    for (const item of report.deleted) expect(names.expired).toContain(item.namespace);
    expect(deps.publisher.entries).toHaveLength(report.deleted.length);
    expect(deps.audit.last()).toMatchObject({
      action: "environment.sweep",
      outcome: "failure",
      subject: { failed: [expect.objectContaining({ namespace: "(list)" })] },
    });
  });

  it("reports a first list that fails, and still writes its summary", async () => {
    seedMix();
    k8s.faults.add({ verb: "list", resource: "namespaces", status: 500, message: "etcd down" });
    deps.cluster = connect({ maxAttempts: 2 });

    const report = await sweep();

    expect(report).toMatchObject({ examined: 0, deleted: [], failed: [{ namespace: "(list)" }] });
    expect(report.failed[0]?.reason).toMatch(/etcd down/);
    expect(deps.audit.records).toHaveLength(1);
    expect(deps.audit.last()).toMatchObject({ action: "environment.sweep", outcome: "failure" });
  });

  it("never deletes a namespace replaced after it was listed", async () => {
    const names = seedMix();
    const replaced = names.expired[10] as string;
    // Hold that delete long enough to put a new, unexpired namespace of the same name in its place.
    const slow = k8s.faults.add({ verb: "delete", resource: "namespaces", name: replaced, latencyMs: 100 });

    const sweeping = sweep();
    await waitUntil(() => slow.hits === 1, "the delete is on its way");
    const fresh = seed({
      namespace: replaced,
      environment: "review/new",
      expiresAt: new Date(NOW.getTime() + HOUR),
    });
    const report = await sweeping;

    expect(report.failed).toEqual([
      { namespace: replaced, reason: expect.stringContaining("Precondition failed") },
    ]);
    expect(report.deleted).toHaveLength(MIX.expired - 1);
    await new Promise((resolve) => setTimeout(resolve, 20));
    expect(stored(replaced)).toEqual(fresh);
  });

  it("says since when, and on what, a namespace stuck terminating is waiting", async () => {
    const stuck = environmentNamespace(reviewState({ expiresAt: new Date(NOW.getTime() - 4 * 24 * HOUR) }));
    const since = new Date(NOW.getTime() - 3 * 24 * HOUR).toISOString();
    const finalizers =
      "Some content in the namespace has finalizers remaining: kubernetes.io/pvc-protection in 1 resource instances";
    k8s.store.put({
      ...stuck,
      metadata: { ...stuck.metadata, deletionTimestamp: since },
      status: {
        phase: "Terminating",
        conditions: [
          { type: "NamespaceDeletionDiscoveryFailure", status: "False", reason: "ResourcesDiscovered" },
          {
            type: "NamespaceFinalizersRemaining",
            status: "True",
            reason: "SomeFinalizersRemain",
            message: finalizers,
          },
        ],
      },
    });

    const report = await sweep();

    expect(report.skipped).toEqual([
      {
        namespace: NAMESPACE,
        reason: `expired at ${new Date(NOW.getTime() - 4 * 24 * HOUR).toISOString()}; already terminating since ${since}: ${finalizers}`,
      },
    ]);
  });

  it("never deletes a namespace a redeploy extended after it was listed", async () => {
    const names = seedMix();
    const extended = names.expired[20] as string;
    const listed = stored(extended);
    const deployer = connect();
    await deployer.get({ apiVersion: "v1", kind: "Namespace", name: extended }); // discovery done before the race
    // Hold that delete until a deploy has written a new expiry on the same namespace (same uid).
    const slow = k8s.faults.add({ verb: "delete", resource: "namespaces", name: extended, latencyMs: 300 });

    const sweeping = sweep();
    await waitUntil(() => slow.hits === 1, "the delete is on its way");
    const annotations = {
      ...listed?.metadata.annotations,
      [ANNOTATION.EXPIRES_AT]: "2026-11-24T10:00:00.000Z",
    };
    await deployer.apply({ apiVersion: "v1", kind: "Namespace", metadata: { name: extended, annotations } });
    const report = await sweeping;

    expect(report.failed).toEqual([{ namespace: extended, reason: expect.any(String) }]);
    expect(report.deleted).toHaveLength(MIX.expired - 1);
    await new Promise((resolve) => setTimeout(resolve, 20));
    const now = stored(extended);
    expect(now?.metadata.uid).toBe(listed?.metadata.uid);
    expect(now?.metadata.deletionTimestamp).toBeUndefined();
    expect(now?.metadata.annotations?.[ANNOTATION.EXPIRES_AT]).toBe("2026-11-24T10:00:00.000Z");
  });

  it("audits a deletion whose Environment Deleted or schedule cancel failed, rather than dropping it unsaid", async () => {
    seed({ expiresAt: new Date(NOW.getTime() - HOUR) });
    deps.publisher.failNext = 1;
    deps.scheduler.cancel = async () => {
      throw new Error("could not delete schedule kubler/x after 5 attempt(s): ThrottlingException");
    };

    const report = await sweep();

    expect(report.deleted.map((d) => d.namespace)).toEqual([NAMESPACE]);
    expect(deps.publisher.entries).toEqual([]);
    const failures = deps.audit.records.filter(
      (r) => r.action === "environment.sweep.delete" && r.outcome === "failure",
    );
    expect(failures).toHaveLength(1);
    expect(failures[0]).toMatchObject({
      correlationId: "corr-deploy",
      subject: { namespace: NAMESPACE, environment: ENVIRONMENT },
    });
    expect(failures[0]?.reason).toMatch(/Environment Deleted not published: 1 of 1 events failed to publish/);
    expect(failures[0]?.reason).toMatch(/schedule not cancelled: .*ThrottlingException/);
  });

  it.each([1, 4, 16])("keeps at most %i requests in flight", async (concurrency) => {
    seedMix();
    k8s.faults.latencyMs = 2; // so requests overlap, as they do against a remote API server
    k8s.stats.reset();

    const report = await sweep({ concurrency });

    expect(report.deleted).toHaveLength(MIX.expired);
    expect(k8s.stats.inFlightMax).toBeLessThanOrEqual(concurrency);
    if (concurrency > 1) expect(k8s.stats.inFlightMax).toBeGreaterThan(1);
  });

  it.each([
    [1, 1],
    [499, 1],
    [500, 1],
    [501, 2],
    [1001, 3],
  ])("lists %i managed namespaces in %i page(s) of 500", async (count, pages) => {
    for (let i = 0; i < count; i++) {
      seed({ namespace: `env-${String(i).padStart(5, "0")}`, expiresAt: new Date(NOW.getTime() + HOUR) });
    }
    k8s.stats.reset();

    const report = await sweep();

    expect(report.examined).toBe(count);
    expect(k8s.stats.byVerb.list).toBe(pages);
  });
});

const TOO_OLD =
  "The provided continue parameter is too old to display a consistent list result. You can start a new list without the continue parameter.";
