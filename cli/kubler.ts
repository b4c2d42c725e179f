/**
 * The `kubler` command: `start` runs the embedded default, `send` posts a real GitLab payload to it.
 */
import { randomBytes, randomUUID } from "node:crypto";
import { parseArgs } from "node:util";
import { loadLocalConfig } from "../shared/config.js";
import { loadCredentialsConfig } from "../shared/credentials-config.js";
import { ConfigError } from "../shared/errors.js";
import { runAuditCommand } from "./audit-command.js";
import { credentialsCommand } from "./credentials-command.js";
import type { CommandContext } from "./environment-commands.js";
import { readLocalSecrets } from "./local-secrets.js";
import { listFixtures, loadFixture, sendFixture } from "./send.js";
import { createTerminalReporter } from "./terminal-reporter.js";

const USAGE = `usage:
  kubler start                 run Kubler in one process (PORT, KUBLER_DATA_DIR, KUBLER_WEBHOOK_*,
                               KUBECONFIG, KUBLER_PROJECTS_DIR honoured)
  kubler send <event> [--token] [--key K] [--url U]
                               post a real GitLab payload, signed (or with X-Gitlab-Token with --token);
                               --key reuses an Idempotency-Key to show deduplication
  kubler deploy [--project P] [--project-id N] [--environment E] [--sha S] [--pipeline N] [--mr N]
                               put a Deploy Requested on the running local runtime's bus
                               (default: the sample project under examples/projects)
  kubler environments [--json] list the environments Kubler manages on the cluster
  kubler credentials [--environment E] [--format json|env|kubeconfig] [--project P] [--project-id N]
                    [--ref R] [--protected] [--url U]
                               what a CI job does: a GitLab-like ID token signed by the running local
                               runtime's OIDC key, posted to /v1/credentials (policy: KUBLER_POLICY_FILE,
                               default examples/policy.yaml)
  kubler sweep [--dry-run] [--json]
                               delete expired environments now, and print the report
  kubler audit [--query Q] [--since 24h] [--project P] [--environment E] [--action A]
               [--outcome O] [--correlation ID] [--json] [--log-group G]
                               query the audit trail (local audit.jsonl, or CloudWatch Logs
                               Insights with --log-group); --correlation prints a timeline
  events: ${listFixtures().join(", ")}`;

async function main(argv: string[]): Promise<number> {
  const [command, ...rest] = argv;
  switch (command) {
    case "start":
      return start();
    case "send":
      return send(rest);
    case "deploy":
      return deploy(rest);
    case "environments":
      return environments(rest);
    case "credentials":
      return credentials(rest);
    case "sweep":
      return sweepCommand(rest);
    case "audit":
      return audit(rest);
    case undefined:
    case "help":
    case "--help":
    case "-h":
      console.log(USAGE);
      return command === undefined ? 2 : 0;
    default:
      console.error(`kubler: unknown command "${command}"\n${USAGE}`);
      return 2;
  }
}

async function start(): Promise<number> {
  const config = loadLocalConfig(process.env);
  const reporter = createTerminalReporter((line) => console.log(line));
  // Validated now: a bad policy file stops start-up with every problem listed.
  const credentials = loadCredentialsConfig(process.env, { local: true });
  const { startLocalRuntime } = await import("./local-runtime.js");
  const runtime = await startLocalRuntime(config, {
    onAudit: reporter.audit,
    bus: reporter.bus,
    credentials,
  });
  reporter.started(runtime, config);
  const stop = async () => {
    console.log("stopping…");
    await runtime.close();
    process.exit(0);
  };
  process.once("SIGINT", stop);
  process.once("SIGTERM", stop);
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
  const token = config.webhook.secrets.tokens[0] ?? readLocalSecrets(config.dataDir)?.token ?? null;
  return { config, token, print: (line) => console.log(line) };
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
    },
  });
  const number = (name: string, text: string | undefined): number | null => {
    if (text === undefined) return null;
    if (!/^\d+$/.test(text))
      throw new ConfigError(`--${name} must be a whole number, got ${JSON.stringify(text)}`);
    return Number(text);
  };
  const { requestDeploy } = await environmentCommands();
  return requestDeploy(commandContext(), {
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
  });
}

async function environments(args: string[]): Promise<number> {
  const { values } = parseArgs({ args, options: { json: { type: "boolean" } } });
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
    },
  });
  const config = loadLocalConfig(process.env);
  const claims: Record<string, unknown> = {};
  if (values.project) {
    claims.project_path = values.project;
    claims.namespace_path = values.project.split("/").slice(0, -1).join("/") || values.project;
  }
  if (values["project-id"]) claims.project_id = values["project-id"];
  if (values.ref) claims.ref = values.ref;
  if (values.protected) claims.ref_protected = "true";
  return credentialsCommand({
    url: values.url ?? `http://127.0.0.1:${config.port}`,
    dataDir: config.dataDir,
    environment: values.environment,
    format: values.format,
    claims,
    print: (text) => console.log(text),
  });
}

async function sweepCommand(args: string[]): Promise<number> {
  const { values } = parseArgs({
    args,
    options: { "dry-run": { type: "boolean" }, json: { type: "boolean" } },
  });
  const { sweep } = await environmentCommands();
  return sweep(commandContext(), { dryRun: values["dry-run"] ?? false, json: values.json ?? false });
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
      help: { type: "boolean", short: "h" },
    },
  });
  if (values.help) {
    console.log(USAGE);
    return 0;
  }
  const [name] = positionals;
  if (!name) {
    console.error(`kubler send: which event?\n${USAGE}`);
    return 2;
  }
  const config = loadLocalConfig(process.env);
  const generated = readLocalSecrets(config.dataDir);
  const signingKey = config.webhook.secrets.signingKeys[0] ?? generated?.signingKey;
  const token = config.webhook.secrets.tokens[0] ?? generated?.token;
  if (!(values.token ? token : signingKey)) {
    throw new ConfigError(
      `no ${values.token ? "KUBLER_WEBHOOK_SECRET" : "KUBLER_WEBHOOK_SIGNING_KEY"} set and no generated secret in ${config.dataDir}: start the server first (npm start)`,
    );
  }
  const fixture = loadFixture(name);
  const url = values.url ?? `http://127.0.0.1:${config.port}`;
  const response = await sendFixture(fixture, {
    url,
    ...(values.token ? { token } : { signingKey }),
    idempotencyKey: values.key,
  }).catch((error: Error) => {
    throw new Error(`could not reach ${url} (${error.cause ?? error.message}): is \`npm start\` running?`);
  });
  console.log(`${fixture.eventHeader} (${fixture.name}) → ${response.status} ${await response.text()}`);
  return response.ok ? 0 : 1;
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
