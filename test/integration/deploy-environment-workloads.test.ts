/**
 * Workloads other than a Deployment in a project's manifests: what a real API server refuses to
 * update in place (a Job's pod template) and what has a rollout of its own. Against the embedded
 * Kubernetes API over HTTP, through the real adapter, as the other deploy tests.
 */
import { describe, expect, it } from "vitest";
import type { KubeObject } from "../../shared/domain/kube-object.js";
import { deployEnvironment } from "../../shared/services/deploy-environment.js";
import {
  type DeployTestDeps,
  deployRequested,
  NAMESPACE,
  SHA_2,
  useDeployCluster,
} from "../fakes/deploy-deps.js";
import { FixedClock } from "../fakes/index.js";

const env = useDeployCluster("kubler-workloads-", { cluster: { jobDelayMs: 5 } });

/** A migration Job that runs the commit's image, as projects ship one next to their Deployment. */
const MIGRATION_JOB = `apiVersion: batch/v1
kind: Job
metadata:
  name: migrate
spec:
  backoffLimit: 1
  template:
    spec:
      restartPolicy: Never
      containers:
        - name: migrate
          image: registry.example.com/flightjs/flight-management:{sha}
          args: [migrate]
`;

function jobImage(): unknown {
  const job = env.k8s.store.get("batch/v1", "Job", NAMESPACE, "migrate") as unknown as
    | {
        spec: { template: { spec: { containers: { image: string }[] } } };
      }
    | undefined;
  return job?.spec.template.spec.containers[0]?.image;
}

describe("a Job in the manifests", () => {
  it("is replaced by the next commit's Job, whose pod template the API server will not update in place", async () => {
    env.files.addManifest("job.yaml", MIGRATION_JOB);
    expect(await deployEnvironment(env.deps, deployRequested())).toMatchObject({ kind: "succeeded" });
    expect(jobImage()).toBe(`registry.example.com/flightjs/flight-management:${"1".repeat(40)}`);

    const next = await deployEnvironment(env.deps, deployRequested({ sha: SHA_2, pipelineId: 101 }));

    expect(next).toMatchObject({ kind: "succeeded" });
    expect(jobImage()).toBe(`registry.example.com/flightjs/flight-management:${SHA_2}`);
    expect(env.deps.audit.last()?.subject).toMatchObject({ recreated: ["Job/migrate"] });
  });

  it("is put back as the last good revision had it when the next commit's rollout fails", async () => {
    env.files.addManifest("job.yaml", MIGRATION_JOB);
    await deployEnvironment(env.deps, deployRequested());
    env.files.setRollout("fail");

    const next = await deployEnvironment(env.deps, deployRequested({ sha: SHA_2, pipelineId: 101 }));

    expect(next).toMatchObject({ kind: "rolled_back" });
    expect(jobImage()).toBe(`registry.example.com/flightjs/flight-management:${"1".repeat(40)}`);
  });

  it("other kinds' immutable fields are still refused, not replaced: a Deployment's new selector", async () => {
    await deployEnvironment(env.deps, deployRequested());
    const before = env.k8s.store.get("apps/v1", "Deployment", NAMESPACE, "flight-management");
    env.files.addManifest(
      "deployment.yaml",
      `apiVersion: apps/v1
kind: Deployment
metadata:
  name: flight-management
spec:
  selector:
    matchLabels: { app: flight-management, tier: web }
  template:
    metadata:
      labels: { app: flight-management, tier: web }
    spec:
      containers:
        - name: web
          image: registry.example.com/flightjs/flight-management:{sha}
`,
    );

    const next = await deployEnvironment(env.deps, deployRequested({ sha: SHA_2, pipelineId: 101 }));

    expect(next).toMatchObject({ kind: "rolled_back" });
    expect(next).toMatchObject({ reason: expect.stringContaining("field is immutable") });
    expect(env.k8s.store.get("apps/v1", "Deployment", NAMESPACE, "flight-management")?.metadata.uid).toBe(
      before?.metadata.uid,
    );
  });
});

describe("two deploys of one environment at once", () => {
  it("a rollout that times out after a newer deploy took the namespace does not roll back over it", async () => {
    await deployEnvironment(env.deps, deployRequested());
    env.files.setRollout("fail");
    const SHA_3 = "3".repeat(40);
    // The newer deploy runs in its own Lambda: its own clock, its Deployment written while the older
    // one still waits for the failing rollout.
    let newerApplied!: () => void;
    const applied = new Promise<void>((resolve) => {
      newerApplied = resolve;
    });
    const newerClock = new FixedClock(env.deps.clock.now());
    const newer: DeployTestDeps = {
      ...env.deps,
      clock: newerClock,
      sleep: (ms) => {
        newerClock.advance(ms);
        return new Promise((resolve) => setTimeout(resolve, ms));
      },
      cluster: new Proxy(env.deps.cluster, {
        get: (cluster, key) =>
          key === "apply"
            ? async (object: KubeObject) => {
                const written = await cluster.apply(object);
                if (object.kind === "Deployment") newerApplied();
                return written;
              }
            : Reflect.get(cluster, key).bind(cluster),
      }),
    };
    let newerDeploy: ReturnType<typeof deployEnvironment> | undefined;
    const older: DeployTestDeps = {
      ...env.deps,
      sleep: async (ms) => {
        if (!newerDeploy) {
          env.files.setRollout("ok");
          newerDeploy = deployEnvironment(newer, deployRequested({ sha: SHA_3, pipelineId: 102 }));
          await applied;
          env.deps.clock.advance(3_600_000);
        }
        env.deps.clock.advance(ms);
        await new Promise((resolve) => setTimeout(resolve, ms));
      },
    };

    await deployEnvironment(older, deployRequested({ sha: SHA_2, pipelineId: 101 }));
    const outcome = await newerDeploy;

    expect(outcome).toMatchObject({ kind: "succeeded" });
    const namespace = env.k8s.store.get("v1", "Namespace", undefined, NAMESPACE);
    expect(namespace?.metadata.annotations?.["kubler.dev/sha"]).toBe(SHA_3);
    const running = env.k8s.store.get("apps/v1", "Deployment", NAMESPACE, "flight-management") as unknown as {
      spec: { template: { spec: { containers: { image: string }[] } } };
    };
    expect(running.spec.template.spec.containers[0]?.image).toBe(
      `registry.example.com/flightjs/flight-management:${SHA_3}`,
    );
  });
});
