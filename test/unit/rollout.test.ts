/**
 * StatefulSet and DaemonSet rollouts read as `kubectl rollout status` reads them
 * (kubectl pkg/polymorphichelpers/rollout_status.go), and which kinds have a rollout at all.
 */
import { describe, expect, it } from "vitest";
import type { KubeObject } from "../../shared/domain/kube-object.js";
import {
  daemonSetRollout,
  deploymentRollout,
  FOLLOWED_KINDS,
  statefulSetRollout,
  workloadRollout,
} from "../../shared/domain/rollout.js";

const rollingUpdate = (partition = 0) => ({ type: "RollingUpdate", rollingUpdate: { partition } });

function statefulSet(status: object, spec: object = {}, generation = 2) {
  return {
    metadata: { name: "db", generation },
    spec: { replicas: 3, updateStrategy: rollingUpdate(), ...spec },
    status,
  };
}

/** A StatefulSet whose rollout kubectl reports complete. */
const rolledOut = {
  observedGeneration: 2,
  replicas: 3,
  readyReplicas: 3,
  updatedReplicas: 3,
  currentRevision: "db-2",
  updateRevision: "db-2",
};

describe("statefulSetRollout", () => {
  it("waits for the spec update to be observed, a missing observedGeneration included", () => {
    expect(statefulSetRollout(statefulSet({ ...rolledOut, observedGeneration: 1 }))).toEqual({
      kind: "progressing",
      reason: "waiting for statefulset db spec update to be observed",
    });
    const { observedGeneration: _, ...never } = rolledOut;
    expect(statefulSetRollout(statefulSet(never, {}, 0)).kind).toBe("progressing");
  });

  it("waits for every replica to be ready: a broken image's pod never is", () => {
    expect(
      statefulSetRollout(
        statefulSet({ ...rolledOut, readyReplicas: 2, updatedReplicas: 1, currentRevision: "db-1" }),
      ),
    ).toEqual({ kind: "progressing", reason: "1 of 3 pods of statefulset db not ready" });
  });

  it("waits for the pods past the partition to be updated", () => {
    expect(statefulSetRollout(statefulSet({ ...rolledOut, updatedReplicas: 2 }))).toEqual({
      kind: "progressing",
      reason: "2 of 3 new pods of statefulset db updated",
    });
    const canary = statefulSet(
      { ...rolledOut, updatedReplicas: 1, currentRevision: "db-1" },
      { updateStrategy: rollingUpdate(2) },
    );
    expect(statefulSetRollout(canary)).toEqual({ kind: "available" });
    expect(statefulSetRollout({ ...canary, status: { ...canary.status, updatedReplicas: 0 } })).toMatchObject(
      { kind: "progressing", reason: "0 of 1 new pods of statefulset db updated" },
    );
  });

  it("without rollingUpdate parameters, waits for the current revision to be the update revision", () => {
    const bare = { updateStrategy: { type: "RollingUpdate" } };
    expect(statefulSetRollout(statefulSet({ ...rolledOut, currentRevision: "db-1" }, bare))).toEqual({
      kind: "progressing",
      reason: "statefulset db rolling update to revision db-2 not complete: 3 pods updated",
    });
    expect(statefulSetRollout(statefulSet(rolledOut, bare))).toEqual({ kind: "available" });
    // The API server defaults the strategy: an object read from it always names one.
    expect(statefulSetRollout(statefulSet(rolledOut, { updateStrategy: undefined }))).toEqual({
      kind: "available",
    });
  });

  it("OnDelete cannot be followed: once observed and its pods ready, it says so instead of succeeding", () => {
    const onDelete = { updateStrategy: { type: "OnDelete" } };
    const kept = { ...rolledOut, updatedReplicas: 0, currentRevision: "db-1" };
    expect(statefulSetRollout(statefulSet({ ...kept, observedGeneration: 1 }, onDelete)).kind).toBe(
      "progressing",
    );
    expect(statefulSetRollout(statefulSet({ ...kept, readyReplicas: 2 }, onDelete)).kind).toBe("progressing");
    expect(statefulSetRollout(statefulSet(kept, onDelete))).toEqual({
      kind: "unfollowed",
      reason:
        "statefulset db has updateStrategy OnDelete: its pods take the new template only when deleted, so its rollout is not followed",
    });
  });
});

function daemonSet(status: object, strategy: object = { type: "RollingUpdate" }, generation = 4) {
  return { metadata: { name: "agent", generation }, spec: { updateStrategy: strategy }, status };
}

const scheduled = {
  observedGeneration: 4,
  desiredNumberScheduled: 2,
  updatedNumberScheduled: 2,
  numberAvailable: 2,
};

describe("daemonSetRollout", () => {
  it("waits for the spec update to be observed", () => {
    expect(daemonSetRollout(daemonSet({ ...scheduled, observedGeneration: 3 }))).toEqual({
      kind: "progressing",
      reason: "waiting for daemon set agent spec update to be observed",
    });
  });

  it("waits for every scheduled pod to be updated, then available", () => {
    expect(daemonSetRollout(daemonSet({ ...scheduled, updatedNumberScheduled: 1 }))).toEqual({
      kind: "progressing",
      reason: "1 of 2 new pods of daemon set agent updated",
    });
    expect(daemonSetRollout(daemonSet({ ...scheduled, numberAvailable: 1 }))).toEqual({
      kind: "progressing",
      reason: "1 of 2 updated pods of daemon set agent available",
    });
    expect(daemonSetRollout(daemonSet(scheduled))).toEqual({ kind: "available" });
  });

  it("OnDelete cannot be followed: once observed and its pods available, it says so", () => {
    const onDelete = { type: "OnDelete" };
    expect(
      daemonSetRollout(daemonSet({ ...scheduled, updatedNumberScheduled: 0, numberAvailable: 1 }, onDelete))
        .kind,
    ).toBe("progressing");
    expect(daemonSetRollout(daemonSet({ ...scheduled, updatedNumberScheduled: 0 }, onDelete))).toEqual({
      kind: "unfollowed",
      reason:
        "daemon set agent has updateStrategy OnDelete: its pods take the new template only when deleted, so its rollout is not followed",
    });
  });
});

