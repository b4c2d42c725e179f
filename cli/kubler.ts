/**
 * The `kubler` command: `start` runs the embedded default, `send` posts a real GitLab payload to it.
 */

import { randomBytes, randomUUID } from "node:crypto";
import { join } from "node:path";
import { parseArgs } from "node:util";
import { type LocalConfig, loadLocalConfig } from "../shared/config.js";
import { loadCredentialsConfig } from "../shared/credentials-config.js";
import { CREDENTIALS_FORMATS } from "../shared/domain/credentials-output.js";
import { ConfigError, messageOf } from "../shared/errors.js";
import { AUDIT_USAGE, runAuditCommand } from "./audit-command.js";
import { credentialsCommand } from "./credentials-command.js";
import type { CommandContext } from "./environment-commands.js";
import { gitlabIdFlag } from "./gitlab-id-flag.js";
import { readLocalSecrets } from "./local-secrets.js";
import { runtimeUrl } from "./runtime-address.js";
import { describeAnswer, listFixtures, loadFixture, sendFixture } from "./send.js";
import { runStopCommand, STOP_USAGE } from "./stop-command.js";
import { createTerminalReporter } from "./terminal-reporter.js";
import { UsageError } from "./usage-error.js";

type Command = "start" | "send" | "deploy" | "environments" | "credentials" | "sweep" | "stop" | "audit";

/** Each command's lines of the usage: `kubler <command> --help` prints its own. */
const USAGES: Record<Command, string> = {
  start: `  kubler start                 run Kubler in one process (PORT, KUBLER_DATA_DIR, KUBLER_WEBHOOK_*,
                               KUBECONFIG, KUBLER_PROJECTS_DIR honoured)`,
  send: `  kubler send <event|file.json> [--token] [--key K] [--url U]
                               post a real GitLab payload, signed (or with X-Gitlab-Token with --token);
                               --key reuses an Idempotency-Key to show deduplication; a file is
                               { "event_header": …, "payload": … } (examples/gitlab/)`,
  deploy: `  kubler deploy [--project P] [--project-id N] [--environment E] [--sha S] [--pipeline N] [--mr N]
                               put a Deploy Requested on the running local runtime's bus
                               (default: the sample project under examples/projects)`,
  environments: `  kubler environments [--json] list the environments Kubler manages on the cluster`,
  credentials: `  kubler credentials [--environment E] [--format json|env|kubeconfig] [--project P] [--project-id N]
                    [--ref R] [--protected] [--url U]
                               what a CI job does: a GitLab-like ID token signed by the running local
                               runtime's OIDC key, posted to /v1/credentials (policy: KUBLER_POLICY_FILE,
                               default examples/policy.yaml)`,
  sweep: `  kubler sweep [--dry-run] [--json]
                               delete expired environments now, and print the report`,
  stop: `  kubler stop --project P --environment E [--project-id N] [--instance U] [--reason R] [--dry-run]
             [--aws [--table T] [--bus B]]
                               stop (delete) one environment through cleanup: on the running local
                               runtime, or with --aws recorded in the stack's table, then on its bus`,
  audit: `  kubler audit [--query Q] [--since 24h] [--project P] [--environment E] [--action A]
               [--outcome O] [--correlation ID] [--json] [--log-group G]
                               query the audit trail (local audit.jsonl, or CloudWatch Logs
                               Insights with --log-group); --correlation prints a timeline`,
};

// Built when printed: listing the fixtures reads each file, which no other command needs.
const events = () => `  events: ${listFixtures().join(", ")}`;

// Said once, here: scripts and CI jobs tell "called wrong" from "failed" by it.
const EXIT_STATUS =
  "exit status: 0 done, 1 failed (the message says why), 2 usage mistake (a flag, its value or an argument; the command's usage follows)";

const usage = () => `usage:\n${Object.values(USAGES).join("\n")}\n${events()}\n${EXIT_STATUS}`;

function usageOf(command: Command): string {
  if (command === "audit") return AUDIT_USAGE;
  if (command === "stop") return STOP_USAGE;
  return `usage:\n${USAGES[command]}${command === "send" ? `\n${events()}` : ""}`;
}

/** Every command takes `--help`, checked before it loads configuration or starts anything. */
const HELP = { help: { type: "boolean", short: "h" } } as const;

function help(command: Command): number {
  console.log(usageOf(command));
  return 0;
}

const COMMANDS: Record<Command, (args: string[]) => Promise<number>> = {
  start,
  send,
  deploy,
  environments,
  credentials,
  sweep: sweepCommand,
  stop,
  audit,
};

