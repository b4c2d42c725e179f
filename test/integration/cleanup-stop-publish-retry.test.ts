import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { createCleanupConsumer } from "../../functions/cleanup-environments/consumer.js";
import { environmentNamespace } from "../../shared/domain/environment.js";
import { KubernetesError } from "../../shared/errors.js";
import type { KubeObject, MemoryKubernetes } from "../../shared/local/memory-kubernetes/index.js";
import {
  type CleanupTestDeps,
  REVIEW,
  reportedStatuses,
  reviewState,
  startCleanupCluster,
  stopEnvelope,
  stopRequested,
  waitUntil,
} from "../fakes/cleanup-deps.js";

const { sha: SHA, environment: ENVIRONMENT, namespace: NAMESPACE, gitlab } = REVIEW;

let k8s: MemoryKubernetes;
let deps: CleanupTestDeps;

beforeEach(async () => {
  // A deleted namespace is emptied and gone in 5 ms there: a real one is gone well before the
  // bus's first retry.
  ({ k8s, deps } = await startCleanupCluster());
});
afterEach(() => k8s.close());

function seed(): void {
  k8s.store.put(environmentNamespace(reviewState()));
  k8s.store.put({
    apiVersion: "v1",
    kind: "ConfigMap",
    metadata: { name: "app-config", namespace: NAMESPACE },
    data: { LOG_LEVEL: "info" },
  });
}

/** The stop of agarcia's merge as the bus delivers it, each attempt and retry alike. */
function stop() {
  return stopEnvelope(stopRequested({ user: "agarcia" }));
}

function namespace(): KubeObject | undefined {
  return k8s.store.get("v1", "Namespace", undefined, NAMESPACE);
}

function content(): KubeObject[] {
  return k8s.store.list("v1", "ConfigMap", NAMESPACE);
}

/**
 * The namespace controller has done what it can: the namespace is gone, or what is left of its
 * content is held by a finalizer (marked deleting, kept).
 */
function emptiedAsFarAsItCan(): boolean {
  const left = content();
  return !namespace() || (left.length > 0 && left.every((object) => object.metadata.deletionTimestamp));
}

/** The sha each published Environment Deleted carried, in order. */
function deletedShas(): (string | null | undefined)[] {
  return deps.publisher.entries.flatMap((e) =>
    e.detailType === "Environment Deleted" ? [e.detail.sha] : [],
  );
}

describe("a stop whose Environment Deleted failed to publish after the delete", () => {
  it("publishes it on the bus's retry, after the namespace would have finished terminating, with the sha that ran there", async () => {
    seed();
    const consume = createCleanupConsumer(deps);
    deps.publisher.failNext = 1;
    await expect(consume(stop())).rejects.toThrow(/failed to publish/);
    expect(namespace()?.metadata.deletionTimestamp).toEqual(expect.any(String));
    expect(deps.publisher.entries).toEqual([]);

    await waitUntil(emptiedAsFarAsItCan, "the namespace controller is done with it");
    const retried = await consume(stop());

    expect(retried).toEqual({ kind: "already_gone", namespace: NAMESPACE });
    expect(deps.publisher.entries).toEqual([
      {
        detailType: "Environment Deleted",
        detail: {
          correlationId: "corr-stop",
          gitlab,
          environment: ENVIRONMENT,
          namespace: NAMESPACE,
          sha: SHA,
          ref: "feature/booking-validation",
          pipelineId: 100,
          user: "agarcia",
        },
      },
    ]);
    // Told, the namespace is let go.
    await waitUntil(() => !namespace(), "the namespace is gone");
    expect(deps.scheduler.calls).toEqual([`cancel ${NAMESPACE}`]);
    const { outcomes, written } = await reportedStatuses(deps);
    expect(outcomes).toEqual([{ kind: "set", state: "canceled" }]);
    expect(written).toEqual([expect.objectContaining({ state: "canceled", sha: SHA, pipelineId: 100 })]);
  });

  it("audits each attempt: the failed one says the namespace is held until told, the retry that it told the commit", async () => {
    seed();
    const consume = createCleanupConsumer(deps);
    deps.publisher.failNext = 1;
    await expect(consume(stop())).rejects.toThrow();
    await waitUntil(emptiedAsFarAsItCan, "the namespace controller is done with it");
    await consume(stop());

    expect(deps.audit.records.map((r) => [r.action, r.outcome, r.reason])).toEqual([
      [
        "environment.stop",
        "failure",
        expect.stringMatching(
          new RegExp(
            `^attempt failed, left to the bus to retry: namespace ${NAMESPACE} deleted, held terminating until Environment Deleted is published: .*failed to publish`,
          ),
        ),
      ],
      [
        "environment.stop",
        "success",
        `already being deleted by an earlier stop (merged); told now what ran there (${SHA}), namespace let go`,
      ],
    ]);
  });

  it("says the same again on a retry after a publish that worked but the namespace was not let go, which report-status writes once", async () => {
    seed();
    const remove = deps.cluster.removeFinalizers.bind(deps.cluster);
    let refuse = 1;
    deps.cluster.removeFinalizers = async (...args) => {
      if (refuse-- > 0)
        throw new KubernetesError("could not patch configmaps kubler-stop-hold: HTTP 503", 503);
      return remove(...args);
    };
    const consume = createCleanupConsumer(deps);
    await expect(consume(stop())).rejects.toThrow(/HTTP 503/);
    expect(deletedShas()).toEqual([SHA]);
    await waitUntil(emptiedAsFarAsItCan, "the namespace controller is done with it");

    await consume(stop());
    await waitUntil(() => !namespace(), "the namespace is gone");
    // A late redelivery (at-least-once) finds nothing left, and says so without a sha.
    await consume(stop());

    expect(deletedShas()).toEqual([SHA, SHA, undefined]);
    const { outcomes, written } = await reportedStatuses(deps);
    expect(outcomes).toEqual([
      { kind: "set", state: "canceled" },
      { kind: "unchanged", state: "canceled" },
      { kind: "ignored", reason: "no commit to report on: the event names no SHA" },
    ]);
    expect(written).toEqual([expect.objectContaining({ state: "canceled", sha: SHA })]);
  });

  it("lets the namespace go at once when Environment Deleted is published on the first attempt", async () => {
    seed();
    const outcome = await createCleanupConsumer(deps)(stop());

    expect(outcome).toEqual({ kind: "deleted", namespace: NAMESPACE });
    await waitUntil(() => !namespace(), "the namespace is gone");
    expect(deletedShas()).toEqual([SHA]);
  });
});
