/**
 * The local runtime gives its deploys the Pod Security level `KUBLER_POD_SECURITY` names, as the
 * deploy function does in AWS: a runtime started with `restricted` makes environment namespaces that
 * enforce `restricted`, not the default `baseline`.
 */
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, expect, it } from "vitest";
import { type LocalRuntime, startLocalRuntime } from "../../cli/local-runtime.js";
import { loadLocalConfig } from "../../shared/config.js";
import type { Detail } from "../../shared/domain/catalog.js";
import { namespaceFor } from "../../shared/domain/environment.js";

const PROJECT = "flightjs/flight-management";
const ENVIRONMENT = "staging";

let runtime: LocalRuntime;
let dataDir: string;

beforeAll(async () => {
  dataDir = mkdtempSync(join(tmpdir(), "kubler-pod-security-"));
  runtime = await startLocalRuntime(
    loadLocalConfig({ PORT: "0", KUBLER_DATA_DIR: dataDir, KUBLER_POD_SECURITY: "restricted" }),
    { simulatedRolloutMs: 0, onAudit: () => {}, onError: () => {} },
  );
}, 30_000);

afterAll(async () => {
  await runtime?.close();
  if (dataDir) rmSync(dataDir, { recursive: true, force: true });
});

it("deploys into a namespace that enforces KUBLER_POD_SECURITY=restricted", async () => {
  const detail: Detail<"Deploy Requested"> = {
    correlationId: "pod-security-1",
    gitlab: { instance: "https://gitlab.example.com", projectId: 2, projectPath: PROJECT },
    environment: ENVIRONMENT,
    sha: "1".repeat(40),
    ref: "main",
    pipelineId: 1,
    mrIid: null,
  };
  await runtime.bus.publish([{ detailType: "Deploy Requested", detail }]);
  await runtime.bus.drain();

  const namespace = await runtime.environments.cluster.get({
    apiVersion: "v1",
    kind: "Namespace",
    name: namespaceFor(PROJECT, ENVIRONMENT),
  });
  expect(namespace?.metadata.labels).toMatchObject({ "pod-security.kubernetes.io/enforce": "restricted" });
});
