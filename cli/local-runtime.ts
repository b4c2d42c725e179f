/**
 * The embedded default (DESIGN §10): every HTTP app on one port, the local bus routing with the
 * catalog's routes, the in-memory dedupe store, audit to `audit.jsonl`. No AWS account, no cluster.
 */

import { mkdirSync, readFileSync, statSync, unlinkSync, writeFileSync } from "node:fs";
import type { AddressInfo } from "node:net";
import { join, resolve } from "node:path";
import { serve } from "@hono/node-server";
import { Hono } from "hono";
import { createGitlabWebhookApp } from "../functions/gitlab-webhook/app.js";
import { createPlanStepsConsumer } from "../functions/plan-steps/consumer.js";
import { logErrorToStderr } from "../shared/adapters/stdout-audit-log.js";
import { randomId, systemClock } from "../shared/clock.js";
import { ENV, fileProblem, type LocalConfig, webhookCredentials } from "../shared/config.js";
import type { AuditRecord } from "../shared/domain/audit.js";
import { type FunctionName, ROUTES } from "../shared/domain/catalog.js";
import { ConfigError } from "../shared/errors.js";
import { DirectoryManifestSource } from "../shared/local/directory-manifest-source.js";
import { JsonlAuditLog } from "../shared/local/jsonl-audit-log.js";
import { JsonlFile } from "../shared/local/jsonl-file.js";
import { type BusConsumer, type BusListener, LocalBus } from "../shared/local/local-bus.js";
import { MemoryDedupeStore } from "../shared/local/memory-dedupe-store.js";
import type { EventPublisher } from "../shared/ports.js";
import { type CredentialsConfig, type LocalCredentials, mountLocalCredentials } from "./local-credentials.js";
import { type LocalEnvironments, startLocalEnvironments } from "./local-environments.js";
import { createLocalEventsApp } from "./local-events-app.js";
import { ensureLocalSecrets, type LocalSecrets, toWebhookSecrets } from "./local-secrets.js";
import { LOCK_FILE, parseLock, urlHost } from "./runtime-address.js";
import { DEFAULT_SERVER_LIMITS, type ServerLimits, serverLimitOptions } from "./server-limits.js";

export interface LocalRuntime {
  url: string;
  dataDir: string;
  /** Set when no secret was configured and the runtime generated its own. */
  generatedSecrets: LocalSecrets | null;
  /** The functions that consume bus events in this process. */
  consumers: readonly FunctionName[];
  bus: LocalBus;
  environments: LocalEnvironments;
  /** POST /v1/credentials: its issuer, policy file and AWS issuer. */
  jobCredentials: LocalCredentials;
  /**
   * Stops the server, waits up to `drainMs` (default `CLOSE_DRAIN_MS`) for the deliveries under way,
   * says on stderr which it abandoned, and closes the files.
   */
  close(drainMs?: number): Promise<void>;
}

/**
 * How long stopping waits for deliveries under way: a consumer can run up to the bus's attempt
 * timeout (15 min), and Ctrl-C must stop the runtime in moments, not then.
 */
export const CLOSE_DRAIN_MS = 5_000;

export interface LocalRuntimeOptions {
  /** Consumers by function, over the built-in ones; functions with none have no local consumer yet. */
  consumers?: Partial<Record<FunctionName, BusConsumer>>;
  /** Job credentials settings; default: `loadCredentialsConfig({}, { local: true })` (examples/policy.yaml). */
  credentials?: CredentialsConfig;
  onAudit?: (record: AuditRecord) => void;
  bus?: BusListener;
  /** Time limits against slow clients; tests shorten them. */
  limits?: Partial<ServerLimits>;
  /** Where reconcile's unexpected failures go (stderr by default). */
  onError?: (error: unknown) => void;
  /** How long a rollout takes on the embedded cluster (default 1.5 s, to watch it; 0 in tests and benches). */
  simulatedRolloutMs?: number;
}

/**
 * @example
 * const runtime = await startLocalRuntime(loadLocalConfig(process.env));
 * console.log(runtime.url); // http://127.0.0.1:8080
 */