function isCommand(name: string | undefined): name is Command {
  return name !== undefined && Object.hasOwn(COMMANDS, name);
}

/**
 * The caller's mistake: `node:util` parseArgs' refusals (an unknown option, a missing value) and the
 * commands' own checks of what the values say (a `UsageError`).
 */
function isUsageError(error: unknown): error is Error {
  if (error instanceof UsageError) return true;
  const code = (error as { code?: unknown } | null)?.code;
  return typeof code === "string" && code.startsWith("ERR_PARSE_ARGS_");
}

async function main(argv: string[]): Promise<number> {
  const [command, ...rest] = argv;
  if (isCommand(command)) {
    try {
      return await COMMANDS[command](rest);
    } catch (error) {
      if (!isUsageError(error)) throw error;
      console.error(`kubler ${command}: ${error.message}\n${usageOf(command)}`);
      return 2;
    }
  }
  switch (command) {
    case undefined:
    case "help":
    case "--help":
    case "-h":
      console.log(usage());
      return command === undefined ? 2 : 0;
    default:
      console.error(`kubler: unknown command "${command}"\n${usage()}`);
      return 2;
  }
}

async function start(args: string[]): Promise<number> {
  const { values } = parseArgs({ args, options: HELP });
  if (values.help) return help("start");
  const config = loadLocalConfig(process.env);
  const reporter = createTerminalReporter((line) => console.log(line));
  // Validated now: a bad policy file stops start-up with every problem listed.
  const credentials = loadCredentialsConfig(process.env, { local: true });
  const { startLocalRuntime } = await import("./local-runtime.js");
  const { logErrorToStderr } = await import("../shared/adapters/stdout-audit-log.js");
  // Bugs keep their stack (redacted, on stderr); an unreachable cluster is one line in this terminal.
  let logBug = logErrorToStderr("reconcile", [
    ...config.webhook.secrets.tokens,
    ...config.webhook.secrets.signingKeys,
  ]);
  const runtime = await startLocalRuntime(config, {
    onAudit: reporter.audit,
    bus: reporter.bus,
    credentials,
    onError: (error) => {
      if (!reporter.operationalError("reconcile", error)) logBug(error);
    },
  });
  if (runtime.generatedSecrets) {
    logBug = logErrorToStderr("reconcile", [
      runtime.generatedSecrets.token,
      runtime.generatedSecrets.signingKey,
    ]);
  }
  reporter.started(runtime, config);
  let stopping = false;
  const stop = async () => {
    if (stopping) {
      // A second Ctrl-C: stop at once, and say what that abandons.
      const abandoned = await runtime.bus.drain(0);
      const list = abandoned.map((d) => `${d.target} on ${d.detailType} ${d.eventId}`).join(", ");
      process.stderr.write(
        abandoned.length > 0
          ? `kubler: stopped at once, abandoning ${abandoned.length} delivery(ies) still running: ${list} (the events are in ${join(runtime.dataDir, "events.jsonl")})\n`
          : "kubler: stopped at once, no delivery was running\n",
      );
      process.exit(130);
    }
    stopping = true;
    console.log("stopping… (Ctrl-C again to stop at once)");
    try {
      await runtime.close();
    } catch (error) {
      // A file that cannot be written as it closes (a full disk): said, not an unhandled rejection's stack.
      process.stderr.write(`kubler: ${messageOf(error)}\n`);
      process.exit(1);
    }
    process.exit(0);
  };
  process.on("SIGINT", stop);
  process.on("SIGTERM", stop);
  // Its terminal closed (a tab, an SSH session gone): by default the process died there, its last
  // lines unwritten and its data dir's lock left behind.
  process.on("SIGHUP", stop);
  return new Promise(() => undefined);
}

/**
 * The runtime and cluster modules load only for the commands that use them: importing them (the
 * Kubernetes client, the embedded API server) took seconds that `kubler audit` does not need.
 */
function environmentCommands() {
  return import("./environment-commands.js");
}

function commandContext(): CommandContext {
  const config = loadLocalConfig(process.env);
  return { config, ...runtimeSecret(config), print: (line) => console.log(line) };
}

/**
 * The secrets the running local runtime accepts, as this shell knows them: those exported here
 * (the runtime uses only those when it was started with them), else the ones it generated.
 */
function runtimeSecret(config: LocalConfig): { token: string | null; signingKey: string | null } {
  const { tokens, signingKeys } = config.webhook.secrets;
  if (tokens.length + signingKeys.length > 0) {
    return { token: tokens[0] ?? null, signingKey: signingKeys[0] ?? null };
  }
  const generated = readLocalSecrets(config.dataDir);
  return { token: generated?.token ?? null, signingKey: generated?.signingKey ?? null };
}

