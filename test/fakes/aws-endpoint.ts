/**
 * One local HTTP server that answers as the AWS services Kubler's functions call, for a process
 * given `AWS_ENDPOINT_URL=<url>`: the real SDK clients sign and send real requests, and the test
 * reads what arrived. Protocols as the SDK speaks them: JSON by `X-Amz-Target` (Secrets Manager,
 * DynamoDB, EventBridge, CloudWatch Logs), REST-JSON (EventBridge Scheduler: `/schedules/<name>`),
 * query with an XML answer (STS). Each call is recorded with its SigV4 credential scope, so a test
 * can check who signed it, for which region and service.
 */
import { randomUUID } from "node:crypto";
import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";

export interface AwsCall {
  /** The signing name of the SigV4 scope: secretsmanager, dynamodb, events, scheduler, sts, logs. */
  service: string;
  /** GetSecretValue, PutItem, PutEvents, CreateSchedule, AssumeRole, ... */
  operation: string;
  region: string;
  /** The access key id the request was signed with. */
  accessKeyId: string;
  /** `X-Amz-Security-Token`: the session token of temporary credentials. */
  sessionToken: string | undefined;
  method: string;
  path: string;
  /** The URL's query (REST-JSON puts some parameters there: DeleteSchedule's `groupName`). */
  query: Record<string, string>;
  /** The JSON body, or the query protocol's parameters (`Tags.member.1.Key`, ...). */
  body: Record<string, unknown>;
}

/** An AWS error answer (`ResourceNotFoundException`, `ConditionalCheckFailedException`, ...). */
export interface AwsError {
  status: number;
  type: string;
  message?: string;
}

/** Answers one call: a result object, an `AwsError`, or undefined for the default answer. */
export type AwsAnswer = (call: AwsCall) => Record<string, unknown> | AwsError | undefined;

const SCOPE = /Credential=([^/]+)\/\d{8}\/([^/]+)\/([^/]+)\/aws4_request/;
const SCHEDULE_OPERATIONS: Record<string, string> = {
  POST: "CreateSchedule",
  PUT: "UpdateSchedule",
  DELETE: "DeleteSchedule",
  GET: "GetSchedule",
};

/**
 * @example
 * const aws = await startFakeAws();
 * aws.secrets.set(arn, "token");
 * // child process: AWS_ENDPOINT_URL=aws.url … then
 * aws.calls.filter((c) => c.operation === "PutEvents");
 */
