/**
 * The deploy use case against the embedded Kubernetes API over HTTP, through the real adapter: what
 * lands on the cluster is asserted from the cluster itself.
 */
import { readFileSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { afterAll, beforeAll, beforeEach, describe, expect, it } from "vitest";
import { createDeployEnvironmentConsumer } from "../../functions/deploy-environment/consumer.js";
import { createKubernetesCluster } from "../../shared/adapters/kubernetes-cluster.js";
import { type Detail, sourceOf } from "../../shared/domain/catalog.js";
import { lastGoodDigest, type RoleRule } from "../../shared/domain/deploy-manifests.js";
import { namespaceFor } from "../../shared/domain/environment.js";
import type { KubeObject } from "../../shared/domain/kube-object.js";
import { environmentStopKey } from "../../shared/domain/plan-steps.js";
import { type MemoryKubernetes, startMemoryKubernetes } from "../../shared/local/memory-kubernetes/index.js";
import {
  type DeployEnvironmentDeps,
  type DeployTrigger,
  deployEnvironment,
  LAST_GOOD_CONFIGMAP,
} from "../../shared/services/deploy-environment.js";
import { reconcileEnvironments } from "../../shared/services/reconcile-environments.js";
import {
  type DeployTestDeps,
  deployTestDeps,
  type ExampleProject,
  exampleProject,
  putOutsiders,
} from "../fakes/deploy-deps.js";
import { FixedClock, sequentialIds } from "../fakes/index.js";
import { allows } from "../fakes/rbac.js";

const PROJECT = "flightjs/flight-management";
const SHA_1 = "1111111111111111111111111111111111111111";
const SHA_2 = "2222222222222222222222222222222222222222";
const SHA_3 = "3333333333333333333333333333333333333333";
const gitlab = { instance: "https://gitlab.example.com", projectId: 2, projectPath: PROJECT };
const ENVIRONMENT = "review/feature/booking-validation";
const NAMESPACE = namespaceFor(PROJECT, ENVIRONMENT);

let k8s: MemoryKubernetes;
let projects: string;
let deps: DeployTestDeps;
let files: ExampleProject;

beforeAll(async () => {
  k8s = await startMemoryKubernetes({ rolloutDelayMs: 20, namespaceFinalizeMs: 10 });
});
afterAll(() => k8s.close());

beforeEach(() => {
  ({ deps, projects } = deployTestDeps(k8s, "kubler-projects-"));
  files = exampleProject(projects, PROJECT);
  // Each test gets its own environment: clear what an earlier test left.
  for (const ns of k8s.store.list("v1", "Namespace"))
    void deps.cluster.delete({ apiVersion: "v1", kind: "Namespace", name: ns.metadata.name });
});

function requested(
  overrides: Partial<Detail<"Deploy Requested">> = {},
  time = "2026-11-21T10:00:00Z",
): DeployTrigger {
  return {
    detailType: "Deploy Requested",
    time: new Date(time),
    detail: {
      correlationId: "corr-1",
      gitlab,
      environment: ENVIRONMENT,
      sha: SHA_1,
      ref: "feature/booking-validation",
      pipelineId: 100,
      mrIid: 16,
      ...overrides,
    },
  };
}

interface AppDeployment {
  metadata: { labels: Record<string, string> };
  spec: { template: { spec: { containers: { image: string }[]; imagePullSecrets?: unknown } } };
}
function appDeployment(): AppDeployment {
  return k8s.store.get("apps/v1", "Deployment", NAMESPACE, "flight-management") as unknown as AppDeployment;
}

/** Every object in the environment's namespace, with its resourceVersion. */
function snapshot(): Record<string, string | undefined> {
  const kinds = [
    ["v1", "Namespace"],
    ["v1", "ServiceAccount"],
    ["v1", "ConfigMap"],
    ["v1", "Service"],
    ["v1", "Secret"],
    ["apps/v1", "Deployment"],
    ["rbac.authorization.k8s.io/v1", "Role"],
    ["rbac.authorization.k8s.io/v1", "RoleBinding"],
  ] as const;
  const versions: Record<string, string | undefined> = {};
  for (const [apiVersion, kind] of kinds) {
    const objects =
      kind === "Namespace"
        ? k8s.store.list(apiVersion, kind).filter((o) => o.metadata.name === NAMESPACE)
        : k8s.store.list(apiVersion, kind, NAMESPACE);
    for (const o of objects) versions[`${kind}/${o.metadata.name}`] = o.metadata.resourceVersion;
  }
  return versions;
}

async function waitForNamespaceGone(name: string): Promise<void> {
  for (let i = 0; i < 200 && k8s.store.get("v1", "Namespace", undefined, name); i++) {
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
}

/**
 * Overwrites the last-good record, as a CI job allowed to patch ConfigMaps could. `digest: "kubler"`
 * also puts the forged record's digest on the Namespace, which no namespaced Role can: it gets past
 * the digest, to show that the checks behind it hold on their own.
 */
async function forgeLastGood(
  objects: unknown[],
  { sha = SHA_1, digest = "kubler" }: { sha?: string; digest?: "kubler" | "unchanged" } = {},
): Promise<void> {
  const data = { sha, pipelineId: "100", "objects.json": JSON.stringify(objects) };
  await deps.cluster.apply({
    apiVersion: "v1",
    kind: "ConfigMap",
    metadata: { name: LAST_GOOD_CONFIGMAP, namespace: NAMESPACE },
    data,
  });
  if (digest === "unchanged") return;
  const namespace = k8s.store.get("v1", "Namespace", undefined, NAMESPACE) as KubeObject;
  namespace.metadata.annotations = {
    ...namespace.metadata.annotations,
    "kubler.dev/last-good-digest": lastGoodDigest(data),
  };
  k8s.store.put(namespace);
}

function storedLastGood(): KubeObject[] {
  const map = k8s.store.get("v1", "ConfigMap", NAMESPACE, LAST_GOOD_CONFIGMAP);
  const data = map?.data as Record<string, string> | undefined;
  return JSON.parse(data?.["objects.json"] ?? "[]") as KubeObject[];
}

describe("deployEnvironment", () => {
  beforeEach(() => waitForNamespaceGone(NAMESPACE));

  it("creates the namespace with the contract's labels and annotations, and reports the URL", async () => {
    const outcome = await deployEnvironment(deps, requested());
    expect(outcome).toEqual({
      kind: "succeeded",
      namespace: NAMESPACE,
      reason: null,
      url: "https://review-feature-booking-validation.apps.example.com",
    });
    const ns = k8s.store.get("v1", "Namespace", undefined, NAMESPACE);
    expect(ns?.metadata.labels).toEqual({
      "kubernetes.io/metadata.name": NAMESPACE,
      "app.kubernetes.io/managed-by": "kubler",
      "kubler.dev/project-id": "2",
      "kubler.dev/environment": "review-feature-booking-validation",
      "pod-security.kubernetes.io/enforce": "baseline",
      "pod-security.kubernetes.io/enforce-version": "latest",
      "pod-security.kubernetes.io/warn": "restricted",
      "pod-security.kubernetes.io/warn-version": "latest",
      "pod-security.kubernetes.io/audit": "restricted",
      "pod-security.kubernetes.io/audit-version": "latest",
    });
    expect(ns?.metadata.annotations).toEqual({
      "kubler.dev/project-id": "2",
      "kubler.dev/project-path": PROJECT,
      "kubler.dev/gitlab-instance": "https://gitlab.example.com",
      "kubler.dev/environment": "review-feature-booking-validation",
      "kubler.dev/environment-name": ENVIRONMENT,
      "kubler.dev/ttl": "72h",
      "kubler.dev/expires-at": "2026-11-24T10:00:00.000Z",
      "kubler.dev/sha": SHA_1,
      "kubler.dev/ref": "feature/booking-validation",
      "kubler.dev/pipeline-id": "100",
      "kubler.dev/mr-iid": "16",
      "kubler.dev/deployed-at": expect.stringMatching(/^2026-11-21T10:00:\d\d\.\d{3}Z$/),
      "kubler.dev/requested-at": "2026-11-21T10:00:00.000Z",
      "kubler.dev/fact-at": "",
      // What the request did not carry (no push or update it came from, no time of GitLab's own).
      "kubler.dev/previous-sha": "",
      "kubler.dev/gitlab-at": "",
      "kubler.dev/attempted-sha": SHA_1,
      "kubler.dev/attempted-pipeline-id": "100",
      "kubler.dev/status": "succeeded",
      "kubler.dev/rollout-deadline": "",
      // No rollback under way (a retry of a rollback cut short finishes it).
      "kubler.dev/rolling-back-to": "",
      "kubler.dev/correlation-id": "corr-1",
      "kubler.dev/url": "https://review-feature-booking-validation.apps.example.com",
      // The last-good record as Kubler wrote it, where no namespaced Role can change the digest.
      "kubler.dev/last-good-digest": lastGoodDigest(
        k8s.store.get("v1", "ConfigMap", NAMESPACE, LAST_GOOD_CONFIGMAP)?.data as Record<string, string>,
      ),
      // Cleared: a deploy's outcome is its own to report, not a failure reconcile has pending.
      "kubler.dev/failure-reported": "",
      // Names the deploy's last write of it, so a retry that meets that write knows it for its own.
      "kubler.dev/deploy-write": expect.stringMatching(/^[0-9a-f-]{36}$/),
    });
    expect(deps.publisher.entries).toEqual([
      {
        detailType: "Deploy Finished",
        detail: {
          ...requested().detail,
          status: "succeeded",
          namespace: NAMESPACE,
          url: "https://review-feature-booking-validation.apps.example.com",
          reason: null,
        },
      },
    ]);
    expect(deps.scheduler.schedules.get(NAMESPACE)?.at).toEqual(new Date("2026-11-24T10:00:00.000Z"));
    expect(deps.audit.last()).toMatchObject({
      action: "environment.deploy",
      outcome: "success",
      correlationId: "corr-1",
      subject: { project: PROJECT, environment: ENVIRONMENT, namespace: NAMESPACE, sha: SHA_1 },
    });
  });

  it("applies the manifests into the namespace, images as written with {sha} filled in", async () => {
    await deployEnvironment(deps, requested());
    const deployment = appDeployment();
    expect(deployment.spec.template.spec.containers[0]?.image).toBe(
      `registry.example.com/flightjs/flight-management:${SHA_1}`,
    );
    expect(deployment.metadata.labels["app.kubernetes.io/managed-by"]).toBe("kubler");
    expect(k8s.store.get("v1", "Service", NAMESPACE, "flight-management")).toBeDefined();
    expect(k8s.store.get("v1", "ConfigMap", NAMESPACE, "flight-management")).toBeDefined();
  });

  it("gives the environment a deployer with exactly what its manifests need", async () => {
    await deployEnvironment(deps, requested());
    const labels = {
      "app.kubernetes.io/managed-by": "kubler",
      "kubler.dev/project-id": "2",
      "kubler.dev/environment": "review-feature-booking-validation",
    };
    const role = k8s.store.get("rbac.authorization.k8s.io/v1", "Role", NAMESPACE, "kubler-deployer");
    expect(role?.metadata.labels).toEqual(labels);
    const verbs = ["get", "list", "watch", "create", "patch"];
    expect(role?.rules).toEqual([
      { apiGroups: [""], resources: ["configmaps", "services"], verbs },
      { apiGroups: ["apps"], resources: ["deployments"], verbs },
    ]);
    // What a CI job bound to it (job credentials bind the policy's kubler-deployer) may do, before Kubler
    // deploys its commit: server-side apply (a PATCH to the object's name) and wait on objects that
    // commit adds, of the kinds the project ships; no Secret, no other kind, no delete.
    const rules = role?.rules as RoleRule[];
    for (const [group, resource] of [
      ["", "configmaps"],
      ["", "services"],
      ["apps", "deployments"],
    ] as const) {
      for (const name of ["flight-management", "flight-management-worker"]) {
        for (const verb of ["get", "list", "watch", "create", "patch"])
          expect(allows(rules, verb, group, resource, name)).toBe(true);
        expect(allows(rules, "delete", group, resource, name)).toBe(false);
      }
    }
    for (const verb of ["get", "patch", "list", "watch", "create", "delete"]) {
      expect(allows(rules, verb, "", "secrets", "kubler-registry")).toBe(false);
      expect(allows(rules, verb, "", "secrets")).toBe(false);
      expect(allows(rules, verb, "batch", "jobs", "migrate")).toBe(false);
      expect(allows(rules, verb, "rbac.authorization.k8s.io", "roles", "kubler-deployer")).toBe(false);
    }
    expect(allows(rules, "delete", "", "configmaps", LAST_GOOD_CONFIGMAP)).toBe(false);
    const binding = k8s.store.get(
      "rbac.authorization.k8s.io/v1",
      "RoleBinding",
      NAMESPACE,
      "kubler-deployer",
    );
    expect(binding?.roleRef).toEqual({
      apiGroup: "rbac.authorization.k8s.io",
      kind: "Role",
      name: "kubler-deployer",
    });
    expect(binding?.subjects).toEqual([
      { kind: "ServiceAccount", name: "kubler-deployer", namespace: NAMESPACE },
    ]);
    expect(k8s.store.get("v1", "ServiceAccount", NAMESPACE, "kubler-deployer")?.metadata.labels).toEqual(
      labels,
    );
  });

  it("writes the registry pull secret when one is configured, and makes pods use it", async () => {
    let reads = 0;
    deps.pullSecret = async () => {
      reads++;
      return '{"auths":{"registry.example.com":{"auth":"dXNlcjpwYXNz"}}}';
    };
    await deployEnvironment(deps, requested());
    expect(reads).toBe(1);
    const secret = k8s.store.get("v1", "Secret", NAMESPACE, "kubler-registry");
    expect(secret?.type).toBe("kubernetes.io/dockerconfigjson");
    expect(
      Buffer.from(
        (secret?.data as Record<string, string> | undefined)?.[".dockerconfigjson"] ?? "",
        "base64",
      ).toString(),
    ).toContain("registry.example.com");
    const deployment = appDeployment();
    expect(deployment.spec.template.spec.imagePullSecrets).toEqual([{ name: "kubler-registry" }]);
    expect(JSON.stringify(deps.audit.records)).not.toContain("dXNlcjpwYXNz");
  });

  it("changes nothing when the same event is delivered twice, or a second event names the same SHA", async () => {
    await deployEnvironment(deps, requested());
    const before = snapshot();
    expect(Object.keys(before).length).toBeGreaterThanOrEqual(8);
    await deployEnvironment(deps, requested());
    expect(snapshot()).toEqual(before);
    await deployEnvironment(deps, requested({ correlationId: "corr-2" }, "2026-11-21T10:00:30Z"));
    expect(snapshot()).toEqual(before);
    expect(deps.publisher.entries.map((e) => e.detail)).toMatchObject([
      { status: "succeeded" },
      { status: "succeeded" },
      { status: "succeeded" },
    ]);
  });

  it("a redelivery writes again the record whose write failed after the namespace committed to its digest", async () => {
    await deployEnvironment(deps, requested());
    const digest = k8s.store.get("v1", "Namespace", undefined, NAMESPACE)?.metadata.annotations?.[
      "kubler.dev/last-good-digest"
    ];
    const written = storedLastGood();
    // The record write of that deploy failed: what is there is an earlier revision's.
    await deps.cluster.apply({
      apiVersion: "v1",
      kind: "ConfigMap",
      metadata: { name: LAST_GOOD_CONFIGMAP, namespace: NAMESPACE },
      data: { sha: SHA_2, pipelineId: "99", "objects.json": "[]" },
    });
    await deployEnvironment(deps, requested());
    expect(storedLastGood()).toEqual(written);
    const record = k8s.store.get("v1", "ConfigMap", NAMESPACE, LAST_GOOD_CONFIGMAP)?.data as Record<
      string,
      string
    >;
    expect(lastGoodDigest(record)).toBe(digest);
  });

  it("a redelivery after the record write failed moves the schedule the failed attempt did not", async () => {
    await deployEnvironment(deps, requested());
    // An hour later, a new commit: its expiry is an hour later too.
    deps.clock.advance(3_600_000);
    const second = requested(
      { sha: SHA_2, pipelineId: 101, correlationId: "corr-2" },
      "2026-11-21T11:00:00Z",
    );
    // Not retried, nor cured by replacing the record: nothing made it immutable (last-good-jam.test.ts).
    k8s.faults.add({
      verb: "apply",
      resource: "configmaps",
      name: LAST_GOOD_CONFIGMAP,
      status: 422,
      times: 1,
    });
    await expect(deployEnvironment(deps, second)).rejects.toThrow();
    const expiresAt = () =>
      new Date(
        k8s.store.get("v1", "Namespace", undefined, NAMESPACE)?.metadata.annotations?.[
          "kubler.dev/expires-at"
        ] ?? "",
      );
    // The namespace says the new expiry; the schedule still has the first commit's.
    expect(deps.scheduler.schedules.get(NAMESPACE)?.at.getTime()).toBeLessThan(
      expiresAt().getTime() - 3_000_000,
    );
    await deployEnvironment(deps, second);
    expect(deps.scheduler.schedules.get(NAMESPACE)?.at).toEqual(expiresAt());
    expect(storedLastGood().length).toBeGreaterThan(0);
  });

  it("refuses an older pipeline after a newer one, changing nothing", async () => {
    await deployEnvironment(deps, requested({ sha: SHA_2, pipelineId: 101 }));
    const before = snapshot();
    const outcome = await deployEnvironment(
      deps,
      requested({ sha: SHA_1, pipelineId: 100 }, "2026-11-21T10:05:00Z"),
    );
    expect(outcome.kind).toBe("ignored");
    expect(snapshot()).toEqual(before);
    // A final outcome all the same: report-status turns it into a final commit status.
    expect(deps.publisher.entries.map((e) => e.detail)).toMatchObject([
      { status: "succeeded", sha: SHA_2 },
      { status: "superseded", sha: SHA_1, reason: expect.stringContaining("stale") },
    ]);
    expect(deps.audit.last()).toMatchObject({ outcome: "ignored", reason: expect.stringContaining("stale") });
  });

  it("refuses an older commit whose build finished last, by when GitLab's facts arrived", async () => {
    const digest = `sha256:${"c".repeat(64)}`;
    const built = (sha: string, factAt: string, time: string): DeployTrigger => ({
      detailType: "Build Finished",
      time: new Date(time),
      detail: {
        ...requested({ sha, pipelineId: null }).detail,
        factAt,
        status: "succeeded",
        imageDigest: digest,
        reason: null,
      },
    });
    // B was pushed after A, but A's build finished two minutes after B's.
    const b = await deployEnvironment(deps, built(SHA_2, "2026-11-21T10:01:00.000Z", "2026-11-21T10:04:00Z"));
    expect(b.kind).toBe("succeeded");
    const before = snapshot();
    const a = await deployEnvironment(deps, built(SHA_1, "2026-11-21T10:00:00.000Z", "2026-11-21T10:06:00Z"));
    expect(a.kind).toBe("ignored");
    expect(snapshot()).toEqual(before);
    const ns = k8s.store.get("v1", "Namespace", undefined, NAMESPACE);
    expect(ns?.metadata.annotations).toMatchObject({
      "kubler.dev/sha": SHA_2,
      "kubler.dev/fact-at": "2026-11-21T10:01:00.000Z",
    });
    expect(deps.publisher.entries.at(-1)?.detail).toMatchObject({ status: "superseded", sha: SHA_1 });
  });

  it("does not deploy again a redelivered deploy that was rolled back: it republishes its outcome", async () => {
    await deployEnvironment(deps, requested());
    files.setRollout("fail");
    const broken = requested({ sha: SHA_2, pipelineId: 101, factAt: "2026-11-21T10:01:00.000Z" });
    expect((await deployEnvironment(deps, broken)).kind).toBe("rolled_back");
    const ns = () => k8s.store.get("v1", "Namespace", undefined, NAMESPACE)?.metadata.annotations;
    expect(ns()).toMatchObject({
      "kubler.dev/sha": SHA_1,
      "kubler.dev/pipeline-id": "100",
      "kubler.dev/attempted-sha": SHA_2,
      "kubler.dev/attempted-pipeline-id": "101",
      "kubler.dev/status": "rolled_back",
    });
    const before = snapshot();
    const again = await deployEnvironment(deps, broken); // EventBridge delivers it once more
    expect(again).toMatchObject({ kind: "rolled_back", reason: expect.stringContaining("repeat") });
    expect(snapshot()).toEqual(before);
    expect(appDeployment().spec.template.spec.containers[0]?.image).toBe(
      `registry.example.com/flightjs/flight-management:${SHA_1}`,
    );
    expect(deps.publisher.entries.slice(-2).map((e) => e.detail)).toMatchObject([
      { status: "rolled_back", sha: SHA_2 },
      { status: "rolled_back", sha: SHA_2 },
    ]);
  });

  it("applies again a revision that was rolled back when asked anew (kubler deploy after a fix), with no fact time", async () => {
    await deployEnvironment(deps, requested());
    files.setRollout("fail");
    const first = requested({ sha: SHA_2, pipelineId: 101, correlationId: "cli-1" });
    expect((await deployEnvironment(deps, first)).kind).toBe("rolled_back");
    expect(await deployEnvironment(deps, first)).toMatchObject({
      kind: "rolled_back",
      reason: expect.stringContaining("repeat"),
    });
    files.setRollout("ok");
    const fixed = requested({ sha: SHA_2, pipelineId: 101, correlationId: "cli-2" }, "2026-11-21T10:10:00Z");
    expect(await deployEnvironment(deps, fixed)).toMatchObject({ kind: "succeeded", reason: null });
    expect(appDeployment().spec.template.spec.containers[0]?.image).toBe(
      `registry.example.com/flightjs/flight-management:${SHA_2}`,
    );
    expect(k8s.store.get("v1", "Namespace", undefined, NAMESPACE)?.metadata.annotations).toMatchObject({
      "kubler.dev/sha": SHA_2,
      "kubler.dev/status": "succeeded",
      "kubler.dev/correlation-id": "cli-2",
    });
  });

  it("refuses a deploy GitLab asked for before the environment was stopped, and takes one asked for after", async () => {
    const key = environmentStopKey(gitlab, ENVIRONMENT);
    await deps.stops.record(key, new Date("2026-11-21T10:05:00Z"), 3600);
    const late = await deployEnvironment(
      deps,
      requested({ factAt: "2026-11-21T10:04:00.000Z" }, "2026-11-21T10:06:00Z"),
    );
    expect(late).toMatchObject({ kind: "ignored", reason: expect.stringContaining("stopped") });
    expect(k8s.store.get("v1", "Namespace", undefined, NAMESPACE)).toBeUndefined();
    expect(deps.publisher.entries.map((e) => e.detail)).toMatchObject([{ status: "superseded" }]);
    // In the stop's own second: the stop wins (see isRefusedByStop).
    const tied = await deployEnvironment(
      deps,
      requested({ factAt: "2026-11-21T10:05:00.000Z" }, "2026-11-21T10:06:00Z"),
    );
    expect(tied).toMatchObject({ kind: "ignored", reason: expect.stringContaining("stopped") });
    expect(k8s.store.get("v1", "Namespace", undefined, NAMESPACE)).toBeUndefined();
    const reopened = await deployEnvironment(
      deps,
      requested({ factAt: "2026-11-21T10:07:00.000Z" }, "2026-11-21T10:08:00Z"),
    );
    expect(reopened.kind).toBe("succeeded");
  });

  it("takes a deploy with no fact time after a stop (kubler deploy by hand, events from before fact times were carried)", async () => {
    await deps.stops.record(environmentStopKey(gitlab, ENVIRONMENT), new Date("2026-11-21T10:05:00Z"), 3600);
    const byHand = await deployEnvironment(deps, requested({}, "2026-11-21T10:06:00Z"));
    expect(byHand.kind).toBe("succeeded");
  });

  it("takes the TTL of the rule plan-steps matched, not of the first rule the name fits", async () => {
    await deployEnvironment(deps, requested({ ttl: "24h" }));
    expect(k8s.store.get("v1", "Namespace", undefined, NAMESPACE)?.metadata.annotations).toMatchObject({
      "kubler.dev/ttl": "24h",
      "kubler.dev/expires-at": "2026-11-22T10:00:00.000Z",
    });
  });

  it("keeps deploy.url's host whatever the branch is called: a hostile name links nowhere else", async () => {
    const file = join(projects, PROJECT, "kubler.yaml");
    const manifest = readFileSync(file, "utf8");
    const withUrl = (url: string) =>
      writeFileSync(
        file,
        manifest.replace("url: https://{environment_slug}.apps.example.com", `url: ${url}`),
      );
    const hostOf = (url: string | null) => (url === null ? null : new URL(url).host);

    // In the host, a value that is not a host name's letters, digits, dots and dashes fills no URL.
    withUrl("https://{ref}.apps.example.com");
    const hostile = await deployEnvironment(deps, requested({ ref: "x@evil.com#" }));
    expect(hostile).toMatchObject({ kind: "succeeded", url: null });
    expect(deps.audit.last()).toMatchObject({
      outcome: "success",
      subject: { url: null, urlProblem: expect.stringContaining("{ref} is in deploy.url's host") },
    });

    // Elsewhere, the value is percent-encoded: the host stays the template's; "/" is kept.
    withUrl("https://apps.example.com/{ref}?env={environment}");
    for (const [ref, pipelineId] of [
      ["x@evil.com#", 101],
      ["x\\@evil.com", 102],
      ["//evil.com/", 103],
    ] as const) {
      const outcome = await deployEnvironment(deps, requested({ ref, pipelineId }));
      expect(outcome.kind).toBe("succeeded");
      expect(hostOf((outcome as { url: string | null }).url)).toBe("apps.example.com");
    }
    const ordinary = await deployEnvironment(
      deps,
      requested({ ref: "feature/booking-validation", pipelineId: 104 }),
    );
    expect(ordinary).toMatchObject({
      url: `https://apps.example.com/feature/booking-validation?env=${ENVIRONMENT}`,
    });
  });

  it("rolls a failing rollout back to the last good revision", async () => {
    await deployEnvironment(deps, requested());
    files.setRollout("fail");
    const outcome = await deployEnvironment(deps, requested({ sha: SHA_2, pipelineId: 101 }));
    expect(outcome.kind).toBe("rolled_back");
    expect(outcome.kind !== "ignored" && outcome.reason).toContain(`rolled back to ${SHA_1}`);
    const deployment = appDeployment();
    expect(deployment.spec.template.spec.containers[0]?.image).toBe(
      `registry.example.com/flightjs/flight-management:${SHA_1}`,
    );
    const ns = k8s.store.get("v1", "Namespace", undefined, NAMESPACE);
    expect(ns?.metadata.annotations).toMatchObject({
      "kubler.dev/sha": SHA_1,
      "kubler.dev/status": "rolled_back",
    });
    expect(deps.publisher.entries.at(-1)?.detail).toMatchObject({ status: "rolled_back", sha: SHA_2 });
    expect(deps.audit.last()).toMatchObject({ outcome: "failure" });
  });

  it("keeps the project's Secret data out of the last-good ConfigMap, and still restores it on rollback", async () => {
    // A ConfigMap is readable where Secrets are not (the `view` ClusterRole, a job's list on
    // ConfigMaps) and is not covered by Secrets' encryption at rest.
    const secret = (value: string) =>
      `apiVersion: v1\nkind: Secret\nmetadata: { name: api-key }\nstringData: { key: ${value} }\n`;
    const record = () => JSON.stringify(k8s.store.get("v1", "ConfigMap", NAMESPACE, LAST_GOOD_CONFIGMAP));
    const value = () =>
      Buffer.from(
        (k8s.store.get("v1", "Secret", NAMESPACE, "api-key")?.data as Record<string, string> | undefined)
          ?.key ?? "",
        "base64",
      ).toString();
    files.addManifest("secret.yaml", secret("first-value"));
    expect(await deployEnvironment(deps, requested())).toMatchObject({ kind: "succeeded" });
    expect(record()).toContain("api-key");
    expect(record()).not.toContain("first-value");

    files.addManifest("secret.yaml", secret("second-value"));
    files.setRollout("fail");
    const outcome = await deployEnvironment(deps, requested({ sha: SHA_2, pipelineId: 101 }));
    expect(outcome).toMatchObject({
      kind: "rolled_back",
      reason: expect.stringContaining(`rolled back to ${SHA_1}`),
    });
    expect(value()).toBe("first-value");

    files.setRollout("ok");
    expect(await deployEnvironment(deps, requested({ sha: SHA_3, pipelineId: 102 }))).toMatchObject({
      kind: "succeeded",
    });
    expect(value()).toBe("second-value");
    expect(record()).not.toContain("second-value");
  });

  it("restores a record from before Secrets' data was kept apart, even with a Secret planted by its name", async () => {
    await deployEnvironment(deps, requested());
    // As Kubler wrote records then: the Secret's data in objects.json, the digest over the ConfigMap.
    await forgeLastGood([
      ...storedLastGood(),
      { apiVersion: "v1", kind: "Secret", metadata: { name: "api-key" }, stringData: { key: "old-value" } },
    ]);
    // A CI job may create Secrets of any name that does not exist yet.
    await deps.cluster.apply({
      apiVersion: "v1",
      kind: "Secret",
      metadata: { name: LAST_GOOD_CONFIGMAP, namespace: NAMESPACE },
      stringData: { "secrets.json": JSON.stringify({ "api-key": { stringData: { key: "planted" } } }) },
    });
    files.setRollout("fail");
    const outcome = await deployEnvironment(deps, requested({ sha: SHA_2, pipelineId: 101 }));
    expect(outcome).toMatchObject({ kind: "rolled_back" });
    const data = k8s.store.get("v1", "Secret", NAMESPACE, "api-key")?.data as Record<string, string>;
    expect(Buffer.from(data.key ?? "", "base64").toString()).toBe("old-value");
  });

  it("removes, on rollback, what the failed revision added, and only that", async () => {
    await deployEnvironment(deps, requested());
    // Not Kubler's, though in the namespace; Kubler's labels, though in another namespace.
    putOutsiders(k8s, { namespace: NAMESPACE, projectId: 2, environment: ENVIRONMENT, name: "extra" });
    files.addManifest(
      "extra.yaml",
      "apiVersion: v1\nkind: ConfigMap\nmetadata: { name: extra }\ndata: { A: b }\n---\napiVersion: v1\nkind: Service\nmetadata: { name: extra }\nspec: { ports: [{ port: 81 }] }\n",
    );
    files.setRollout("fail");
    const outcome = await deployEnvironment(deps, requested({ sha: SHA_2, pipelineId: 101 }));
    expect(outcome.kind).toBe("rolled_back");
    expect(k8s.store.get("v1", "ConfigMap", NAMESPACE, "extra")).toBeUndefined();
    expect(k8s.store.get("v1", "Service", NAMESPACE, "extra")).toBeUndefined();
    for (const [apiVersion, kind] of [
      ["v1", "ConfigMap"],
      ["v1", "Service"],
      ["apps/v1", "Deployment"],
    ] as const) {
      expect(k8s.store.get(apiVersion, kind, NAMESPACE, "flight-management")).toBeDefined();
    }
    expect(k8s.store.get("v1", "ConfigMap", NAMESPACE, LAST_GOOD_CONFIGMAP)).toBeDefined();
    expect(k8s.store.get("v1", "ServiceAccount", NAMESPACE, "kubler-deployer")).toBeDefined();
    expect(k8s.store.get("v1", "ConfigMap", NAMESPACE, "by-hand")).toBeDefined();
    expect(k8s.store.get("v1", "ConfigMap", "neighbour", "extra")).toBeDefined();
  });

  it("removes, on rollback, nothing an earlier good revision left: successful deploys do not prune by default", async () => {
    const configMap = (name: string) =>
      `apiVersion: v1\nkind: ConfigMap\nmetadata: { name: ${name} }\ndata: { A: b }\n`;
    files.addManifest("data.yaml", configMap("data"));
    expect((await deployEnvironment(deps, requested())).kind).toBe("succeeded");
    files.dropManifest("data.yaml");
    expect((await deployEnvironment(deps, requested({ sha: SHA_2, pipelineId: 101 }))).kind).toBe(
      "succeeded",
    );
    expect(k8s.store.get("v1", "ConfigMap", NAMESPACE, "data")).toBeDefined();
    files.addManifest("cache.yaml", configMap("cache"));
    files.setRollout("fail");
    const outcome = await deployEnvironment(deps, requested({ sha: SHA_3, pipelineId: 102 }));
    expect(outcome).toMatchObject({
      kind: "rolled_back",
      reason: expect.stringContaining(`rolled back to ${SHA_2}`),
    });
    expect(k8s.store.get("v1", "ConfigMap", NAMESPACE, "cache")).toBeUndefined();
    expect(k8s.store.get("v1", "ConfigMap", NAMESPACE, "data")).toBeDefined();
    expect(k8s.store.get("v1", "ConfigMap", NAMESPACE, "flight-management")).toBeDefined();
  });

  it("refuses manifests that take Kubler's own names, naming the file, and keeps the real last-good record", async () => {
    await deployEnvironment(deps, requested());
    files.addManifest(
      "last-good.yaml",
      `apiVersion: v1\nkind: ConfigMap\nmetadata: { name: ${LAST_GOOD_CONFIGMAP} }\ndata: { sha: "${SHA_2}", objects.json: "[]" }\n`,
    );
    files.setRollout("fail");
    const outcome = await deployEnvironment(deps, requested({ sha: SHA_2, pipelineId: 101 }));
    expect(outcome).toMatchObject({
      kind: "failed",
      reason: expect.stringContaining(
        `deploy/last-good.yaml (document 1): ConfigMap ${LAST_GOOD_CONFIGMAP}: the name is Kubler's own`,
      ),
    });
    const record = k8s.store.get("v1", "ConfigMap", NAMESPACE, LAST_GOOD_CONFIGMAP);
    expect((record?.data as Record<string, string> | undefined)?.sha).toBe(SHA_1);
    expect(appDeployment().spec.template.spec.containers[0]?.image).toContain(SHA_1);
  });

  it("never applies a forged last-good record outside the namespace: the deploy fails with the reason", async () => {
    await deployEnvironment(deps, requested());
    k8s.store.put({ apiVersion: "v1", kind: "Namespace", metadata: { name: "kube-system" } });
    await forgeLastGood([
      { apiVersion: "v1", kind: "ConfigMap", metadata: { name: "planted", namespace: "kube-system" } },
      {
        apiVersion: "rbac.authorization.k8s.io/v1",
        kind: "RoleBinding",
        metadata: { name: "own-the-cluster", namespace: "kube-system" },
        roleRef: { apiGroup: "rbac.authorization.k8s.io", kind: "ClusterRole", name: "cluster-admin" },
        subjects: [{ kind: "ServiceAccount", name: "kubler-ci-kubler-deployer", namespace: NAMESPACE }],
      },
    ]);
    files.setRollout("fail");
    const outcome = await deployEnvironment(deps, requested({ sha: SHA_2, pipelineId: 101 }));
    expect(outcome).toMatchObject({
      kind: "failed",
      reason: expect.stringContaining(
        `record is not usable: ConfigMap ${LAST_GOOD_CONFIGMAP} (object 2): kind RoleBinding cannot be deployed`,
      ),
    });
    expect(k8s.store.list("v1", "ConfigMap", "kube-system")).toEqual([]);
    expect(k8s.store.list("rbac.authorization.k8s.io/v1", "RoleBinding", "kube-system")).toEqual([]);
    expect(k8s.store.get("v1", "ConfigMap", NAMESPACE, "planted")).toBeUndefined();
    expect(
      k8s.store.get("v1", "Namespace", undefined, NAMESPACE)?.metadata.annotations?.["kubler.dev/status"],
    ).toBe("failed");
    expect(deps.publisher.entries.at(-1)?.detail).toMatchObject({ status: "failed", sha: SHA_2 });
  });

  it("does not restore a last-good record changed since Kubler wrote it (a CI job may patch ConfigMaps)", async () => {
    await deployEnvironment(deps, requested());
    // Namespaced, allowed kinds, nothing the checks would refuse: only the digest tells.
    await forgeLastGood(
      [{ apiVersion: "v1", kind: "ConfigMap", metadata: { name: "planted", namespace: NAMESPACE } }],
      { digest: "unchanged" },
    );
    files.setRollout("fail");
    const outcome = await deployEnvironment(deps, requested({ sha: SHA_2, pipelineId: 101 }));
    expect(outcome).toMatchObject({
      kind: "failed",
      reason: expect.stringContaining(
        `record is not usable: ConfigMap ${LAST_GOOD_CONFIGMAP} was changed since Kubler wrote it`,
      ),
    });
    expect(k8s.store.get("v1", "ConfigMap", NAMESPACE, "planted")).toBeUndefined();
  });

  it("restores a last-good record's objects into the environment's namespace only, labelled as its own", async () => {
    await deployEnvironment(deps, requested());
    k8s.store.put({ apiVersion: "v1", kind: "Namespace", metadata: { name: "elsewhere" } });
    await forgeLastGood([
      ...storedLastGood(),
      { apiVersion: "v1", kind: "ConfigMap", metadata: { name: "planted", namespace: "elsewhere" } },
    ]);
    files.setRollout("fail");
    const outcome = await deployEnvironment(deps, requested({ sha: SHA_2, pipelineId: 101 }));
    expect(outcome.kind).toBe("rolled_back");
    expect(k8s.store.get("v1", "ConfigMap", "elsewhere", "planted")).toBeUndefined();
    expect(k8s.store.get("v1", "ConfigMap", NAMESPACE, "planted")?.metadata.labels).toMatchObject({
      "app.kubernetes.io/managed-by": "kubler",
      "kubler.dev/project-id": "2",
    });
  });

  it.each([
    ["containers: [null]", "spec.template.spec.containers[0]: expected a mapping, found null"],
    ["containers: 5", "spec.template.spec.containers: expected a list, found 5"],
    [
      "containers: { name: app, image: app }",
      "spec.template.spec.containers: expected a list, found a mapping",
    ],
  ])("fails a pod spec with %s as a bad manifest, never a crash", async (field, problem) => {
    files.addManifest(
      "broken.yaml",
      `apiVersion: apps/v1\nkind: Deployment\nmetadata: { name: broken }\nspec:\n  template:\n    spec:\n      ${field}\n`,
    );
    const outcome = await deployEnvironment(deps, requested());
    expect(outcome).toMatchObject({
      kind: "failed",
      reason: `deploy/broken.yaml (document 1): Deployment broken: ${problem}`,
    });
    expect(deps.publisher.entries.map((e) => e.detail)).toMatchObject([{ status: "failed" }]);
    expect(k8s.store.get("v1", "Namespace", undefined, NAMESPACE)).toBeUndefined();
  });

  it("reports a failing first rollout as failed: there is nothing to roll back to", async () => {
    files.setRollout("fail");
    const outcome = await deployEnvironment(deps, requested());
    expect(outcome).toMatchObject({
      kind: "failed",
      reason: expect.stringContaining("no earlier good revision"),
    });
    expect(
      k8s.store.get("v1", "Namespace", undefined, NAMESPACE)?.metadata.annotations?.["kubler.dev/status"],
    ).toBe("failed");
    expect(k8s.store.get("v1", "ConfigMap", NAMESPACE, LAST_GOOD_CONFIGMAP)).toBeUndefined();
  });

  it("pins the image a build produced, by digest", async () => {
    // The sample project names its image (image.name), so a finished build pins it.
    const digest = `sha256:${"c".repeat(64)}`;
    const outcome = await deployEnvironment(deps, {
      detailType: "Build Finished",
      time: new Date("2026-11-21T10:00:00Z"),
      detail: { ...requested().detail, status: "succeeded", imageDigest: digest, reason: null },
    });
    expect(outcome.kind).toBe("succeeded");
    const deployment = appDeployment();
    expect(deployment.spec.template.spec.containers[0]?.image).toBe(
      `registry.example.com/flightjs/flight-management@${digest}`,
    );
  });

  it("fails a deploy of a commit without kubler.yaml, touching nothing: its commit status does not stay running", async () => {
    rmSync(join(projects, PROJECT, "kubler.yaml"));
    const reason = `no kubler.yaml at ${SHA_1}: the project is not opted in`;
    expect(await deployEnvironment(deps, requested())).toMatchObject({ kind: "failed", reason });
    expect(deps.publisher.entries.map((e) => [e.detailType, e.detail])).toMatchObject([
      ["Deploy Finished", { status: "failed", reason, url: null }],
    ]);
    expect(deps.audit.last()).toMatchObject({ action: "environment.deploy", outcome: "failure", reason });
    expect(k8s.store.get("v1", "Namespace", undefined, NAMESPACE)).toBeUndefined();
  });

  it("fails a bad kubler.yaml with its path and problem, touching nothing", async () => {
    writeFileSync(
      join(projects, PROJECT, "kubler.yaml"),
      "version: 1\ndeploy: { manifests: deploy/ }\nenvironments: []\n",
    );
    const outcome = await deployEnvironment(deps, requested());
    expect(outcome).toMatchObject({
      kind: "failed",
      reason: "kubler.yaml: environments: expected at least one environment, found []",
    });
    expect(k8s.store.get("v1", "Namespace", undefined, NAMESPACE)).toBeUndefined();
    expect(deps.publisher.entries[0]?.detail).toMatchObject({ status: "failed" });
  });

  it("ends a deploy the cluster refused at length with Deploy Finished, its reason clipped to the bus's 8 KB, whole in the audit line", async () => {
    // The API server lists every invalid field: a manifest with many can make a message over 8 KB.
    const message = `Deployment.apps "flight-management" is invalid: [${'spec.template.spec.containers[0].env[0].name: Invalid value: "a b", '.repeat(120)}]`;
    const refused = k8s.faults.add({ verb: "apply", resource: "deployments", status: 422, message });
    try {
      const outcome = await deployEnvironment(deps, requested());
      expect(outcome).toMatchObject({ kind: "failed" });
      const published = deps.publisher.entries.map((e) => [e.detailType, e.detail]);
      expect(published).toMatchObject([
        [
          "Deploy Finished",
          {
            status: "failed",
            reason: expect.stringMatching(
              /^the cluster refused a manifest: Deployment\.apps "flight-management" is invalid: .*… \(clipped: the whole reason is in the audit line\)$/,
            ),
          },
        ],
      ]);
      expect(deps.audit.last()).toMatchObject({
        outcome: "failure",
        reason: expect.stringContaining(`the cluster refused a manifest: ${message}`),
      });
    } finally {
      refused.remove();
    }
  });

  it("fails manifests too large for the last-good record before applying any, saying what to do", async () => {
    // Each ConfigMap fits in 1 MiB; the record of both does not, and the API server refuses it (422).
    for (const name of ["dashboards-a", "dashboards-b"]) {
      files.addManifest(
        `${name}.yaml`,
        `apiVersion: v1\nkind: ConfigMap\nmetadata: { name: ${name} }\ndata: { json: ${"x".repeat(600_000)} }\n`,
      );
    }
    const refused = k8s.faults.add({
      verb: "apply",
      resource: "configmaps",
      name: LAST_GOOD_CONFIGMAP,
      status: 422,
      message: `ConfigMap "${LAST_GOOD_CONFIGMAP}" is invalid: []: Too long: must have at most 1048576 bytes`,
    });
    try {
      const reason = expect.stringMatching(
        /^deploy\/: the objects take 1\d{6} bytes as JSON, more than the 104\d{4} bytes .*kubler-last-good.*keep large data out of the manifests/,
      );
      expect(await deployEnvironment(deps, requested())).toMatchObject({ kind: "failed", reason });
      expect(deps.publisher.entries.map((e) => [e.detailType, e.detail])).toMatchObject([
        ["Deploy Finished", { status: "failed", reason }],
      ]);
      expect(refused.hits).toBe(0);
      expect(k8s.store.get("v1", "Namespace", undefined, NAMESPACE)).toBeUndefined();
    } finally {
      refused.remove();
    }
  });

  it("deploys a revision whose Secrets' data and other objects each fit in their own record, though not together", async () => {
    // Secrets' data goes to Secret kubler-last-good, the rest to the ConfigMap: each holds 1 MiB.
    files.addManifest(
      "dashboards.yaml",
      `apiVersion: v1\nkind: ConfigMap\nmetadata: { name: dashboards }\ndata: { json: ${"x".repeat(600_000)} }\n`,
    );
    files.addManifest(
      "keystore.yaml",
      `apiVersion: v1\nkind: Secret\nmetadata: { name: keystore }\nstringData: { jks: ${"y".repeat(600_000)} }\n`,
    );
    expect(await deployEnvironment(deps, requested())).toMatchObject({ kind: "succeeded" });
    const record = k8s.store.get("v1", "ConfigMap", NAMESPACE, LAST_GOOD_CONFIGMAP)?.data as Record<
      string,
      string
    >;
    expect(record["objects.json"]).toContain("dashboards");
    expect(record["objects.json"]).not.toContain("yyyy");
    expect(k8s.store.get("v1", "Secret", NAMESPACE, LAST_GOOD_CONFIGMAP)).toBeDefined();
  });

  it("fails Secrets whose data is too large for the last-good record before applying any, saying so", async () => {
    for (const name of ["keystore-a", "keystore-b"]) {
      files.addManifest(
        `${name}.yaml`,
        `apiVersion: v1\nkind: Secret\nmetadata: { name: ${name} }\nstringData: { jks: ${"y".repeat(600_000)} }\n`,
      );
    }
    const reason = expect.stringMatching(
      /^deploy\/: the Secrets' data takes 1\d{6} bytes as JSON, more than the 104\d{4} bytes .*Secret kubler-last-good.*keep large data out of the manifests/,
    );
    expect(await deployEnvironment(deps, requested())).toMatchObject({ kind: "failed", reason });
    expect(k8s.store.get("v1", "Namespace", undefined, NAMESPACE)).toBeUndefined();
  });

  it("fails a manifests directory without YAML files, naming it and what is read, touching nothing", async () => {
    writeFileSync(
      join(projects, PROJECT, "kubler.yaml"),
      "version: 1\ndeploy: { manifests: k8s/ }\nenvironments: [{ name: 'review/{branch}', on: merge_request }]\n",
    );
    const outcome = await deployEnvironment(deps, requested());
    expect(outcome).toMatchObject({
      kind: "failed",
      reason: `k8s/: no manifest files (*.yaml, *.yml, *.json) in this directory at ${SHA_1}: deploy.manifests in kubler.yaml names the directory that holds them (its subdirectories are not read)`,
    });
    expect(k8s.store.get("v1", "Namespace", undefined, NAMESPACE)).toBeUndefined();
  });

  it("never adopts a namespace Kubler does not manage", async () => {
    k8s.store.put({
      apiVersion: "v1",
      kind: "Namespace",
      metadata: { name: NAMESPACE, labels: { team: "payments" } },
    });
    const outcome = await deployEnvironment(deps, requested());
    expect(outcome).toMatchObject({ kind: "failed", reason: expect.stringContaining("is not Kubler's") });
    expect(k8s.store.get("v1", "Namespace", undefined, NAMESPACE)?.metadata.labels).toEqual({
      team: "payments",
    });
    expect(k8s.store.list("apps/v1", "Deployment", NAMESPACE)).toEqual([]);
    k8s.store.put({
      apiVersion: "v1",
      kind: "Namespace",
      metadata: { name: NAMESPACE, labels: { team: "payments" } },
    });
    await deps.cluster.delete({ apiVersion: "v1", kind: "Namespace", name: NAMESPACE });
  });
});

/** The cluster as the deploy sees it, recording each call; `onRollout` runs once, at the first rollout poll. */
function watchedCluster(onRollout: () => Promise<void> = async () => {}) {
  const inner = deps.cluster;
  const calls: string[] = [];
  let polled = false;
  // The deploy reads each object just before writing it too: the rollout is the read after the write.
  let deploymentApplied = false;
  const cluster: DeployEnvironmentDeps["cluster"] = {
    ...inner,
    get: async (ref) => {
      calls.push(`get ${ref.kind}`);
      if (ref.kind === "Deployment" && deploymentApplied && !polled) {
        polled = true;
        await onRollout();
      }
      return inner.get(ref);
    },
    apply: async (object) => {
      calls.push(
        `apply ${object.kind}${object.metadata.resourceVersion ? ` over ${object.metadata.resourceVersion}` : ""}`,
      );
      if (object.kind === "Deployment") deploymentApplied = true;
      return inner.apply(object);
    },
  };
  return { cluster, calls };
}

/** What the deploy and reconcile published, each a Deploy Finished. */
function finished(): Record<string, unknown>[] {
  return deps.publisher.entries.map((e) => ({ detailType: e.detailType, ...e.detail }));
}

/** Reconcile's run a minute past the deploy's rollout deadline, on the same bus. */
async function reconcileLate(): Promise<void> {
  const deadline = k8s.store.get("v1", "Namespace", undefined, NAMESPACE)?.metadata.annotations?.[
    "kubler.dev/rollout-deadline"
  ];
  const report = await reconcileEnvironments({
    cluster: createKubernetesCluster({ kubeconfig: k8s.kubeconfig }),
    publisher: deps.publisher,
    audit: deps.audit,
    clock: new FixedClock(new Date(new Date(deadline ?? "").getTime() + 60_000)),
    newId: sequentialIds("reconcile"),
  });
  expect(report.rolloutsFailed).toEqual([NAMESPACE]);
}

describe("deployEnvironment's final write against reconcile and newer deploys", () => {
  beforeEach(() => waitForNamespaceGone(NAMESPACE));

  it("writes its deploying state over the namespace it read, its final state over its deploying write only", async () => {
    await deployEnvironment(deps, requested());
    const { cluster, calls } = watchedCluster();
    deps.cluster = cluster;
    await deployEnvironment(deps, requested({ sha: SHA_2, pipelineId: 101, correlationId: "corr-2" }));
    const namespaceCalls = calls.filter((c) => c.endsWith("Namespace") || /Namespace over/.test(c));
    expect(namespaceCalls).toEqual([
      // Which namespace (resolveEnvironmentNamespace, before the manifest is read), then what runs
      // there, read again just before the deploying write, which goes over what was read.
      "get Namespace",
      "get Namespace",
      expect.stringMatching(/^apply Namespace over \d+$/),
      // Still this deploy's, before the deployer's RBAC and before the manifests are written.
      "get Namespace",
      "get Namespace",
      expect.stringMatching(/^apply Namespace over \d+$/),
    ]);
    // The record follows the Namespace that commits to its digest; nothing else moved.
    expect(calls.slice(-2)).toEqual([namespaceCalls[5], "apply ConfigMap"]);
    expect(calls.filter((c) => /^apply Namespace over/.test(c))).toHaveLength(2);
    expect(finished().map((d) => d.status)).toEqual(["succeeded", "succeeded"]);
  });

  it("keeps reconcile's failed mark on an attempt it failed while the rollout ran: reported once, never succeeded", async () => {
    await deployEnvironment(deps, requested());
    const before = k8s.store.get("v1", "ConfigMap", NAMESPACE, LAST_GOOD_CONFIGMAP)?.metadata.resourceVersion;
    deps.cluster = watchedCluster(reconcileLate).cluster;
    const outcome = await deployEnvironment(
      deps,
      requested({ sha: SHA_2, pipelineId: 101, correlationId: "corr-2" }),
    );
    expect(outcome).toEqual({
      kind: "ignored",
      reason: expect.stringContaining("reconcile marked this rollout failed"),
    });
    expect(k8s.store.get("v1", "Namespace", undefined, NAMESPACE)?.metadata.annotations).toMatchObject({
      "kubler.dev/sha": SHA_2,
      "kubler.dev/attempted-sha": SHA_2,
      "kubler.dev/status": "failed",
      "kubler.dev/failure-reported": "true",
      "kubler.dev/correlation-id": "corr-2",
    });
    // The last good record is still SHA_1's, matching the digest the mark kept: a rollback can use it.
    expect(k8s.store.get("v1", "ConfigMap", NAMESPACE, LAST_GOOD_CONFIGMAP)?.metadata.resourceVersion).toBe(
      before,
    );
    expect(finished().map((d) => [d.correlationId, d.sha, d.status])).toEqual([
      ["corr-1", SHA_1, "succeeded"],
      ["corr-2", SHA_2, "failed"],
    ]);
    expect(deps.scheduler.schedules.get(NAMESPACE)?.at).toEqual(
      new Date(
        k8s.store.get("v1", "Namespace", undefined, NAMESPACE)?.metadata.annotations?.[
          "kubler.dev/expires-at"
        ] ?? "",
      ),
    );
    expect(deps.audit.last()).toMatchObject({
      action: "environment.deploy",
      outcome: "ignored",
      correlationId: "corr-2",
      reason: expect.stringContaining("ended succeeded"),
    });
    // A redelivery of the attempt republishes reconcile's failure, as for any finished attempt.
    deps.cluster = createKubernetesCluster({ kubeconfig: k8s.kubeconfig });
    const again = await deployEnvironment(
      deps,
      requested({ sha: SHA_2, pipelineId: 101, correlationId: "corr-2" }),
    );
    expect(again).toMatchObject({ kind: "failed", reason: expect.stringContaining("repeat") });
  });

  it("keeps reconcile's mark over a rollback the deploy finished later: failed reported once", async () => {
    await deployEnvironment(deps, requested());
    files.setRollout("fail");
    deps.cluster = watchedCluster(reconcileLate).cluster;
    const outcome = await deployEnvironment(
      deps,
      requested({ sha: SHA_2, pipelineId: 101, correlationId: "corr-2" }),
    );
    expect(outcome.kind).toBe("ignored");
    expect(k8s.store.get("v1", "Namespace", undefined, NAMESPACE)?.metadata.annotations).toMatchObject({
      "kubler.dev/status": "failed",
      "kubler.dev/failure-reported": "true",
    });
    expect(finished().map((d) => d.status)).toEqual(["succeeded", "failed"]);
  });

  it("a rollback shows its own deadline first: reconcile running during the rollback wait leaves it alone", async () => {
    await deployEnvironment(deps, requested());
    files.setRollout("fail");
    const firstDeadline = () =>
      new Date(
        k8s.store.get("v1", "Namespace", undefined, NAMESPACE)?.metadata.annotations?.[
          "kubler.dev/rollout-deadline"
        ] ?? "",
      );
    let attemptDeadline: Date | undefined;
    let deploymentPolls = 0;
    let deploymentApplied = false;
    let deployingWrites = 0;
    let rollingBack = false;
    let reconciled = false;
    const inner = deps.cluster;
    const get: typeof inner.get = async (ref) => {
      if (ref.kind === "Deployment" && deploymentApplied && ++deploymentPolls === 1) {
        // The failed rollout took a minute: the rollback's deadline is a minute later than the attempt's.
        attemptDeadline = firstDeadline();
        (deps.clock as FixedClock).advance(60_000);
      } else if (ref.kind === "Deployment" && rollingBack && !reconciled) {
        reconciled = true;
        // Reconcile runs past the attempt's deadline, before the rollback's.
        const report = await reconcileEnvironments({
          cluster: createKubernetesCluster({ kubeconfig: k8s.kubeconfig }),
          publisher: deps.publisher,
          audit: deps.audit,
          clock: new FixedClock(new Date((attemptDeadline as Date).getTime() + 30_000)),
          newId: sequentialIds("reconcile"),
        });
        expect(report.rolloutsFailed).toEqual([]);
      }
      return inner.get(ref);
    };
    // Every other call (the rollback lists and deletes too) goes to the real adapter.
    deps.cluster = new Proxy(inner, {
      get: (target, name) => {
        if (name === "get") return get;
        if (name === "apply") {
          return (object: KubeObject) => {
            // The rollback's own "deploying" write, over the attempt's: what reconcile must find.
            // (The attempt's own "deploying" write goes over the namespace it read: the second is the rollback's.)
            const status = object.metadata.annotations?.["kubler.dev/status"];
            if (object.kind === "Namespace" && object.metadata.resourceVersion && status === "deploying") {
              rollingBack = ++deployingWrites > 1;
            }
            if (object.kind === "Deployment") deploymentApplied = true;
            return target.apply(object);
          };
        }
        const value = Reflect.get(target, name);
        return typeof value === "function" ? value.bind(target) : value;
      },
    });
    const outcome = await deployEnvironment(
      deps,
      requested({ sha: SHA_2, pipelineId: 101, correlationId: "corr-2" }),
    );
    expect(reconciled).toBe(true);
    expect(outcome.kind).toBe("rolled_back");
    expect(finished().map((d) => d.status)).toEqual(["succeeded", "rolled_back"]);
    expect(k8s.store.get("v1", "Namespace", undefined, NAMESPACE)?.metadata.annotations).toMatchObject({
      "kubler.dev/status": "rolled_back",
      "kubler.dev/sha": SHA_1,
    });
  });

  it("stops quietly, audited, when a newer deploy wrote the namespace while its rollout ran", async () => {
    await deployEnvironment(deps, requested());
    deps.cluster = watchedCluster(async () => {
      const namespace = k8s.store.get("v1", "Namespace", undefined, NAMESPACE) as KubeObject;
      namespace.metadata.annotations = {
        ...namespace.metadata.annotations,
        "kubler.dev/attempted-sha": SHA_3,
        "kubler.dev/attempted-pipeline-id": "102",
        "kubler.dev/correlation-id": "corr-3",
      };
      k8s.store.put(namespace);
    }).cluster;
    const outcome = await deployEnvironment(
      deps,
      requested({ sha: SHA_2, pipelineId: 101, correlationId: "corr-2" }),
    );
    expect(outcome).toEqual({ kind: "ignored", reason: expect.stringContaining(`a newer deploy (${SHA_3}`) });
    expect(k8s.store.get("v1", "Namespace", undefined, NAMESPACE)?.metadata.annotations).toMatchObject({
      "kubler.dev/attempted-sha": SHA_3,
      "kubler.dev/status": "deploying",
    });
    expect(deps.publisher.entries.map((e) => e.detail.correlationId)).toEqual(["corr-1"]);
    expect(deps.audit.last()).toMatchObject({ outcome: "ignored", correlationId: "corr-2" });
  });
});

describe("deploy-environment consumer", () => {
  it("audits a build that did not succeed as ignored, and deploys nothing", async () => {
    const detail = {
      ...requested({ pipelineId: null }).detail,
      status: "failed",
      imageDigest: null,
      reason: "the build Job failed",
    };
    const outcome = await createDeployEnvironmentConsumer(deps)({
      version: "0",
      id: "e-1",
      "detail-type": "Build Finished",
      source: sourceOf("Build Finished"),
      account: "000000000000",
      time: "2026-11-21T10:00:00Z",
      region: "local",
      resources: [],
      detail,
    });
    expect(outcome).toEqual({ kind: "ignored", reason: "build failed" });
    expect(deps.publisher.entries).toEqual([]);
    expect(deps.audit.records).toEqual([
      expect.objectContaining({
        action: "environment.deploy",
        outcome: "ignored",
        reason: "build failed: nothing to deploy",
        function: "deploy-environment",
        correlationId: "corr-1",
        subject: { project: PROJECT, projectId: 2, environment: ENVIRONMENT, sha: SHA_1 },
        gitlab: expect.objectContaining({ event: "Build Finished" }),
      }),
    ]);
  });
});