async function deploy(args: string[]): Promise<number> {
  const { values } = parseArgs({
    args,
    options: {
      project: { type: "string", default: "flightjs/flight-management" },
      "project-id": { type: "string", default: "2" },
      environment: { type: "string", default: "review/feature/booking-validation" },
      sha: { type: "string" },
      ref: { type: "string" },
      pipeline: { type: "string" },
      mr: { type: "string" },
      instance: { type: "string", default: "https://gitlab.example.com" },
      ...HELP,
    },
  });
  if (values.help) return help("deploy");
  const number = (name: string, text: string | undefined): number | null =>
    text === undefined ? null : gitlabIdFlag(`--${name}`, text);
  // Checked here, before anything is loaded: the runtime's 400 for them read as a failed deploy (rc 1).
  for (const [flag, form] of [
    ["project", "the GitLab project path (group/app)"],
    ["environment", "the environment (review/feature-x)"],
    ["ref", "the branch or tag"],
    ["instance", "the GitLab instance's URL"],
  ] as const) {
    const text = values[flag];
    if (text !== undefined && !text.trim()) throw new UsageError(`--${flag} must name ${form}, got ""`);
  }
  // As the catalog's Deploy Requested takes it.
  if (values.sha !== undefined && !/^[0-9a-f]{7,64}$/.test(values.sha)) {
    throw new UsageError(
      `--sha must be a commit SHA (7 to 64 lower-case hex digits), got ${JSON.stringify(values.sha)}`,
    );
  }
  const detail = {
    correlationId: randomUUID(),
    gitlab: {
      instance: values.instance,
      projectId: number("project-id", values["project-id"]) ?? 0,
      projectPath: values.project,
    },
    environment: values.environment,
    // A new commit and a newer pipeline each time, unless told otherwise: every run is a new deploy.
    sha: values.sha ?? randomBytes(20).toString("hex"),
    ref: values.ref ?? values.environment.replace(/^review\//, ""),
    pipelineId: number("pipeline", values.pipeline) ?? Math.floor(Date.now() / 1000),
    mrIid: number("mr", values.mr),
  };
  const { requestDeploy } = await environmentCommands();
  return requestDeploy(commandContext(), detail);
}

async function environments(args: string[]): Promise<number> {
  const { values } = parseArgs({ args, options: { json: { type: "boolean" }, ...HELP } });
  if (values.help) return help("environments");
  const { listEnvironments } = await environmentCommands();
  return listEnvironments(commandContext(), values.json ?? false);
}

async function credentials(args: string[]): Promise<number> {
  const { values } = parseArgs({
    args,
    options: {
      environment: { type: "string" },
      format: { type: "string" },
      project: { type: "string" },
      "project-id": { type: "string" },
      ref: { type: "string" },
      protected: { type: "boolean" },
      url: { type: "string" },
      ...HELP,
    },
  });
  if (values.help) return help("credentials");
  // The runtime answered it 400, read as a refusal (rc 1).
  if (values.format !== undefined && !(CREDENTIALS_FORMATS as readonly string[]).includes(values.format)) {
    throw new UsageError(
      `--format must be one of ${CREDENTIALS_FORMATS.join(", ")}, got ${JSON.stringify(values.format)}`,
    );
  }
  const claims: Record<string, unknown> = {};
  if (values.project) {
    claims.project_path = values.project;
    claims.namespace_path = values.project.split("/").slice(0, -1).join("/") || values.project;
  }
  // GitLab's ID tokens carry the id as a string of digits.
  if (values["project-id"] !== undefined)
    claims.project_id = String(gitlabIdFlag("--project-id", values["project-id"]));
  if (values.ref) claims.ref = values.ref;
  if (values.protected) claims.ref_protected = "true";
  const config = loadLocalConfig(process.env);
  return credentialsCommand({
    url: values.url ?? runtimeUrl(config, process.env),
    dataDir: config.dataDir,
    environment: values.environment,
    format: values.format,
    claims,
    print: (text) => console.log(text),
    printError: (text) => console.error(`kubler credentials: ${text}`),
  });
}

async function sweepCommand(args: string[]): Promise<number> {
  const { values } = parseArgs({
    args,
    options: { "dry-run": { type: "boolean" }, json: { type: "boolean" }, ...HELP },
  });
  if (values.help) return help("sweep");
  const { sweep } = await environmentCommands();
  return sweep(commandContext(), { dryRun: values["dry-run"] ?? false, json: values.json ?? false });
}

function stop(args: string[]): Promise<number> {
  return runStopCommand(args, {
    print: (line) => console.log(line),
    env: process.env,
    context: commandContext,
    now: () => new Date(),
  });
}

function audit(args: string[]): Promise<number> {
  const terminal = process.stderr.isTTY;
  return runAuditCommand(args, {
    print: (line) => console.log(line),
    // On a terminal the progress line is rewritten in place; elsewhere each update is a line.
    progress: (line, rewrite) =>
      process.stderr.write(
        terminal && rewrite ? `\r\x1b[K${line}` : `${terminal ? "\r\x1b[K" : ""}${line}\n`,
      ),
    env: process.env,
    now: () => new Date(),
  });
}

async function send(args: string[]): Promise<number> {
  const { values, positionals } = parseArgs({
    args,
    allowPositionals: true,
    options: {
      token: { type: "boolean" },
      key: { type: "string" },
      url: { type: "string" },
      ...HELP,
    },
  });
  if (values.help) return help("send");
  const [name] = positionals;
  if (!name) throw new UsageError("which event? one of the events below, or a payload file (file.json)");
  if (positionals.length > 1) {
    // Not echoed: after --token, it may be the secret itself. Sending the first alone hid the rest.
    throw new UsageError(
      `one event or file at a time, got ${positionals.length}${values.token ? " (--token takes no value: it sends KUBLER_WEBHOOK_SECRET from this shell)" : ""}`,
    );
  }
  // An empty key (`--key "$KEY"` with KEY unset) is sent as no key, which the runtime refuses (401)
  // as if the secret were wrong.
  if (values.key !== undefined && !values.key.trim()) {
    throw new UsageError("--key is empty: give the Idempotency-Key to reuse, or leave --key out");
  }
  // A header cannot carry it (a newline, a letter outside Latin-1): fetch refused it, and that
  // refusal read as the runtime being unreachable.
  if (values.key !== undefined && !/^[\x20-\x7e]+$/.test(values.key)) {
    throw new UsageError(
      `--key must be printable ASCII (it is sent as the Idempotency-Key header), got ${JSON.stringify(values.key)}`,
    );
  }
  const fixture = loadFixture(name);
  const config = loadLocalConfig(process.env);
  const { token, signingKey } = runtimeSecret(config);
  if (!(values.token ? token : signingKey))
    throw new ConfigError(missingSecret(values.token ?? false, token, config.dataDir));
  const url = values.url ?? runtimeUrl(config, process.env);
  const response = await sendFixture(fixture, {
    url,
    ...(values.token ? { token: token ?? undefined } : { signingKey: signingKey ?? undefined }),
    idempotencyKey: values.key,
  }).catch((error: Error) => {
    throw new Error(`could not reach ${url} (${error.cause ?? error.message}): is \`npm start\` running?`);
  });
  for (const line of describeAnswer(fixture, response.status, await response.text())) console.log(line);
  return response.ok ? 0 : 1;
}

/** Why `send` has nothing to sign with (or no token to send), and what to do in this shell. */
function missingSecret(withToken: boolean, token: string | null, dataDir: string): string {
  if (!withToken && token) {
    return "no KUBLER_WEBHOOK_SIGNING_KEY in this shell to sign with: add --token to send KUBLER_WEBHOOK_SECRET as X-Gitlab-Token, or export the same KUBLER_WEBHOOK_SIGNING_KEY the server was started with";
  }
  const variable = withToken ? "KUBLER_WEBHOOK_SECRET" : "KUBLER_WEBHOOK_SIGNING_KEY";
  return `no ${variable} in this shell and no generated secret in ${dataDir}: if the server runs with KUBLER_WEBHOOK_* set, export the same here${withToken ? "" : " (with only KUBLER_WEBHOOK_SECRET, add --token)"}; otherwise start it first (npm start)`;
}

// `kubler audit | head -1`: the reader has gone. Stop quietly, as other command-line tools do,
// rather than with a stack trace for a write nobody is reading.
for (const stream of [process.stdout, process.stderr]) {
  stream.on("error", (error: NodeJS.ErrnoException) => {
    if (error.code !== "EPIPE") throw error;
    process.exit(0);
  });
}

main(process.argv.slice(2)).then(
  (code) => {
    process.exitCode = code;
  },
  (error: Error) => {
    console.error(`kubler: ${error instanceof ConfigError ? "configuration: " : ""}${error.message}`);
    process.exitCode = 1;
  },
);