export async function startFakeAws() {
  const calls: AwsCall[] = [];
  /** Secret ARN (or name) → its SecretString. */
  const secrets = new Map<string, string>();
  let override: AwsAnswer | null = null;
  let eventIds = 0;

  const defaults = (call: AwsCall): Record<string, unknown> | AwsError => {
    switch (`${call.service}.${call.operation}`) {
      case "secretsmanager.GetSecretValue": {
        const id = String(call.body.SecretId);
        const value = secrets.get(id);
        if (value === undefined) return { status: 400, type: "ResourceNotFoundException", message: id };
        return { ARN: id, Name: id.split(":").at(-1), SecretString: value, VersionId: "v1" };
      }
      case "dynamodb.PutItem":
      case "dynamodb.UpdateItem":
      case "dynamodb.DeleteItem":
      case "dynamodb.GetItem":
        return {};
      case "events.PutEvents": {
        const entries = (call.body.Entries as unknown[] | undefined) ?? [];
        return { FailedEntryCount: 0, Entries: entries.map(() => ({ EventId: `evt-${++eventIds}` })) };
      }
      case "scheduler.CreateSchedule":
      case "scheduler.UpdateSchedule":
        return {
          ScheduleArn: `arn:aws:scheduler:${call.region}:123456789012:schedule/${call.body.GroupName ?? "default"}/${call.path.replace("/schedules/", "")}`,
        };
      case "scheduler.DeleteSchedule":
        return {};
      case "sts.AssumeRole":
        return assumeRole(call);
      default:
        return { status: 400, type: "UnknownOperationException", message: call.operation };
    }
  };

  const server: Server = createServer((request, response) => {
    const chunks: Buffer[] = [];
    request.on("data", (chunk: Buffer) => chunks.push(chunk));
    request.on("end", () => {
      const call = parseCall(request, Buffer.concat(chunks).toString("utf8"));
      calls.push(call);
      const reply = override?.(call) ?? defaults(call);
      respond(response, call, reply);
    });
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  return {
    url,
    calls,
    secrets,
    /** Answers calls before the defaults do (undefined: the default answer); null removes it. */
    answer(fn: AwsAnswer | null) {
      override = fn;
    },
    /** The calls of one operation, `service.Operation` (`events.PutEvents`). */
    callsOf(operation: string): AwsCall[] {
      return calls.filter((c) => `${c.service}.${c.operation}` === operation);
    },
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  };
}

export type FakeAws = Awaited<ReturnType<typeof startFakeAws>>;

function parseCall(request: IncomingMessage, text: string): AwsCall {
  const scope = SCOPE.exec(String(request.headers.authorization ?? ""));
  const service = scope?.[3] ?? "unsigned";
  const method = request.method ?? "GET";
  const url = new URL(request.url ?? "/", "http://aws");
  const path = decodeURIComponent(url.pathname);
  const target = request.headers["x-amz-target"];
  let operation: string;
  let body: Record<string, unknown>;
  if (typeof target === "string") {
    operation = target.split(".").at(-1) as string;
    body = JSON.parse(text || "{}") as Record<string, unknown>;
  } else if (service === "sts") {
    body = Object.fromEntries(new URLSearchParams(text));
    operation = String(body.Action);
  } else {
    operation = path.startsWith("/schedules/") ? (SCHEDULE_OPERATIONS[method] ?? method) : method;
    body = JSON.parse(text || "{}") as Record<string, unknown>;
  }
  const token = request.headers["x-amz-security-token"];
  return {
    service,
    operation,
    region: scope?.[2] ?? "",
    accessKeyId: scope?.[1] ?? "",
    sessionToken: typeof token === "string" ? token : undefined,
    method,
    path,
    query: Object.fromEntries(url.searchParams),
    body,
  };
}

function isError(reply: Record<string, unknown> | AwsError): reply is AwsError {
  return typeof reply.status === "number" && typeof reply.type === "string";
}

function respond(response: ServerResponse, call: AwsCall, reply: Record<string, unknown> | AwsError): void {
  const requestId = randomUUID();
  if (call.service === "sts") {
    const xml = isError(reply)
      ? `<ErrorResponse><Error><Type>Sender</Type><Code>${reply.type}</Code><Message>${reply.message ?? ""}</Message></Error><RequestId>${requestId}</RequestId></ErrorResponse>`
      : (reply.xml as string);
    response.writeHead(isError(reply) ? reply.status : 200, {
      "content-type": "text/xml",
      "x-amzn-requestid": requestId,
    });
    response.end(xml);
    return;
  }
  const json = call.service === "scheduler" ? "application/json" : "application/x-amz-json-1.1";
  if (isError(reply)) {
    response.writeHead(reply.status, {
      "content-type": json,
      "x-amzn-errortype": reply.type,
      "x-amzn-requestid": requestId,
    });
    response.end(
      JSON.stringify({ __type: reply.type, message: reply.message ?? "", Message: reply.message }),
    );
    return;
  }
  response.writeHead(200, { "content-type": json, "x-amzn-requestid": requestId });
  response.end(JSON.stringify(reply));
}

/** STS's answer: credentials that expire `DurationSeconds` from now, for the session named. */
function assumeRole(call: AwsCall): Record<string, unknown> {
  const role = String(call.body.RoleArn).split("/").at(-1);
  const session = String(call.body.RoleSessionName);
  const seconds = Number(call.body.DurationSeconds ?? 3600);
  const expiration = new Date(Date.now() + seconds * 1000).toISOString();
  const xml = `<AssumeRoleResponse xmlns="https://sts.amazonaws.com/doc/2011-06-15/">
  <AssumeRoleResult>
    <AssumedRoleUser>
      <Arn>arn:aws:sts::123456789012:assumed-role/${role}/${session}</Arn>
      <AssumedRoleId>AROAFAKEROLEID:${session}</AssumedRoleId>
    </AssumedRoleUser>
    <Credentials>
      <AccessKeyId>ASIAFAKEJOBSESSION</AccessKeyId>
      <SecretAccessKey>fake-job-secret-access-key</SecretAccessKey>
      <SessionToken>fake-job-session-token</SessionToken>
      <Expiration>${expiration}</Expiration>
    </Credentials>
    <PackedPolicySize>6</PackedPolicySize>
  </AssumeRoleResult>
  <ResponseMetadata><RequestId>${randomUUID()}</RequestId></ResponseMetadata>
</AssumeRoleResponse>`;
  return { xml };
}
