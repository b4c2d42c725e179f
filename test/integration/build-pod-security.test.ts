/**
 * A builds namespace whose Pod Security Admission level refuses the build pod: rootless BuildKit runs
 * with seccomp and AppArmor unconfined, which `baseline` and `restricted` forbid, so the Job controller
 * never gets a pod created, and Kubernetes fails the Job only at its 30-minute deadline with a bare
 * DeadlineExceeded, the cause nowhere in it. Against the embedded Kubernetes API over HTTP, through
 * the real adapter (it runs no admission of pods: the label is what is looked at).
 */
import { describe, expect, it } from "vitest";
import type { Detail } from "../../shared/domain/catalog.js";
import { buildImage } from "../../shared/services/build-image.js";
import { BUILDS_NAMESPACE, exampleBuildRequest, useBuildTestBed } from "../fakes/build-deps.js";

const bed = useBuildTestBed();

async function enforce(level: string): Promise<void> {
  await bed.cluster.apply({
    apiVersion: "v1",
    kind: "Namespace",
    metadata: { name: BUILDS_NAMESPACE, labels: { "pod-security.kubernetes.io/enforce": level } },
  });
}

const jobs = () => bed.k8s.store.list("batch/v1", "Job", BUILDS_NAMESPACE);

describe("a builds namespace whose Pod Security level refuses the build pod", () => {
  it.each(["baseline", "restricted"])(
    "enforcing %s: the build fails at once, saying why and the command that lets it run, and no Job waits out its deadline",
    async (level) => {
      await enforce(level);

      const outcome = await buildImage(bed.build, exampleBuildRequest());

      expect(outcome.kind).toBe("failed");
      expect(jobs()).toEqual([]);
      const detail = bed.publisher.entries[0]?.detail as Detail<"Build Finished">;
      expect(detail.status).toBe("failed");
      expect(detail.reason).toContain(`enforces Pod Security level ${level}`);
      expect(detail.reason).toContain(
        `kubectl label namespace ${BUILDS_NAMESPACE} pod-security.kubernetes.io/enforce=privileged --overwrite`,
      );
      const line = bed.audit.records.find((r) => r.action === "image.build");
      expect(line?.outcome).toBe("failure");
    },
  );

  it("enforcing privileged, or with no level of its own: built as before", async () => {
    expect((await buildImage(bed.build, exampleBuildRequest())).kind).toBe("created");
    await enforce("privileged");
    expect((await buildImage(bed.build, exampleBuildRequest({ sha: "3".repeat(40) }))).kind).toBe("created");
    expect(jobs()).toHaveLength(2);
  });

  it("warning or auditing baseline only (no enforce label): built, the pod is let in with a warning", async () => {
    await bed.cluster.apply({
      apiVersion: "v1",
      kind: "Namespace",
      metadata: {
        name: BUILDS_NAMESPACE,
        labels: {
          "pod-security.kubernetes.io/warn": "baseline",
          "pod-security.kubernetes.io/audit": "restricted",
        },
      },
    });
    expect((await buildImage(bed.build, exampleBuildRequest())).kind).toBe("created");
    expect(jobs()).toHaveLength(1);
  });

  it("builds as before when Kubler's role may not get the namespace, and says so in the audit", async () => {
    await enforce("restricted");
    const forbidden = bed.k8s.faults.add({ verb: "get", resource: "namespaces", status: 403 });

    expect((await buildImage(bed.build, exampleBuildRequest())).kind).toBe("created");

    expect(forbidden.hits).toBe(1);
    expect(bed.audit.records.at(-1)).toMatchObject({
      action: "image.build",
      outcome: "success",
      reason: expect.stringContaining(
        `(its Pod Security level not checked: Kubler may not get namespace ${BUILDS_NAMESPACE}`,
      ),
    });
  });
});
