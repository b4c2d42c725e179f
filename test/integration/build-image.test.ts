/**
 * build-image and reconcile of builds against the embedded Kubernetes API over HTTP, through the
 * real adapter: the Job is created once per project + SHA (409 is success), and each finished Job
 * becomes exactly one `Build Finished` per waiting environment, with the digest or the failure.
 */
import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import { createBuildImageConsumer } from "../../functions/build-image/consumer.js";
import { RECONCILE_LIMITS } from "../../functions/reconcile/limits.js";
import { FUNCTION_SPECS } from "../../infra/function-specs.js";
import type { KubernetesCluster } from "../../shared/adapters/kubernetes-cluster.js";
import {
  BUILD_ANNOTATION,
  buildJobName,
  MAX_BUILD_REQUESTS,
  REPORTED_KEEP_SECONDS,
} from "../../shared/domain/build-job.js";
import { type Detail, sourceOf } from "../../shared/domain/catalog.js";
import {
  KubernetesConflictError,
  KubernetesForbiddenError,
  KubernetesUnavailableError,
  UnavailableError,
} from "../../shared/errors.js";
import { type MemoryKubernetes, simulatedDigest } from "../../shared/local/memory-kubernetes/index.js";
import type { ManifestSource } from "../../shared/ports.js";
import { type BuildImageDeps, buildImage } from "../../shared/services/build-image.js";
import { type ReconcileBuildsDeps, reconcileBuilds } from "../../shared/services/reconcile-builds.js";
import {
  BUILDS_NAMESPACE,
  type BuildTestBed,
  exampleBuildRequest,
  exampleStagingRequest,
  EXAMPLE_FAILING_SHA as FAILING_SHA,
  GIT_SECRET,
  EXAMPLE_BUILD_PROJECT as gitlab,
  REGISTRY_SECRET,
  EXAMPLE_BUILD_SHA as SHA,
  slowLambda,
  startBuildTestBed,
  untilJobFinished,
} from "../fakes/build-deps.js";
import { FixedClock, type RecordingAuditLog, type RecordingPublisher } from "../fakes/index.js";

const NS = BUILDS_NAMESPACE;
const MANIFEST = `
version: 1
image:
  name: registry.example.com/flightjs/flight-management
  buildArgs: { NODE_ENV: production }
deploy:
  manifests: deploy/
  image: app
environments:
  - name: review/{branch}
    on: merge_request
`;

const request = exampleBuildRequest;

class Manifests implements ManifestSource {
  constructor(public text: string | null = MANIFEST) {}
  async readManifest() {
    return this.text;
  }
  async readDirectory() {
    return new Map<string, string>();
  }
}

let k8s: MemoryKubernetes;
let cluster: KubernetesCluster;
let publisher: RecordingPublisher;
let audit: RecordingAuditLog;
let build: BuildImageDeps & { manifests: Manifests };
let reconcile: ReconcileBuildsDeps;
let bed: BuildTestBed<Manifests>;

beforeEach(async () => {
  bed = await startBuildTestBed(new Manifests());
  ({ k8s, cluster, publisher, audit, build, reconcile } = bed);
});
afterEach(() => bed.close());

const finishedDetails = () => publisher.entries.map((e) => e.detail as Detail<"Build Finished">);
const jobOf = (sha: string) => k8s.store.get("batch/v1", "Job", NS, buildJobName(gitlab, sha));

const untilFinished = (sha: string) => untilJobFinished(k8s, NS, buildJobName(gitlab, sha));

