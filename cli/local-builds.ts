/**
 * The builds half of the local runtime: the build-image and report-status consumers, and reconcile
 * of builds on a timer that hurries while a build runs. Commit statuses go to GitLab when its API is configured
 * (`GITLAB_URL` + `GITLAB_API_TOKEN`), else to `commit-statuses.jsonl`, labelled as not sent.
 */
import { join } from "node:path";
import { createBuildImageConsumer } from "../functions/build-image/consumer.js";
import { createReportStatusConsumer } from "../functions/report-status/consumer.js";
import { GitlabCommitStatuses } from "../shared/adapters/gitlab-commit-statuses.js";
import { createRedactingSecretReader, gitlabApiToken } from "../shared/adapters/secret-reader.js";
import { systemClock } from "../shared/clock.js";
import type { LocalConfig } from "../shared/config.js";
import { DirectoryManifestSource } from "../shared/local/directory-manifest-source.js";
import { COMMIT_STATUSES_FILE, JsonlCommitStatuses } from "../shared/local/jsonl-commit-statuses.js";
import { JsonlFile } from "../shared/local/jsonl-file.js";
import type { BusConsumer } from "../shared/local/local-bus.js";
import type { AuditLog, BuildCluster, CommitStatuses, EventPublisher } from "../shared/ports.js";
import { type ReconcileBuildsReport, reconcileBuilds } from "../shared/services/reconcile-builds.js";

/**
 * How often finished build Jobs are looked for. In AWS reconcile runs every minute, which is nothing
 * next to a real build's minutes, and a real cluster (KUBECONFIG) gets a look every 10 s here. The
 * embedded cluster finishes a simulated build within milliseconds, so a fixed interval would be
 * most of the local webhook-to-deploy time (the issue asks for a p95 of 250 ms): while a build is
 * running (or was just requested) it is looked for every 20 ms, otherwise once a second as the
 * backstop. Each look is one label-selected list of the builds namespace.
 */
export const EMBEDDED_BUILD_POLL_MS = { active: 20, idle: 1_000 } as const;
export const CLUSTER_BUILD_POLL_MS = 10_000;

export interface LocalBuilds {
  consumers: { "build-image": BusConsumer; "report-status": BusConsumer };
  /** Where commit statuses go, for the banner. */
  statuses: string;
  reconcile(): Promise<ReconcileBuildsReport>;
  /**
   * Stops polling and waits for the look under way, so a Build Finished it publishes reaches the bus
   * before stopping drains it; the consumers still work.
   */
  stopPolling(): Promise<void>;
  close(): Promise<void>;
}

/**
 * @example
 * const builds = startLocalBuilds(config, { cluster, simulated: true, publisher, audit, dataDir });
 */
export function startLocalBuilds(
  config: LocalConfig,
  io: {
    cluster: BuildCluster;
    simulated: boolean;
    publisher: EventPublisher;
    audit: AuditLog;
    dataDir: string;
    onError?: (error: unknown) => void;
    /** The idle interval. Default: 1 s on the embedded cluster (20 ms while a build runs), 10 s on a real one. */
    pollMs?: number;
  },
): LocalBuilds {
  const steps = { publisher: io.publisher, audit: io.audit, clock: systemClock };
  const build = createBuildImageConsumer({
    ...steps,
    cluster: io.cluster,
    manifests: new DirectoryManifestSource(config.projectsDir),
    settings: config.builds,
    // The embedded cluster runs no pod: no Secret to need. A real one (KUBECONFIG) is checked.
    checkSecrets: !io.simulated,
  });

  let file: JsonlFile | null = null;
  let statuses: CommitStatuses;
  let description: string;
  const gitlab = config.gitlabApi;
  if (gitlab) {
    const readSecret = gitlab.tokenSecret ? createRedactingSecretReader(io.audit) : null;
    statuses = new GitlabCommitStatuses({ baseUrl: gitlab.url, token: gitlabApiToken(gitlab, readSecret) });
    description = `GitLab at ${gitlab.url}`;
  } else {
    file = new JsonlFile(join(io.dataDir, COMMIT_STATUSES_FILE));
    statuses = new JsonlCommitStatuses(file, systemClock);
    description = `${file.path} (no GitLab API configured: not sent)`;
  }
  const report = createReportStatusConsumer({ ...steps, statuses });

  const reconcile = () =>
    reconcileBuilds({ ...steps, cluster: io.cluster, namespace: config.builds.namespace });
  const idleMs = io.pollMs ?? (io.simulated ? EMBEDDED_BUILD_POLL_MS.idle : CLUSTER_BUILD_POLL_MS);
  const activeMs = io.simulated ? Math.min(idleMs, EMBEDDED_BUILD_POLL_MS.active) : idleMs;
  // One reconcile at a time, each scheduling the next: a slow one is never stacked on.
  let running: Promise<unknown> | null = null;
  let requested = false;
  let closed = false;
  let timer: NodeJS.Timeout | undefined;
  const schedule = (ms: number) => {
    clearTimeout(timer);
    if (closed) return;
    timer = setTimeout(tick, ms);
    timer.unref();
  };
  const tick = () => {
    if (running) return;
    requested = false;
    running = reconcile()
      .then(
        (report) => report.running > 0,
        (error) => {
          io.onError?.(error);
          return false;
        },
      )
      .then((busy) => {
        running = null;
        schedule(busy || requested ? activeMs : idleMs);
      });
  };
  /** A build was requested: look for it at the active pace (after the tick in progress, if any). */
  const wake = () => {
    requested = true;
    if (!running) schedule(activeMs);
  };
  schedule(idleMs);

  return {
    consumers: {
      "build-image": async (envelope) => {
        await build(envelope);
        wake();
      },
      "report-status": async (envelope) => {
        await report(envelope);
      },
    },
    statuses: description,
    reconcile,
    async stopPolling() {
      closed = true;
      clearTimeout(timer);
      await running;
    },
    async close() {
      await this.stopPolling();
      await file?.close();
    },
  };
}
