/**
 * The environments half of the local runtime: the cluster (`KUBECONFIG`'s, or the embedded in-memory
 * Kubernetes API, reported as simulated), timers instead of EventBridge Scheduler, the deploy and
 * cleanup consumers, and reconcile every minute; builds and commit statuses on the same cluster
 * (`local-builds.ts`, which reconciles builds far more often: see there why).
 */
import { rm, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { createCleanupConsumer } from "../functions/cleanup-environments/consumer.js";
import { createDeployEnvironmentConsumer } from "../functions/deploy-environment/consumer.js";
import { createKubernetesCluster, type KubernetesCluster } from "../shared/adapters/kubernetes-cluster.js";
import { kubernetesClusterFromKubeconfigFiles } from "../shared/adapters/kubernetes-cluster-from-env.js";
import { createRedactingSecretReader } from "../shared/adapters/secret-reader.js";
import { randomId, systemClock } from "../shared/clock.js";
import { type LocalConfig, registryPullSecret } from "../shared/config.js";
import { DirectoryManifestSource } from "../shared/local/directory-manifest-source.js";
import type { BusConsumer } from "../shared/local/local-bus.js";
import { MemoryEnvironmentStops } from "../shared/local/memory-environment-stops.js";
import { type MemoryKubernetes, startMemoryKubernetes } from "../shared/local/memory-kubernetes/index.js";
import { TimerScheduler } from "../shared/local/timer-scheduler.js";
import type { AuditLog, EventPublisher } from "../shared/ports.js";
import { type ReconcileReport, reconcileEnvironments } from "../shared/services/reconcile-environments.js";
import { type LocalBuilds, startLocalBuilds } from "./local-builds.js";

/** Where a running local runtime leaves the embedded cluster's kubeconfig for `kubler` commands. */
export const EMBEDDED_KUBECONFIG = "kubeconfig";
const RECONCILE_EVERY_MS = 60_000;
/** Long enough to watch a rollout happen in the terminal, short enough not to wait for it. */
const SIMULATED_ROLLOUT_MS = 1_500;

export interface LocalEnvironments {
  cluster: KubernetesCluster;
  /** One line for the banner: which cluster, and whether it is simulated. */
  description: string;
  simulated: boolean;
  scheduler: TimerScheduler;
  /** The stops plan-steps records and the deploys read: one store for both, as the table is in AWS. */
  stops: MemoryEnvironmentStops;
  consumers: {
    "deploy-environment": BusConsumer;
    "cleanup-environments": BusConsumer;
    "build-image": BusConsumer;
    "report-status": BusConsumer;
  };
  /** Build Jobs and commit statuses, on the same cluster. */
  builds: LocalBuilds;
  reconcile(): Promise<ReconcileReport>;
  /**
   * Stops what publishes on its own (the minute's reconcile, the builds' polling, the expiry timers)
   * and waits for a run under way: what it publishes is then on the bus before stopping drains it.
   * The consumers and the cluster still work.
   */
  stopTimers(): Promise<void>;
  close(): Promise<void>;
}

/**
 * @example
 * const environments = await startLocalEnvironments(config, { publisher: bus, audit, dataDir });
 */
export async function startLocalEnvironments(
  config: LocalConfig,
  io: {
    publisher: EventPublisher;
    audit: AuditLog;
    dataDir: string;
    onError?: (error: unknown) => void;
    /** The embedded cluster's rollout time; default SIMULATED_ROLLOUT_MS. */
    simulatedRolloutMs?: number;
  },
): Promise<LocalEnvironments> {
  // A file is checked now, so a bad one stops start-up naming the variable; the file or the secret
  // (Secrets Manager through AWS_ENDPOINT_URL_*, cached like the GitLab token) is read for every deploy.
  const pullSecret = registryPullSecret(config.environments, createRedactingSecretReader(io.audit));
  let embedded: MemoryKubernetes | null = null;
  const rolloutMs = io.simulatedRolloutMs ?? SIMULATED_ROLLOUT_MS;
  let cluster: KubernetesCluster;
  if (config.kubeconfig) {
    cluster = kubernetesClusterFromKubeconfigFiles({ KUBECONFIG: config.kubeconfig });
  } else {
    embedded = await startMemoryKubernetes({ rolloutDelayMs: rolloutMs });
    cluster = createKubernetesCluster({ kubeconfig: embedded.kubeconfig });
    await writeFile(join(io.dataDir, EMBEDDED_KUBECONFIG), embedded.kubeconfig, { mode: 0o600 });
  }
  const { server, context } = cluster.describe();
  const description = embedded
    ? `embedded in-memory Kubernetes API at ${server} (simulated: workloads do not run)`
    : `${server} (context ${context}, from KUBECONFIG)`;

  const scheduler = new TimerScheduler({ publisher: io.publisher, clock: systemClock });
  const steps = { cluster, scheduler, publisher: io.publisher, audit: io.audit, clock: systemClock };
  const stops = new MemoryEnvironmentStops(systemClock);
  const deploy = createDeployEnvironmentConsumer({
    ...steps,
    stops,
    manifests: new DirectoryManifestSource(config.projectsDir),
    sleep: (ms) => new Promise((resolve) => setTimeout(resolve, ms)),
    pullSecret,
    defaultTtl: config.environments.defaultTtl,
    podSecurity: config.environments.podSecurity,
    // A third of the simulated rollout, so a short one is not waited on for long; 500 ms at most.
    rolloutPollMs: Math.min(500, Math.max(10, Math.round(rolloutMs / 3))),
  });
  const cleanup = createCleanupConsumer(steps);
  const reconcile = () => reconcileEnvironments({ ...steps, newId: randomId });
  // The runs under way, for stopTimers to wait for: a run's stops reach the bus after its list.
  const reconciling = new Set<Promise<void>>();
  const timer = setInterval(() => {
    const run = reconcile().then(
      () => undefined,
      (error) => io.onError?.(error),
    );
    reconciling.add(run);
    void run.finally(() => reconciling.delete(run));
  }, RECONCILE_EVERY_MS);
  timer.unref();
  const builds = startLocalBuilds(config, {
    cluster,
    simulated: embedded !== null,
    publisher: io.publisher,
    audit: io.audit,
    dataDir: io.dataDir,
    ...(io.onError ? { onError: io.onError } : {}),
  });

  const stopTimers = async () => {
    clearInterval(timer);
    scheduler.close();
    await Promise.all([builds.stopPolling(), ...reconciling]);
  };

  return {
    cluster,
    description,
    simulated: embedded !== null,
    scheduler,
    stops,
    consumers: {
      "deploy-environment": async (envelope) => {
        await deploy(envelope);
      },
      "cleanup-environments": async (envelope) => {
        await cleanup(envelope);
      },
      ...builds.consumers,
    },
    builds,
    reconcile,
    stopTimers,
    async close() {
      // Not stopTimers: a run still under way (a cluster that does not answer) is not waited for.
      clearInterval(timer);
      await builds.close();
      scheduler.close();
      cluster.close();
      if (embedded) {
        await rm(join(io.dataDir, EMBEDDED_KUBECONFIG), { force: true });
        await embedded.close();
      }
    },
  };
}