describe("build-image", () => {
  it("creates the Job once; a repeat is already running", async () => {
    expect(await buildImage(build, request())).toEqual({ kind: "created", job: buildJobName(gitlab, SHA) });
    const job = jobOf(SHA);
    expect(job?.metadata.labels).toMatchObject({ "kubler.dev/sha": SHA, "kubler.dev/project-id": "2" });

    // The same request again (another delivery): a 409 from the API, which is success.
    expect(await buildImage(build, request({ correlationId: "c-2" }))).toEqual({
      kind: "already running",
      job: buildJobName(gitlab, SHA),
    });
    expect(k8s.store.list("batch/v1", "Job", NS)).toHaveLength(1);
    expect(audit.records.map((r) => [r.action, r.outcome])).toEqual([
      ["image.build", "success"],
      ["image.build", "success"],
    ]);
    expect(publisher.entries).toEqual([]);
  });

  it("creates the builds namespace, labelled managed, on the embedded cluster, where no pod runs and no Secret is needed", async () => {
    const empty = await startBuildTestBed(new Manifests(), { secrets: false });
    try {
      const outcome = await buildImage({ ...empty.build, checkSecrets: false }, request());
      expect(outcome).toEqual({ kind: "created", job: buildJobName(gitlab, SHA) });
      expect(empty.k8s.store.get("v1", "Namespace", undefined, NS)?.metadata.labels).toMatchObject({
        "app.kubernetes.io/managed-by": "kubler",
      });
    } finally {
      await empty.close();
    }
  });

  it("fails at once a build whose Secrets are missing, saying what to create, instead of a Job that waits 30 minutes for its deadline", async () => {
    const secretRef = (name: string) => ({ apiVersion: "v1", kind: "Secret", name, namespace: NS });
    const gitSecret = k8s.store.get("v1", "Secret", NS, GIT_SECRET) as
      | { data: { token: string } }
      | undefined;
    const tokenData = gitSecret?.data.token ?? "";
    expect(tokenData).not.toBe("");
    await cluster.delete(secretRef(GIT_SECRET));

    const missing = await buildImage(build, request());

    expect(missing).toEqual({
      kind: "failed",
      reason: expect.stringMatching(
        /^cannot build: Secret kubler-git-credentials does not exist in namespace kubler-builds /,
      ),
    });
    const reason = (missing as { reason: string }).reason;
    expect(reason).toContain(`README's "Deploy to AWS" prerequisites`);
    expect(reason).toContain(
      "kubectl -n kubler-builds create secret generic kubler-git-credentials --from-literal=token=<GitLab token with read_repository>",
    );
    expect(reason).not.toContain(REGISTRY_SECRET);
    expect(k8s.store.list("batch/v1", "Job", NS)).toHaveLength(0);
    expect(finishedDetails()).toMatchObject([{ status: "failed", imageDigest: null, reason }]);
    expect(audit.records.at(-1)).toMatchObject({ action: "image.build", outcome: "failure", reason });

    // The push Secret there without the key its volume mounts: the pod would never start either.
    await cluster.create({
      apiVersion: "v1",
      kind: "Secret",
      metadata: { name: GIT_SECRET, namespace: NS },
      data: { token: tokenData },
    });
    const registry = k8s.store.get("v1", "Secret", NS, REGISTRY_SECRET) as NonNullable<
      ReturnType<typeof jobOf>
    >;
    await cluster.delete(secretRef(REGISTRY_SECRET));
    await cluster.create({
      apiVersion: "v1",
      kind: "Secret",
      metadata: { name: REGISTRY_SECRET, namespace: NS },
      data: { "config.json": tokenData },
    });
    const keyless = await buildImage(build, request({ correlationId: "c-2" }));
    expect(keyless).toMatchObject({
      kind: "failed",
      reason: expect.stringContaining(
        "Secret kubler-registry-push has no key .dockerconfigjson in namespace kubler-builds",
      ),
    });
    expect((keyless as { reason: string }).reason).toContain(
      "kubectl -n kubler-builds create secret docker-registry kubler-registry-push --docker-server=<registry>",
    );
    expect(k8s.store.list("batch/v1", "Job", NS)).toHaveLength(0);

    // Only whether they exist was read: none of their values is in an event or an audit line.
    const written = JSON.stringify([publisher.entries, audit.records]);
    expect(written).not.toContain(tokenData);
    expect(written).not.toContain(Buffer.from(tokenData, "base64").toString());

    // Once they are there, the next request builds.
    await cluster.delete(secretRef(REGISTRY_SECRET));
    await cluster.create({ ...registry, metadata: { name: REGISTRY_SECRET, namespace: NS } });
    expect((await buildImage(build, request({ correlationId: "c-3" }))).kind).toBe("created");
  });

  it("names both Secrets, and the namespace, on a cluster where nothing for builds was set up", async () => {
    const empty = await startBuildTestBed(new Manifests(), { secrets: false });
    try {
      const outcome = await buildImage(empty.build, request());
      expect(outcome).toMatchObject({
        kind: "failed",
        reason: expect.stringMatching(
          /^cannot build: Secret kubler-git-credentials does not exist, Secret kubler-registry-push does not exist in namespace kubler-builds .*kubectl -n kubler-builds create secret generic .*; kubectl -n kubler-builds create secret docker-registry /,
        ),
      });
      expect(empty.k8s.store.list("batch/v1", "Job", NS)).toHaveLength(0);
    } finally {
      await empty.close();
    }
  });

  it("builds as before when Kubler's role may not read Secrets there, and says so in the audit", async () => {
    const forbidden = k8s.faults.add({ verb: "get", resource: "secrets", status: 403 });
    expect((await buildImage(build, request())).kind).toBe("created");
    expect(forbidden.hits).toBe(1);
    expect(audit.records.at(-1)).toMatchObject({
      action: "image.build",
      outcome: "success",
      reason: expect.stringContaining(
        "(build Secrets not checked: Kubler may not get Secrets in kubler-builds",
      ),
    });
  });

  it("lets another environment join a build of the same commit", async () => {
    await buildImage(build, request());
    expect(
      (await buildImage(build, request({ environment: "staging", ref: "main", mrIid: null }))).kind,
    ).toBe("joined");
    const requests = JSON.parse(jobOf(SHA)?.metadata.annotations?.[BUILD_ANNOTATION.REQUESTS] ?? "[]");
    expect(requests.map((r: { environment: string }) => r.environment)).toEqual([
      "review/feature-x",
      "staging",
    ]);
  });

  it("fails, reported on the bus, a commit without kubler.yaml, without an image, or one it cannot build from: no Job, and no status left pending", async () => {
    const reasons = [
      `no kubler.yaml at ${request().sha}: the project is not opted in`,
      "kubler.yaml has no image: the project builds its image in its own CI",
    ];
    build.manifests.text = null;
    expect(await buildImage(build, request())).toEqual({ kind: "failed", reason: reasons[0] });
    build.manifests.text = MANIFEST.replace(/image:\n[\s\S]*?deploy:/, "deploy:").replace(
      "  image: app\n",
      "",
    );
    expect(await buildImage(build, request())).toEqual({ kind: "failed", reason: reasons[1] });
    build.manifests.text = MANIFEST.replace("buildArgs:", "context: ../elsewhere\n  buildArgs:");
    expect((await buildImage(build, request())).kind).toBe("failed");
    expect(publisher.entries).toMatchObject([
      { detailType: "Build Finished", detail: { status: "failed", imageDigest: null, reason: reasons[0] } },
      { detailType: "Build Finished", detail: { status: "failed", imageDigest: null, reason: reasons[1] } },
      { detailType: "Build Finished", detail: { status: "failed", imageDigest: null } },
    ]);
    expect(k8s.store.list("batch/v1", "Job", NS)).toHaveLength(0);
  });

  it("builds only into the project's own repositories when KUBLER_BUILD_IMAGES says which", async () => {
    build.settings = { ...build.settings, images: "registry.example.com/{project_path}" };
    // Another project's repository: refused before any Job, reported and audited.
    build.manifests.text = MANIFEST.replace(
      "registry.example.com/flightjs/flight-management",
      "registry.example.com/payments/api",
    );
    expect(await buildImage(build, request())).toEqual({
      kind: "failed",
      reason:
        'kubler.yaml: image.name "registry.example.com/payments/api" is not this project\'s to push: it must be registry.example.com/flightjs/flight-management or a path below it',
    });
    expect(k8s.store.list("batch/v1", "Job", NS)).toHaveLength(0);
    expect(publisher.entries).toMatchObject([{ detailType: "Build Finished", detail: { status: "failed" } }]);
    expect(audit.records.at(-1)).toMatchObject({ action: "image.build", outcome: "failure" });
    // A prefix of the name is not enough: flight-management-evil is another repository.
    build.manifests.text = MANIFEST.replace(
      "flightjs/flight-management\n",
      "flightjs/flight-management-evil\n",
    );
    expect((await buildImage(build, request())).kind).toBe("failed");
    // Its own repository, or a path below it, builds.
    build.manifests.text = MANIFEST.replace(
      "flightjs/flight-management\n",
      "flightjs/flight-management/api\n",
    );
    expect((await buildImage(build, request())).kind).toBe("created");
  });

  it("fails, reported on the bus, a request one build Job has no room for, rather than a retry that can only fail again", async () => {
    for (let i = 0; i < MAX_BUILD_REQUESTS; i++) {
      await buildImage(build, request({ environment: `review/branch-${i}`, correlationId: `c-${i}` }));
    }
    const outcome = await buildImage(
      build,
      request({ environment: "review/one-too-many", correlationId: "c-x" }),
    );
    expect(outcome).toMatchObject({ kind: "failed", reason: expect.stringContaining("review/one-too-many") });
    expect(publisher.entries).toMatchObject([
      { detailType: "Build Finished", detail: { environment: "review/one-too-many", status: "failed" } },
    ]);
    expect(audit.records.at(-1)).toMatchObject({ action: "image.build", outcome: "failure" });
  });

  it("fails an image name longer than a registry takes (255 characters) before building, not at the push after it", async () => {
    const long = `registry.example.com/flightjs/${"a".repeat(226)}`;
    expect(long).toHaveLength(256);
    build.manifests.text = MANIFEST.replace("registry.example.com/flightjs/flight-management", long);
    // kubler.yaml's validation refuses it (as plan-steps does, before any Build Requested).
    expect(await buildImage(build, request())).toEqual({
      kind: "failed",
      reason: expect.stringMatching(
        /^kubler\.yaml: image\.name: expected an image repository \(registry\/path, no tag\) of at most 255 characters, registry included, found "registry\.example\.com\/flightjs\/a+$/,
      ),
    });
    expect(k8s.store.list("batch/v1", "Job", NS)).toHaveLength(0);
    expect(publisher.entries).toMatchObject([{ detailType: "Build Finished", detail: { status: "failed" } }]);
    // 255 builds.
    build.manifests.text = MANIFEST.replace(
      "registry.example.com/flightjs/flight-management",
      long.slice(0, 255),
    );
    expect((await buildImage(build, request())).kind).toBe("created");
  });

  it("builds a commit of a SHA-256 repository, whose 64-character SHA cannot be a label value", async () => {
    // GitLab's SHA-256 repositories (the catalog accepts 64 hex digits): a label value holds 63.
    const sha256 = "a".repeat(64);
    expect(await buildImage(build, request({ sha: sha256 }))).toEqual({
      kind: "created",
      job: buildJobName(gitlab, sha256),
    });
    expect(jobOf(sha256)?.metadata.annotations?.[BUILD_ANNOTATION.SHA]).toBe(sha256);
    await untilFinished(sha256);
    expect((await reconcileBuilds(reconcile)).reported).toEqual([
      `${buildJobName(gitlab, sha256)} → review/feature-x: succeeded`,
    ]);
    expect(finishedDetails()).toMatchObject([{ sha: sha256, status: "succeeded" }]);
  });
});

