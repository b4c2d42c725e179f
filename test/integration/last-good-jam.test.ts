/**
 * A CI job must not be able to jam an environment's deploys through Kubler's own objects in its
 * namespace. The job here is a real identity bound to the Role Kubler wrote (a TokenRequest token of
 * `kubler-deployer`, whose RoleBinding `kubler-ci-*` accounts share), acting through
 * `@kubernetes/client-node` over HTTP on the embedded API, which refuses, as a real API server does,
 * any change to an immutable ConfigMap's or Secret's values and to a Secret's type. Before Kubler
 * replaced such objects, each hostile write below made every later deploy of the environment throw
 * (retried by the bus until dead-lettered) until an operator deleted the object by hand.
 */
import * as k8s from "@kubernetes/client-node";
import { beforeEach, describe, expect, it } from "vitest";
import {
  DEPLOYER_NAME,
  LAST_GOOD_CONFIGMAP,
  PULL_SECRET_NAME,
} from "../../shared/domain/deploy-manifests.js";
import { namespaceFor } from "../../shared/domain/environment.js";
import { deployEnvironment } from "../../shared/services/deploy-environment.js";
import { ciJobClient, deployerRoleRules } from "../fakes/ci-job.js";
import { PROJECT, revisionRequested, useDeployCluster } from "../fakes/deploy-deps.js";
import { failure } from "../fakes/kubernetes-api.js";
import { allows } from "../fakes/rbac.js";

const DB_SECRET = `apiVersion: v1
kind: Secret
metadata: { name: flight-management-db }
data: { password: c2VjcmV0 }
`;
const ACCOUNT = `apiVersion: v1
kind: ServiceAccount
metadata: { name: flight-management }
`;
const DOCKER_CONFIG = JSON.stringify({ auths: { "registry.example.com": { auth: "cHVsbDpvbmx5" } } });
const mergePatch = k8s.setHeaderOptions("Content-Type", k8s.PatchStrategy.MergePatch);

const env = useDeployCluster("kubler-last-good-jam-", { clear: "none" });
/** Each test deploys an environment of its own. */
let environment: string;
let namespace: string;
let tests = 0;

beforeEach(() => {
  environment = `review/jam-${++tests}`;
  namespace = namespaceFor(PROJECT, environment);
});

/** Revision `n` of the test's environment, each a newer pipeline. */
function deploy(n: number): ReturnType<typeof deployEnvironment> {
  return deployEnvironment(env.deps, revisionRequested(environment, n, `jam-${tests}-${n}`));
}

const ciJob = () => ciJobClient(env.k8s, env.deps.cluster, namespace);
const roleRules = () => deployerRoleRules(env.k8s, namespace);

function stored(kind: "ConfigMap" | "Secret", name: string) {
  return env.k8s.store.get("v1", kind, namespace, name);
}

function lastAuditSubject(): Record<string, unknown> {
  return env.deps.audit.last()?.subject ?? {};
}

