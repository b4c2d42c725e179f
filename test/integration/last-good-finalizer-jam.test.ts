/**
 * A CI job's finalizer must not jam Kubler's replacement of its own objects (`applyOwned`). The job
 * is a real identity bound to the Role Kubler wrote (a TokenRequest token of `kubler-deployer`), acting
 * over HTTP on the embedded API, which holds an object with finalizers Terminating after a DELETE
 * until they are emptied, as a real API server does. Before Kubler removed finalizers it did not set,
 * the replacement's delete left `kubler-last-good` Terminating, still immutable, and every later
 * deploy threw until an operator removed the finalizer by hand.
 */
import * as k8s from "@kubernetes/client-node";
import { beforeEach, describe, expect, it } from "vitest";
import { LAST_GOOD_CONFIGMAP } from "../../shared/domain/deploy-manifests.js";
import { namespaceFor } from "../../shared/domain/environment.js";
import { deployEnvironment } from "../../shared/services/deploy-environment.js";
import { ciJobClient, deployerRoleRules } from "../fakes/ci-job.js";
import { PROJECT, revisionRequested, useDeployCluster } from "../fakes/deploy-deps.js";
import { allows } from "../fakes/rbac.js";

const HOLD = "ci.example.com/hold";
const mergePatch = k8s.setHeaderOptions("Content-Type", k8s.PatchStrategy.MergePatch);

const env = useDeployCluster("kubler-finalizer-jam-", { clear: "none" });
let environment: string;
let namespace: string;
let tests = 0;

beforeEach(() => {
  environment = `review/finalizer-${++tests}`;
  namespace = namespaceFor(PROJECT, environment);
});

function deploy(n: number): ReturnType<typeof deployEnvironment> {
  return deployEnvironment(env.deps, revisionRequested(environment, n, `finalizer-${tests}-${n}`));
}

const ciJob = () => ciJobClient(env.k8s, env.deps.cluster, namespace);
const roleRules = () => deployerRoleRules(env.k8s, namespace);

function record() {
  return env.k8s.store.get("v1", "ConfigMap", namespace, LAST_GOOD_CONFIGMAP);
}

/** The job holds the record with a finalizer and freezes it, over its own merge patch. */
async function jam(): Promise<void> {
  const job = await ciJob();
  await job.patchNamespacedConfigMap(
    {
      name: LAST_GOOD_CONFIGMAP,
      namespace,
      body: { metadata: { finalizers: [HOLD] }, immutable: true, data: { sha: "junk" } },
    },
    mergePatch,
  );
}

describe("kubler-last-good held by a CI job's finalizer", () => {
  it("made immutable too, is replaced by the next deploy, which removes the finalizer and says so; later deploys and a rollback work", async () => {
    expect(await deploy(1)).toMatchObject({ kind: "succeeded" });
    expect(allows(roleRules(), "patch", "", "configmaps", LAST_GOOD_CONFIGMAP)).toBe(true);
    await jam();
    const hostile = record();
    expect(hostile).toMatchObject({ immutable: true, metadata: { finalizers: [HOLD] } });

    expect(await deploy(2)).toMatchObject({ kind: "succeeded" });
    const replaced = record();
    expect(replaced?.metadata.uid).not.toBe(hostile?.metadata.uid);
    expect(replaced?.metadata.finalizers).toBeUndefined();
    expect(replaced?.metadata.deletionTimestamp).toBeUndefined();
    expect(replaced?.immutable).toBeUndefined();
    expect((replaced?.data as Record<string, string> | undefined)?.sha).toBe("2".repeat(40));
    expect(env.deps.audit.last()?.subject).toMatchObject({
      status: "succeeded",
      replaced: [`ConfigMap/${LAST_GOOD_CONFIGMAP} (finalizers removed: ${HOLD})`],
    });
    expect(JSON.stringify(env.deps.audit.records)).not.toContain("junk");

    expect(await deploy(3)).toMatchObject({ kind: "succeeded" });
    expect(env.deps.audit.last()?.subject).not.toHaveProperty("replaced");
    env.files.setRollout("fail");
    const broken = await deploy(4);
    expect(broken).toMatchObject({ kind: "rolled_back" });
    expect(broken.kind !== "ignored" && broken.reason).toContain(`rolled back to ${"3".repeat(40)}`);
  });

  it("already left Terminating by an earlier deploy (the jam as it was), is released and replaced", async () => {
    expect(await deploy(1)).toMatchObject({ kind: "succeeded" });
    await jam();
    // What the replacement's delete did before: the record Terminating, still immutable, still held.
    await env.deps.cluster.delete({
      apiVersion: "v1",
      kind: "ConfigMap",
      name: LAST_GOOD_CONFIGMAP,
      namespace,
    });
    expect(record()?.metadata.deletionTimestamp).toBeDefined();

    expect(await deploy(2)).toMatchObject({ kind: "succeeded" });
    expect(record()?.metadata.deletionTimestamp).toBeUndefined();
    expect(record()?.metadata.finalizers).toBeUndefined();
    expect((record()?.data as Record<string, string> | undefined)?.sha).toBe("2".repeat(40));
    expect(env.deps.audit.last()?.subject).toMatchObject({
      replaced: [`ConfigMap/${LAST_GOOD_CONFIGMAP} (finalizers removed: ${HOLD})`],
    });
  });

  it("on a record Kubler can still write (not immutable), is left alone: nothing is replaced", async () => {
    expect(await deploy(1)).toMatchObject({ kind: "succeeded" });
    const job = await ciJob();
    await job.patchNamespacedConfigMap(
      { name: LAST_GOOD_CONFIGMAP, namespace, body: { metadata: { finalizers: [HOLD] } } },
      mergePatch,
    );
    const held = record();
    expect(await deploy(2)).toMatchObject({ kind: "succeeded" });
    expect(record()?.metadata.uid).toBe(held?.metadata.uid);
    expect(record()?.metadata.finalizers).toEqual([HOLD]);
    expect(env.deps.audit.last()?.subject).not.toHaveProperty("replaced");
  });
});
