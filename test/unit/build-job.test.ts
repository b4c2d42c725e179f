import { describe, expect, it } from "vitest";
import {
  BUILD_ANNOTATION,
  BUILD_CONTAINER,
  BUILD_FINALIZER,
  BuildSpecError,
  buildDigest,
  buildJob,
  buildJobName,
  buildState,
  CLONE_CONTAINER,
  FAILURE_LOG_LINES,
  failedContainer,
  failureReason,
  holdingFinalizers,
  othersThanBuildFinalizer,
  PUSH_CONTAINER,
  REPORTED_KEEP_SECONDS,
  readBuildRequests,
  readReported,
  reportedTtl,
  reportsSettled,
  withBuildRequest,
} from "../../shared/domain/build-job.js";
import type { Detail } from "../../shared/domain/catalog.js";
import type { KubeObject } from "../../shared/domain/kube-object.js";

const SHA = "da1560886d4f094c3e6c9ef40349f7d38b5d27d7";
const GITLAB = { instance: "https://gitlab.example.com", projectId: 15, projectPath: "group/app" };
const REQUEST: Detail<"Build Requested"> = {
  correlationId: "0d8f2a3c-6b1e-4f7a-9c2d-1e5b7a9c3d4f",
  gitlab: GITLAB,
  environment: "review/feature-x",
  sha: SHA,
  ref: "feature-x",
  pipelineId: null,
  mrIid: 7,
};
const IMAGE = {
  name: "registry.example.com/group/app",
  context: "app",
  dockerfile: "docker/Dockerfile.prod",
  buildArgs: { NODE_ENV: "production", A_FLAG: "$(rm -rf /)" },
};
const SETTINGS = {
  namespace: "kubler-builds",
  gitSecret: { name: "kubler-git-credentials", key: "token" },
  registrySecret: "kubler-registry-push",
};

type Container = {
  name: string;
  image: string;
  command: string[];
  args?: string[];
  env: { name: string; value?: string; valueFrom?: unknown }[];
  resources: { requests: Record<string, string>; limits: Record<string, string> };
  securityContext: Record<string, unknown>;
  volumeMounts?: { name: string; mountPath: string; readOnly?: boolean }[];
};
type PodSpec = { initContainers: Container[]; containers: Container[]; volumes: unknown[] };
type JobSpec = {
  backoffLimit: number;
  podFailurePolicy?: { rules: Record<string, unknown>[] };
  activeDeadlineSeconds: number;
  ttlSecondsAfterFinished?: number;
  template: {
    metadata: { labels: Record<string, string>; annotations: Record<string, string> };
    spec: PodSpec;
  };
};
const specOf = (job: KubeObject) => job.spec as JobSpec;

describe("buildJobName", () => {
  it("is the same for the same project and SHA, and different for another SHA, project or instance", () => {
    const name = buildJobName(GITLAB, SHA);
    expect(buildJobName({ ...GITLAB }, SHA)).toBe(name);
    expect(name).toMatch(/^build-group-app-da1560886d4f-[0-9a-f]{8}$/);
    const others = [
      buildJobName(GITLAB, `${SHA.slice(0, -1)}8`),
      buildJobName({ ...GITLAB, projectId: 16 }, SHA),
      buildJobName({ ...GITLAB, instance: "https://gitlab.other.example" }, SHA),
    ];
    expect(new Set([name, ...others]).size).toBe(4);
  });

  it("stays a DNS-1123 label of at most 63 characters for any project path", () => {
    for (const path of ["a".repeat(200), "Group/Sub_Group/APP.name", "---/___", "x"]) {
      const name = buildJobName({ ...GITLAB, projectPath: path }, SHA);
      expect(name.length).toBeLessThanOrEqual(63);
      expect(name).toMatch(/^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/);
    }
  });
});