export async function startLocalRuntime(
  config: LocalConfig,
  options: LocalRuntimeOptions = {},
): Promise<LocalRuntime> {
  const dataDir = resolve(config.dataDir);
  makeDataDir(dataDir);
  checkProjectsDir(config.projectsDir);
  const lock = await lockDataDir(dataDir);
  try {
    return await startLocked(config, options, dataDir, lock);
  } catch (error) {
    lock.release();
    throw error;
  }
}

async function startLocked(
  config: LocalConfig,
  options: LocalRuntimeOptions,
  dataDir: string,
  lock: DataDirLock,
): Promise<LocalRuntime> {
  const configured = config.webhook.secrets.tokens.length + config.webhook.secrets.signingKeys.length > 0;
  const generatedSecrets = configured ? null : ensureLocalSecrets(dataDir);
  const credentials = generatedSecrets
    ? webhookCredentials(toWebhookSecrets(generatedSecrets))
    : config.webhook.credentials;

  const files = {
    events: new JsonlFile(resolve(dataDir, "events.jsonl")),
    audit: new JsonlFile(resolve(dataDir, "audit.jsonl")),
    deadLetters: new JsonlFile(resolve(dataDir, "dead-letters.jsonl")),
  };
  // The secrets in use are redacted from the audit trail wherever they appear.
  const secrets = generatedSecrets
    ? [generatedSecrets.token, generatedSecrets.signingKey]
    : [...config.webhook.secrets.tokens, ...config.webhook.secrets.signingKeys];
  const audit = new JsonlAuditLog(files.audit, options.onAudit, { secrets });
  // The consumers publish on the bus that delivers to them: bound once the bus exists.
  const publisher: EventPublisher = { publish: (entries) => bus.publish(entries) };
  const environments = await startLocalEnvironments(config, {
    publisher,
    audit,
    dataDir,
    onError: options.onError ?? logErrorToStderr("reconcile", secrets),
    ...(options.simulatedRolloutMs === undefined ? {} : { simulatedRolloutMs: options.simulatedRolloutMs }),
  });
  const plan = createPlanStepsConsumer({
    manifests: new DirectoryManifestSource(config.projectsDir),
    publisher,
    dedupe: new MemoryDedupeStore(systemClock),
    stops: environments.stops,
    audit,
    clock: systemClock,
  });
  const consumers = {
    "plan-steps": async (envelope: unknown) => {
      await plan(envelope);
    },
    ...environments.consumers,
    ...options.consumers,
  };
  const bus: LocalBus = new LocalBus({
    routes: ROUTES,
    consumers,
    events: files.events,
    deadLetters: files.deadLetters,
    audit,
    clock: systemClock,
    newId: randomId,
    region: config.region,
    secrets,
    ...(options.bus ? { listener: options.bus } : {}),
  });

  const app = new Hono();
  app.route(
    "/",
    createGitlabWebhookApp({
      credentials,
      maxBodyBytes: config.webhook.maxBodyBytes,
      publisher: bus,
      dedupe: new MemoryDedupeStore(systemClock),
      audit,
      logError: logErrorToStderr("gitlab-webhook", secrets),
      clock: systemClock,
      newId: randomId,
    }),
  );
  app.route(
    "/",
    createLocalEventsApp({
      credentials,
      publisher: bus,
      stops: environments.stops,
      audit,
      logError: logErrorToStderr("local-events", secrets),
      clock: systemClock,
    }),
  );

  // The embedded cluster and the timers already run: a failure from here on stops them, or the
  // process prints its error and never exits (a port in use, a damaged key file in the data dir).
  const stopStarted = async () => {
    await environments.close();
    await Promise.all(Object.values(files).map((file) => file.close()));
  };
  let jobCredentials: LocalCredentials;
  try {
    jobCredentials = mountLocalCredentials(app, {
      ...(options.credentials ? { config: options.credentials } : {}),
      dataDir,
      cluster: environments.cluster,
      publisher: bus,
      audit,
    });
  } catch (error) {
    await stopStarted();
    throw error;
  }

  let server: ReturnType<typeof serve>;
  try {
    server = await new Promise<ReturnType<typeof serve>>((resolveServer, reject) => {
      const s = serve(
        {
          fetch: app.fetch,
          port: config.port,
          hostname: config.host,
          serverOptions: serverLimitOptions({ ...DEFAULT_SERVER_LIMITS, ...options.limits }),
        },
        () => resolveServer(s),
      );
      s.once("error", reject);
    });
  } catch (error) {
    await stopStarted();
    throw listenError(error, config);
  }
  const { port } = server.address() as AddressInfo;
  const url = `http://${urlHost(config.host)}:${port}`;
  jobCredentials.listening(url);
  lock.listening(url);

  return {
    url,
    dataDir,
    generatedSecrets,
    consumers: Object.keys(consumers) as FunctionName[],
    bus,
    environments,
    jobCredentials,
    async close(drainMs = CLOSE_DRAIN_MS) {
      await new Promise<void>((done) => server.close(() => done()));
      // Reconcile and the timers publish on their own: stopped first (a run under way finishing), or
      // what they publish after the drain would be delivered to a closed cluster and files, unnamed.
      const started = Date.now();
      let waited: NodeJS.Timeout | undefined;
      const timersStopped = await Promise.race([
        environments.stopTimers().then(() => true),
        new Promise<false>((giveUp) => {
          waited = setTimeout(() => giveUp(false), drainMs);
        }),
      ]);
      clearTimeout(waited);
      const unfinished = await bus.drain(Math.max(0, drainMs - (Date.now() - started)));
      if (!timersStopped) {
        process.stderr.write(
          `kubler: stopped without waiting for a reconcile still running after ${drainMs} ms ` +
            `(what it published is in ${files.events.path})\n`,
        );
      }
      if (unfinished.length > 0) {
        const list = unfinished
          .map((d) => {
            const attempt =
              d.timedOutAttempt === undefined ? "" : ` (attempt ${d.timedOutAttempt}, timed out)`;
            return `${d.target} on ${d.detailType} ${d.eventId}${attempt}`;
          })
          .join(", ");
        // The events are in events.jsonl: what was abandoned can be sent again from there.
        process.stderr.write(
          `kubler: stopped without waiting for ${unfinished.length} delivery(ies) still running after ` +
            `${drainMs} ms: ${list} (the events are in ${files.events.path})\n`,
        );
      }
      await environments.close();
      // Every file is closed and the lock released even when one cannot be written (a full disk).
      const closed = await Promise.allSettled(Object.values(files).map((file) => file.close()));
      lock.release();
      const unwritten = closed.flatMap((result) =>
        result.status === "rejected" ? [(result.reason as Error).message] : [],
      );
      if (unwritten.length > 0) {
        throw new Error(
          `stopped, but ${unwritten.join("; ")}, so the lines kept for it are lost; free space before the next start`,
        );
      }
    },
  };
}

