/**
 * Two revisions of one environment deployed at once that both add the same new object (EventBridge
 * can run two deploy Lambdas; two quick pushes). Each read it absent, so neither write can be held to
 * what it read: an older deploy's write landing after the newer one's must not put the older revision
 * over the newer's object, and the newer deploy, meeting the object the older one created since it
 * read, must go on over it, not fail. Over the real Kubernetes adapter and the embedded API; a request
 * is held in flight by a wrapper around the adapter, as in deploy-environment-concurrent.test.ts.
 */
import { beforeEach, describe, expect, it } from "vitest";
import type { KubeObject } from "../../shared/domain/kube-object.js";
import type { ManifestSource } from "../../shared/ports.js";
import { deployEnvironment } from "../../shared/services/deploy-environment.js";
import { deployRequested, NAMESPACE, SHA_1, useDeployCluster } from "../fakes/deploy-deps.js";
import { hooked, latch } from "../fakes/hooked-cluster.js";

const OLDER = "2".repeat(40);
const NEWER = "3".repeat(40);
const ADDED = "feature-flags";

const env = useDeployCluster("kubler-new-object-race-");
beforeEach(() => {
  env.deps.manifests = addingConfigMap(env.deps.manifests);
});

/** Every revision after SHA_1 adds ConfigMap `feature-flags`, whose data names the revision. */
function addingConfigMap(source: ManifestSource): ManifestSource {
  return {
    readManifest: (project, sha) => source.readManifest(project, sha),
    readDirectory: async (project, sha, directory) => {
      const files = new Map(await source.readDirectory(project, sha, directory));
      if (sha !== SHA_1) {
        files.set(
          "feature-flags.yaml",
          `apiVersion: v1\nkind: ConfigMap\nmetadata: { name: ${ADDED} }\ndata: { revision: "${sha}" }\n`,
        );
      }
      return files;
    },
  };
}

function added(): KubeObject | undefined {
  return env.k8s.store.get("v1", "ConfigMap", NAMESPACE, ADDED);
}

function namespaceRecords(): { sha: string | undefined; status: string | undefined } {
  const ns = env.k8s.store.get("v1", "Namespace", undefined, NAMESPACE) as KubeObject;
  return {
    sha: ns.metadata.annotations?.["kubler.dev/sha"],
    status: ns.metadata.annotations?.["kubler.dev/status"],
  };
}

function finished(sha: string): { status: string; reason: string | null }[] {
  return env.deps.publisher.entries
    .filter((e) => e.detailType === "Deploy Finished" && (e.detail as { sha: string }).sha === sha)
    .map((e) => e.detail as { status: string; reason: string | null });
}

const isAdded = (o: { kind: string; metadata?: { name: string }; name?: string }) =>
  o.kind === "ConfigMap" && (o.metadata?.name ?? o.name) === ADDED;

/** A `before` hook holding the deploy's first write of the added ConfigMap until `until`; `held()` once it does. */
function holdFirstAdded(until: Promise<void>): {
  before: (o: KubeObject) => Promise<void>;
  held: () => boolean;
} {
  let held = false;
  return {
    held: () => held,
    before: async (o) => {
      if (!isAdded(o) || held) return;
      held = true;
      await until;
    },
  };
}