describe("the last-good record a CI job wrote over or before Kubler", () => {
  it("a ConfigMap kubler-last-good made immutable by the job is replaced by the next deploy, which a later rollback then uses", async () => {
    expect(await deploy(1)).toMatchObject({ kind: "succeeded" });
    expect(allows(roleRules(), "patch", "", "configmaps", LAST_GOOD_CONFIGMAP)).toBe(true);
    const job = await ciJob();
    await job.patchNamespacedConfigMap(
      { name: LAST_GOOD_CONFIGMAP, namespace, body: { immutable: true, data: { sha: "junk" } } },
      mergePatch,
    );
    const hostile = stored("ConfigMap", LAST_GOOD_CONFIGMAP);
    expect(hostile?.immutable).toBe(true);

    expect(await deploy(2)).toMatchObject({ kind: "succeeded" });
    const record = stored("ConfigMap", LAST_GOOD_CONFIGMAP);
    expect(record?.immutable).toBeUndefined();
    expect(record?.metadata.uid).not.toBe(hostile?.metadata.uid);
    expect((record?.data as Record<string, string> | undefined)?.sha).toBe("2".repeat(40));
    expect(lastAuditSubject()).toMatchObject({
      status: "succeeded",
      replaced: [`ConfigMap/${LAST_GOOD_CONFIGMAP}`],
    });
    expect(JSON.stringify(env.deps.audit.records)).not.toContain("junk");

    env.files.setRollout("fail");
    const broken = await deploy(3);
    expect(broken).toMatchObject({ kind: "rolled_back" });
    expect(broken.kind !== "ignored" && broken.reason).toContain(`rolled back to ${"2".repeat(40)}`);
  });

  it("a record the job wrote, immutable, is not restored before it is replaced: the digest on the Namespace says so", async () => {
    expect(await deploy(1)).toMatchObject({ kind: "succeeded" });
    const job = await ciJob();
    await job.patchNamespacedConfigMap(
      { name: LAST_GOOD_CONFIGMAP, namespace, body: { immutable: true, data: { pipelineId: "99" } } },
      mergePatch,
    );
    env.files.setRollout("fail");
    const failed = await deploy(2);
    expect(failed).toMatchObject({ kind: "failed" });
    expect(failed.kind !== "ignored" && failed.reason).toContain("its record is not usable");
  });

  it.each([
    ["immutable, with junk", { immutable: true, stringData: { "secrets.json": "junk" } }],
    ["of another type", { type: "example.com/not-opaque", stringData: { note: "junk" } }],
  ])(
    "a Secret kubler-last-good the job created first (%s) is replaced by Kubler's first record",
    async (_, hostile) => {
      env.files.addManifest("secret.yaml", DB_SECRET);
      env.files.setRollout("fail");
      // No revision succeeded yet, so no record: the window in which the job may create its name.
      expect(await deploy(1)).toMatchObject({ kind: "failed" });
      expect(stored("Secret", LAST_GOOD_CONFIGMAP)).toBeUndefined();
      expect(allows(roleRules(), "create", "", "secrets")).toBe(true);
      const job = await ciJob();
      await job.createNamespacedSecret({
        namespace,
        body: { metadata: { name: LAST_GOOD_CONFIGMAP }, ...hostile },
      });
      const created = stored("Secret", LAST_GOOD_CONFIGMAP);
      expect(created?.metadata.uid).toBeDefined();

      env.files.setRollout("ok");
      expect(await deploy(2)).toMatchObject({ kind: "succeeded" });
      const record = stored("Secret", LAST_GOOD_CONFIGMAP);
      expect(record?.metadata.uid).not.toBe(created?.metadata.uid);
      expect(record).toMatchObject({ type: "Opaque" });
      expect(record?.immutable).toBeUndefined();
      expect(lastAuditSubject()).toMatchObject({ replaced: [`Secret/${LAST_GOOD_CONFIGMAP}`] });
      expect(JSON.stringify(env.deps.audit.records)).not.toContain("junk");

      // The replaced record restores the Secret's value on a rollback.
      await job.patchNamespacedSecret(
        { name: "flight-management-db", namespace, body: { data: { password: "Y2hhbmdlZA==" } } },
        mergePatch,
      );
      env.files.setRollout("fail");
      expect(await deploy(3)).toMatchObject({ kind: "rolled_back" });
      expect(stored("Secret", "flight-management-db")?.data).toEqual({ password: "c2VjcmV0" });
    },
  );

  it("a refusal that replacing does not cure (nothing there once deleted) fails the attempt as it came, for the bus to retry", async () => {
    expect(await deploy(1)).toMatchObject({ kind: "succeeded" });
    const job = await ciJob();
    await job.patchNamespacedConfigMap(
      { name: LAST_GOOD_CONFIGMAP, namespace, body: { immutable: true } },
      mergePatch,
    );
    const refused = env.k8s.faults.add({
      verb: "apply",
      resource: "configmaps",
      name: LAST_GOOD_CONFIGMAP,
      status: 422,
      message: "field is immutable when `immutable` is set",
    });
    const deletes = env.k8s.faults.add({ verb: "delete", resource: "configmaps", latencyMs: 0 });
    await expect(deploy(2)).rejects.toThrow(/field is immutable/);
    // Refused, deleted (the object was there), refused again with nothing there: not deleted again.
    expect(refused.hits).toBe(2);
    expect(deletes.hits).toBe(1);
  });

  it("a deploy that finds its record already Kubler's writes over it without replacing anything", async () => {
    expect(await deploy(1)).toMatchObject({ kind: "succeeded" });
    const first = stored("ConfigMap", LAST_GOOD_CONFIGMAP);
    expect(await deploy(2)).toMatchObject({ kind: "succeeded" });
    expect(stored("ConfigMap", LAST_GOOD_CONFIGMAP)?.metadata.uid).toBe(first?.metadata.uid);
    expect(lastAuditSubject()).not.toHaveProperty("replaced");
  });
});