describe("deploymentRollout of a paused Deployment", () => {
  const paused = (status: object) => ({
    metadata: { name: "web", generation: 3 },
    spec: { replicas: 2, paused: true },
    status: {
      observedGeneration: 3,
      conditions: [{ type: "Progressing", status: "Unknown", reason: "DeploymentPaused" }],
      ...status,
    },
  });

  it("fails at once when its new template waits on the pause, saying how to resume it", () => {
    // Its controller makes no new ReplicaSet while paused: waiting would only reach the timeout.
    expect(deploymentRollout(paused({ replicas: 2, updatedReplicas: 0, availableReplicas: 2 }))).toEqual({
      kind: "failed",
      reason:
        "deployment web is paused (spec.paused): its new template does not roll out until it is resumed (kubectl rollout resume deployment/web)",
    });
    expect(deploymentRollout(paused({ replicas: 3, updatedReplicas: 2, availableReplicas: 2 })).kind).toBe(
      "failed",
    );
  });

  it("is rolled out when nothing waits on the pause, and waits for pods getting available", () => {
    expect(deploymentRollout(paused({ replicas: 2, updatedReplicas: 2, availableReplicas: 2 }))).toEqual({
      kind: "available",
    });
    expect(deploymentRollout(paused({ replicas: 2, updatedReplicas: 2, availableReplicas: 1 })).kind).toBe(
      "progressing",
    );
    expect(deploymentRollout(paused({ observedGeneration: 2 })).kind).toBe("progressing");
  });

  it("is not failed while a scale-up of its unchanged template waits on new pods (the pause stops rollouts, not scaling)", () => {
    // replicas 2 → 3 while paused: the controller scales the one ReplicaSet, whose pod is not counted yet.
    const scaled = {
      ...paused({ replicas: 2, updatedReplicas: 2, availableReplicas: 2 }),
      spec: { replicas: 3, paused: true },
    };
    expect(deploymentRollout(scaled)).toEqual({
      kind: "progressing",
      reason: "2 of 3 replicas of web updated",
    });
  });

  it("fails at once when paused before any ReplicaSet was made (created paused)", () => {
    expect(deploymentRollout(paused({ replicas: 0, updatedReplicas: 0, availableReplicas: 0 })).kind).toBe(
      "failed",
    );
  });
});

describe("deploymentRollout of a Deployment whose pods cannot be created", () => {
  // What the controller copies from its ReplicaSet when the API server refuses the pods: the
  // Deployment itself was accepted (Pod Security only warns about a template).
  const refused = {
    type: "ReplicaFailure",
    status: "True",
    reason: "FailedCreate",
    message:
      'pods "web-5d8f7c9b4-x2x9k" is forbidden: violates PodSecurity "baseline:latest": hostPath volumes (volume "root")',
  };
  const deployment = (conditions: { type: string; status: string; reason?: string; message?: string }[]) => ({
    metadata: { name: "web", generation: 2 },
    spec: { replicas: 2 },
    status: { observedGeneration: 2, replicas: 0, updatedReplicas: 0, availableReplicas: 0, conditions },
  });

  it("says why in its reason while it waits, so a timeout names the refusal", () => {
    const progressing = { type: "Progressing", status: "True", reason: "ReplicaSetUpdated" };
    expect(deploymentRollout(deployment([progressing, refused]))).toEqual({
      kind: "progressing",
      reason: `0 of 2 replicas of web updated; its pods cannot be created: ${refused.message}`,
    });
  });

  it("says why when its progress deadline is exceeded", () => {
    const stuck = { type: "Progressing", status: "False", reason: "ProgressDeadlineExceeded" };
    expect(deploymentRollout(deployment([stuck, refused]))).toEqual({
      kind: "failed",
      reason: `deployment web exceeded its progress deadline; its pods cannot be created: ${refused.message}`,
    });
  });

  it("says nothing more once the failure is over (status False)", () => {
    expect(deploymentRollout(deployment([{ ...refused, status: "False" }]))).toEqual({
      kind: "progressing",
      reason: "0 of 2 replicas of web updated",
    });
  });
});

describe("workloadRollout", () => {
  const object = (kind: string, status: object, spec: object = {}): KubeObject => ({
    apiVersion: "apps/v1",
    kind,
    metadata: { name: "x", generation: 1 },
    spec,
    status,
  });

  it("follows Deployments, StatefulSets and DaemonSets, and nothing else", () => {
    expect(FOLLOWED_KINDS).toEqual(["Deployment", "StatefulSet", "DaemonSet"]);
    expect(workloadRollout(object("Deployment", { observedGeneration: 0 })).kind).toBe("progressing");
    expect(workloadRollout(object("StatefulSet", { observedGeneration: 0 })).kind).toBe("progressing");
    expect(workloadRollout(object("DaemonSet", { observedGeneration: 0 })).kind).toBe("progressing");
    expect(() => workloadRollout(object("Job", {}))).toThrow("no rollout to follow for Job");
  });
});