describe("joining a finished build", () => {
  const ttlOf = (sha: string) =>
    (jobOf(sha)?.spec as { ttlSecondsAfterFinished?: number } | undefined)?.ttlSecondsAfterFinished;
  const finishedAt = (sha: string) => {
    const status = jobOf(sha)?.status as
      | { conditions?: { type: string; lastTransitionTime: string }[] }
      | undefined;
    const conditions = status?.conditions;
    return Date.parse(conditions?.find((c) => c.type === "Complete")?.lastTransitionTime ?? "");
  };

  it("drops the TTL of a finished Job an environment joins, so nothing deletes it before that one hears; reconcile sets it again", async () => {
    await buildImage(build, request());
    await untilFinished(SHA);
    expect(ttlOf(SHA)).toBeUndefined();
    reconcile.clock = new FixedClock(new Date(finishedAt(SHA) + 60_000));
    await reconcileBuilds(reconcile);
    expect(ttlOf(SHA)).toBe(86_400);
    const minuteLeft = 86_400 - 60;
    reconcile.clock = new FixedClock(new Date(finishedAt(SHA) + minuteLeft * 1000));

    expect(
      (await buildImage(build, request({ environment: "staging", ref: "main", mrIid: null }))).kind,
    ).toBe("joined");

    expect(ttlOf(SHA)).toBeUndefined();
    expect((await reconcileBuilds(reconcile)).reported).toEqual([
      `${buildJobName(gitlab, SHA)} → staging: succeeded`,
    ]);
    // Reported a minute before the day was out: kept an hour more, for a request just after.
    expect(ttlOf(SHA)).toBe(minuteLeft + REPORTED_KEEP_SECONDS);
  });
});