function errorCode(error: unknown): unknown {
  return (error as { code?: unknown } | null)?.code;
}

function makeDataDir(dataDir: string): void {
  try {
    mkdirSync(dataDir, { recursive: true });
  } catch (error) {
    const code = errorCode(error);
    const reason =
      code === "EEXIST"
        ? "is a file, not a directory"
        : code === "ENOTDIR"
          ? "cannot be created: a part of its path is a file"
          : code === "EACCES" || code === "EPERM" || code === "EROFS"
            ? "cannot be created: permission denied"
            : `cannot be created: ${(error as Error).message}`;
    throw new ConfigError(`${ENV.DATA_DIR} ${dataDir} ${reason}`);
  }
}

/** A missing projects dir is not an error later: every project just looks not opted in. */
function checkProjectsDir(dir: string): void {
  const path = resolve(dir);
  let directory: boolean;
  try {
    directory = statSync(path).isDirectory();
  } catch (error) {
    throw new ConfigError(`${ENV.PROJECTS_DIR} ${path} ${fileProblem(error)}`);
  }
  if (!directory) throw new ConfigError(`${ENV.PROJECTS_DIR} ${path} is not a directory`);
}

interface DataDirLock {
  /** Adds where it listens, for whoever finds the data dir taken. */
  listening(url: string): void;
  /** Removes the lock if it is still this process's; also done on exit. */
  release(): void;
}

