/**
 * `kubler stop`: an operator stops (deletes) one environment the way GitLab's own stops do. It only
 * asks: an `Environment Stop Requested` on the bus, which cleanup-environments acts on after its own
 * ownership checks; nothing here deletes. The project id and GitLab instance are read from the
 * environment's namespace on the configured cluster, and an environment Kubler does not manage
 * there is refused before anything is published.
 *
 * Local (the default): the request goes to the running local runtime, as `kubler deploy`'s does.
 * With `--aws` (and only then): the stop is first recorded in the stack's dedupe table, under the key
 * plan-steps records GitLab's stops with, so a late build or deploy for an older GitLab event is
 * refused; then the request is put on the stack's bus.
 */
import { randomUUID } from "node:crypto";
import { userInfo } from "node:os";
import { parseArgs } from "node:util";
import { ENV } from "../shared/config.js";
import {
  type Detail,
  MAX_REQUESTED_BY_LENGTH,
  STOP_REASONS,
  validateDetail,
} from "../shared/domain/catalog.js";
import { shellWord } from "../shared/domain/credentials-output.js";
import { heldByAnother, type ManagedEnvironment, readEnvironment } from "../shared/domain/environment.js";
import { isKnownIdentity } from "../shared/domain/environment-identity.js";
import { normalizeInstance } from "../shared/domain/gitlab-event.js";
import { environmentStopKey } from "../shared/domain/plan-steps.js";
import { ConfigError, InvalidDetailError, PublishError } from "../shared/errors.js";
import { STOP_RECORD_TTL_SECONDS } from "../shared/services/plan-steps.js";
import { resolveEnvironmentNamespace } from "../shared/services/resolve-environment-namespace.js";
import { awsSetupProblem } from "./aws-setup-problem.js";
import type { CommandContext } from "./environment-commands.js";
import { gitlabIdFlag } from "./gitlab-id-flag.js";
import { runtimeUrl } from "./runtime-address.js";
import { printable } from "./terminal-text.js";
import { UsageError } from "./usage-error.js";

export const STOP_USAGE = `usage: kubler stop --project PATH --environment NAME [options]
  stop (delete) one environment Kubler manages: puts an Environment Stop Requested on the bus;
  cleanup-environments deletes the namespace (only if Kubler owns it for that project) and
  cancels its expiry schedule. The project id and instance are read from the namespace on the
  cluster (KUBECONFIG, else the running local runtime's embedded one).
  --project PATH        the GitLab project path (group/app)
  --environment NAME    the environment's name, as \`kubler environments\` lists it (review/feature-x)
  --project-id N        checked against the namespace's (default: the namespace's)
  --instance URL        the GitLab instance, checked likewise (default: the namespace's)
  --reason R            stopped (default), merged, closed, branch_deleted or expired
  --dry-run             say what would be stopped; change nothing
  --aws                 in AWS, not on the local runtime: record the stop in the dedupe table
                        (so GitLab events older than it cannot bring the environment back), then
                        put the request on the bus. Region and credentials: AWS_REGION, AWS_PROFILE…
  --table T             with --aws: the dedupe table (default $${ENV.DEDUPE_TABLE}; the stack's
                        DedupeTableName output)
  --bus B               with --aws: the bus (default $${ENV.EVENT_BUS_NAME}, else kubler; the stack's
                        EventBusName output)`;

export interface StopCommandIo {
  print(line: string): void;
  env: Readonly<Record<string, string | undefined>>;
  /** The local configuration and the runtime's secret: read only once the arguments are valid. */
  context(): CommandContext;
  now(): Date;
}

interface StopRequest {
  projectPath: string;
  environment: string;
  projectId: number | null;
  instance: string | null;
  reason: Detail<"Environment Stop Requested">["reason"];
  dryRun: boolean;
  aws: { table: string; bus: string } | null;
}

/**
 * @example
 * process.exitCode = await runStopCommand(["--project", "group/app", "--environment", "review/x"], io);
 */
