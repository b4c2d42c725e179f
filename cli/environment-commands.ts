/**
 * Operators' commands on environments: `kubler environments`, `kubler sweep [--dry-run]` against the
 * configured cluster (`KUBECONFIG`, else the embedded cluster of a running `npm start`), and
 * `kubler deploy`, which puts a `Deploy Requested` on the running local runtime's bus.
 */

import { existsSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { createKubernetesCluster, type KubernetesCluster } from "../shared/adapters/kubernetes-cluster.js";
import { kubernetesClusterFromKubeconfigFiles } from "../shared/adapters/kubernetes-cluster-from-env.js";
import { randomId, systemClock } from "../shared/clock.js";
import type { LocalConfig } from "../shared/config.js";
import type { BusEntry, Detail } from "../shared/domain/catalog.js";
import { ENVIRONMENTS_SELECTOR, readEnvironment } from "../shared/domain/environment.js";
import { signWebhook, tokenHeaderValue } from "../shared/domain/webhook-auth.js";
import { ConfigError, KubernetesUnavailableError } from "../shared/errors.js";
import { JsonlAuditLog } from "../shared/local/jsonl-audit-log.js";
import { JsonlFile } from "../shared/local/jsonl-file.js";
import type { EventPublisher, Scheduler } from "../shared/ports.js";
import { type SweepReport, sweepExpiredEnvironments } from "../shared/services/cleanup-environments.js";
import { EMBEDDED_KUBECONFIG } from "./local-environments.js";
import { LOCAL_EVENTS_PATH } from "./local-events-app.js";
import { runtimeUrl } from "./runtime-address.js";
import { printable, printableJson } from "./terminal-text.js";

export interface CommandContext {
  config: LocalConfig;
  /**
   * The running local runtime's webhook secret token and signing key, as this shell knows them:
   * KUBLER_WEBHOOK_SECRET and KUBLER_WEBHOOK_SIGNING_KEY, else the ones it generated in the data dir.
   */
  token: string | null;
  signingKey: string | null;
  print: (line: string) => void;
}

/** The cluster the commands act on, and how to name it to the operator. */
export function commandCluster(config: LocalConfig): {
  cluster: KubernetesCluster;
  label: string;
  embedded: boolean;
} {
  if (config.kubeconfig) {
    // Checked like `npm start` checks it: a bad file is named in plain words.
    const cluster = kubernetesClusterFromKubeconfigFiles({ KUBECONFIG: config.kubeconfig });
    return { cluster, label: `${cluster.describe().server} (from KUBECONFIG)`, embedded: false };
  }
  const embedded = join(config.dataDir, EMBEDDED_KUBECONFIG);
  if (!existsSync(embedded)) {
    throw new ConfigError(
      "no cluster: set KUBECONFIG, or start the local runtime (npm start) to use its embedded cluster",
    );
  }
  const cluster = createKubernetesCluster({ kubeconfig: readFileSync(embedded, "utf8") });
  return { cluster, label: `the embedded cluster of the running local runtime (simulated)`, embedded: true };
}

/**
 * `fn` on the command's cluster, closed after. The embedded cluster's kubeconfig outlives a killed
 * `npm start`: its connection refused means the runtime is not running, which is what the operator
 * needs to hear.
 *
 * @example
 * const namespace = await onCommandCluster(config, ({ cluster }) => cluster.get(ref));
 */
export async function onCommandCluster<T>(
  config: LocalConfig,
  fn: (target: { cluster: KubernetesCluster; label: string }) => Promise<T>,
): Promise<T> {
  const { cluster, label, embedded } = commandCluster(config);
  try {
    return await fn({ cluster, label });
  } catch (error) {
    throw explainUnreachable(error, embedded, label);
  } finally {
    cluster.close();
  }
}

function explainUnreachable(error: unknown, embedded: boolean, label: string): unknown {
  if (!(error instanceof KubernetesUnavailableError)) return error;
  if (!embedded) {
    // Which of the operator's clusters, and what to look at: the listing's retries alone named neither.
    return new Error(
      `the cluster at ${label} does not answer (${error.message}): check KUBECONFIG's current context (kubectl config current-context) and that this machine reaches it (a VPN)`,
    );
  }
  return new Error(
    `the embedded cluster of the local runtime does not answer (${error.message}): is \`npm start\` running?`,
  );
}

/** What a command needs to put events on the running local runtime's bus. */
export interface RuntimeSecret {
  token: string | null;
  signingKey: string | null;
}

/** Publishes on a running local runtime's bus, through `POST /local/events`. */
export class LocalRuntimePublisher implements EventPublisher {
  constructor(
    private readonly url: string,
    private readonly secret: RuntimeSecret,
  ) {}

  async publish(entries: readonly BusEntry[]): Promise<string[]> {
    const ids: string[] = [];
    for (const entry of entries) {
      const body = JSON.stringify(entry);
      const { token, signingKey } = this.secret;
      // The runtime authenticates its local door like a webhook: the secret token, or a signature.
      const auth: Record<string, string> = token
        ? { "x-gitlab-token": tokenHeaderValue(token) }
        : signingKey
          ? signWebhook(signingKey, randomId(), systemClock.now(), Buffer.from(body))
          : {};
      const response = await fetch(`${this.url}${LOCAL_EVENTS_PATH}`, {
        method: "POST",
        headers: { "content-type": "application/json", ...auth },
        body,
      }).catch((error: Error) => {
        throw new Error(
          `could not reach the local runtime at ${this.url} (${error.cause ?? error.message}): is \`npm start\` running?`,
        );
      });
      const answer = (await response.json().catch(() => ({}))) as { eventId?: string; message?: string };
      if (response.status === 401) {
        throw new Error(
          `the local runtime refused the event: ${answer.message ?? "unauthorized"}; export the same ${SECRET_VARIABLES} it was started with in this shell`,
        );
      }
      if (!response.ok || !answer.eventId)
        throw new Error(`the local runtime refused the event: ${answer.message ?? response.status}`);
      ids.push(answer.eventId);
    }
    return ids;
  }
}

const SECRET_VARIABLES = "KUBLER_WEBHOOK_SECRET or KUBLER_WEBHOOK_SIGNING_KEY";

/**
 * Refuses, saying what to export or start, when this shell knows no secret of the local runtime:
 * for a command about to put an event on its bus.
 *
 * @example
 * requireRuntimeSecret(context);
 * await new LocalRuntimePublisher(url, context).publish(entries);
 */
export function requireRuntimeSecret(context: CommandContext): void {
  if (context.token || context.signingKey) return;
  throw new ConfigError(
    `no webhook secret for the local runtime in this shell: if it runs with ${SECRET_VARIABLES}, export the same here; otherwise start it (npm start), which generates one in ${context.config.dataDir}`,
  );
}

/** `kubler environments`: every managed environment, newest first. */
export async function listEnvironments(context: CommandContext, json: boolean): Promise<number> {
  return onCommandCluster(context.config, ({ cluster, label }) =>
    printEnvironments(context, cluster, label, json),
  );
}

async function printEnvironments(
  context: CommandContext,
  cluster: KubernetesCluster,
  label: string,
  json: boolean,
): Promise<number> {
  const rows: string[][] = [];
  const now = systemClock.now();
  let token: string | undefined;
  do {
    const page = await cluster.list("v1", "Namespace", {
      labelSelector: ENVIRONMENTS_SELECTOR,
      limit: 500,
      ...(token ? { continue: token } : {}),
    });
    for (const object of page.items) {
      const read = readEnvironment(object);
      if (json) {
        context.print(
          printableJson(
            read.kind === "managed" ? read.environment : { namespace: object.metadata.name, ...read },
          ),
        );
        continue;
      }
      if (read.kind !== "managed") {
        rows.push([object.metadata.name, "?", "?", "?", read.kind, "", read.reason]);
        continue;
      }
      const e = read.environment;
      rows.push([
        e.namespace,
        e.projectPath ?? String(e.projectId),
        e.environment,
        e.sha?.slice(0, 8) ?? "",
        e.terminating ? "terminating" : (e.status ?? ""),
        e.createdAt ? age(now.getTime() - e.createdAt.getTime()) : "",
        e.expiresAt
          ? `${e.expiresAt.toISOString().replace(/\.\d{3}Z$/, "Z")} (${e.expiresAt <= now ? `expired ${age(now.getTime() - e.expiresAt.getTime())} ago` : `in ${age(e.expiresAt.getTime() - now.getTime())}`})`
          : "never",
      ]);
    }
    token = page.continue ?? undefined;
  } while (token);
  if (json) return 0;
  context.print(`Environments on ${label}:`);
  if (rows.length === 0) {
    context.print("  none (nothing labelled app.kubernetes.io/managed-by=kubler)");
    return 0;
  }
  printTable(context.print, ["NAMESPACE", "PROJECT", "ENVIRONMENT", "SHA", "STATUS", "AGE", "EXPIRES"], rows);
  return 0;
}

/** `kubler sweep [--dry-run]`: deletes expired environments now, with a progress line per page. */
export async function sweep(
  context: CommandContext,
  options: { dryRun: boolean; json: boolean },
): Promise<number> {
  const url = runtimeUrl(context.config, process.env);
  // Environment Deleted reaches report-status through the local runtime when it runs; schedules of
  // swept environments stay where they are (timers in the runtime, or Scheduler) and find them gone.
  const publisher: EventPublisher =
    context.token || context.signingKey
      ? new LocalRuntimePublisher(url, context)
      : { publish: async (entries) => entries.map(() => "not-published") };
  const scheduler: Scheduler = { scheduleStop: async () => undefined, cancel: async () => undefined };
  const report = await onCommandCluster(context.config, async ({ cluster, label }) => {
    // The sweep keeps a failed listing in its report, as it keeps every failure; a cluster that does
    // not answer at all is said before it starts (for the embedded one: is `npm start` running?).
    await cluster.list("v1", "Namespace", { limit: 1 });
    if (!options.json)
      context.print(`${options.dryRun ? "Dry run: nothing is deleted. " : ""}Sweeping ${label}…`);
    // The sweep's decisions join the runtime's trail (appends of whole lines, safe beside it).
    const auditFile = new JsonlFile(join(context.config.dataDir, "audit.jsonl"));
    const secrets = [context.token, context.signingKey].filter((secret) => secret !== null);
    const audit = new JsonlAuditLog(auditFile, undefined, { secrets });
    try {
      return await sweepExpiredEnvironments(
        { cluster, scheduler, publisher, audit, clock: systemClock },
        {
          dryRun: options.dryRun,
          newId: randomId,
          onProgress: (r) => {
            if (!options.json)
              context.print(
                `  examined ${r.examined} · expired ${r.expired.length} · deleted ${r.deleted.length} · failed ${r.failed.length}`,
              );
          },
        },
      );
    } finally {
      await auditFile.close();
    }
  });
  if (options.json) context.print(printableJson(report));
  else printReport(context.print, report);
  return report.failed.length > 0 ? 1 : 0;
}

function printReport(print: (line: string) => void, report: SweepReport): void {
  print(
    `${report.dryRun ? "Would delete" : "Deleted"} ${report.dryRun ? report.expired.length : report.deleted.length} of ${report.examined} environments examined (${report.expired.length} expired, ${report.failed.length} failed, ${report.skipped.length} skipped${report.released.length > 0 ? `, ${report.released.length} stop holds let go` : ""}).`,
  );
  const section = (title: string, items: { namespace: string; reason: string }[]) => {
    if (items.length === 0) return;
    print(`${title}:`);
    for (const item of items.slice(0, 50)) print(printable(`  ${item.namespace}  ${item.reason}`));
    if (items.length > 50) print(`  … and ${items.length - 50} more (--json lists all)`);
  };
  section(report.dryRun ? "Would delete" : "Deleted", report.dryRun ? report.expired : report.deleted);
  // Namespaces a dead-lettered stop held Terminating, finished by this sweep: as its audit line says.
  section("Stop holds let go", report.released);
  section("Failed", report.failed);
  section("Skipped", report.skipped);
}

/** `kubler deploy`: a `Deploy Requested` for a project under KUBLER_PROJECTS_DIR, on the local bus. */
export async function requestDeploy(
  context: CommandContext,
  detail: Detail<"Deploy Requested">,
): Promise<number> {
  requireRuntimeSecret(context);
  const publisher = new LocalRuntimePublisher(runtimeUrl(context.config, process.env), context);
  const [id] = await publisher.publish([{ detailType: "Deploy Requested", detail }]);
  context.print(
    `Deploy Requested ${id} for ${detail.gitlab.projectPath} → ${detail.environment} at ${detail.sha.slice(0, 8)}`,
  );
  context.print("Follow it in the local runtime's terminal; then `npx kubler environments`.");
  return 0;
}

/**
 * 45s, 12m, 1h 30m, 2d 23h, 3d: two units, rounded to the nearer of the smaller. One unit rounded
 * down showed a fresh 72h TTL (71h 59m left) as "in 2d", a day less than it has.
 */
function age(ms: number): string {
  const seconds = Math.round(Math.max(0, ms) / 1000);
  if (seconds < 60) return `${seconds}s`;
  const minutes = Math.round(ms / 60_000);
  if (minutes < 60) return `${minutes}m`;
  if (minutes < 24 * 60) return twoUnits(Math.floor(minutes / 60), "h", minutes % 60, "m");
  const hours = Math.round(ms / 3_600_000);
  return twoUnits(Math.floor(hours / 24), "d", hours % 24, "h");
}

function twoUnits(big: number, bigUnit: string, small: number, smallUnit: string): string {
  return small === 0 ? `${big}${bigUnit}` : `${big}${bigUnit} ${small}${smallUnit}`;
}

function printTable(print: (line: string) => void, header: string[], cells: string[][]): void {
  // Annotations hold what GitLab sent (a project path, an environment's name): never obeyed here.
  const rows = cells.map((row) => row.map(printable));
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? "").length)));
  for (const row of [header, ...rows])
    print(
      row
        .map((cell, i) => cell.padEnd(widths[i] ?? 0))
        .join("  ")
        .trimEnd(),
    );
}
