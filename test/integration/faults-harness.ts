/**
 * The environment steps wired as the local runtime wires them (local bus with retries and dead
 * letters, the real deploy and cleanup consumers, timers for schedules, the audit trail in
 * audit.jsonl, every bus event in events.jsonl), over the embedded Kubernetes API through the real
 * adapter, so faults can be injected at the API and at the ports. Time is a FixedClock.
 */
import { cpSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createCleanupConsumer } from "../../functions/cleanup-environments/consumer.js";
import { createDeployEnvironmentConsumer } from "../../functions/deploy-environment/consumer.js";
import { createKubernetesCluster } from "../../shared/adapters/kubernetes-cluster.js";
import type { AuditRecord } from "../../shared/domain/audit.js";
import { type BusEnvelope, type Detail, ROUTES } from "../../shared/domain/catalog.js";
import { namespaceFor, readEnvironment } from "../../shared/domain/environment.js";
import { DirectoryManifestSource } from "../../shared/local/directory-manifest-source.js";
import { JsonlAuditLog } from "../../shared/local/jsonl-audit-log.js";
import { JsonlFile } from "../../shared/local/jsonl-file.js";
import { LocalBus } from "../../shared/local/local-bus.js";
import { MemoryEnvironmentStops } from "../../shared/local/memory-environment-stops.js";
import { type MemoryKubernetes, startMemoryKubernetes } from "../../shared/local/memory-kubernetes/index.js";
import { TimerScheduler } from "../../shared/local/timer-scheduler.js";
import type { DeployCluster } from "../../shared/services/deploy-environment.js";
import { reconcileEnvironments } from "../../shared/services/reconcile-environments.js";
import { FixedClock, sequentialIds } from "../fakes/index.js";

export const PROJECT = "flightjs/flight-management";
export const gitlab = { instance: "https://gitlab.example.com", projectId: 2, projectPath: PROJECT };
export const SHA_1 = "1111111111111111111111111111111111111111";
export const SHA_2 = "2222222222222222222222222222222222222222";
const EXAMPLE = join(import.meta.dirname, "../../examples/projects");

export interface FaultHarnessOptions {
  /** Wraps the cluster the consumers use (to crash mid-deploy). */
  wrapCluster?: (cluster: DeployCluster) => DeployCluster;
  /** One request's limit in the adapter; short so that hung requests time out quickly. */
  timeoutMs?: number;
}

export type FaultHarness = Awaited<ReturnType<typeof startFaultHarness>>;

/**
 * @example
 * const h = await startFaultHarness();
 * h.k8s.faults.add({ verb: "apply", resource: "deployments", status: 500, times: 2 });
 * h.publish("Deploy Requested", h.deployRequest({ pipelineId: 100 }));
 * await h.bus.drain();
 */