export async function runStopCommand(args: string[], io: StopCommandIo): Promise<number> {
  const { values } = parseArgs({
    args,
    options: {
      project: { type: "string" },
      environment: { type: "string" },
      "project-id": { type: "string" },
      instance: { type: "string" },
      reason: { type: "string", default: "stopped" },
      "dry-run": { type: "boolean" },
      aws: { type: "boolean" },
      table: { type: "string" },
      bus: { type: "string" },
      help: { type: "boolean", short: "h" },
    },
  });
  if (values.help) {
    io.print(STOP_USAGE);
    return 0;
  }
  const request = parseRequest(values, io.env);
  const given = io.context();
  // Its lines carry what the namespace says (its GitLab instance came in a webhook's header).
  const context: CommandContext = { ...given, print: (line) => given.print(printable(line)) };
  if (request.aws && !context.config.kubeconfig) {
    // The embedded cluster is the local runtime's: what it says is no check on the stack's cluster,
    // and its project id and instance would key a stop record no GitLab event of the stack has.
    throw new ConfigError(
      "--aws reads the environment from the stack's cluster: set KUBECONFIG to it (not the local runtime's embedded cluster)",
    );
  }
  const found = await findEnvironment(context, request);
  const detail = validateDetail("Environment Stop Requested", {
    // Marked as an operator's stop, so the audit trail tells it from GitLab's and the sweep's.
    correlationId: `kubler-stop-${randomUUID()}`,
    gitlab: { instance: found.instance, projectId: found.projectId, projectPath: found.projectPath },
    environment: found.environment,
    reason: request.reason,
  });
  if (found.resolved) context.print(`Namespace ${found.namespace}: ${found.resolved}.`);
  if (found.terminating) context.print(`Namespace ${found.namespace} is already being deleted.`);
  return request.aws
    ? stopInAws(context, io, request, request.aws, detail, found)
    : stopLocally(context, io, request, detail, found);
}

function parseRequest(
  values: {
    project?: string | undefined;
    environment?: string | undefined;
    "project-id"?: string | undefined;
    instance?: string | undefined;
    reason?: string | undefined;
    "dry-run"?: boolean | undefined;
    aws?: boolean | undefined;
    table?: string | undefined;
    bus?: string | undefined;
  },
  env: Readonly<Record<string, string | undefined>>,
): StopRequest {
  const projectPath = values.project?.trim();
  const environment = values.environment?.trim();
  if (!projectPath || !environment) {
    throw new UsageError(
      "--project and --environment are required: the environment's project path and name, as `npx kubler environments` lists them",
    );
  }
  const idText = values["project-id"];
  const projectId = idText === undefined ? null : gitlabIdFlag("--project-id", idText);
  const reason = values.reason ?? "stopped";
  if (!(STOP_REASONS as readonly string[]).includes(reason))
    throw new UsageError(`--reason must be one of ${STOP_REASONS.join(", ")}, got ${JSON.stringify(reason)}`);
  if (!values.aws && (values.table !== undefined || values.bus !== undefined)) {
    // Stopping on the local runtime while meaning AWS would leave the real environment running.
    throw new UsageError("--table and --bus are for stopping in AWS: add --aws");
  }
  let aws: StopRequest["aws"] = null;
  if (values.aws) {
    const table = values.table?.trim() || env[ENV.DEDUPE_TABLE]?.trim();
    if (!table) {
      // This shell's configuration (the stack's outputs not exported), as KUBECONFIG is: exit 1.
      throw new ConfigError(
        `no dedupe table to record the stop in: set ${ENV.DEDUPE_TABLE} or --table to the stack's DedupeTableName output (aws cloudformation describe-stacks --stack-name Kubler)`,
      );
    }
    aws = { table, bus: values.bus?.trim() || env[ENV.EVENT_BUS_NAME]?.trim() || "kubler" };
  }
  return {
    projectPath,
    environment,
    projectId,
    // As the webhook keys GitLab's events: a trailing slash would key a stop no event matches.
    instance: normalizeInstance(values.instance ?? null),
    reason: reason as StopRequest["reason"],
    dryRun: values["dry-run"] ?? false,
    aws,
  };
}

interface FoundEnvironment {
  namespace: string;
  projectPath: string;
  projectId: number;
  instance: string;
  environment: string;
  terminating: boolean;
  /** Why the namespace is not the one the project path names (a renamed or moved project), or null. */
  resolved: string | null;
}

/**
 * The environment's namespace on the cluster (its name follows from the project path and the
 * environment's, or, for a project renamed or moved since, from the path it had then: found by
 * `--project-id` and `--instance`), checked against what the operator said; the values the stop
 * needs come from it.
 */
