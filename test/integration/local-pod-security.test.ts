/**
 * The local runtime gives its deploys the Pod Security level `KUBLER_POD_SECURITY` names, as the
 * deploy function does in AWS: a runtime started with `restricted` makes environment namespaces that
 * enforce `restricted`, not the default `baseline`.
 */
import { afterAll, beforeAll, expect, it } from "vitest";
import { deployStaging, type LocalTestRuntime, startLocalTestRuntime } from "../fakes/local-runtime.js";

let local: LocalTestRuntime;

beforeAll(async () => {
  local = await startLocalTestRuntime("kubler-pod-security-", { KUBLER_POD_SECURITY: "restricted" });
}, 30_000);

afterAll(() => local?.close());

it("deploys into a namespace that enforces KUBLER_POD_SECURITY=restricted", async () => {
  const name = await deployStaging(local.runtime, "pod-security-1");

  const namespace = await local.runtime.environments.cluster.get({
    apiVersion: "v1",
    kind: "Namespace",
    name,
  });
  expect(namespace?.metadata.labels).toMatchObject({ "pod-security.kubernetes.io/enforce": "restricted" });
});
