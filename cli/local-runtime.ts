/**
 * The embedded default (DESIGN §10): every HTTP app on one port, the local bus routing with the
 * catalog's routes, the in-memory dedupe store, audit to `audit.jsonl`. No AWS account, no cluster.
 */
import { mkdirSync } from "node:fs";
import type { AddressInfo } from "node:net";
import { resolve } from "node:path";
import { serve } from "@hono/node-server";
import { Hono } from "hono";
import { createGitlabWebhookApp } from "../functions/gitlab-webhook/app.js";
import { createPlanStepsConsumer } from "../functions/plan-steps/consumer.js";
import { logErrorToStderr } from "../shared/adapters/stdout-audit-log.js";
import { randomId, systemClock } from "../shared/clock.js";
import { type LocalConfig, webhookCredentials } from "../shared/config.js";
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
  mkdirSync(dataDir, { recursive: true });
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
  app.route("/", createLocalEventsApp({ credentials, publisher: bus, clock: systemClock }));

  const jobCredentials = mountLocalCredentials(app, {
    ...(options.credentials ? { config: options.credentials } : {}),
    dataDir,
    cluster: environments.cluster,
    publisher: bus,
    audit,
  });

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
    // The embedded cluster and the timers already run: stopped, or a port in use leaves a process
    // that printed its error and never exits.
    await environments.close();
    await Promise.all(Object.values(files).map((file) => file.close()));
    throw listenError(error, config);
  }
  const { port } = server.address() as AddressInfo;
  const url = `http://${urlHost(config.host)}:${port}`;
  jobCredentials.listening(url);

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
      const unfinished = await bus.drain(drainMs);
      if (unfinished.length > 0) {
        const list = unfinished.map((d) => `${d.target} on ${d.detailType} ${d.eventId}`).join(", ");
        // The events are in events.jsonl: what was abandoned can be sent again from there.
        process.stderr.write(
          `kubler: stopped without waiting for ${unfinished.length} delivery(ies) still running after ` +
            `${drainMs} ms: ${list} (the events are in ${files.events.path})\n`,
        );
      }
      await environments.close();
      await Promise.all(Object.values(files).map((file) => file.close()));
    },
  };
}

/** Listening on every interface, the local tools still reach the server on loopback. */
function urlHost(host: string): string {
  if (host === "0.0.0.0" || host === "::") return "127.0.0.1";
  return host.includes(":") ? `[${host}]` : host;
}

/** The two ways a listen fails on an operator's machine, said in their terms. */
function listenError(error: unknown, config: LocalConfig): unknown {
  const code = (error as { code?: unknown } | null)?.code;
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