async function findEnvironment(context: CommandContext, request: StopRequest): Promise<FoundEnvironment> {
  const { onCommandCluster } = await import("./environment-commands.js");
  const { resolved, label } = await onCommandCluster(context.config, async ({ cluster, label }) => ({
    resolved: await resolveEnvironmentNamespace(cluster, request),
    label,
  }));
  const { namespace, object } = resolved;
  // Not a ConfigError: nothing is misconfigured, there is nothing of Kubler's to stop.
  const refuse = (why: string) =>
    new Error(
      printable(
        `not stopping ${request.environment} of ${request.projectPath}: ${why}; nothing was published`,
      ),
    );
  if (!object) {
    // Looked for by labels too only when both are known (`resolveEnvironmentNamespace`).
    const [looked, renamed] = isKnownIdentity(request)
      ? [` and none labelled for project ${request.projectId} at ${request.instance}`, ""]
      : [
          "",
          "; a project renamed or moved since keeps its environments' namespaces under the names from its earlier path: give --project-id N and --instance URL to find them (`npx kubler environments --json` lists both), or that path",
        ];
    throw refuse(
      `Kubler manages no such environment on ${label} (no namespace ${namespace}${looked}); \`npx kubler environments\` lists those it does${renamed}`,
    );
  }
  const read = readEnvironment(object);
  if (read.kind !== "managed") throw refuse(`${read.reason}: Kubler stops only what it manages`);
  const e: ManagedEnvironment = read.environment;
  const mismatch = (what: string, given: unknown, found: unknown) =>
    refuse(`namespace ${namespace} is ${what} ${JSON.stringify(found)}, not ${JSON.stringify(given)}`);
  // As cleanup checks it (heldByAnother): a namespace from before the name annotation has the slug.
  if (heldByAnother(namespace, e.environment, request.environment))
    throw mismatch("environment", request.environment, e.environment);
  // Found by identity, it records the path the project had when last deployed: not this one. Found
  // by the name an earlier path gave, it records the path a deploy since a rename wrote: the project
  // id tells the renamed project from one that took the old path since.
  if (
    resolved.via === "path" &&
    e.projectPath !== null &&
    e.projectPath !== request.projectPath &&
    request.projectId === null
  ) {
    throw refuse(
      `namespace ${namespace} is project ${JSON.stringify(e.projectPath)}, not ${JSON.stringify(request.projectPath)}; if that project was renamed or moved from ${request.projectPath}, give --project-id N (its id) to stop it by its earlier path`,
    );
  }
  if (request.projectId !== null && e.projectId !== request.projectId)
    throw mismatch("project id", request.projectId, e.projectId);
  if (request.instance !== null && e.instance !== null && normalizeInstance(e.instance) !== request.instance)
    throw mismatch("GitLab instance", request.instance, e.instance);
  const instance = e.instance ?? request.instance;
  if (!instance) {
    throw new ConfigError(
      `namespace ${namespace} does not say which GitLab instance it came from (no kubler.dev/gitlab-instance annotation): give --instance URL`,
    );
  }
  return {
    namespace,
    projectPath: request.projectPath,
    projectId: e.projectId,
    instance,
    // The name cleanup finds the namespace by: the slug alone would name another.
    environment: request.environment,
    terminating: e.terminating,
    resolved: resolved.reason,
  };
}

async function stopLocally(
  context: CommandContext,
  io: StopCommandIo,
  request: StopRequest,
  detail: Detail<"Environment Stop Requested">,
  found: FoundEnvironment,
): Promise<number> {
  const what = describeTarget(detail, found.namespace);
  const requestedBy = operatorIdentity(`local:${localUserName(io.env)}`);
  const { LocalRuntimePublisher, requireRuntimeSecret } = await import("./environment-commands.js");
  const url = runtimeUrl(context.config, io.env);
  if (request.dryRun) {
    context.print(`Dry run: nothing is changed. Would stop ${what}:`);
    context.print(
      `  put Environment Stop Requested (reason ${detail.reason}) on the local runtime at ${url}, requested by ${requestedBy}`,
    );
    return 0;
  }
  let id: string | undefined;
  try {
    requireRuntimeSecret(context);
    [id] = await new LocalRuntimePublisher(url, context).publish([
      { detailType: "Environment Stop Requested", detail: withRequestedBy(detail, requestedBy) },
    ]);
  } catch (error) {
    throw orInAws(context, error);
  }
  context.print(
    `Environment Stop Requested ${id} (reason ${detail.reason}) for ${what}, on the local runtime at ${url}.`,
  );
  printRequestedBy(context, requestedBy);
  printNext(context, detail, found.namespace);
  return 0;
}

