/**
 * The local runtime as the in-process local tests start it: on port 0, its data in a temp dir of its
 * own (removed by `close`), quiet unless `options` say otherwise; and a deploy of the sample
 * project's `staging` published on its bus as `kubler deploy` would.
 *
 * @example
 * const local = await startLocalTestRuntime("kubler-pod-security-", { KUBLER_POD_SECURITY: "restricted" });
 * const namespace = await deployStaging(local.runtime, "pod-security-1");
 * await local.close();
 */
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { type LocalRuntime, type LocalRuntimeOptions, startLocalRuntime } from "../../cli/local-runtime.js";
import { loadLocalConfig } from "../../shared/config.js";
import type { Detail } from "../../shared/domain/catalog.js";
import { namespaceFor } from "../../shared/domain/environment.js";

/** The example projects, for `KUBLER_PROJECTS_DIR`. */
export const EXAMPLE_PROJECTS = join(import.meta.dirname, "../../examples/projects");

export interface LocalTestRuntime {
  runtime: LocalRuntime;
  dataDir: string;
  close(): Promise<void>;
}

export async function startLocalTestRuntime(
  prefix: string,
  env: Record<string, string>,
  options: LocalRuntimeOptions = { simulatedRolloutMs: 0, onAudit: () => {}, onError: () => {} },
): Promise<LocalTestRuntime> {
  const dataDir = mkdtempSync(join(tmpdir(), prefix));
  try {
    const runtime = await startLocalRuntime(
      loadLocalConfig({ PORT: "0", KUBLER_DATA_DIR: dataDir, ...env }),
      options,
    );
    return {
      runtime,
      dataDir,
      close: async () => {
        await runtime.close();
        rmSync(dataDir, { recursive: true, force: true });
      },
    };
  } catch (error) {
    rmSync(dataDir, { recursive: true, force: true });
    throw error;
  }
}

const PROJECT = "flightjs/flight-management";
const ENVIRONMENT = "staging";

/**
 * Publishes a Deploy Requested of the sample project's `staging` and waits until the bus is idle;
 * answers the environment's namespace.
 */
export async function deployStaging(runtime: LocalRuntime, correlationId: string): Promise<string> {
  const detail: Detail<"Deploy Requested"> = {
    correlationId,
    gitlab: { instance: "https://gitlab.example.com", projectId: 2, projectPath: PROJECT },
    environment: ENVIRONMENT,
    sha: "1".repeat(40),
    ref: "main",
    pipelineId: 1,
    mrIid: null,
  };
  await runtime.bus.publish([{ detailType: "Deploy Requested", detail }]);
  await runtime.bus.drain();
  return namespaceFor(PROJECT, ENVIRONMENT);
}