export async function startFaultHarness(options: FaultHarnessOptions = {}) {
  const dir = mkdtempSync(join(tmpdir(), "kubler-faults-"));
  const projects = join(dir, "projects");
  cpSync(EXAMPLE, projects, { recursive: true });
  const k8s: MemoryKubernetes = await startMemoryKubernetes({ rolloutDelayMs: 10, namespaceFinalizeMs: 10 });
  const clock = new FixedClock(new Date("2026-11-21T10:00:00Z"));
  const files = {
    events: new JsonlFile(join(dir, "events.jsonl")),
    audit: new JsonlFile(join(dir, "audit.jsonl")),
    deadLetters: new JsonlFile(join(dir, "dead-letters.jsonl")),
  };
  const audit = new JsonlAuditLog(files.audit);
  const adapter = createKubernetesCluster({
    kubeconfig: k8s.kubeconfig,
    timeoutMs: options.timeoutMs ?? 2_000,
    // Backoffs and Retry-After are honoured in count, not in wall time.
    sleep: async () => {},
  });
  const cluster = options.wrapCluster ? options.wrapCluster(adapter) : adapter;
  const retries: { target: string; error: string }[] = [];
  const publisher = { publish: (entries: Parameters<LocalBus["publish"]>[0]) => bus.publish(entries) };
  const scheduler = new TimerScheduler({ publisher, clock });
  const steps = { cluster, scheduler, publisher, audit, clock };
  const deploy = createDeployEnvironmentConsumer({
    ...steps,
    stops: new MemoryEnvironmentStops(clock),
    manifests: new DirectoryManifestSource(projects),
    sleep: (ms) => {
      clock.advance(ms);
      return new Promise((resolve) => setTimeout(resolve, Math.min(ms, 10)));
    },
    pullSecret: async () => null,
    defaultTtl: "72h",
    rolloutPollMs: 10,
  });
  const cleanup = createCleanupConsumer(steps);
  const bus: LocalBus = new LocalBus({
    routes: ROUTES,
    consumers: {
      "deploy-environment": async (envelope) => {
        await deploy(envelope);
      },
      "cleanup-environments": async (envelope) => {
        await cleanup(envelope);
      },
    },
    events: files.events,
    deadLetters: files.deadLetters,
    audit,
    clock,
    newId: sequentialIds("evt"),
    maxAttempts: 3,
    baseDelayMs: 1,
    listener: {
      retrying: (_envelope, route, _attempt, error) =>
        retries.push({ target: route.target, error: (error as Error).message }),
    },
  });

  const readJsonl = <T>(file: JsonlFile): T[] => {
    file.flush();
    const text = readFileSync(file.path, "utf8");
    return text.split("\n").flatMap((line) => (line ? [JSON.parse(line) as T] : []));
  };

  return {
    dir,
    projects,
    k8s,
    clock,
    bus,
    scheduler,
    cluster: adapter,
    /** What the steps are built with: for calling a use case directly (the sweep, reconcile). */
    steps,
    retries,
    publish<T extends "Deploy Requested" | "Environment Stop Requested">(detailType: T, detail: Detail<T>) {
      return bus.publish([{ detailType, detail } as Parameters<LocalBus["publish"]>[0][number]]);
    },
    deployRequest(overrides: Partial<Detail<"Deploy Requested">> = {}): Detail<"Deploy Requested"> {
      return {
        correlationId: `corr-${overrides.pipelineId ?? 100}`,
        gitlab,
        environment: "review/feature/booking-validation",
        sha: SHA_1,
        ref: "feature/booking-validation",
        pipelineId: 100,
        mrIid: 16,
        ...overrides,
      };
    },
    reconcile: () => reconcileEnvironments({ cluster, publisher, audit, clock, newId: sequentialIds("rec") }),
    events: () => readJsonl<BusEnvelope>(files.events),
    audit: () => readJsonl<AuditRecord>(files.audit),
    deadLetters: () => readJsonl<{ target: string; envelope: BusEnvelope; error: string }>(files.deadLetters),
    /** The managed environment in `environment`'s namespace, as the cluster has it (null: none). */
    environment(environment: string) {
      const object = k8s.store.get("v1", "Namespace", undefined, namespaceFor(PROJECT, environment));
      if (!object) return null;
      const read = readEnvironment(object);
      return read.kind === "managed" ? read.environment : null;
    },
    /** Sets the review environments' TTL in the sample project's kubler.yaml (72h there). */
    setReviewTtl(ttl: string) {
      const file = join(projects, PROJECT, "kubler.yaml");
      writeFileSync(file, readFileSync(file, "utf8").replace("ttl: 72h", `ttl: ${ttl}`));
    },
    async close() {
      scheduler.close();
      await bus.drain();
      adapter.close();
      await Promise.all(Object.values(files).map((file) => file.close()));
      await k8s.close();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

/** Waits (real time) until `check` holds; namespaces take a few ms to finish terminating. */
export async function eventually(check: () => boolean, what: string): Promise<void> {
  for (let i = 0; i < 300; i++) {
    if (check()) return;
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
  throw new Error(`timed out waiting for ${what}`);
}