/**
 * With KUBECONFIG set, the environment was read on a real cluster, and an operator who meant the
 * deployed stack's (its usual cause) was told only to start the local runtime: one that would then
 * act on that cluster without the stop record --aws writes.
 */
function orInAws(context: CommandContext, error: unknown): unknown {
  if (!context.config.kubeconfig || !(error instanceof Error)) return error;
  const message = `${error.message}; to stop it in the deployed stack KUBECONFIG's cluster belongs to, add --aws`;
  return error instanceof ConfigError ? new ConfigError(message) : new Error(message);
}

async function stopInAws(
  context: CommandContext,
  io: StopCommandIo,
  request: StopRequest,
  aws: { table: string; bus: string },
  detail: Detail<"Environment Stop Requested">,
  found: FoundEnvironment,
): Promise<number> {
  const what = describeTarget(detail, found.namespace);
  const key = environmentStopKey(detail.gitlab, detail.environment);
  const { createAwsStopTargets } = await import("./stop-aws.js");
  let shift = 0; // AWS's clock minus this machine's, once known: the record's expiry follows AWS's too
  const targets = createAwsStopTargets({
    ...aws,
    clock: { now: () => new Date(io.now().getTime() + shift) },
  });
  try {
    const region = await targets.region().catch((error: Error) => {
      throw new ConfigError(awsProblem(error, aws, "record", io.env) ?? error.message);
    });
    const where = `table ${aws.table} and bus ${aws.bus} in ${region}`;
    if (request.dryRun) {
      context.print(`Dry run: nothing is changed. Would stop ${what}, through ${where}:`);
      context.print(`  record the stop in ${aws.table} (key ${key}), then`);
      context.print(`  put Environment Stop Requested (reason ${detail.reason}) on bus ${aws.bus}`);
      return 0;
    }
    // GitLab's facts are timed by AWS (the bus's event time), so the stop is too: a laptop clock ahead
    // would refuse pushes made after the stop, one behind would let older ones through.
    let offset: number | null;
    let requestedBy: string;
    try {
      const caller = await targets.callerIdentity();
      offset = caller.clockOffset;
      // The ARN STS answered for these credentials: who the audit trail says stopped it.
      requestedBy = operatorIdentity(`aws:${caller.arn ?? "unknown"}`);
    } catch (error) {
      throw new ConfigError(
        `${awsProblem(error as Error, aws, "record", io.env) ?? `STS GetCallerIdentity failed: ${describe(error)}`}; nothing was changed`,
      );
    }
    shift = offset ?? 0;
    const now = new Date(io.now().getTime() + shift);
    if (offset === null) {
      context.print("AWS's answer had no Date header: the stop is timed by this machine's clock.");
    } else if (Math.abs(offset) >= 2000) {
      context.print(
        `This machine's clock is ${Math.round(Math.abs(offset) / 1000)} s ${offset < 0 ? "ahead of" : "behind"} AWS's: the stop is timed by AWS's, as GitLab's events are.`,
      );
    }
    try {
      // First: a deploy racing the request already finds the stop, as with plan-steps' own stops.
      await targets.stops.record(key, now, STOP_RECORD_TTL_SECONDS);
    } catch (error) {
      throw new ConfigError(
        `${awsProblem(error as Error, aws, "record", io.env) ?? `DynamoDB refused the stop record: ${describe(error)}`}; nothing was changed`,
      );
    }
    context.print(
      `Recorded the stop in ${aws.table} (${region}): key ${key}; for ${STOP_RECORD_TTL_SECONDS / 86_400} days, builds and deploys GitLab asked for before ${now.toISOString()} are refused.`,
    );
    let id: string | undefined;
    try {
      [id] = await targets.publisher.publish([
        { detailType: "Environment Stop Requested", detail: withRequestedBy(detail, requestedBy) },
      ]);
    } catch (error) {
      throw new ConfigError(
        `the stop is recorded, but the request did not reach the bus: ${awsProblem(error as Error, aws, "publish", io.env) ?? describe(error)}; run the same command again once fixed (recording again is harmless)`,
      );
    }
    context.print(
      `Put Environment Stop Requested ${id} (reason ${detail.reason}) for ${what} on bus ${aws.bus}.`,
    );
    printRequestedBy(context, requestedBy);
    printNext(context, detail, found.namespace, " --since 1h");
    return 0;
  } finally {
    targets.close();
  }
}