describe("reconcile of builds", () => {
  it("reports a succeeded build once, with the digest from the pod's termination message", async () => {
    await buildImage(build, request());
    await untilFinished(SHA);
    const first = await reconcileBuilds(reconcile);
    const second = await reconcileBuilds(reconcile);
    expect(first.reported).toEqual([`${buildJobName(gitlab, SHA)} → review/feature-x: succeeded`]);
    expect(second.reported).toEqual([]);
    expect(publisher.entries).toEqual([
      {
        detailType: "Build Finished",
        detail: {
          ...request(),
          status: "succeeded",
          imageDigest: simulatedDigest(jobOf(SHA) as never),
          reason: null,
        },
      },
    ]);
  });

  it("reports a failed build with the Job's reason and the last log lines", async () => {
    await buildImage(build, request({ sha: FAILING_SHA }));
    await untilFinished(FAILING_SHA);
    await reconcileBuilds(reconcile);
    await reconcileBuilds(reconcile);
    expect(publisher.entries).toHaveLength(1);
    const detail = publisher.entries[0]?.detail as Detail<"Build Finished">;
    expect(detail).toMatchObject({ status: "failed", imageDigest: null, sha: FAILING_SHA });
    const lines = detail.reason?.split("\n") ?? [];
    expect(lines[0]).toBe("BackoffLimitExceeded: Job has reached the specified backoff limit");
    expect(lines[1]).toBe("--- last log lines ---");
    expect(lines.at(-1)).toContain("error: failed to solve");
  });

  it("reports a failed build whose log the API will not serve, with the Job's reason, and audits why", async () => {
    await buildImage(build, request());
    await untilFinished(SHA);
    // Past its deadline while the clone's image could not be pulled: no step ended, none has a log.
    const job = jobOf(SHA) as NonNullable<ReturnType<typeof jobOf>>;
    const verdict = { reason: "DeadlineExceeded", message: "Job was active longer than specified deadline" };
    k8s.store.put({
      ...job,
      status: { failed: 1, conditions: [{ type: "Failed", status: "True", ...verdict }] },
    });
    const [pod] = k8s.store.list("v1", "Pod", NS);
    const waiting = (name: string, reason: string) => ({ name, state: { waiting: { reason } } });
    k8s.store.put({
      ...(pod as NonNullable<typeof pod>),
      status: {
        phase: "Pending",
        initContainerStatuses: [waiting("clone", "ImagePullBackOff"), waiting("build", "PodInitializing")],
        containerStatuses: [waiting("push", "PodInitializing")],
      },
    });
    const refused = k8s.faults.add({
      verb: "get",
      resource: "pods",
      subresource: "log",
      status: 400,
      message: `container "build" in pod "${pod?.metadata.name}" is waiting to start: PodInitializing`,
    });

    const report = await reconcileBuilds(reconcile);

    expect(refused.hits).toBe(1);
    expect(report.reported).toEqual([`${buildJobName(gitlab, SHA)} → review/feature-x: failed`]);
    expect(finishedDetails()).toMatchObject([
      {
        status: "failed",
        imageDigest: null,
        reason: "DeadlineExceeded: Job was active longer than specified deadline",
      },
    ]);
    expect(audit.records.at(-1)).toMatchObject({
      action: "image.build",
      outcome: "failure",
      reason: expect.stringMatching(
        /^DeadlineExceeded: .* \(log not read: .*waiting to start: PodInitializing\)$/,
      ),
    });
    expect((await reconcileBuilds(reconcile)).reported).toEqual([]);
  });

  it("reports a failed build without its log while the log is unavailable, once", async () => {
    await buildImage(build, request({ sha: FAILING_SHA }));
    await untilFinished(FAILING_SHA);
    const down = k8s.faults.add({ verb: "get", resource: "pods", subresource: "log", status: 503 });

    const first = await reconcileBuilds(reconcile);

    expect(down.hits).toBeGreaterThan(0);
    expect(first.reported).toHaveLength(1);
    expect(first.skipped).toEqual([]);
    expect(finishedDetails()[0]?.reason).toBe(
      "BackoffLimitExceeded: Job has reached the specified backoff limit",
    );
    down.remove();
    expect((await reconcileBuilds(reconcile)).reported).toEqual([]);
    expect(publisher.entries).toHaveLength(1);
  });

  it("lists again from the first page when a continue token expires, reporting each Job once", async () => {
    const shas = ["a", "b", "c", "d", "e"].map((c) => c.repeat(40));
    for (const sha of shas) await buildImage(build, request({ sha }));
    for (const sha of shas) await untilFinished(sha);
    const gone = k8s.faults.add({
      verb: "list",
      resource: "jobs",
      continued: true,
      status: 410,
      message: "The provided continue parameter is too old to display a consistent list result.",
      times: 1,
    });

    const report = await reconcileBuilds(reconcile, 2);

    expect(gone.hits).toBe(1);
    expect(report.examined).toBe(shas.length);
    expect(report.reported).toHaveLength(shas.length);
    expect(report.skipped).toEqual([]);
    expect(
      finishedDetails()
        .map((d) => d.sha)
        .sort(),
    ).toEqual(shas);
  });

  it("stops taking up finished Jobs in time for its Lambda's timeout, so none is marked reported and then killed before its publish", async () => {
    // After an outage: many finished Jobs not reported yet, and a slow API (5 s a call).
    const shas = ["a", "b", "c", "d", "e", "f"].map((c) => c.repeat(40));
    for (const sha of shas) await buildImage(build, request({ sha }));
    for (const sha of shas) await untilFinished(sha);
    // Lambda ends the invocation at its timeout (infra/function-specs.ts): a publish after it never happens.
    const lambda = slowLambda(bed, {
      callMs: 5_000,
      timeoutMs: FUNCTION_SPECS.reconcile.timeout.toMilliseconds(),
    });

    await Promise.race([
      reconcileBuilds({
        ...reconcile,
        ...lambda.deps,
        deadline: new Date(lambda.start + RECONCILE_LIMITS.buildsBudgetMs),
      }),
      lambda.killed,
    ]);
    // The next minute's run, the API healthy again: every build reported, each once.
    await reconcileBuilds(reconcile);
    expect(finishedDetails().map((d) => d.sha)).toEqual(shas);
  });

  it("audits a finished build it cannot report, so on-call sees why its Build Finished does not come", async () => {
    await buildImage(build, request());
    await untilFinished(SHA);
    // Kubler's role may read Jobs but not patch them (an RBAC slip): the report cannot be marked.
    const refused = k8s.faults.add({ verb: "apply", resource: "jobs", status: 403 });
    const before = audit.records.length;

    const report = await reconcileBuilds(reconcile);

    expect(refused.hits).toBeGreaterThan(0);
    expect(report.skipped).toEqual([
      { job: buildJobName(gitlab, SHA), reason: expect.stringMatching(/^not reconciled: /) },
    ]);
    expect(publisher.entries).toEqual([]);
    expect(audit.records.slice(before)).toEqual([
      expect.objectContaining({
        function: "reconcile",
        action: "image.reconcile",
        outcome: "failure",
        reason: expect.stringContaining(
          `skipped 1 (1 failed): ${buildJobName(gitlab, SHA)}: not reconciled: `,
        ),
      }),
    ]);
    // A run with nothing skipped writes no such line.
    refused.remove();
    await reconcileBuilds(reconcile);
    expect(audit.records.filter((r) => r.action === "image.reconcile")).toHaveLength(1);
  });

  it("publishes exactly one event per Job and environment when two reconciles race", async () => {
    await buildImage(build, request());
    await buildImage(
      build,
      request({ environment: "staging", ref: "main", mrIid: null, correlationId: "c-3" }),
    );
    await untilFinished(SHA);
    const reports = await Promise.all([reconcileBuilds(reconcile), reconcileBuilds(reconcile)]);
    expect(reports.flatMap((r) => r.reported).sort()).toEqual([
      `${buildJobName(gitlab, SHA)} → review/feature-x: succeeded`,
      `${buildJobName(gitlab, SHA)} → staging: succeeded`,
    ]);
    expect(
      finishedDetails()
        .map((d) => d.environment)
        .sort(),
    ).toEqual(["review/feature-x", "staging"]);
    expect(
      finishedDetails()
        .map((d) => d.correlationId)
        .sort(),
    ).toEqual(["c-1", "c-3"]);
  });

  it("reports an environment that joins after the report, without reporting the first again", async () => {
    await buildImage(build, request());
    await untilFinished(SHA);
    await reconcileBuilds(reconcile);
    await buildImage(build, request({ environment: "staging", ref: "main", mrIid: null }));
    await reconcileBuilds(reconcile);
    expect(finishedDetails().map((d) => d.environment)).toEqual(["review/feature-x", "staging"]);
  });

  it("reports again to an environment that asks again after its report (close, then reopen), not for a redelivery", async () => {
    await buildImage(build, request());
    await untilFinished(SHA);
    await reconcileBuilds(reconcile);
    // The bus redelivers the same request: nothing new.
    expect((await buildImage(build, request())).kind).toBe("already running");
    await reconcileBuilds(reconcile);
    expect(finishedDetails().map((d) => d.correlationId)).toEqual(["c-1"]);
    // The MR was closed (stopped) and reopened at the same commit: plan-steps asks again, and the
    // environment must get its Build Finished (so it is deployed) from the Job that is still there.
    expect((await buildImage(build, request({ correlationId: "c-reopen" }))).kind).toBe("joined");
    await reconcileBuilds(reconcile);
    expect(finishedDetails().map((d) => d.correlationId)).toEqual(["c-1", "c-reopen"]);
  });

  it("builds again a commit asked for again after its build failed, instead of reporting the old failure until the Job's TTL", async () => {
    await buildImage(build, request());
    await untilFinished(SHA);
    // The push failed (the registry was down for a minute): the build itself is fine.
    const first = jobOf(SHA) as NonNullable<ReturnType<typeof jobOf>>;
    const verdict = {
      reason: "BackoffLimitExceeded",
      message: "Job has reached the specified backoff limit",
    };
    k8s.store.put({
      ...first,
      status: { failed: 1, conditions: [{ type: "Failed", status: "True", ...verdict }] },
    });
    await reconcileBuilds(reconcile);
    expect(finishedDetails()).toMatchObject([{ correlationId: "c-1", status: "failed" }]);

    // The MR closed and reopened (a new request): the build runs again, in a new Job of the same name.
    expect(await buildImage(build, request({ correlationId: "c-reopen" }))).toEqual({
      kind: "created",
      job: buildJobName(gitlab, SHA),
    });
    expect(jobOf(SHA)?.metadata.uid).not.toBe(first.metadata.uid);
    // Its redelivery joins the new build rather than building a third time.
    expect((await buildImage(build, request({ correlationId: "c-reopen" }))).kind).toBe("already running");
    await untilFinished(SHA);
    await reconcileBuilds(reconcile);
    expect(finishedDetails()).toMatchObject([
      { correlationId: "c-1", status: "failed" },
      { correlationId: "c-reopen", status: "succeeded" },
    ]);
  });

  it("tells the environments still waiting on a failed build of its failure, then builds it again for the new request", async () => {
    await buildImage(build, request({ sha: FAILING_SHA }));
    await untilFinished(FAILING_SHA);
    // Failed, not reported yet, when another environment asks for the same commit.
    const first = jobOf(FAILING_SHA);
    expect(
      (
        await buildImage(
          build,
          request({ sha: FAILING_SHA, environment: "staging", ref: "main", correlationId: "c-s" }),
        )
      ).kind,
    ).toBe("created");
    expect(jobOf(FAILING_SHA)?.metadata.uid).not.toBe(first?.metadata.uid);
    await untilFinished(FAILING_SHA);
    await reconcileBuilds(reconcile);
    expect(finishedDetails().map((d) => [d.environment, d.status])).toEqual([
      ["review/feature-x", "failed"],
      ["staging", "failed"],
    ]);
  });

  it("tells a request that joins a failed build while it is being replaced of that failure, before the Job goes", async () => {
    await buildImage(build, request({ sha: FAILING_SHA }));
    await untilFinished(FAILING_SHA);
    await reconcileBuilds(reconcile);
    // Between this attempt's read and its delete, staging's request lands on the failed Job.
    const deleteJob = cluster.delete.bind(cluster);
    let joins = 0;
    vi.spyOn(cluster, "delete").mockImplementation(async (ref, preconditions) => {
      const current = jobOf(FAILING_SHA);
      if (joins++ === 0 && current) {
        const staging = {
          environment: "staging",
          correlationId: "c-s",
          ref: "main",
          pipelineId: null,
          mrIid: null,
        };
        const requests = JSON.parse(current.metadata.annotations?.[BUILD_ANNOTATION.REQUESTS] ?? "[]");
        k8s.store.put({
          ...current,
          metadata: {
            ...current.metadata,
            annotations: {
              ...current.metadata.annotations,
              [BUILD_ANNOTATION.REQUESTS]: JSON.stringify([...requests, staging]),
            },
          },
        });
      }
      return deleteJob(ref, preconditions);
    });

    expect((await buildImage(build, request({ sha: FAILING_SHA, correlationId: "c-reopen" }))).kind).toBe(
      "created",
    );

    expect(joins).toBe(2);
    const requests = JSON.parse(
      jobOf(FAILING_SHA)?.metadata.annotations?.[BUILD_ANNOTATION.REQUESTS] ?? "[]",
    );
    expect(requests.map((r: { correlationId: string }) => r.correlationId)).toEqual(["c-reopen"]);
    expect(finishedDetails().map((d) => [d.correlationId, d.status])).toEqual([
      ["c-1", "failed"],
      ["c-s", "failed"],
    ]);
  });

  it("reports the newest request of an environment stopped and asked again while its build ran", async () => {
    const at = (time: string) => `2026-11-21T${time}.000Z`;
    await buildImage(build, request({ correlationId: "c-open", factAt: at("10:00:00") }));
    // Closed at 10:01 (a stop), reopened at 10:02 at the same commit, before any report.
    const reopened = request({ correlationId: "c-reopen", factAt: at("10:02:00") });
    expect((await buildImage(build, reopened)).kind).toBe("joined");
    expect((await buildImage(build, request({ correlationId: "c-late", factAt: at("10:00:00") }))).kind).toBe(
      "already running",
    );
    await untilFinished(SHA);
    await reconcileBuilds(reconcile);
    expect(finishedDetails()).toMatchObject([{ correlationId: "c-reopen", factAt: at("10:02:00") }]);
  });

  it("leaves running builds alone, and retries a report whose publish failed", async () => {
    await buildImage(build, request());
    await untilFinished(SHA);
    publisher.failNext = 1;
    const failed = await reconcileBuilds(reconcile);
    expect(failed.reported).toEqual([]);
    expect(failed.skipped[0]?.reason).toMatch(/^not reconciled: /);
    expect((await reconcileBuilds(reconcile)).reported).toHaveLength(1);
    expect(publisher.entries).toHaveLength(1);
  });

  it("after a partial publish, reports again only the environments whose event did not go out", async () => {
    await buildImage(build, request());
    await buildImage(build, exampleStagingRequest());
    await untilFinished(SHA);
    // PutEvents took review's entry and failed staging's.
    publisher.failEntry = (entry) => (entry.detail as Detail<"Build Finished">).environment === "staging";
    const partial = await reconcileBuilds(reconcile);
    expect(partial.reported).toEqual([`${buildJobName(gitlab, SHA)} → review/feature-x: succeeded`]);
    expect(partial.skipped).toHaveLength(1);
    expect(
      audit.records.filter((r) => r.action === "image.build" && r.subject.environment === "review/feature-x"),
    ).toHaveLength(2);
    publisher.failEntry = null;
    const retried = await reconcileBuilds(reconcile);
    expect(retried.reported).toEqual([`${buildJobName(gitlab, SHA)} → staging: succeeded`]);
    // Each environment got exactly one Build Finished.
    expect(finishedDetails().map((d) => d.environment)).toEqual(["review/feature-x", "staging"]);
    expect((await reconcileBuilds(reconcile)).reported).toEqual([]);
  });
});

