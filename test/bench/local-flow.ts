/**
 * The local flow's latency (issue 5): GitLab's merge request payload, signed, over HTTP to the local
 * runtime on the embedded cluster with zero simulated rollout delay; measured from the webhook being
 * accepted (its fact on the bus) to `Deploy Finished` (succeeded) on the bus, through plan-steps, the
 * build Job, the simulated build, reconcile's Build Finished and the deploy. Every sample is a new
 * merge request (its own branch, commit and namespace), so nothing is a duplicate.
 *
 * Baseline, same runtime, interleaved: `Deploy Requested` for a new environment published on the bus
 * → `Deploy Finished`, i.e. the deploy alone; the difference is what planning and the build add
 * (mostly waiting for reconcile's next look at the build Jobs: every 20 ms on the embedded cluster while one runs).
 */
import { mkdtempSync, rmSync } from "node:fs";
import { loadavg, tmpdir } from "node:os";
import { join } from "node:path";
import { startLocalRuntime } from "../../cli/local-runtime.js";
import { loadFixture, sendFixture } from "../../cli/send.js";
import { loadLocalConfig } from "../../shared/config.js";
import type { BusEnvelope } from "../../shared/domain/catalog.js";
import { type Figure, fmt, median } from "./support.js";

const SAMPLES = 40;
const WARMUP = 3;
const TARGET_P95_MS = 250;
const PROJECTS = join(import.meta.dirname, "../../examples/projects");

function percentile(values: readonly number[], p: number): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)] as number;
}

export async function benchLocalFlow(): Promise<Figure[]> {
  const dataDir = mkdtempSync(join(tmpdir(), "kubler-bench-flow-"));
  // When each correlation id's fact was accepted, and who waits for its Deploy Finished.
  const accepted = new Map<string, number>();
  const waiting = new Map<string, (envelope: BusEnvelope) => void>();
  const runtime = await startLocalRuntime(
    loadLocalConfig({ PORT: "0", KUBLER_DATA_DIR: dataDir, KUBLER_PROJECTS_DIR: PROJECTS }),
    {
      simulatedRolloutMs: 0,
      onError: () => {},
      bus: {
        published(envelope) {
          const id = envelope.detail.correlationId;
          if (envelope["detail-type"] === "Merge Request" || envelope["detail-type"] === "Deploy Requested") {
            if (!accepted.has(id)) accepted.set(id, performance.now());
          }
          if (envelope["detail-type"] === "Deploy Finished") waiting.get(id)?.(envelope);
        },
      },
    },
  );
  const finished = (id: string) =>
    new Promise<BusEnvelope>((resolve) => {
      waiting.set(id, resolve);
    });
  const template = JSON.parse(loadFixture("merge_request").body);
  const gitlab = {
    instance: "http://gitlab.example.com",
    projectId: 2,
    projectPath: "flightjs/flight-management",
  };

  async function viaWebhook(i: number): Promise<number> {
    const id = `bench-mr-${i}`;
    const payload = structuredClone(template);
    payload.object_attributes.iid = 1000 + i;
    payload.object_attributes.source_branch = `bench/${i}`;
    payload.object_attributes.last_commit.id = (i + 1).toString(16).padStart(40, "b");
    const done = finished(id);
    const response = await sendFixture(
      { name: "merge_request", eventHeader: "Merge Request Hook", body: JSON.stringify(payload) },
      { url: runtime.url, signingKey: runtime.generatedSecrets?.signingKey, idempotencyKey: id },
    );
    if (response.status !== 202) throw new Error(`webhook answered ${response.status}`);
    const envelope = await done;
    if ((envelope.detail as { status: string }).status !== "succeeded")
      throw new Error(JSON.stringify(envelope.detail));
    return performance.now() - (accepted.get(id) as number);
  }

  async function deployOnly(i: number): Promise<number> {
    const id = `bench-deploy-${i}`;
    const done = finished(id);
    await runtime.bus.publish([
      {
        detailType: "Deploy Requested",
        detail: {
          correlationId: id,
          gitlab,
          environment: `review/deploy-only/${i}`,
          sha: (i + 1).toString(16).padStart(40, "d"),
          ref: `deploy-only/${i}`,
          pipelineId: null,
          mrIid: null,
        },
      },
    ]);
    await done;
    return performance.now() - (accepted.get(id) as number);
  }

  const flow: number[] = [];
  const deploy: number[] = [];
  try {
    for (let i = 0; i < WARMUP + SAMPLES; i++) {
      const a = await viaWebhook(i);
      const b = await deployOnly(i);
      if (i >= WARMUP) {
        flow.push(a);
        deploy.push(b);
      }
    }
  } finally {
    await runtime.close();
    rmSync(dataDir, { recursive: true, force: true });
  }

  const p95 = percentile(flow, 95);
  // Every hop shares the event loop with the others and the machine with whatever else runs.
  const load = `load ${fmt(loadavg()[0] ?? 0, 1)}`;
  const deployP95 = percentile(deploy, 95);
  return [
    {
      name: `webhook accepted → Deploy Finished, MR opened, embedded cluster, 0 ms rollout: median (${SAMPLES} samples)`,
      value: `${fmt(median(flow), 1)} ms`,
      baseline: `${fmt(median(deploy), 1)} ms: Deploy Requested → Deploy Finished (deploy alone)`,
      ratio: `${fmt(median(flow) / median(deploy), 1)}×`,
      target: "—",
      met: true,
    },
    {
      name: `webhook accepted → Deploy Finished: p95 (${load})`,
      value: `${fmt(p95, 1)} ms`,
      baseline: `${fmt(deployP95, 1)} ms: deploy alone, p95`,
      ratio: `${fmt(p95 / deployP95, 1)}×`,
      target: `p95 ≤ ${TARGET_P95_MS} ms`,
      met: p95 <= TARGET_P95_MS,
    },
  ];
}
