/**
 * Admission checks of the in-memory Kubernetes API that a Kubler object could trip on a real cluster:
 * a Job's podFailurePolicy (k8s pkg/apis/batch/validation validatePodFailurePolicy) and the 1 MiB a
 * ConfigMap's or a Secret's data may hold (pkg/apis/core/validation ValidateConfigMap, ValidateSecret).
 */
import * as k8s from "@kubernetes/client-node";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type MemoryKubernetes, startMemoryKubernetes } from "../../shared/local/memory-kubernetes/index.js";
import { failure } from "../fakes/kubernetes-api.js";

let server: MemoryKubernetes;
let core: k8s.CoreV1Api;
let batch: k8s.BatchV1Api;

beforeAll(async () => {
  server = await startMemoryKubernetes();
  const kc = new k8s.KubeConfig();
  kc.loadFromString(server.kubeconfig);
  core = kc.makeApiClient(k8s.CoreV1Api);
  batch = kc.makeApiClient(k8s.BatchV1Api);
});
afterAll(() => server.close());

let counter = 0;
async function namespace(): Promise<string> {
  const name = `admission-${++counter}`;
  await core.createNamespace({ body: { metadata: { name } } });
  return name;
}

const disruptionIgnored = {
  rules: [{ action: "Ignore", onPodConditions: [{ type: "DisruptionTarget", status: "True" }] }],
};

function job(spec: Record<string, unknown>, restartPolicy = "Never"): k8s.V1Job {
  return {
    metadata: { name: "build" },
    spec: {
      backoffLimit: 0,
      ...spec,
      template: {
        spec: {
          restartPolicy,
          initContainers: [{ name: "clone", image: "git" }],
          containers: [{ name: "buildkit", image: "moby/buildkit" }],
        },
      },
    },
  } as k8s.V1Job;
}

describe("Job podFailurePolicy", () => {
  it("is accepted with restartPolicy Never, as Kubler's build Job has it", async () => {
    const ns = await namespace();
    const created = await batch.createNamespacedJob({
      namespace: ns,
      body: job({ podFailurePolicy: disruptionIgnored }),
    });
    expect(created.spec?.podFailurePolicy).toEqual(disruptionIgnored);
  });

  it("refuses restartPolicy OnFailure with a podFailurePolicy (422, the API server's words)", async () => {
    const ns = await namespace();
    const error = await failure(
      batch.createNamespacedJob({
        namespace: ns,
        body: job({ podFailurePolicy: disruptionIgnored }, "OnFailure"),
      }),
    );
    expect(error.code).toBe(422);
    expect(error.status.details.causes).toContainEqual({
      reason: "FieldValueInvalid",
      message: 'Invalid value: "OnFailure": only "Never" is supported when podFailurePolicy is specified',
      field: "spec.template.spec.restartPolicy",
    });
  });

  it("refuses rules the API server refuses", async () => {
    const ns = await namespace();
    const error = await failure(
      batch.createNamespacedJob({
        namespace: ns,
        body: job({
          podFailurePolicy: {
            rules: [
              { action: "Restart", onPodConditions: [{ type: "DisruptionTarget", status: "Yes" }] },
              { action: "FailJob" },
              {
                action: "FailJob",
                onExitCodes: { operator: "In", values: [0, 3, 2], containerName: "nope" },
                onPodConditions: [{ type: "DisruptionTarget", status: "True" }],
              },
              { action: "FailIndex", onExitCodes: { operator: "Between", values: [] } },
            ],
          },
        }),
      }),
    );
    expect(error.code).toBe(422);
    const fields = (error.status.details.causes as { field: string; reason: string }[]).map(
      ({ field, reason }) => `${reason} ${field}`,
    );
    expect(fields).toEqual(
      expect.arrayContaining([
        "FieldValueNotSupported spec.podFailurePolicy.rules[0].action",
        "FieldValueNotSupported spec.podFailurePolicy.rules[0].onPodConditions[0].status",
        "FieldValueInvalid spec.podFailurePolicy.rules[1]",
        "FieldValueInvalid spec.podFailurePolicy.rules[2]",
        "FieldValueInvalid spec.podFailurePolicy.rules[2].onExitCodes.containerName",
        "FieldValueInvalid spec.podFailurePolicy.rules[2].onExitCodes.values[0]",
        "FieldValueInvalid spec.podFailurePolicy.rules[2].onExitCodes.values",
        "FieldValueInvalid spec.podFailurePolicy.rules[3].action",
        "FieldValueNotSupported spec.podFailurePolicy.rules[3].onExitCodes.operator",
        "FieldValueInvalid spec.podFailurePolicy.rules[3].onExitCodes.values",
      ]),
    );
  });

  it("names init containers as well as containers in onExitCodes.containerName", async () => {
    const ns = await namespace();
    const created = await batch.createNamespacedJob({
      namespace: ns,
      body: job({
        podFailurePolicy: {
          rules: [
            { action: "FailJob", onExitCodes: { containerName: "clone", operator: "In", values: [1, 2] } },
          ],
        },
      }),
    });
    expect(created.spec?.podFailurePolicy?.rules).toHaveLength(1);
  });
});