describe("Kubler's other objects in the namespace", () => {
  it("a pull secret kubler-registry the job created before the registry was configured is replaced", async () => {
    env.files.addManifest("secret.yaml", DB_SECRET);
    expect(await deploy(1)).toMatchObject({ kind: "succeeded" });
    expect(stored("Secret", PULL_SECRET_NAME)).toBeUndefined();
    expect(allows(roleRules(), "create", "", "secrets")).toBe(true);
    const job = await ciJob();
    await job.createNamespacedSecret({
      namespace,
      body: { metadata: { name: PULL_SECRET_NAME }, immutable: true, stringData: { note: "junk" } },
    });

    env.deps.pullSecret = async () => DOCKER_CONFIG;
    expect(await deploy(2)).toMatchObject({ kind: "succeeded" });
    const secret = stored("Secret", PULL_SECRET_NAME);
    expect(secret).toMatchObject({ type: "kubernetes.io/dockerconfigjson" });
    expect(secret?.immutable).toBeUndefined();
    const config = (secret?.data as Record<string, string> | undefined)?.[".dockerconfigjson"] ?? "";
    expect(Buffer.from(config, "base64").toString()).toBe(DOCKER_CONFIG);
    expect(lastAuditSubject()).toMatchObject({ replaced: [`Secret/${PULL_SECRET_NAME}`] });
  });

  it.each([
    ["pull secret", "secrets", PULL_SECRET_NAME],
    ["last-good record", "configmaps", LAST_GOOD_CONFIGMAP],
  ] as const)(
    "a 422 for Kubler's own %s that nothing made unwritable (an admission policy's) leaves it in place",
    async (_, resource, name) => {
      env.files.addManifest("secret.yaml", DB_SECRET);
      env.deps.pullSecret = async () => DOCKER_CONFIG;
      expect(await deploy(1)).toMatchObject({ kind: "succeeded" });
      const kind = resource === "secrets" ? "Secret" : "ConfigMap";
      const before = stored(kind, name);
      expect(before?.metadata.uid).toBeDefined();
      // A ValidatingAdmissionPolicy's refusal is 422 Invalid unless it names another reason.
      const refused = env.k8s.faults.add({
        verb: "apply",
        resource,
        name,
        status: 422,
        message: `${kind} "${name}" is forbidden: ValidatingAdmissionPolicy 'require-team-label' denied request`,
      });
      await expect(deploy(2)).rejects.toThrow(/ValidatingAdmissionPolicy/);
      expect(refused.hits).toBe(1);
      // Still there: the pods' image pulls, or the next rollback, need it; replacing would not help.
      expect(stored(kind, name)?.metadata.uid).toBe(before?.metadata.uid);
    },
  );

  it("the job's writes to Kubler's ServiceAccounts do not stop the next deploy", async () => {
    env.files.addManifest("service-account.yaml", ACCOUNT);
    expect(await deploy(1)).toMatchObject({ kind: "succeeded" });
    expect(allows(roleRules(), "patch", "", "serviceaccounts", DEPLOYER_NAME)).toBe(true);
    const job = await ciJob();
    await job.patchNamespacedServiceAccount(
      {
        name: DEPLOYER_NAME,
        namespace,
        body: {
          metadata: { labels: { "app.kubernetes.io/managed-by": "ci" } },
          automountServiceAccountToken: true,
          imagePullSecrets: [{ name: "junk" }],
        },
      },
      mergePatch,
    );
    // A job account made ahead of the credentials that would create it.
    await job.createNamespacedServiceAccount({
      namespace,
      body: { metadata: { name: "kubler-ci-kubler-deployer" }, automountServiceAccountToken: true },
    });
    expect(await deploy(2)).toMatchObject({ kind: "succeeded" });
    const deployer = env.k8s.store.get("v1", "ServiceAccount", namespace, DEPLOYER_NAME);
    expect(deployer?.metadata.labels?.["app.kubernetes.io/managed-by"]).toBe("kubler");
  });

  it("the job cannot write the Namespace, whose digest vouches for the record", async () => {
    expect(await deploy(1)).toMatchObject({ kind: "succeeded" });
    const job = await ciJob();
    const { code } = await failure(
      job.patchNamespace(
        { name: namespace, body: { metadata: { annotations: { "kubler.dev/last-good-digest": "0" } } } },
        mergePatch,
      ),
    );
    expect(code).toBe(403);
  });
});