describe("reconcile of builds racing a build run again", () => {
  it("does not build again while the failed Job's Build Finished is being published: the request is retried, and what did not go out stays on that Job", async () => {
    await buildImage(build, request({ sha: FAILING_SHA }));
    await untilFinished(FAILING_SHA);
    const first = jobOf(FAILING_SHA);
    // After reconcile's mark, staging asks for the same commit. Then PutEvents fails.
    const staging = exampleStagingRequest({ sha: FAILING_SHA });
    let racing: unknown = null;
    const racingPublisher: ReconcileBuildsDeps["publisher"] = {
      publish: async (entries) => {
        racing ??= await buildImage(build, staging).catch((error: unknown) => error);
        publisher.failNext = 1;
        return publisher.publish(entries);
      },
    };

    const partial = await reconcileBuilds({ ...reconcile, publisher: racingPublisher });

    // Thrown back to the bus, which delivers it again; the failed Job, and who waits on it, stay.
    expect(racing).toBeInstanceOf(KubernetesConflictError);
    expect(jobOf(FAILING_SHA)?.metadata.uid).toBe(first?.metadata.uid);
    expect(partial.reported).toEqual([]);
    expect((await reconcileBuilds(reconcile)).reported).toEqual([
      `${buildJobName(gitlab, FAILING_SHA)} → review/feature-x: failed`,
    ]);
    expect((await buildImage(build, staging)).kind).toBe("created");
    await untilFinished(FAILING_SHA);
    await reconcileBuilds(reconcile);
    expect(finishedDetails().map((d) => [d.environment, d.correlationId])).toEqual([
      ["review/feature-x", "c-1"],
      ["staging", "c-s"],
    ]);
    expect((await reconcileBuilds(reconcile)).reported).toEqual([]);
  });
});