describe("ConfigMap and Secret size", () => {
  const MiB = 1024 * 1024;

  it("a ConfigMap's data and binaryData may hold 1 MiB together, not a byte more (422)", async () => {
    const ns = await namespace();
    const half = "x".repeat(MiB / 2);
    await core.createNamespacedConfigMap({
      namespace: ns,
      body: { metadata: { name: "full" }, data: { a: half, b: half } },
    });
    const error = await failure(
      core.createNamespacedConfigMap({
        namespace: ns,
        body: {
          metadata: { name: "over" },
          data: { a: half },
          binaryData: { b: Buffer.from(`${half}y`).toString("base64") },
        },
      }),
    );
    expect(error.code).toBe(422);
    expect(error.status.details.causes).toContainEqual(
      expect.objectContaining({
        reason: "FieldValueTooLong",
        message: `Too long: may not be more than ${MiB} bytes`,
      }),
    );
  });

  it("a Secret's decoded data may hold 1 MiB, stringData included (422 beyond)", async () => {
    const ns = await namespace();
    const exactly = Buffer.alloc(MiB, 1).toString("base64");
    await core.createNamespacedSecret({
      namespace: ns,
      body: { metadata: { name: "full" }, data: { a: exactly } },
    });
    const error = await failure(
      core.createNamespacedSecret({
        namespace: ns,
        body: { metadata: { name: "over" }, data: { a: exactly }, stringData: { b: "y" } },
      }),
    );
    expect(error.code).toBe(422);
    expect(error.status.details.causes).toContainEqual(
      expect.objectContaining({ reason: "FieldValueTooLong", field: "data" }),
    );
  });
});

describe("Secret data", () => {
  it("must be base64, as the API server's decoder requires: 400 on create and on apply", async () => {
    const ns = await namespace();
    const created = await failure(
      core.createNamespacedSecret({
        namespace: ns,
        body: { metadata: { name: "plain" }, data: { password: "hunter 2!" } },
      }),
    );
    expect(created.code).toBe(400);
    expect(created.status.reason).toBe("BadRequest");
    expect(created.status.message).toMatch(
      /^Secret in version "v1" cannot be handled as a Secret: illegal base64 data at input byte \d+$/,
    );
    const response = await fetch(
      `${server.url}/api/v1/namespaces/${ns}/secrets/plain?fieldManager=kubler&force=true`,
      {
        method: "PATCH",
        headers: { authorization: "Bearer memory", "content-type": "application/apply-patch+yaml" },
        body: JSON.stringify({
          apiVersion: "v1",
          kind: "Secret",
          metadata: { name: "plain" },
          data: { password: "abc" },
        }),
      },
    );
    expect(response.status).toBe(400);
    await core.createNamespacedSecret({
      namespace: ns,
      body: { metadata: { name: "fine" }, data: { a: "aGk=", b: "" }, stringData: { c: "not base64 here" } },
    });
  });
});
