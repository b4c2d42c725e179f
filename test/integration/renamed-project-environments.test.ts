/**
 * A GitLab project renamed or moved to another group keeps its id, not its path, and a namespace
 * keeps the name it was created with (from the old path). Deploy and stop, against the embedded
 * Kubernetes API over HTTP through the real adapter, must find the environment's namespace by its
 * identity (instance, project id, environment): not stop nothing and leave the old one running, not
 * create a second namespace beside it.
 */
import { cpSync, mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { beforeEach, describe, expect, it } from "vitest";
import { runStopCommand } from "../../cli/stop-command.js";
import { loadLocalConfig } from "../../shared/config.js";
import type { Detail } from "../../shared/domain/catalog.js";
import { ANNOTATION, environmentNamespace, LABEL, namespaceFor } from "../../shared/domain/environment.js";
import type { KubeObject } from "../../shared/domain/kube-object.js";
import { stopEnvironment } from "../../shared/services/cleanup-environments.js";
import { deployEnvironment } from "../../shared/services/deploy-environment.js";
import { resolveEnvironmentNamespace } from "../../shared/services/resolve-environment-namespace.js";
import { cleanupTestDeps } from "../fakes/cleanup-deps.js";
import { deployRequested, useDeployCluster } from "../fakes/deploy-deps.js";
import { environmentState } from "../fakes/managed-environment.js";
import { isolatedKublerEnv } from "./kubler-process.js";

const INSTANCE = "https://gitlab.example.com";
const OLD_PATH = "flightjs/flight-management";
const NEW_PATH = "flight-ops/bookings";
const REVIEW = "review/feature/x";
const OLD_NAMESPACE = namespaceFor(OLD_PATH, REVIEW);
const NEW_NAMESPACE = namespaceFor(NEW_PATH, REVIEW);
const renamed = { instance: INSTANCE, projectId: 2, projectPath: NEW_PATH };

const env = useDeployCluster("kubler-renamed-", { clear: "all" });
beforeEach(() => {
  // The project's kubler.yaml, read under its new path after the rename.
  cpSync(join(env.projects, OLD_PATH), join(env.projects, NEW_PATH), { recursive: true });
});

function namespaces(): KubeObject[] {
  return env.k8s.store.list("v1", "Namespace").filter((ns) => !ns.metadata.deletionTimestamp);
}

function stored(name: string): KubeObject | undefined {
  return env.k8s.store.get("v1", "Namespace", undefined, name);
}

/** Deleted: gone, or terminating (the embedded API finalizes namespaces after a few ms). */
function deleted(name: string): boolean {
  const object = stored(name);
  return object === undefined || object.metadata.deletionTimestamp !== undefined;
}

function stopOf(
  gitlab: Detail<"Environment Stop Requested">["gitlab"],
  environment: string,
  reason: Detail<"Environment Stop Requested">["reason"],
): Detail<"Environment Stop Requested"> {
  return { correlationId: "corr-stop", gitlab, environment, reason };
}

describe("a project renamed after its environment was deployed", () => {
  it("MR merged after the rename: the stop deletes the namespace named from the old path", async () => {
    await deployEnvironment(env.deps, deployRequested());
    expect(stored(OLD_NAMESPACE)).toBeDefined();
    const cleanup = {
      ...cleanupTestDeps(env.deps.cluster, env.deps.clock.now()),
      scheduler: env.deps.scheduler,
    };

    // plan-steps' stop for the merge: the event names the project by its new path.
    const outcome = await stopEnvironment(cleanup, stopOf(renamed, REVIEW, "merged"));

    expect(outcome).toEqual({ kind: "deleted", namespace: OLD_NAMESPACE });
    expect(deleted(OLD_NAMESPACE)).toBe(true);
    expect(stored(NEW_NAMESPACE)).toBeUndefined();
    // Its expiry schedule, named after the namespace, goes with it.
    expect(env.deps.scheduler.schedules.has(OLD_NAMESPACE)).toBe(false);
    expect(cleanup.publisher.entries.at(-1)).toMatchObject({
      detailType: "Environment Deleted",
      detail: { namespace: OLD_NAMESPACE, sha: "1".repeat(40) },
    });
    expect(cleanup.audit.last()).toMatchObject({
      outcome: "success",
      subject: {
        namespace: OLD_NAMESPACE,
        namespaceResolved: expect.stringContaining(`found by identity (project 2 at ${INSTANCE}`),
      },
    });
  });

  it("a ttl: never production, stopped by hand after the project moved group: deleted, not left forever", async () => {
    const production = deployRequested({ environment: "production", ref: "v1.0.0", mrIid: null });
    await deployEnvironment(env.deps, production);
    const held = namespaceFor(OLD_PATH, "production");
    expect(stored(held)?.metadata.annotations?.[ANNOTATION.TTL]).toBe("never");
    const cleanup = cleanupTestDeps(env.deps.cluster, env.deps.clock.now());

    const outcome = await stopEnvironment(cleanup, stopOf(renamed, "production", "stopped"));

    expect(outcome).toEqual({ kind: "deleted", namespace: held });
    expect(deleted(held)).toBe(true);
  });

  it("deploys again into the namespace named from the old path: one namespace, its project path updated", async () => {
    await deployEnvironment(env.deps, deployRequested());

    const outcome = await deployEnvironment(
      env.deps,
      deployRequested({ gitlab: renamed, sha: "2".repeat(40), pipelineId: 101 }),
    );

    expect(outcome).toMatchObject({ kind: "succeeded", namespace: OLD_NAMESPACE });
    const held = namespaces().filter((ns) => ns.metadata.labels?.[LABEL.PROJECT_ID] === "2");
    expect(held.map((ns) => ns.metadata.name)).toEqual([OLD_NAMESPACE]);
    expect(stored(NEW_NAMESPACE)).toBeUndefined();
    expect(stored(OLD_NAMESPACE)?.metadata.annotations).toMatchObject({
      [ANNOTATION.PROJECT_PATH]: NEW_PATH,
      [ANNOTATION.SHA]: "2".repeat(40),
      [ANNOTATION.ENVIRONMENT_NAME]: REVIEW,
    });
    // The workload was updated where it runs, the schedule moved under the namespace's own name.
    const deployment = env.k8s.store.list("apps/v1", "Deployment", OLD_NAMESPACE);
    expect(deployment.length).toBeGreaterThan(0);
    expect(env.deps.scheduler.schedules.get(OLD_NAMESPACE)?.detail.gitlab.projectPath).toBe(NEW_PATH);
    expect(env.deps.publisher.entries.at(-1)).toMatchObject({
      detailType: "Deploy Finished",
      detail: { status: "succeeded", namespace: OLD_NAMESPACE },
    });
    expect(env.deps.audit.last()).toMatchObject({
      outcome: "success",
      subject: { namespace: OLD_NAMESPACE, namespaceResolved: expect.stringContaining(NEW_NAMESPACE) },
    });

    // Once redeployed, a stop under either path finds the same namespace.
    const cleanup = cleanupTestDeps(env.deps.cluster, env.deps.clock.now());
    expect(await stopEnvironment(cleanup, stopOf(renamed, REVIEW, "closed"))).toEqual({
      kind: "deleted",
      namespace: OLD_NAMESPACE,
    });
  });

  it("a project renamed twice still deploys into the first namespace", async () => {
    await deployEnvironment(env.deps, deployRequested());
    await deployEnvironment(
      env.deps,
      deployRequested({ gitlab: renamed, sha: "2".repeat(40), pipelineId: 101 }),
    );
    const third = { ...renamed, projectPath: "flight-ops/bookings-v2" };
    cpSync(join(env.projects, NEW_PATH), join(env.projects, third.projectPath), { recursive: true });
    await deployEnvironment(
      env.deps,
      deployRequested({ gitlab: third, sha: "3".repeat(40), pipelineId: 102 }),
    );
    const held = namespaces().filter((ns) => ns.metadata.labels?.[LABEL.PROJECT_ID] === "2");
    expect(held.map((ns) => ns.metadata.name)).toEqual([OLD_NAMESPACE]);
  });
});

describe("kubler stop after the rename", () => {
  /** `kubler stop … --dry-run` in-process against this test's cluster (KUBECONFIG): exit code and output. */
  async function stop(...args: string[]): Promise<{ code: number; lines: string[] }> {
    const dir = mkdtempSync(join(tmpdir(), "kubler-renamed-stop-"));
    writeFileSync(join(dir, "kubeconfig"), env.k8s.kubeconfig);
    const vars = { ...isolatedKublerEnv(dir), KUBECONFIG: join(dir, "kubeconfig") };
    const lines: string[] = [];
    const print = (line: string) => lines.push(line);
    const context = () => ({ config: loadLocalConfig(vars), token: null, signingKey: null, print });
    const code = await runStopCommand([...args, "--dry-run"], {
      print,
      env: vars,
      context,
      now: () => new Date(),
    });
    return { code, lines };
  }

  it("finds the production namespace named from the old path by --project-id and --instance", async () => {
    await deployEnvironment(
      env.deps,
      deployRequested({ environment: "production", ref: "v1.0.0", mrIid: null }),
    );
    const held = namespaceFor(OLD_PATH, "production");
    const args = ["--project", NEW_PATH, "--environment", "production"];

    // By the new path alone: refused, saying how a renamed project's environment is found.
    await expect(stop(...args)).rejects.toThrow(/give --project-id N and --instance URL to find them/);

    const { code, lines } = await stop(...args, "--project-id", "2", "--instance", INSTANCE);
    expect(code).toBe(0);
    const out = lines.join("\n");
    expect(out).toContain(
      `Namespace ${held}: found by identity (project 2 at ${INSTANCE}, environment production)`,
    );
    expect(out).toContain(
      `Would stop production of ${NEW_PATH} (project 2 at ${INSTANCE}), namespace ${held}`,
    );
    // The old path still names it directly.
    expect((await stop("--project", OLD_PATH, "--environment", "production")).lines.join("\n")).toContain(
      `namespace ${held}`,
    );
  });

  it("finds it by the old path once a deploy since the rename recorded the new one, given --project-id", async () => {
    await deployEnvironment(
      env.deps,
      deployRequested({ environment: "production", ref: "v1.0.0", mrIid: null }),
    );
    await deployEnvironment(
      env.deps,
      deployRequested({
        gitlab: renamed,
        environment: "production",
        ref: "v1.0.1",
        mrIid: null,
        sha: "2".repeat(40),
        pipelineId: 101,
      }),
    );
    const held = namespaceFor(OLD_PATH, "production");
    expect(stored(held)?.metadata.annotations?.[ANNOTATION.PROJECT_PATH]).toBe(NEW_PATH);
    const args = ["--project", OLD_PATH, "--environment", "production"];

    // The old path alone may be another project's now (one that took it): refused, saying what tells them apart.
    await expect(stop(...args)).rejects.toThrow(
      new RegExp(`is project "${NEW_PATH}", not "${OLD_PATH}".*give --project-id N`),
    );
    const { code, lines } = await stop(...args, "--project-id", "2");
    expect(code).toBe(0);
    expect(lines.join("\n")).toContain(`namespace ${held}`);
    // Another project's id at that name is still refused.
    await expect(stop(...args, "--project-id", "7")).rejects.toThrow(/is project id 2, not 7/);
  });
});

describe("what the lookup by identity never takes", () => {
  /** A namespace as Kubler writes it for `environment` of `gitlab`, under `name`. */
  function seed(name: string, gitlab: typeof renamed, environment: string, createdAt?: string): KubeObject {
    const object = environmentNamespace(
      environmentState({
        namespace: name,
        gitlab,
        environment,
        requestedAt: new Date("2026-11-20T10:00:00Z"),
      }),
    );
    if (createdAt) object.metadata.creationTimestamp = createdAt;
    return env.k8s.store.put(object);
  }

  it("another environment whose slug is the same, another instance, an unmanaged or slug-only namespace", async () => {
    const identity = { ...renamed, environment: "review/a-b" };
    // review/a/b slugs as review/a-b: the label selector lists it, its full name rules it out.
    seed("old-review-a-slash-b", { ...renamed, projectPath: OLD_PATH }, "review/a/b");
    // The same project id on another GitLab instance.
    seed("other-instance-a-b", { ...renamed, instance: "https://gitlab.other.example" }, "review/a-b");
    // From before the name annotation: the slug label alone.
    const bare = seed("slug-only-a-b", renamed, "review/a-b");
    delete bare.metadata.annotations?.[ANNOTATION.ENVIRONMENT_NAME];
    env.k8s.store.put(bare);
    // Labelled like it, but not Kubler's.
    env.k8s.store.put({
      apiVersion: "v1",
      kind: "Namespace",
      metadata: {
        name: "hand-made-a-b",
        labels: { [LABEL.PROJECT_ID]: "2", [LABEL.ENVIRONMENT]: "review-a-b" },
        annotations: { [ANNOTATION.ENVIRONMENT_NAME]: "review/a-b", [ANNOTATION.INSTANCE]: INSTANCE },
      },
    });

    const resolved = await resolveEnvironmentNamespace(env.deps.cluster, identity);

    expect(resolved).toEqual({
      namespace: namespaceFor(NEW_PATH, "review/a-b"),
      object: null,
      via: "path",
      reason: null,
      others: [],
    });
  });

  it("the name from the current path held by another project: still refused there when nothing is found", async () => {
    // A new project took the old path: its name for review/x is the renamed project's namespace.
    await deployEnvironment(env.deps, deployRequested());
    const newcomer = { instance: INSTANCE, projectId: 9, projectPath: OLD_PATH };

    const outcome = await deployEnvironment(env.deps, deployRequested({ gitlab: newcomer, pipelineId: 300 }));

    expect(outcome).toMatchObject({
      kind: "failed",
      reason: `namespace ${OLD_NAMESPACE} belongs to project 2`,
    });
    expect(stored(OLD_NAMESPACE)?.metadata.labels?.[LABEL.PROJECT_ID]).toBe("2");
  });

  it("two namespaces for one environment (left by a deploy before the lookup): the older is acted on, the other named", async () => {
    seed(
      "newer-a-b",
      { ...renamed, projectPath: "flight-ops/interim" },
      "review/a-b",
      "2026-11-21T09:00:00Z",
    );
    seed("older-a-b", { ...renamed, projectPath: OLD_PATH }, "review/a-b", "2026-11-01T09:00:00Z");

    const resolved = await resolveEnvironmentNamespace(env.deps.cluster, {
      ...renamed,
      environment: "review/a-b",
    });

    expect(resolved).toMatchObject({ namespace: "older-a-b", via: "identity", others: ["newer-a-b"] });
    expect(resolved.reason).toContain("also recorded by newer-a-b, left alone");
  });
});