/**
 * Takes `LOCK_FILE`, created exclusively (`wx`: O_CREAT | O_EXCL), so of two starts one wins: two
 * runtimes on one data dir would share its kubeconfig and secrets, and the one stopping first would
 * delete the kubeconfig of the other. A lock left by a runtime that was killed is taken over, saying
 * so: its pid no longer runs, is this very process (a container restarted on the same volume: pid 1
 * again), or runs something else that does not answer /healthz where the lock says the runtime
 * listened (a reused pid).
 */
async function lockDataDir(dataDir: string): Promise<DataDirLock> {
  const path = join(dataDir, LOCK_FILE);
  const content = (url: string | null) => `${JSON.stringify({ pid: process.pid, url })}\n`;
  for (let attempt = 1; ; attempt++) {
    try {
      writeFileSync(path, content(null), { flag: "wx", mode: 0o600 });
      break;
    } catch (error) {
      if (errorCode(error) !== "EEXIST") {
        throw new ConfigError(
          `${ENV.DATA_DIR} ${dataDir} is not writable: ${LOCK_FILE} ${fileProblem(error)}`,
        );
      }
    }
    const held = readLock(path);
    // Released between the two calls: try again.
    if (held === null) continue;
    if (await holderRuns(held)) {
      const where = held.url === null ? "" : `, listening at ${held.url}`;
      throw new ConfigError(
        `${ENV.DATA_DIR} ${dataDir} is in use by another kubler start (pid ${held.pid}${where}): stop it, or set ${ENV.DATA_DIR} to another directory`,
      );
    }
    if (attempt > 3) {
      throw new ConfigError(
        `${ENV.DATA_DIR} ${dataDir}: ${LOCK_FILE} keeps coming back; is another kubler starting?`,
      );
    }
    process.stderr.write(
      `kubler: ${path} was left by ${held.pid === null ? "a process" : `pid ${held.pid}`}, which is no longer running: taking it over\n`,
    );
    // Only the stale lock read above: not one another start has just put in its place.
    if (readLock(path)?.text === held.text) unlinkSync(path);
  }
  const release = () => {
    process.removeListener("exit", release);
    try {
      if (readLock(path)?.pid === process.pid) unlinkSync(path);
    } catch {
      // Already gone, or the data dir with it: nothing left to release.
    }
  };
  process.on("exit", release);
  return {
    listening: (url) => writeFileSync(path, content(url), { mode: 0o600 }),
    release,
  };
}

/** Whether the lock's holder is a runtime still running: a live pid, not ours, answering where it listened. */
async function holderRuns(held: { pid: number | null; url: string | null }): Promise<boolean> {
  if (held.pid === null) return false;
  const ours = held.pid === process.pid;
  if (!ours && !isRunning(held.pid)) return false;
  // Still starting (no URL yet): its pid is all there is to go by, and ours cannot be another start.
  if (held.url === null) return !ours;
  try {
    const response = await fetch(`${held.url}/healthz`, { signal: AbortSignal.timeout(1000) });
    return response.ok;
  } catch {
    return false;
  }
}

/** The lock's holder; null when there is no lock file (any more). */
function readLock(path: string): { text: string; pid: number | null; url: string | null } | null {
  let text: string;
  try {
    text = readFileSync(path, "utf8");
  } catch (error) {
    if (errorCode(error) === "ENOENT") return null;
    throw error;
  }
  return { text, ...parseLock(text) };
}

/** Signal 0 checks without signalling; EPERM: it runs, as another user. */
function isRunning(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    return errorCode(error) === "EPERM";
  }
}

/** The two ways a listen fails on an operator's machine, said in their terms. */
function listenError(error: unknown, config: LocalConfig): unknown {
  const code = errorCode(error);
  const where = `${config.host}:${config.port}`;
  if (code === "EADDRINUSE") {
    return new ConfigError(
      `${where} is already in use: stop what listens there, or set PORT (0 = any free port)`,
    );
  }
  if (code === "EADDRNOTAVAIL" || code === "ENOTFOUND") {
    return new ConfigError(`KUBLER_HOST ${config.host} is not an address of this machine`);
  }
  return error;
}
