/**
 * Stopping the local runtime (Ctrl-C) with work that its timers started: what they publish while it
 * stops is delivered within the drain, or named as abandoned, never dropped in silence.
 */
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, describe, expect, it, vi } from "vitest";
import { startLocalRuntime } from "../../cli/local-runtime.js";
import { loadLocalConfig } from "../../shared/config.js";
import { environmentNamespace, namespaceFor } from "../../shared/domain/environment.js";
import type { BusConsumer } from "../../shared/local/local-bus.js";

const PROJECTS = join(import.meta.dirname, "../../examples/projects");
const PROJECT = "flightjs/flight-management";
const ENVIRONMENT = "review/feature/booking-validation";
const NAMESPACE = namespaceFor(PROJECT, ENVIRONMENT);
const HOUR = 3_600_000;

const dirs: string[] = [];
afterEach(() => {
  vi.useRealTimers();
  for (const dir of dirs.splice(0)) rmSync(dir, { recursive: true, force: true });
});

describe("close() with a reconcile under way", () => {
  it("waits for the stop a reconcile started just before Ctrl-C publishes, and for its delivery", async () => {
    // Only the every-minute reconcile's interval is faked: HTTP, files and the bus run on real timers.
    vi.useFakeTimers({ toFake: ["setInterval", "clearInterval"] });
    const dataDir = mkdtempSync(join(tmpdir(), "kubler-close-"));
    dirs.push(dataDir);
    const cleaned: string[] = [];
    const cleanup: BusConsumer = async (envelope) => {
      await new Promise((resolve) => setTimeout(resolve, 50));
      cleaned.push((envelope as { detail: { environment: string } }).detail.environment);
    };
    const errors: unknown[] = [];
    const runtime = await startLocalRuntime(
      loadLocalConfig({ PORT: "0", KUBLER_DATA_DIR: dataDir, KUBLER_PROJECTS_DIR: PROJECTS }),
      {
        simulatedRolloutMs: 0,
        consumers: { "cleanup-environments": cleanup },
        onError: (error) => errors.push(error),
      },
    );
    const now = Date.now();
    await runtime.environments.cluster.apply(
      environmentNamespace({
        namespace: NAMESPACE,
        gitlab: { instance: "http://gitlab.example.com", projectId: 2, projectPath: PROJECT },
        environment: ENVIRONMENT,
        sha: "e59094b8de0f2f91abbe4760a52d9137260252d8",
        ref: "feature/booking-validation",
        pipelineId: null,
        mrIid: 1,
        ttl: "1h",
        expiresAt: new Date(now - HOUR),
        deployedAt: new Date(now - 2 * HOUR),
        requestedAt: new Date(now - 2 * HOUR),
        status: "succeeded",
        rolloutDeadline: null,
        correlationId: "corr-close",
        url: null,
        lastGoodDigest: null,
      }),
    );
    const stderr = vi.spyOn(process.stderr, "write").mockImplementation(() => true);
    try {
      vi.advanceTimersByTime(60_000); // the minute's reconcile starts: its list is on the wire
      await runtime.close();
    } finally {
      stderr.mockRestore();
    }
    expect(errors).toEqual([]);
    expect(cleaned).toEqual([ENVIRONMENT]);
  }, 30_000);
});