describe("build-image consumer", () => {
  const envelope = (detail: unknown) => ({
    version: "0",
    id: "e-1",
    "detail-type": "Build Requested",
    source: sourceOf("Build Requested"),
    account: "000000000000",
    time: "2026-11-21T10:00:00Z",
    region: "local",
    resources: [],
    detail,
  });
  const attemptFailed = (message: string, correlationId: string | null) =>
    expect(audit.last()).toMatchObject({
      action: "image.build",
      outcome: "failure",
      reason: `attempt failed, left to the bus to retry: ${message}`,
      function: "build-image",
      correlationId,
      subject: expect.objectContaining({ eventId: "e-1" }),
    });

  it("audits an attempt whose kubler.yaml cannot be read before the bus retries it", async () => {
    build.manifests.readManifest = async () => {
      throw new UnavailableError("GitLab answered 503 three times");
    };
    await expect(createBuildImageConsumer(build)(envelope(request()))).rejects.toThrow("GitLab answered 503");
    attemptFailed("GitLab answered 503 three times", "c-1");
    expect(audit.last()?.subject).toMatchObject({
      environment: "review/feature-x",
      project: gitlab.projectPath,
    });
  });

  it("audits an attempt Kubernetes refuses or cannot answer", async () => {
    vi.spyOn(cluster, "create").mockRejectedValueOnce(new KubernetesForbiddenError("jobs is forbidden", 403));
    const consume = createBuildImageConsumer(build);
    await expect(consume(envelope(request()))).rejects.toThrow("jobs is forbidden");
    attemptFailed("jobs is forbidden", "c-1");
    vi.spyOn(cluster, "create").mockRejectedValueOnce(
      new KubernetesUnavailableError("connect ECONNREFUSED", 503),
    );
    await expect(consume(envelope(request()))).rejects.toThrow("ECONNREFUSED");
    attemptFailed("connect ECONNREFUSED", "c-1");
  });

  it("audits a malformed envelope, with what it can read of it", async () => {
    await expect(createBuildImageConsumer(build)(envelope({ correlationId: "c-9" }))).rejects.toThrow();
    expect(audit.records).toEqual([
      expect.objectContaining({
        action: "image.build",
        outcome: "failure",
        reason: expect.stringMatching(/^attempt failed, left to the bus to retry: /),
        correlationId: "c-9",
        gitlab: null,
      }),
    ]);
  });
});