function withRequestedBy(
  detail: Detail<"Environment Stop Requested">,
  requestedBy: string,
): Detail<"Environment Stop Requested"> {
  return validateDetail("Environment Stop Requested", { ...detail, requestedBy });
}

function printRequestedBy(context: CommandContext, requestedBy: string): void {
  context.print(`Requested by ${requestedBy} (the audit trail's environment.stop line names it).`);
}

/** This machine's user: os.userInfo() throws where the uid has no passwd entry (some containers). */
function localUserName(env: Readonly<Record<string, string | undefined>>): string {
  try {
    const name = userInfo().username;
    if (name) return name;
  } catch {
    // Falls through to the environment's idea of the user.
  }
  return env.USER?.trim() || env.USERNAME?.trim() || "unknown";
}

/** What the catalog takes as `requestedBy`: one line, at most MAX_REQUESTED_BY_LENGTH characters. */
function operatorIdentity(text: string): string {
  const line = text.replace(/\p{Cc}/gu, "?");
  return line.length > MAX_REQUESTED_BY_LENGTH ? `${line.slice(0, MAX_REQUESTED_BY_LENGTH - 1)}…` : line;
}

function describeTarget(detail: Detail<"Environment Stop Requested">, namespace: string): string {
  const { gitlab } = detail;
  return `${detail.environment} of ${gitlab.projectPath} (project ${gitlab.projectId} at ${gitlab.instance}), namespace ${namespace}`;
}

function printNext(
  context: CommandContext,
  detail: Detail<"Environment Stop Requested">,
  namespace: string,
  since = "",
): void {
  context.print(
    `Next: cleanup-environments deletes namespace ${namespace} (only if Kubler manages it for project ${detail.gitlab.projectId}) and cancels its expiry schedule.`,
  );
  context.print(
    `  npx kubler audit --action environment.stop --environment ${shellWord(detail.environment)}${since}   # the deletion, reason ${detail.reason}`,
  );
  context.print(`  npx kubler environments                                   # no longer lists it`);
}

/** What the operator must set or fix, for the AWS refusals a first run meets; null for the others. */
function awsProblem(
  error: Error,
  aws: { table: string; bus: string },
  step: "record" | "publish",
  env: Readonly<Record<string, string | undefined>>,
): string | null {
  const setup = awsSetupProblem(error, "", env);
  if (setup) return setup;
  const { name, message } = error;
  // The publisher reports a per-entry or call error by its code (`last error AccessDeniedException`).
  const code = error instanceof PublishError ? (/last error (\S+)/.exec(message)?.[1] ?? name) : name;
  const target =
    step === "record"
      ? `dynamodb:PutItem on table ${aws.table}`
      : `events:PutEvents on bus ${aws.bus} (source kubler, detail-type Environment Stop Requested)`;
  if (/AccessDenied|NotAuthorized|UnauthorizedOperation/.test(code)) {
    return `${code}: your AWS identity may not ${target}: use a role that may, or ask for it`;
  }
  if (/UnrecognizedClient|InvalidClientTokenId|InvalidSignature|ExpiredToken/.test(code)) {
    return `${code}: AWS does not accept these credentials (${message}): refresh them (aws sso login, or new keys)`;
  }
  if (code === "ResourceNotFoundException") {
    return step === "record"
      ? `no table ${aws.table} in this region: set ${ENV.DEDUPE_TABLE} or --table to the stack's DedupeTableName output, and AWS_REGION to its region`
      : `no bus ${aws.bus} in this region: set ${ENV.EVENT_BUS_NAME} or --bus to the stack's EventBusName output, and AWS_REGION to its region`;
  }
  return null;
}

function describe(error: unknown): string {
  if (error instanceof InvalidDetailError) return error.message;
  return error instanceof Error ? `${error.name}: ${error.message}` : String(error);
}