describe("buildJob", () => {
  const job = buildJob(REQUEST, IMAGE, SETTINGS);
  const spec = specOf(job);
  const [clone, build] = spec.template.spec.initContainers as [Container, Container];
  const [push] = spec.template.spec.containers as [Container];

  it("is named for the project and SHA, in the builds namespace, labelled for Kubler", () => {
    expect(job.metadata.name).toBe(buildJobName(GITLAB, SHA));
    expect(job.metadata.namespace).toBe("kubler-builds");
    expect(job.metadata.labels).toEqual({
      "app.kubernetes.io/managed-by": "kubler",
      "app.kubernetes.io/component": "build",
      "kubler.dev/project-id": "15",
      "kubler.dev/environment": "review-feature-x",
      "kubler.dev/sha": SHA,
      "kubler.dev/correlation-id": REQUEST.correlationId,
    });
    expect(spec.template.metadata.labels).toEqual(job.metadata.labels);
    expect(readBuildRequests(job)).toEqual([
      {
        environment: "review/feature-x",
        correlationId: REQUEST.correlationId,
        ref: "feature-x",
        pipelineId: null,
        mrIid: 7,
      },
    ]);
  });

  it("has no credential in its spec: the clone's token comes from a Secret by reference", () => {
    const envs = [...clone.env, ...build.env, ...push.env];
    expect(envs.filter((env) => env.valueFrom)).toEqual([
      {
        name: "GIT_TOKEN",
        valueFrom: { secretKeyRef: { name: "kubler-git-credentials", key: "token" } },
      },
    ]);
    // Every literal value is one of these, none a secret.
    expect(envs.flatMap((env) => (env.value === undefined ? [] : [env.name]))).toEqual([
      "REPOSITORY_URL",
      "SHA",
      "BUILDKITD_FLAGS",
      "HOME",
    ]);
    expect(clone.env.find((env) => env.name === "REPOSITORY_URL")?.value).toBe(
      "https://gitlab.example.com/group/app.git",
    );
    expect(spec.template.spec.volumes).toContainEqual({
      name: "registry",
      secret: {
        secretName: "kubler-registry-push",
        items: [{ key: ".dockerconfigjson", path: "config.json" }],
      },
    });
    expect(JSON.stringify(job)).not.toMatch(/glpat-|password|oauth2:[^%]/i);
  });

  it("keeps every credential out of the build step, which runs the project's Dockerfile", () => {
    // Rootless BuildKit has no process sandbox here: a RUN step reaches whatever its container holds.
    const mounted = (c: Container) => (c.volumeMounts ?? []).map((m) => m.name);
    expect(build.env?.some((env) => env.valueFrom)).toBe(false);
    expect(mounted(build)).not.toContain("registry");
    expect(mounted(build)).toEqual(["workspace", "buildkitd", "output"]);
    // The registry Secret is mounted in the push step alone; the git token reaches the clone alone.
    expect(mounted(push)).toEqual(["output", "registry"]);
    expect(mounted(clone)).toEqual(["workspace"]);
    expect(spec.template.spec.initContainers?.map((c) => c.name)).toEqual([CLONE_CONTAINER, BUILD_CONTAINER]);
    expect(push.name).toBe(PUSH_CONTAINER);
  });

  it("builds with the manifest's context, Dockerfile and build args, and pushes <image>:<sha>", () => {
    expect(build.image).toMatch(/^moby\/buildkit:v[\d.]+-rootless$/);
    expect(build.args).toEqual([
      "build",
      "--frontend",
      "dockerfile.v0",
      "--local",
      "context=/workspace/app",
      "--local",
      "dockerfile=/workspace/docker",
      "--opt",
      "filename=Dockerfile.prod",
      "--opt",
      "build-arg:A_FLAG=$(rm -rf /)",
      "--opt",
      "build-arg:NODE_ENV=production",
      "--output",
      "type=oci,dest=/output/image.tar",
    ]);
    // No shell anywhere a build arg or the target goes: each is one argument, whatever it holds.
    expect(build.command).toEqual(["buildctl-daemonless.sh"]);
    expect(push.command).toEqual(["skopeo"]);
    expect(push.image).toMatch(/^quay\.io\/skopeo\/stable:v[\d.]+$/);
    expect(push.args).toEqual([
      "--tmpdir",
      "/output",
      "copy",
      "--quiet",
      "--preserve-digests",
      "--authfile",
      "/home/user/.docker/config.json",
      "--digestfile",
      "/dev/termination-log",
      "oci-archive:/output/image.tar",
      `docker://registry.example.com/group/app:${SHA}`,
    ]);
    expect(job.metadata.annotations?.[BUILD_ANNOTATION.IMAGE]).toBe(`registry.example.com/group/app:${SHA}`);
  });

  it("runs BuildKit rootless and unconfined as its docs require, and never as root", () => {
    expect(build.securityContext).toMatchObject({
      runAsUser: 1000,
      runAsGroup: 1000,
      runAsNonRoot: true,
      seccompProfile: { type: "Unconfined" },
      appArmorProfile: { type: "Unconfined" },
    });
    expect(build.securityContext).not.toHaveProperty("privileged");
    expect(spec.template.metadata.annotations).toEqual({
      "container.apparmor.security.beta.kubernetes.io/build": "unconfined",
      "container.seccomp.security.alpha.kubernetes.io/build": "unconfined",
    });
    expect(build.env).toContainEqual({ name: "BUILDKITD_FLAGS", value: "--oci-worker-no-process-sandbox" });
    expect(clone.securityContext).toMatchObject({ runAsNonRoot: true, allowPrivilegeEscalation: false });
    expect(push.securityContext).toMatchObject({
      runAsNonRoot: true,
      allowPrivilegeEscalation: false,
      readOnlyRootFilesystem: true,
      capabilities: { drop: ["ALL"] },
    });
  });

  it("is bounded: resources, a deadline, one try; no TTL until those waiting on it have heard", () => {
    expect(build.resources.requests).toMatchObject({ cpu: expect.any(String), memory: expect.any(String) });
    expect(build.resources.limits).toMatchObject({ cpu: expect.any(String), memory: expect.any(String) });
    expect(clone.resources.limits).toMatchObject({ cpu: expect.any(String), memory: expect.any(String) });
    expect(push.resources.limits).toMatchObject({ cpu: expect.any(String), memory: expect.any(String) });
    expect(spec.activeDeadlineSeconds).toBe(1800);
    expect(spec.backoffLimit).toBe(0);
    expect(spec.ttlSecondsAfterFinished).toBeUndefined();
    expect(
      specOf(buildJob(REQUEST, IMAGE, { ...SETTINGS, activeDeadlineSeconds: 600 })).activeDeadlineSeconds,
    ).toBe(600);
  });

  it("is held by Kubler's finalizer, a name under Kubler's own domain, so a deletion waits for its report", () => {
    expect(job.metadata.finalizers).toEqual([BUILD_FINALIZER]);
    expect(BUILD_FINALIZER).toMatch(/^kubler\.dev\//);
  });

  it("runs again in a new pod when the cluster ended the pod (eviction, preemption, drain), not when the build failed", () => {
    // A pod the cluster ends carries condition DisruptionTarget; Ignore starts a new pod without
    // counting it against backoffLimit 0, so any other failure still fails the build at once:
    // https://kubernetes.io/docs/concepts/workloads/controllers/job/#pod-failure-policy
    expect(spec.podFailurePolicy).toEqual({
      rules: [{ action: "Ignore", onPodConditions: [{ type: "DisruptionTarget", status: "True" }] }],
    });
    expect(spec.backoffLimit).toBe(0);
    // Kubernetes refuses a pod failure policy with any other restart policy.
    expect(spec.template.spec).toMatchObject({ restartPolicy: "Never" });
  });

  it("clones at the SHA with the token as a header, never in the URL", () => {
    expect(clone.name).toBe(CLONE_CONTAINER);
    expect(clone.command[2]).toContain('git fetch -q --depth 1 origin "$SHA"');
    expect(clone.command[2]).toContain("GIT_CONFIG_VALUE_0");
    expect(clone.env.find((env) => env.name === "SHA")?.value).toBe(SHA);
  });

  it("refuses an image outside the project's repositories when the settings name them", () => {
    const limited = { ...SETTINGS, images: "registry.example.com/{project_path}" };
    expect(() => buildJob(REQUEST, { ...IMAGE, name: "registry.example.com/other/app" }, limited)).toThrow(
      new BuildSpecError(
        'kubler.yaml: image.name "registry.example.com/other/app" is not this project\'s to push: it must be registry.example.com/group/app or a path below it',
      ),
    );
    expect(() => buildJob(REQUEST, { ...IMAGE, name: "registry.example.com/group/app-2" }, limited)).toThrow(
      BuildSpecError,
    );
    // GitLab project paths may have capitals; registries name repositories in lower case.
    const upper = { ...REQUEST, gitlab: { ...REQUEST.gitlab, projectPath: "Group/App" } };
    expect(() =>
      buildJob(upper, { ...IMAGE, name: "registry.example.com/group/app/web" }, limited),
    ).not.toThrow();
  });

  it("refuses a context or Dockerfile outside the repository", () => {
    expect(() => buildJob(REQUEST, { ...IMAGE, context: "../other" }, SETTINGS)).toThrow(
      new BuildSpecError('kubler.yaml: image.context "../other" is not a path inside the repository'),
    );
    expect(() => buildJob(REQUEST, { ...IMAGE, dockerfile: "/etc/Dockerfile" }, SETTINGS)).toThrow(
      BuildSpecError,
    );
  });

  it("leaves the correlation label off when the id cannot be a label value", () => {
    const odd = buildJob({ ...REQUEST, correlationId: "not a label/value" }, IMAGE, SETTINGS);
    expect(odd.metadata.labels).not.toHaveProperty("kubler.dev/correlation-id");
    expect(readBuildRequests(odd)[0]?.correlationId).toBe("not a label/value");
  });
});

describe("withBuildRequest", () => {
  const job = buildJob(REQUEST, IMAGE, SETTINGS);

  it("adds another environment's request once, and nothing for a repeated one", () => {
    const staging = { ...REQUEST, environment: "staging", ref: "main", mrIid: null, correlationId: "c-2" };
    const annotations = withBuildRequest(job, staging);
    expect(annotations).not.toBeNull();
    const joined = {
      ...job,
      metadata: { ...job.metadata, annotations: { ...job.metadata.annotations, ...annotations } },
    };
    expect(readBuildRequests(joined).map((r) => r.environment)).toEqual(["review/feature-x", "staging"]);
    expect(withBuildRequest(joined, staging)).toBeNull();
    expect(withBuildRequest(job, REQUEST)).toBeNull();
  });

  it("replaces a waiting request with one asked for later (stopped and reopened during the build), not with an older one", () => {
    const opened = { ...REQUEST, correlationId: "c-open", factAt: "2026-11-21T10:00:00.000Z" };
    const waiting = buildJob(opened, IMAGE, SETTINGS);
    const reopened = {
      ...REQUEST,
      correlationId: "c-reopen",
      factAt: "2026-11-21T10:02:00.000Z",
      user: "dev",
      ttl: "24h",
    };
    const annotations = withBuildRequest(waiting, reopened);
    const replaced = {
      ...waiting,
      metadata: { ...waiting.metadata, annotations: { ...waiting.metadata.annotations, ...annotations } },
    };
    expect(readBuildRequests(replaced)).toEqual([
      {
        environment: "review/feature-x",
        correlationId: "c-reopen",
        ref: "feature-x",
        pipelineId: null,
        mrIid: 7,
        user: "dev",
        factAt: "2026-11-21T10:02:00.000Z",
        ttl: "24h",
      },
    ]);
    // A late delivery of an earlier fact, a redelivery, and one without a time change nothing.
    expect(withBuildRequest(replaced, { ...opened, correlationId: "c-late" })).toBeNull();
    expect(withBuildRequest(replaced, reopened)).toBeNull();
    expect(withBuildRequest(replaced, { ...reopened, correlationId: "c-same-second" })).toBeNull();
    expect(withBuildRequest(replaced, { ...REQUEST, correlationId: "c-untimed" })).toBeNull();
  });
});

function pod(name: string, created: string, statuses: { init?: unknown[]; main?: unknown[] }): KubeObject {
  return {
    apiVersion: "v1",
    kind: "Pod",
    metadata: { name, creationTimestamp: created },
    status: { initContainerStatuses: statuses.init ?? [], containerStatuses: statuses.main ?? [] },
  };
}
const terminated = (name: string, exitCode: number, message = "") => ({
  name,
  state: { terminated: { exitCode, reason: exitCode === 0 ? "Completed" : "Error", message } },
});
const DIGEST = `sha256:${"ab".repeat(32)}`;

describe("reading a finished build", () => {
  it("takes the Job's verdict from its terminal conditions", () => {
    const job = (conditions: unknown[]): KubeObject => ({
      apiVersion: "batch/v1",
      kind: "Job",
      metadata: { name: "j" },
      status: { conditions },
    });
    expect(buildState(job([]))).toEqual({ state: "running" });
    expect(buildState(job([{ type: "Complete", status: "True" }]))).toEqual({ state: "succeeded" });
    expect(
      buildState(
        job([
          {
            type: "Failed",
            status: "True",
            reason: "DeadlineExceeded",
            message: "Job was active longer than specified deadline",
          },
        ]),
      ),
    ).toEqual({ state: "failed", reason: "DeadlineExceeded: Job was active longer than specified deadline" });
    expect(buildState(job([{ type: "Failed", status: "False" }]))).toEqual({ state: "running" });
  });

  it("reads the digest from the push container's termination message", () => {
    expect(
      buildDigest([
        pod("p", "2026-01-01T00:00:00Z", { main: [terminated(PUSH_CONTAINER, 0, `${DIGEST}\n`)] }),
      ]),
    ).toBe(DIGEST);
    expect(
      buildDigest([pod("p", "2026-01-01T00:00:00Z", { main: [terminated(PUSH_CONTAINER, 0, "")] })]),
    ).toBeNull();
    expect(
      buildDigest([pod("p", "2026-01-01T00:00:00Z", { main: [terminated(PUSH_CONTAINER, 1, DIGEST)] })]),
    ).toBeNull();
    // Only the push's: a build step could write anything to its own termination message.
    expect(
      buildDigest([pod("p", "2026-01-01T00:00:00Z", { init: [terminated(BUILD_CONTAINER, 0, DIGEST)] })]),
    ).toBeNull();
    expect(buildDigest([])).toBeNull();
  });

  it("finds the container that failed, the clone included, in the newest pod", () => {
    const older = pod("old", "2026-01-01T00:00:00Z", { init: [terminated(BUILD_CONTAINER, 1)] });
    const newer = pod("new", "2026-01-01T00:01:00Z", { init: [terminated(CLONE_CONTAINER, 128)] });
    const pushed = pod("pushed", "2026-01-01T00:02:00Z", {
      init: [terminated(CLONE_CONTAINER, 0), terminated(BUILD_CONTAINER, 0)],
      main: [terminated(PUSH_CONTAINER, 1)],
    });
    expect(failedContainer([older, newer])).toEqual({ pod: "new", container: CLONE_CONTAINER });
    expect(failedContainer([older])).toEqual({ pod: "old", container: BUILD_CONTAINER });
    expect(failedContainer([older, pushed])).toEqual({ pod: "pushed", container: PUSH_CONTAINER });
    expect(failedContainer([])).toBeNull();
  });

  it("puts the verdict and the last log lines in the reason, bounded, keeping the end", () => {
    const log = Array.from({ length: 50 }, (_, i) => `line ${i + 1}`).join("\n");
    const reason = failureReason("BackoffLimitExceeded: Job has reached the specified backoff limit", log);
    expect(reason.split("\n")).toEqual([
      "BackoffLimitExceeded: Job has reached the specified backoff limit",
      "--- last log lines ---",
      ...Array.from({ length: FAILURE_LOG_LINES }, (_, i) => `line ${i + 31}`),
    ]);
    const long = failureReason("Failed", `${"x".repeat(10_000)}\nthe real error`);
    expect(long.length).toBeLessThanOrEqual(3_000);
    expect(long.endsWith("the real error")).toBe(true);
    expect(failureReason("Failed", null)).toBe("Failed");
  });

  it("bounds the reason in the bytes a bus detail carries, not characters: pip's ━ bars and colour escapes", () => {
    // "━" is 3 bytes in UTF-8 and an escape 6 in JSON (\u001b): 3,000 characters of them were 9-18 KB,
    // over Build Finished's 8 KB, so the failure could not be told to anyone waiting.
    const bar = `\u001b[38;5;197m${"━".repeat(80)}\u001b[0m 12.3/45.6 MB 1.2 MB/s eta 0:00:27`;
    const log = [...Array.from({ length: 60 }, () => bar), "ERROR: No matching distribution found for pkg"];
    for (const tail of [log.join("\n"), "━".repeat(10_000), "\u001b".repeat(10_000)]) {
      const reason = failureReason("BackoffLimitExceeded: Job has reached the specified backoff limit", tail);
      expect(Buffer.byteLength(JSON.stringify(reason))).toBeLessThanOrEqual(3_000);
    }
    expect(failureReason("Failed", log.join("\n")).endsWith("found for pkg")).toBe(true);
  });

  it("gives a reported Job a day from its finish, or an hour from the report when that is later, counting from its finish or else its creation", () => {
    const now = new Date("2026-11-21T10:00:00Z");
    const job = (ttl: number | undefined, status: unknown): KubeObject => ({
      apiVersion: "batch/v1",
      kind: "Job",
      metadata: { name: "j", creationTimestamp: "2026-11-20T09:00:00Z" },
      spec: ttl === undefined ? {} : { ttlSecondsAfterFinished: ttl },
      status,
    });
    const failed = (at?: string) => ({
      conditions: [{ type: "Failed", status: "True", ...(at ? { lastTransitionTime: at } : {}) }],
    });
    // Finished 23 h 59 min ago: a minute left, an hour given.
    expect(reportedTtl(job(undefined, failed("2026-11-20T10:01:00Z")), now)).toBe(
      86_340 + REPORTED_KEEP_SECONDS,
    );
    expect(reportedTtl(job(undefined, failed("2026-11-21T09:00:00Z")), now)).toBe(86_400);
    // Reported three days late (reconcile was down): kept an hour more, not deleted at once.
    expect(reportedTtl(job(undefined, failed("2026-11-18T10:00:00Z")), now)).toBe(
      3 * 86_400 + REPORTED_KEEP_SECONDS,
    );
    expect(reportedTtl(job(undefined, failed()), now)).toBe(25 * 3_600 + REPORTED_KEEP_SECONDS);
  });

  it("calls a Job's reports settled only when none waits and its TTL is set (after the publish)", () => {
    const job = (reported: string[], ttl?: number): KubeObject => ({
      apiVersion: "batch/v1",
      kind: "Job",
      metadata: {
        name: "j",
        annotations: {
          [BUILD_ANNOTATION.REQUESTS]: JSON.stringify([
            { environment: "a", correlationId: "c-a", ref: "main", pipelineId: null, mrIid: null },
          ]),
          [BUILD_ANNOTATION.REPORTED]: JSON.stringify(reported),
        },
      },
      spec: ttl === undefined ? {} : { ttlSecondsAfterFinished: ttl },
    });
    expect(reportsSettled(job([]))).toBe(false);
    expect(reportsSettled(job([], 86_400))).toBe(false);
    // Marked, its publish maybe in flight.
    expect(reportsSettled(job(["a"]))).toBe(false);
    expect(reportsSettled(job(["a"], 86_400))).toBe(true);
  });

  it("reads the reported list, ignoring what is not one", () => {
    const job = (value: string): KubeObject => ({
      apiVersion: "batch/v1",
      kind: "Job",
      metadata: { name: "j", annotations: { [BUILD_ANNOTATION.REPORTED]: value } },
    });
    expect(readReported(job('["staging"]'))).toEqual(["staging"]);
    expect(readReported(job("{oops"))).toEqual([]);
  });
});

describe("Kubler's finalizer on a build Job", () => {
  const withMeta = (metadata: Record<string, unknown>): KubeObject => ({
    apiVersion: "batch/v1",
    kind: "Job",
    metadata: { name: "build-x", ...metadata },
  });
  const deleting = { deletionTimestamp: "2026-11-21T10:00:00Z" };

  it("is removed leaving the others, and only when it is there", () => {
    expect(othersThanBuildFinalizer(withMeta({ finalizers: ["example.com/hold", BUILD_FINALIZER] }))).toEqual(
      ["example.com/hold"],
    );
    expect(othersThanBuildFinalizer(withMeta({ finalizers: [BUILD_FINALIZER] }))).toEqual([]);
    expect(othersThanBuildFinalizer(withMeta({ finalizers: ["example.com/hold"] }))).toBeNull();
    expect(othersThanBuildFinalizer(withMeta({}))).toBeNull();
  });

  it("is applied again while a request waits, but never added to a Job being deleted (the API refuses it)", () => {
    expect(holdingFinalizers(withMeta({}))).toEqual({ finalizers: [BUILD_FINALIZER] });
    expect(holdingFinalizers(withMeta({ ...deleting, finalizers: [BUILD_FINALIZER] }))).toEqual({
      finalizers: [BUILD_FINALIZER],
    });
    expect(holdingFinalizers(withMeta({ ...deleting, finalizers: ["example.com/hold"] }))).toEqual({});
  });
});