describe("two deploys at once adding the same new object", () => {
  it("the older deploy's write of it, landing after the newer deploy created it, does not go over it: the older deploy stops superseded", async () => {
    await deployEnvironment(env.deps, deployRequested({ sha: SHA_1, pipelineId: 99 }));
    expect(added()).toBeUndefined();
    const newerWrote = latch();
    const olderHold = holdFirstAdded(newerWrote.wait);
    const older = { ...env.deps, cluster: hooked(env.deps.cluster, { before: olderHold.before }) };
    const newer = {
      ...env.deps,
      cluster: hooked(env.deps.cluster, { after: (o) => (isAdded(o) ? newerWrote.open() : undefined) }),
    };
    const a = deployEnvironment(older, deployRequested({ sha: OLDER, pipelineId: 100 }));
    while (!olderHold.held()) await new Promise((resolve) => setTimeout(resolve, 5));
    const b = deployEnvironment(newer, deployRequested({ sha: NEWER, pipelineId: 101 }));
    const [outcomeA, outcomeB] = await Promise.all([a, b]);

    expect(outcomeB).toMatchObject({ kind: "succeeded" });
    expect(namespaceRecords()).toEqual({ sha: NEWER, status: "succeeded" });
    // Before, the older revision's ConfigMap went over the newer one's, which then ran with it.
    expect(added()?.data).toEqual({ revision: NEWER });
    expect(outcomeA).toMatchObject({ kind: "ignored", reason: expect.stringMatching(/^superseded: /) });
    expect(finished(OLDER)).toEqual([expect.objectContaining({ status: "superseded" })]);
    expect(finished(NEWER)).toEqual([expect.objectContaining({ status: "succeeded" })]);
  });

  it("the newer deploy, finding the object the older one created after it read it absent, reads it again and writes over it", async () => {
    await deployEnvironment(env.deps, deployRequested({ sha: SHA_1, pipelineId: 99 }));
    const newerRead = latch();
    const olderWrote = latch();
    const olderHold = holdFirstAdded(newerRead.wait);
    const older = {
      ...env.deps,
      cluster: hooked(env.deps.cluster, {
        // Its write of the new ConfigMap waits until the newer deploy has read it absent.
        before: olderHold.before,
        after: (o) => (isAdded(o) ? olderWrote.open() : undefined),
      }),
    };
    const newer = {
      ...env.deps,
      cluster: hooked(env.deps.cluster, {
        read: (ref, found) => (isAdded(ref) && found === null ? newerRead.open() : undefined),
        // And the newer deploy's write of it goes after the older one's has landed.
        before: holdFirstAdded(olderWrote.wait).before,
      }),
    };
    const a = deployEnvironment(older, deployRequested({ sha: OLDER, pipelineId: 100 }));
    while (!olderHold.held()) await new Promise((resolve) => setTimeout(resolve, 5));
    const b = deployEnvironment(newer, deployRequested({ sha: NEWER, pipelineId: 101 }));
    const [outcomeA, outcomeB] = await Promise.all([a, b]);

    expect(outcomeB).toMatchObject({ kind: "succeeded" });
    expect(namespaceRecords()).toEqual({ sha: NEWER, status: "succeeded" });
    expect(added()?.data).toEqual({ revision: NEWER });
    expect(outcomeA).toMatchObject({ kind: "ignored" });
    expect(finished(NEWER)).toEqual([expect.objectContaining({ status: "succeeded" })]);
  });

  it("an object a deploy adds is its apply manager's: a later revision that drops one of its keys removes it", async () => {
    const base = env.deps.manifests;
    let extra = true;
    env.deps.manifests = {
      readManifest: (project, sha) => base.readManifest(project, sha),
      readDirectory: async (project, sha, directory) => {
        const files = new Map(await base.readDirectory(project, sha, directory));
        const text = files.get("feature-flags.yaml");
        if (text && extra)
          files.set("feature-flags.yaml", text.replace("\ndata: {", '\ndata: { extra: "1",'));
        return files;
      },
    };
    expect(await deployEnvironment(env.deps, deployRequested({ sha: OLDER, pipelineId: 100 }))).toMatchObject(
      {
        kind: "succeeded",
      },
    );
    expect(added()?.data).toEqual({ extra: "1", revision: OLDER });
    extra = false;
    expect(await deployEnvironment(env.deps, deployRequested({ sha: NEWER, pipelineId: 101 }))).toMatchObject(
      {
        kind: "succeeded",
      },
    );
    expect(added()?.data).toEqual({ revision: NEWER });
  });
});
