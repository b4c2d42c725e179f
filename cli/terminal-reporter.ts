/**
 * What `npm start` prints: where it listens, which secret it expects, where the data goes, and one
 * line per decision and per event as they flow. Never prints a configured secret.
 */
import { isAbsolute, relative, resolve, sep } from "node:path";
import type { LocalConfig } from "../shared/config.js";
import { type AuditRecord, createAuditRedactor } from "../shared/domain/audit.js";
import { FUNCTIONS, ROUTES } from "../shared/domain/catalog.js";
import { KubernetesForbiddenError, KubernetesUnavailableError } from "../shared/errors.js";
import { type BusListener, messageOf } from "../shared/local/local-bus.js";
import type { LocalRuntime } from "./local-runtime.js";
import { printable } from "./terminal-text.js";

const LOOPBACK = new Set(["127.0.0.1", "localhost", "::1"]);

export interface TerminalReporter {
  started(runtime: LocalRuntime, config: LocalConfig): void;
  audit(record: AuditRecord): void;
  bus: BusListener;
  /**
   * A background failure of `fn` (reconcile): when it is an expected operational one (the cluster
   * unreachable, or refusing Kubler's identity), one readable line, and true; else false, and the
   * caller logs it as the bug it is, with its stack.
   */
  operationalError(fn: string, error: unknown): boolean;
}

/** Failures the operator fixes outside Kubler (start the cluster, grant the role): no stack helps. */
function isOperational(error: unknown): error is Error {
  return error instanceof KubernetesUnavailableError || error instanceof KubernetesForbiddenError;
}

/**
 * A path as short as it can be without misleading: relative under the working directory, absolute
 * elsewhere (`../../tmp/x` sends the reader counting levels).
 */
export function displayPath(path: string, cwd = process.cwd()): string {
  const full = resolve(cwd, path);
  const rel = relative(cwd, full);
  if (rel === "") return ".";
  const outside = rel === ".." || rel.startsWith(`..${sep}`) || isAbsolute(rel);
  return outside ? full : rel;
}

/**
 * The `send` to try: signed when the runtime has a signing key, else with the secret token; with
 * configured secrets, the other terminal needs the same variables exported to sign or send.
 */
function tryIt(runtime: LocalRuntime, config: LocalConfig): string {
  const hint = "(in another terminal; Ctrl-C here stops)";
  if (runtime.generatedSecrets) return `npm run send -- merge_request   ${hint}`;
  const { signingKeys } = config.webhook.secrets;
  const variable = signingKeys.length > 0 ? "KUBLER_WEBHOOK_SIGNING_KEY" : "KUBLER_WEBHOOK_SECRET";
  const send =
    signingKeys.length > 0 ? "npm run send -- merge_request" : "npm run send -- merge_request --token";
  return `${send}   (in another terminal, with the same ${variable} exported; Ctrl-C here stops)`;
}

export function createTerminalReporter(print: (line: string) => void): TerminalReporter {
  // Known once the runtime has started; events only flow after that.
  let consumers: readonly string[] = [];
  // Secret-shaped text is redacted from the start; the secrets in use once they are known.
  let redact = createAuditRedactor([]);
  const time = () => new Date().toISOString().slice(11, 19);
  // A reason, ref or error quotes what a webhook carried: printed as is, `\x1b[2J` in a project
  // path would clear the operator's screen, and a newline would forge a line of its own.
  const line = (who: string, text: string) =>
    print(`${time()} ${printable(who).padEnd(20)} ${printable(text)}`);
  const targetNote = (target: string) =>
    consumers.includes(target) ? target : `${target} (no local consumer yet)`;
  return {
    started(runtime, config) {
      consumers = runtime.consumers;
      const dataDir = displayPath(runtime.dataDir);
      const secrets = config.webhook.secrets;
      redact = createAuditRedactor(
        runtime.generatedSecrets
          ? [runtime.generatedSecrets.token, runtime.generatedSecrets.signingKey]
          : [...secrets.tokens, ...secrets.signingKeys],
      );
      print("Kubler local runtime — the embedded default: no AWS account needed");
      print(
        `  listening  ${runtime.url}   POST /webhooks/gitlab · POST /v1/credentials · GET /healthz · POST /local/events`,
      );
      if (!LOOPBACK.has(config.host)) {
        print(`             bound to ${config.host} (KUBLER_HOST): other machines can reach it`);
      }
      print(`  data dir   ${dataDir}/   events.jsonl · audit.jsonl · dead-letters.jsonl`);
      print(`  cluster    ${runtime.environments.description}`);
      print(`  projects   ${displayPath(config.projectsDir)}/<project path>/kubler.yaml`);
      if (runtime.generatedSecrets) {
        print(
          `  webhook    no secret configured: generated for local use (kept in ${dataDir}/webhook-secrets.json)`,
        );
        print(`             signing token  ${runtime.generatedSecrets.signingKey}`);
        print(`             secret token   ${runtime.generatedSecrets.token}`);
      } else {
        print(
          `  webhook    expects ${secrets.signingKeys.length} signing token(s) from KUBLER_WEBHOOK_SIGNING_KEY, ` +
            `${secrets.tokens.length} secret token(s) from KUBLER_WEBHOOK_SECRET`,
        );
      }
      const waiting = FUNCTIONS.filter((f) => ROUTES.some((r) => r.target === f) && !consumers.includes(f));
      const targets = new Set(ROUTES.map((r) => r.target)).size;
      print(
        waiting.length
          ? `  bus        ${ROUTES.length} routes; functions without a local consumer: ${waiting.join(", ")}`
          : `  bus        ${ROUTES.length} routes to ${targets} functions, all running in this process`,
      );
      const jobs = runtime.jobCredentials;
      print(
        `  jobs       policy ${jobs.policyFile}; ID tokens from ${jobs.issuer()}${jobs.localIssuer ? " (the local issuer)" : ""}; AWS ${
          jobs.awsIssuer === "sts"
            ? "credentials from STS"
            : "credentials from a local issuer, NOT valid for AWS"
        }`,
      );
      print(`  try it     ${tryIt(runtime, config)}`);
      print(`             npx kubler environments · npx kubler credentials · npx kubler audit`);
    },
    operationalError(fn, error) {
      if (!isOperational(error)) return false;
      const what =
        error instanceof KubernetesUnavailableError ? "cannot reach the cluster" : "the cluster refused";
      line(fn, `${what}: ${redact.text(error.message)} (tried again at the next run)`);
      return true;
    },
    audit(record) {
      const where = record.correlationId ? `  [${record.correlationId.slice(0, 8)}]` : "";
      line(
        record.function,
        `${record.gitlab?.event ?? record.action}: ${record.outcome} — ${record.reason}${where}`,
      );
    },
    bus: {
      published(envelope, targets) {
        const to = targets.length ? targets.map(targetNote).join(", ") : "no route (archive only)";
        line("bus", `${envelope["detail-type"]} ${envelope.id.slice(0, 8)} → ${to}`);
      },
      retrying(envelope, route, attempt, error) {
        line(
          "bus",
          `${route.target} failed on ${envelope.id.slice(0, 8)} (attempt ${attempt}): ${redact.text(error instanceof Error ? String(error) : messageOf(error, redact))}`,
        );
      },
      deadLettered(envelope, route) {
        line("bus", `${route.target} gave up on ${envelope.id.slice(0, 8)}: dead-lettered`);
      },
    },
  };
}
