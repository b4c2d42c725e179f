import { Match, type Template } from "aws-cdk-lib/assertions";
import { beforeAll, describe, expect, it, vi } from "vitest";
import { DEDUPE_KEY } from "../../infra/dedupe-table.js";
import { EVENT_LOG_GROUP_NAME } from "../../infra/event-bus.js";
import { FUNCTION_SPECS } from "../../infra/function-specs.js";
import { BUNDLED_POLICY_FILE, JOB_CREDENTIALS_ROLE_PREFIX } from "../../infra/kubler-stack.js";
import {
  DENIED_CREDENTIALS_PATTERN,
  RECONCILE_SILENCE_MINUTES,
  REJECTED_WEBHOOK_PATTERN,
  UNEXPECTED_ERROR_PATTERN,
} from "../../infra/observability.js";
import { EXPIRY_GROUP_NAME, SWEEP_INPUT } from "../../infra/scheduling.js";
import { DEDUPE_PARTITION_KEY, DEDUPE_TTL_ATTRIBUTE } from "../../shared/adapters/dynamodb-dedupe-store.js";
import { logErrorToStderr } from "../../shared/adapters/stdout-audit-log.js";
import { ENV } from "../../shared/config.js";
import { savedQueryDefinitions } from "../../shared/domain/audit-queries.js";
import {
  BUS_NAME,
  DETAIL_TYPES,
  FUNCTIONS,
  type FunctionName,
  GITLAB_SOURCE,
  KUBLER_SOURCE,
  ROUTES,
  sourceOf,
} from "../../shared/domain/catalog.js";
import { environmentStopKey, stepKey } from "../../shared/domain/plan-steps.js";
import {
  buildStack,
  GITLAB_TOKEN_SECRET_ARN,
  KUBECONFIG_SECRET_ARN,
  REGISTRY_AUTH_SECRET_ARN,
  templateOf,
  testConfig,
} from "./stack-fixture.js";

type Resource = { Type: string; Properties: Record<string, unknown> };
// biome-ignore lint/suspicious/noExplicitAny: template JSON, read field by field in assertions
type Cfn = any;

let template: Template;
let resources: Record<string, Resource>;
const ofType = (type: string) => Object.entries(resources).filter(([, r]) => r.Type === type);
const idOf = (type: string, where: (r: Resource) => boolean = () => true) => {
  const found = ofType(type).filter(([, r]) => where(r));
  expect(found, `one ${type}`).toHaveLength(1);
  return (found[0] as [string, Resource])[0];
};
const functionOf = (name: FunctionName) =>
  ofType("AWS::Lambda::Function").find(([, r]) => r.Properties.FunctionName === `kubler-${name}`) as [
    string,
    Resource,
  ];

beforeAll(() => {
  template = templateOf(buildStack({ config: testConfig({ logRetentionDays: 90 }) }));
  resources = template.toJSON().Resources;
});

describe("KublerStack resources", () => {
  it("has one of each piece, and one function, log group, alarm set per catalog function", () => {
    const asyncFunctions = new Set([...ROUTES.map((r) => r.target), "reconcile", "cleanup-environments"]);
    const counts: Record<string, number> = {
      "AWS::Lambda::Function": FUNCTIONS.length,
      "AWS::Lambda::Url": 2,
      "AWS::Events::EventBus": 1,
      "AWS::Events::Archive": 1,
      "AWS::Events::Rule": ROUTES.length + 1,
      // The functions', the event log's and the expiry schedules' dead-letter queues.
      "AWS::SQS::Queue": asyncFunctions.size + 2,
      "AWS::Scheduler::ScheduleGroup": 2,
      "AWS::Scheduler::Schedule": 2,
      "AWS::DynamoDB::Table": 1,
      "AWS::Logs::LogGroup": FUNCTIONS.length + 1,
      // Audit-line counts, and the two Function URLs' unexpected errors.
      "AWS::Logs::MetricFilter": 2 + 2,
      "AWS::Logs::QueryDefinition": savedQueryDefinitions().length,
      // Dead letters, errors, the two Function URLs' throttles and unexpected errors, audit-line
      // counts, and reconcile not running.
      "AWS::CloudWatch::Alarm": asyncFunctions.size + 2 + FUNCTIONS.length + 2 + 2 + 2 + 1,
      "AWS::SecretsManager::Secret": 1,
    };
    for (const [type, count] of Object.entries(counts)) template.resourceCountIs(type, count);
    // No custom-resource Lambda sneaks in (e.g. a log group policy writer).
    template.resourcePropertiesCountIs(
      "AWS::Lambda::Function",
      { Runtime: Match.anyValue() },
      FUNCTIONS.length,
    );
  });

  it("builds every function on Node.js 22, ARM64, with source maps and its own log group", () => {
    for (const name of FUNCTIONS) {
      const [, fn] = functionOf(name);
      expect(fn.Properties).toMatchObject({
        Runtime: "nodejs22.x",
        Architectures: ["arm64"],
        Handler: "index.handler",
        MemorySize: FUNCTION_SPECS[name].memoryMb,
        Environment: { Variables: expect.objectContaining({ NODE_OPTIONS: "--enable-source-maps" }) },
      });
      const logGroup = idOf(
        "AWS::Logs::LogGroup",
        (r) => r.Properties.LogGroupName === `/aws/lambda/kubler-${name}`,
      );
      expect(fn.Properties.LoggingConfig).toEqual({ LogGroup: { Ref: logGroup } });
    }
  });

  it("keeps every log group for the configured retention", () => {
    for (const [, group] of ofType("AWS::Logs::LogGroup")) expect(group.Properties.RetentionInDays).toBe(90);
  });

  it("gives each function its settings by the config's variable names, and no secret value", () => {
    const names = new Set<string>([...Object.values(ENV), "NODE_OPTIONS"]);
    const secretValues = [ENV.WEBHOOK_SECRET, ENV.WEBHOOK_SIGNING_KEY, ENV.GITLAB_API_TOKEN, ENV.KUBECONFIG];
    for (const name of FUNCTIONS) {
      const variables = functionOf(name)[1].Properties.Environment as { Variables: Record<string, unknown> };
      const own = Object.keys(variables.Variables).filter(
        (v) => !/^(PARAMETERS_SECRETS_EXTENSION_|SECRETS_MANAGER_|SSM_PARAMETER_STORE_)/.test(v),
      );
      for (const variable of own) expect(names, `${name}: ${variable}`).toContain(variable);
      for (const variable of secretValues) expect(variables.Variables, name).not.toHaveProperty(variable);
    }
    const vars = (name: FunctionName) =>
      (functionOf(name)[1].Properties.Environment as { Variables: Record<string, unknown> }).Variables;
    expect(vars("job-credentials")[ENV.POLICY_FILE]).toBe(BUNDLED_POLICY_FILE);
    expect(vars("deploy-environment")[ENV.KUBECONFIG_SECRET]).toBe(KUBECONFIG_SECRET_ARN);
    expect(vars("deploy-environment")[ENV.GITLAB_API_TOKEN_SECRET]).toBe(GITLAB_TOKEN_SECRET_ARN);
    expect(vars("deploy-environment")[ENV.SCHEDULE_GROUP]).toBe(EXPIRY_GROUP_NAME);
    expect(vars("gitlab-webhook")[ENV.WEBHOOK_CREDENTIALS_SECRET]).toEqual({
      Ref: idOf("AWS::SecretsManager::Secret"),
    });
    expect(vars("deploy-environment")[ENV.DEFAULT_TTL]).toBe("72h");
    // kubler:podSecurity: baseline unless set; deploy-environment alone writes environment namespaces.
    expect(vars("deploy-environment")[ENV.POD_SECURITY]).toBe("baseline");
    const restricted = templateOf(buildStack({ config: testConfig({ podSecurity: "restricted" }) })).toJSON()
      .Resources as Record<string, Resource>;
    const deployVariables = Object.values(restricted).find(
      (r) => r.Type === "AWS::Lambda::Function" && r.Properties.FunctionName === "kubler-deploy-environment",
    )?.Properties.Environment as { Variables: Record<string, unknown> };
    expect(deployVariables.Variables[ENV.POD_SECURITY]).toBe("restricted");
    // Not configured: present and empty (any repository), on build-image alone.
    expect(vars("build-image")[ENV.BUILD_IMAGES]).toBe("");
    const limited = templateOf(
      buildStack({ config: testConfig({ buildImages: "registry.example.com/{project_path}" }) }),
    ).toJSON().Resources as Record<string, Resource>;
    const buildImageVariables = Object.values(limited).find(
      (r) => r.Type === "AWS::Lambda::Function" && r.Properties.FunctionName === "kubler-build-image",
    )?.Properties.Environment as { Variables: Record<string, unknown> };
    expect(buildImageVariables.Variables[ENV.BUILD_IMAGES]).toBe("registry.example.com/{project_path}");
    for (const name of FUNCTIONS.filter((n) => n !== "build-image"))
      expect(vars(name), name).not.toHaveProperty(ENV.BUILD_IMAGES);
  });

  it("adds no layers: every function's code is its bundle", () => {
    for (const name of FUNCTIONS) expect(functionOf(name)[1].Properties.Layers, name).toBeUndefined();
  });

  it("exposes only gitlab-webhook and job-credentials through Function URLs, auth NONE", () => {
    const urls = ofType("AWS::Lambda::Url").map(([, r]) => r.Properties);
    expect(urls.map((u) => u.AuthType)).toEqual(["NONE", "NONE"]);
    const targets = urls.map((u) => (u.TargetFunctionArn as { "Fn::GetAtt": string[] })["Fn::GetAtt"][0]);
    expect(targets.sort()).toEqual(
      [functionOf("gitlab-webhook")[0], functionOf("job-credentials")[0]].sort(),
    );
  });
});

describe("the bus", () => {
  it("is named kubler, archived, and every event is copied to /kubler/events", () => {
    const bus = idOf("AWS::Events::EventBus", (r) => r.Properties.Name === BUS_NAME);
    template.hasResourceProperties("AWS::Events::Archive", {
      SourceArn: { "Fn::GetAtt": [bus, "Arn"] },
      EventPattern: { account: ["123456789012"] },
    });
    const logGroup = idOf("AWS::Logs::LogGroup", (r) => r.Properties.LogGroupName === EVENT_LOG_GROUP_NAME);
    const copy = ofType("AWS::Events::Rule").find(
      ([, r]) => r.Properties.Name === `${BUS_NAME}-every-event-to-log`,
    );
    expect(copy?.[1].Properties.EventPattern).toEqual({ account: ["123456789012"] });
    const policy = ofType("AWS::Logs::ResourcePolicy")[0]?.[1].Properties.PolicyDocument;
    expect(JSON.stringify(policy)).toContain(logGroup);
    expect(JSON.stringify(policy)).toContain("aws:SourceArn");
  });

  it("has one rule per catalog route with the catalog's pattern exactly, targeting the route's function", () => {
    for (const route of ROUTES) {
      const rule = ofType("AWS::Events::Rule").find(
        ([, r]) => r.Properties.Name === `${BUS_NAME}-${route.name}`,
      );
      expect(rule, route.name).toBeDefined();
      const properties = (rule as [string, Resource])[1].Properties;
      expect(properties.EventPattern).toEqual(route.pattern);
      const targets = properties.Targets as { Arn: unknown }[];
      expect(targets).toHaveLength(1);
      expect(targets[0]?.Arn).toEqual({ "Fn::GetAtt": [functionOf(route.target)[0], "Arn"] });
    }
  });

  it("gives every rule target a retry policy and an encrypted SQS dead-letter queue", () => {
    const encrypted = new Set(
      ofType("AWS::SQS::Queue")
        .filter(([, q]) => q.Properties.SqsManagedSseEnabled === true)
        .map(([id]) => id),
    );
    expect(encrypted.size).toBe(ofType("AWS::SQS::Queue").length);
    for (const [id, rule] of ofType("AWS::Events::Rule")) {
      for (const target of rule.Properties.Targets as Record<string, Cfn>[]) {
        expect(target.RetryPolicy, id).toEqual({
          MaximumRetryAttempts: 50,
          MaximumEventAgeInSeconds: 21_600,
        });
        expect(encrypted, id).toContain(target.DeadLetterConfig.Arn["Fn::GetAtt"][0]);
      }
    }
  });

  it("dead-letters asynchronous invocations that failed in the function too", () => {
    for (const name of [...new Set([...ROUTES.map((r) => r.target), "reconcile" as const])]) {
      const config = functionOf(name)[1].Properties.DeadLetterConfig as {
        TargetArn: { "Fn::GetAtt": string[] };
      };
      expect(ofType("AWS::SQS::Queue").map(([id]) => id)).toContain(config.TargetArn["Fn::GetAtt"][0]);
    }
  });
});

describe("schedules", () => {
  it("runs reconcile every minute and the sweep hourly, each with retries and a dead-letter queue", () => {
    const schedules = Object.fromEntries(
      ofType("AWS::Scheduler::Schedule").map(([, s]) => [s.Properties.Name, s]),
    );
    const reconcile = schedules["kubler-reconcile"]?.Properties as Record<string, Cfn>;
    const sweep = schedules["kubler-sweep"]?.Properties as Record<string, Cfn>;
    expect(reconcile.ScheduleExpression).toBe("rate(1 minute)");
    expect(reconcile.Target.Arn).toEqual({ "Fn::GetAtt": [functionOf("reconcile")[0], "Arn"] });
    expect(sweep.ScheduleExpression).toBe("rate(1 hour)");
    expect(sweep.Target.Arn).toEqual({ "Fn::GetAtt": [functionOf("cleanup-environments")[0], "Arn"] });
    expect(JSON.parse(sweep.Target.Input)).toEqual(SWEEP_INPUT);
    for (const schedule of [reconcile, sweep]) {
      expect(schedule.Target.RetryPolicy.MaximumRetryAttempts).toBeGreaterThan(0);
      expect(schedule.Target.DeadLetterConfig.Arn["Fn::GetAtt"][0]).toMatch(/^DeadLetters/);
      // Not in the expiry group, where deploy and cleanup may delete schedules.
      expect(JSON.stringify(schedule.GroupName)).not.toContain("Expiry");
    }
  });

  it("drops a reconcile run Lambda could not start or finish within its minute: the next run supersedes it", () => {
    // Scheduler hands each run to Lambda's asynchronous queue at once: its own retry policy never
    // sees a throttled or failed run. Kept 6 hours and retried twice, as the bus consumers are, the
    // runs held while reconcile was throttled (reserved concurrency 0, the runbook's case) all start
    // together once it is not, each sweeping the whole cluster.
    const configs = ofType("AWS::Lambda::EventInvokeConfig").filter(
      ([, c]) =>
        JSON.stringify(c.Properties.FunctionName) === JSON.stringify({ Ref: functionOf("reconcile")[0] }),
    );
    expect(configs).toHaveLength(1);
    expect(configs[0]?.[1].Properties).toMatchObject({
      MaximumRetryAttempts: 0,
      MaximumEventAgeInSeconds: 60,
    });
    // The bus consumers keep theirs: an event is delivered once, and must not be dropped.
    const deploy = ofType("AWS::Lambda::EventInvokeConfig").find(
      ([, c]) =>
        JSON.stringify(c.Properties.FunctionName) ===
        JSON.stringify({ Ref: functionOf("deploy-environment")[0] }),
    );
    expect(deploy?.[1].Properties).toMatchObject({
      MaximumRetryAttempts: 2,
      MaximumEventAgeInSeconds: 21_600,
    });
  });

  it("lets Scheduler's stop role put only Environment Stop Requested from kubler on the bus", () => {
    const group = idOf("AWS::Scheduler::ScheduleGroup", (r) => r.Properties.Name === EXPIRY_GROUP_NAME);
    const role = idOf("AWS::IAM::Role", (r) => JSON.stringify(r.Properties).includes(`"${group}"`));
    const trust = (resources[role] as Resource).Properties.AssumeRolePolicyDocument as Cfn;
    expect(trust.Statement).toEqual([
      {
        Action: "sts:AssumeRole",
        Effect: "Allow",
        Principal: { Service: "scheduler.amazonaws.com" },
        Condition: {
          StringEquals: {
            "aws:SourceAccount": "123456789012",
            "aws:SourceArn": { "Fn::GetAtt": [group, "Arn"] },
          },
        },
      },
    ]);
    expect(statementsOf(role)).toEqual([
      `events:PutEvents on bus if ${putCondition("kubler", ["Environment Stop Requested"])}`,
      "sqs:SendMessage on dlq ExpiryDeadLetters",
    ]);
  });

  it("gives the expiry schedules an encrypted dead-letter queue, named to the functions that create them", () => {
    const queues = ofType("AWS::SQS::Queue").filter(([id]) => id.startsWith("ExpiryDeadLetters"));
    expect(queues).toHaveLength(1);
    const [queue] = queues[0] as [string, Resource];
    expect(resources[queue]?.Properties).toMatchObject({
      SqsManagedSseEnabled: true,
      MessageRetentionPeriod: 14 * 24 * 3600,
    });
    const vars = (name: FunctionName) =>
      (functionOf(name)[1].Properties.Environment as { Variables: Record<string, unknown> }).Variables;
    for (const name of ["deploy-environment", "cleanup-environments"] as const) {
      expect(vars(name)[ENV.SCHEDULE_DEAD_LETTER_QUEUE_ARN], name).toEqual({ "Fn::GetAtt": [queue, "Arn"] });
    }
    template.hasResourceProperties("AWS::CloudWatch::Alarm", {
      MetricName: "ApproximateNumberOfMessagesVisible",
      Dimensions: [{ Name: "QueueName", Value: { "Fn::GetAtt": [queue, "QueueName"] } }],
    });
  });
});

describe("the dedupe table", () => {
  it("is on demand, with the adapter's key and TTL attribute, and point-in-time recovery", () => {
    expect(DEDUPE_KEY).toEqual({ partitionKey: DEDUPE_PARTITION_KEY, ttlAttribute: DEDUPE_TTL_ATTRIBUTE });
    template.hasResourceProperties("AWS::DynamoDB::Table", {
      BillingMode: "PAY_PER_REQUEST",
      KeySchema: [{ AttributeName: DEDUPE_PARTITION_KEY, KeyType: "HASH" }],
      TimeToLiveSpecification: { AttributeName: DEDUPE_TTL_ATTRIBUTE, Enabled: true },
      PointInTimeRecoverySpecification: { PointInTimeRecoveryEnabled: true },
      SSESpecification: { SSEEnabled: true },
    });
  });

  it("outlives a replacement or the stack's deletion: it holds records plan-steps keeps for good", () => {
    // The merge request records (plan/mr/…, no TTL) refuse a merged or closed MR's later pipelines;
    // the stop records (plan/stop/…) refuse deploys asked for before a stop. Deleted with the old
    // table, they cannot be copied into the new one.
    template.hasResource("AWS::DynamoDB::Table", { DeletionPolicy: "Retain", UpdateReplacePolicy: "Retain" });
  });
});

/** The condition the stack puts on PutEvents (infra/event-bus.ts putEventsStatements), as JSON. */
function putCondition(source: string, types: string[]): string {
  return JSON.stringify({
    "ForAllValues:StringEquals": { "events:source": [source] },
    Null: { "events:source": "false" },
    StringEquals: { "events:detail-type": types },
  });
}

/** A policy's statements as readable lines, with this stack's resources named. */
function statementsOf(roleId: string): string[] {
  const symbols: Record<string, string> = {
    [idOf("AWS::Events::EventBus")]: "bus",
    [idOf("AWS::DynamoDB::Table")]: "table",
    [idOf("AWS::SecretsManager::Secret")]: "webhook-secret",
    [idOf("AWS::IAM::Role", (r) => JSON.stringify(r.Properties).includes("Environment Stop Requested"))]:
      "stop-role",
  };
  for (const [id, group] of ofType("AWS::Logs::LogGroup")) {
    symbols[id] = `log-group ${group.Properties.LogGroupName}`;
  }
  for (const [id] of ofType("AWS::SQS::Queue"))
    symbols[id] = `dlq ${id.replace(/^DeadLetters|Queue\w+$/g, "")}`;
  for (const name of FUNCTIONS) symbols[functionOf(name)[0]] = `function ${name}`;
  const name = (resource: unknown): string => {
    const text = JSON.stringify(resource);
    const ref = /"(?:Ref|Fn::GetAtt)":\s*(?:"(\w+)"|\["(\w+)")/.exec(text);
    if (typeof resource === "string") return resource;
    if (text.includes(`:scheduler:eu-west-1:123456789012:schedule/${EXPIRY_GROUP_NAME}/*`)) {
      return "expiry-schedules";
    }
    const id = ref?.[1] ?? ref?.[2];
    return (id && symbols[id]) ?? text;
  };
  return ofType("AWS::IAM::Policy")
    .filter(([, p]) => JSON.stringify(p.Properties.Roles) === JSON.stringify([{ Ref: roleId }]))
    .flatMap(([, p]) => (p.Properties.PolicyDocument as { Statement: Record<string, unknown>[] }).Statement)
    .map((s) => {
      expect(s.Effect).toBe("Allow");
      const actions = [s.Action].flat().sort().join(",");
      const on = [s.Resource].flat().map(name).sort().join(", ");
      return `${actions} on ${on}${s.Condition ? ` if ${JSON.stringify(s.Condition)}` : ""}`;
    })
    .sort();
}

describe("IAM", () => {
  const own = (name: FunctionName) =>
    `logs:CreateLogStream,logs:PutLogEvents on log-group /aws/lambda/kubler-${name}`;
  const dlq = (name: FunctionName) => `sqs:SendMessage on dlq ${name.replaceAll("-", "")}`;
  const publish = (source: string, types: string[]) =>
    `events:PutEvents on bus if ${putCondition(source, types)}`;
  const dedupe = (actions: string[], keys: Record<string, Record<string, string[]>>) =>
    `${actions.map((a) => `dynamodb:${a}`).join(",")} on table if ${JSON.stringify({
      ...keys,
      Null: { "dynamodb:LeadingKeys": "false" },
    })}`;
  const FACTS = ["Push", "Tag Push", "Merge Request", "Pipeline", "Job", "Deployment", "Release"];
  const read = (what: string) => `secretsmanager:GetSecretValue on ${what}`;
  const kubeconfig = read(KUBECONFIG_SECRET_ARN);
  const gitlabToken = read(GITLAB_TOKEN_SECRET_ARN);
  const expected: Record<FunctionName, string[]> = {
    "gitlab-webhook": [
      own("gitlab-webhook"),
      publish("kubler.gitlab", FACTS),
      dedupe(["DeleteItem", "PutItem", "UpdateItem"], {
        "ForAllValues:StringNotLike": { "dynamodb:LeadingKeys": ["jti:*", "plan/*", "plan/stop/*"] },
      }),
      read("webhook-secret"),
    ],
    "job-credentials": [
      own("job-credentials"),
      "sts:AssumeRole,sts:SetSourceIdentity,sts:TagSession on arn:aws:iam::123456789012:role/app-prod, arn:aws:iam::123456789012:role/kubler-review",
      dedupe(["DeleteItem", "PutItem"], { "ForAllValues:StringLike": { "dynamodb:LeadingKeys": ["jti:*"] } }),
      publish("kubler", ["Credentials Issued", "Credentials Denied"]),
      kubeconfig,
    ],
    "plan-steps": [
      own("plan-steps"),
      dlq("plan-steps"),
      publish("kubler", ["Build Requested", "Deploy Requested", "Environment Stop Requested"]),
      dedupe(["DeleteItem", "GetItem", "PutItem", "UpdateItem"], {
        "ForAllValues:StringLike": { "dynamodb:LeadingKeys": ["plan/*"] },
      }),
      gitlabToken,
    ],
    "build-image": [
      own("build-image"),
      dlq("build-image"),
      kubeconfig,
      publish("kubler", ["Build Finished"]),
      gitlabToken,
    ],
    "deploy-environment": [
      own("deploy-environment"),
      dlq("deploy-environment"),
      kubeconfig,
      publish("kubler", ["Deploy Finished"]),
      dedupe(["GetItem"], { "ForAllValues:StringLike": { "dynamodb:LeadingKeys": ["plan/stop/*"] } }),
      "scheduler:CreateSchedule,scheduler:DeleteSchedule,scheduler:UpdateSchedule on expiry-schedules",
      'iam:PassRole on stop-role if {"StringEquals":{"iam:PassedToService":"scheduler.amazonaws.com"}}',
      gitlabToken,
    ],
    "cleanup-environments": [
      own("cleanup-environments"),
      dlq("cleanup-environments"),
      kubeconfig,
      publish("kubler", ["Environment Deleted"]),
      "scheduler:DeleteSchedule on expiry-schedules",
    ],
    "report-status": [own("report-status"), dlq("report-status"), gitlabToken],
    reconcile: [
      own("reconcile"),
      dlq("reconcile"),
      kubeconfig,
      publish("kubler", ["Build Finished", "Deploy Finished", "Environment Stop Requested"]),
    ],
  };

  it.each(FUNCTIONS.map((name) => [name]))("%s may call exactly what it needs", (name) => {
    const role = (functionOf(name)[1].Properties.Role as { "Fn::GetAtt": string[] })[
      "Fn::GetAtt"
    ][0] as string;
    expect(statementsOf(role)).toEqual([...expected[name]].sort());
    // No managed policy (AWSLambdaBasicExecutionRole allows every log group).
    expect(resources[role]?.Properties.ManagedPolicyArns).toBeUndefined();
  });

  it("outputs the roles of exactly the functions that call the cluster, for EKS access entries", () => {
    const output = template.toJSON().Outputs.ClusterRoleArns.Value as { "Fn::Join": [string, Cfn[]] };
    const [separator, arns] = output["Fn::Join"];
    expect(separator).toBe(",");
    const roleOf = (name: FunctionName) => (functionOf(name)[1].Properties.Role as Cfn)["Fn::GetAtt"][0];
    const callers = FUNCTIONS.filter((name) => expected[name].includes(kubeconfig));
    expect(callers).toEqual([
      "job-credentials",
      "build-image",
      "deploy-environment",
      "cleanup-environments",
      "reconcile",
    ]);
    expect(arns.map((arn) => arn["Fn::GetAtt"][0])).toEqual(callers.map(roleOf));
  });

  it("names job-credentials' role, so trust policies can name it before the stack exists", () => {
    const role = (functionOf("job-credentials")[1].Properties.Role as Cfn)["Fn::GetAtt"][0] as string;
    expect(resources[role]?.Properties.RoleName).toBe(`${JOB_CREDENTIALS_ROLE_PREFIX}eu-west-1`);
  });

  it("has no wildcard action anywhere, and a wildcard resource only for the expiry schedules", () => {
    for (const [id, policy] of ofType("AWS::IAM::Policy")) {
      for (const s of (policy.Properties.PolicyDocument as { Statement: Record<string, unknown>[] })
        .Statement) {
        for (const action of [s.Action].flat()) expect(action, id).not.toMatch(/\*/);
        for (const resource of [s.Resource].flat()) {
          const text = JSON.stringify(resource);
          if (text.includes("*")) expect(text, id).toContain(`schedule/${EXPIRY_GROUP_NAME}/*`);
        }
      }
    }
  });
});

/**
 * Whether one of a role's statements allows `action` on a request with these condition keys (a key
 * absent from `context` is absent from the request). Only the condition operators this stack uses;
 * any other fails the test rather than being guessed at.
 */
function allows(roleId: string, action: string, context: Record<string, string | undefined>): boolean {
  const glob = (pattern: string) =>
    new RegExp(`^${pattern.replace(/[.+?^${}()|[\]\\]/g, "\\$&").replaceAll("*", ".*")}$`);
  const holds = (operator: string, key: string, expected: unknown): boolean => {
    const values = [expected].flat() as string[];
    const value = context[key];
    switch (operator) {
      case "StringEquals":
        return value !== undefined && values.includes(value);
      case "Null":
        return (value === undefined) === (values[0] === "true");
      // One value per request here; a missing key makes ForAllValues true, as in IAM.
      case "ForAllValues:StringEquals":
        return value === undefined || values.includes(value);
      case "ForAllValues:StringLike":
        return value === undefined || values.some((v) => glob(v).test(value));
      case "ForAllValues:StringNotLike":
        return value === undefined || !values.some((v) => glob(v).test(value));
      default:
        throw new Error(`no evaluation written for ${operator}`);
    }
  };
  return ofType("AWS::IAM::Policy")
    .filter(([, p]) => JSON.stringify(p.Properties.Roles) === JSON.stringify([{ Ref: roleId }]))
    .flatMap(([, p]) => (p.Properties.PolicyDocument as { Statement: Cfn[] }).Statement)
    .some(
      (statement) =>
        [statement.Action].flat().includes(action) &&
        Object.entries((statement.Condition ?? {}) as Record<string, Record<string, unknown>>).every(
          ([operator, keys]) => Object.entries(keys).every(([key, values]) => holds(operator, key, values)),
        ),
    );
}

describe("what each role may put on the bus and touch in the dedupe table", () => {
  const roleOf = (name: FunctionName) => (functionOf(name)[1].Properties.Role as Cfn)["Fn::GetAtt"][0];
  const stopRole = () =>
    idOf("AWS::IAM::Role", (r) => JSON.stringify(r.Properties).includes("Environment Stop Requested"));
  const put = (role: string, source: string | undefined, detailType: string) =>
    allows(role, "events:PutEvents", { "events:source": source, "events:detail-type": detailType });

  /** DESIGN §3, "produced by", written out here rather than read from the catalog. */
  const produces: Record<FunctionName, string[]> = {
    "gitlab-webhook": ["Push", "Tag Push", "Merge Request", "Pipeline", "Job", "Deployment", "Release"],
    "job-credentials": ["Credentials Issued", "Credentials Denied"],
    "plan-steps": ["Build Requested", "Deploy Requested", "Environment Stop Requested"],
    "build-image": ["Build Finished"],
    "deploy-environment": ["Deploy Finished"],
    "cleanup-environments": ["Environment Deleted"],
    "report-status": [],
    reconcile: ["Build Finished", "Deploy Finished", "Environment Stop Requested"],
  };

  it.each(FUNCTIONS.map((name) => [name]))(
    "%s may put what it produces, with its catalog source, only",
    (name) => {
      for (const type of DETAIL_TYPES) {
        for (const source of [KUBLER_SOURCE, GITLAB_SOURCE]) {
          const expected = produces[name].includes(type) && source === sourceOf(type);
          expect(put(roleOf(name), source, type), `${name}: ${source} ${type}`).toBe(expected);
        }
        expect(put(roleOf(name), undefined, type), `${name}: ${type} without a source`).toBe(false);
      }
    },
  );

  it("keeps the internet-facing webhook from stopping environments and steps from forging GitLab facts", () => {
    expect(put(roleOf("gitlab-webhook"), KUBLER_SOURCE, "Environment Stop Requested")).toBe(false);
    expect(put(roleOf("gitlab-webhook"), GITLAB_SOURCE, "Environment Stop Requested")).toBe(false);
    for (const name of FUNCTIONS.filter((n) => n !== "gitlab-webhook")) {
      expect(put(roleOf(name), GITLAB_SOURCE, "Push"), name).toBe(false);
    }
    expect(put(stopRole(), KUBLER_SOURCE, "Environment Stop Requested")).toBe(true);
    expect(put(stopRole(), KUBLER_SOURCE, "Deploy Requested")).toBe(false);
  });

  const gitlab = { instance: "https://gitlab.example.com", projectId: 15, projectPath: "group/app" };
  /** One key of each kind, as each store writes it. */
  const keys = {
    // shared/services/receive-webhook.ts: a signed webhook-id, or the instance and Idempotency-Key.
    webhookId: "webhook-id 01J9ZK3Q8V",
    idempotencyKey: "https://gitlab.example.com 4f3c2b1a-0d9e-4b8a-9c7d-6e5f4a3b2c1d",
    // shared/services/mint-job-credentials.ts: the ID token replay cache.
    jti: "jti:https://gitlab.example.com:8c1f2e3d",
    // shared/services/plan-steps.ts and shared/domain/plan-steps.ts.
    fact: "plan/fact/Merge Request/4f3c2b1a",
    step: stepKey("Deploy Requested", gitlab, "review/feature-x", "a".repeat(40)),
    stop: environmentStopKey(gitlab, "review/feature-x"),
  };
  const users: Record<keyof typeof keys, FunctionName[]> = {
    webhookId: ["gitlab-webhook"],
    idempotencyKey: ["gitlab-webhook"],
    jti: ["job-credentials"],
    fact: ["plan-steps"],
    step: ["plan-steps"],
    // Written by plan-steps, read by deploy-environment to refuse a deploy asked for before the stop.
    stop: ["plan-steps", "deploy-environment"],
  };
  const actions = {
    "gitlab-webhook": ["PutItem", "UpdateItem", "DeleteItem"],
    "job-credentials": ["PutItem", "DeleteItem"],
    "plan-steps": ["PutItem", "UpdateItem", "DeleteItem", "GetItem"],
    "deploy-environment": ["GetItem"],
  } as Partial<Record<FunctionName, string[]>>;

  it.each(FUNCTIONS.map((name) => [name]))("%s may touch its own dedupe keys and no other's", (name) => {
    for (const [kind, key] of Object.entries(keys) as [keyof typeof keys, string][]) {
      for (const action of ["PutItem", "UpdateItem", "DeleteItem", "GetItem"]) {
        const expected = users[kind].includes(name) && (actions[name] ?? []).includes(action);
        const context = { "dynamodb:LeadingKeys": key };
        expect(allows(roleOf(name), `dynamodb:${action}`, context), `${name} ${action} ${key}`).toBe(
          expected,
        );
      }
    }
    for (const action of ["PutItem", "DeleteItem", "GetItem"]) {
      expect(allows(roleOf(name), `dynamodb:${action}`, {}), `${name} ${action} without a key`).toBe(false);
    }
  });
});

describe("observability", () => {
  const alarmNames = () => ofType("AWS::CloudWatch::Alarm").map(([, a]) => a.Properties.AlarmName as string);

  it("alarms on every dead-letter queue and every function's errors", () => {
    for (const [id] of ofType("AWS::SQS::Queue")) {
      template.hasResourceProperties("AWS::CloudWatch::Alarm", {
        MetricName: "ApproximateNumberOfMessagesVisible",
        Dimensions: [{ Name: "QueueName", Value: { "Fn::GetAtt": [id, "QueueName"] } }],
        Threshold: 1,
      });
    }
    for (const name of FUNCTIONS) {
      expect(alarmNames()).toContain(`kubler-${name}-errors`);
      template.hasResourceProperties("AWS::CloudWatch::Alarm", {
        MetricName: "Errors",
        Dimensions: [{ Name: "FunctionName", Value: { Ref: functionOf(name)[0] } }],
      });
    }
  });

  it("alarms when a Function URL's function is throttled: the caller gets a 429 and no line is audited", () => {
    // GitLab does not retry a delivery answered 429 (and disables a hook that keeps failing); a CI
    // job is refused its credentials. The function never runs, so neither its errors nor an audit
    // metric sees it.
    const urlFunctions = FUNCTIONS.filter((name) => FUNCTION_SPECS[name].url);
    expect(urlFunctions).toEqual(["gitlab-webhook", "job-credentials"]);
    for (const name of urlFunctions) {
      const alarms = ofType("AWS::CloudWatch::Alarm").filter(
        ([, a]) => a.Properties.AlarmName === `kubler-${name}-throttles`,
      );
      expect(alarms, name).toHaveLength(1);
      expect(alarms[0]?.[1].Properties).toMatchObject({
        Namespace: "AWS/Lambda",
        MetricName: "Throttles",
        Dimensions: [{ Name: "FunctionName", Value: { Ref: functionOf(name)[0] } }],
        Statistic: "Sum",
        Threshold: 1,
        AlarmDescription: expect.stringContaining("kubler:reservedConcurrency"),
      });
    }
  });

  it("alarms on an unexpected error a Function URL's function answered 500: Lambda's Errors metric counts only a throw", () => {
    // The two HTTP apps catch every error and answer it (a bug: a bare 500 and a `level: "error"`
    // line on stderr), so the invocation succeeds and kubler-<name>-errors never sees it; GitLab does
    // not resend a delivery answered 500, and the CI job fails.
    const urlFunctions = FUNCTIONS.filter((name) => FUNCTION_SPECS[name].url);
    const filters = ofType("AWS::Logs::MetricFilter").map(([, f]) => f.Properties as Cfn);
    for (const name of urlFunctions) {
      const logs = idOf(
        "AWS::Logs::LogGroup",
        (r) => r.Properties.LogGroupName === `/aws/lambda/kubler-${name}`,
      );
      const filter = filters.find(
        (f) => f.LogGroupName?.Ref === logs && f.FilterPattern === UNEXPECTED_ERROR_PATTERN,
      );
      expect(filter, `${name}: a metric filter on its unexpected-error lines`).toBeDefined();
      const { MetricNamespace, MetricName } = filter.MetricTransformations[0];
      const alarms = ofType("AWS::CloudWatch::Alarm").filter(
        ([, a]) => a.Properties.AlarmName === `kubler-${name}-internal-errors`,
      );
      expect(alarms, name).toHaveLength(1);
      expect(alarms[0]?.[1].Properties).toMatchObject({
        Namespace: MetricNamespace,
        MetricName,
        Statistic: "Sum",
        Threshold: 1,
        ComparisonOperator: "GreaterThanOrEqualToThreshold",
      });
      // The pattern matches what the function writes: one JSON line with level "error".
      const written: string[] = [];
      const spy = vi.spyOn(process.stderr, "write").mockImplementation((chunk) => {
        written.push(String(chunk));
        return true;
      });
      try {
        logErrorToStderr(name)(new TypeError("boom"));
      } finally {
        spy.mockRestore();
      }
      expect(written).toHaveLength(1);
      expect(JSON.parse(written[0] as string)).toMatchObject({ level: "error", function: name });
    }
    expect(UNEXPECTED_ERROR_PATTERN).toBe('{ $.level = "error" }');
  });

  it("counts rejected webhooks and denied credentials from audit lines, and alarms on them", () => {
    const filters = ofType("AWS::Logs::MetricFilter").map(([, f]) => f.Properties);
    const webhookLogs = idOf(
      "AWS::Logs::LogGroup",
      (r) => r.Properties.LogGroupName === "/aws/lambda/kubler-gitlab-webhook",
    );
    const credentialLogs = idOf(
      "AWS::Logs::LogGroup",
      (r) => r.Properties.LogGroupName === "/aws/lambda/kubler-job-credentials",
    );
    expect(filters).toContainEqual(
      expect.objectContaining({
        LogGroupName: { Ref: webhookLogs },
        FilterPattern: REJECTED_WEBHOOK_PATTERN,
      }),
    );
    expect(filters).toContainEqual(
      expect.objectContaining({
        LogGroupName: { Ref: credentialLogs },
        FilterPattern: DENIED_CREDENTIALS_PATTERN,
      }),
    );
    expect(alarmNames()).toEqual(
      expect.arrayContaining(["kubler-rejected-webhooks", "kubler-denied-credentials"]),
    );
  });

  it("saves the audit queries over every function's log group", () => {
    const queries = ofType("AWS::Logs::QueryDefinition").map(([, q]) => q.Properties);
    expect(queries.map((q) => [q.Name, q.QueryString])).toEqual(
      savedQueryDefinitions().map((q) => [q.name, q.queryString]),
    );
    for (const query of queries) expect(query.LogGroupNames).toHaveLength(FUNCTIONS.length);
  });

  it("alarms when reconcile is not invoked for 10 minutes, its missing data counting as not running", () => {
    expect(RECONCILE_SILENCE_MINUTES).toBe(10);
    const alarms = ofType("AWS::CloudWatch::Alarm").filter(
      ([, a]) => a.Properties.AlarmName === "kubler-reconcile-not-running",
    );
    expect(alarms).toHaveLength(1);
    expect(alarms[0]?.[1].Properties).toMatchObject({
      Namespace: "AWS/Lambda",
      MetricName: "Invocations",
      Dimensions: [{ Name: "FunctionName", Value: { Ref: functionOf("reconcile")[0] } }],
      Statistic: "Sum",
      Period: 600,
      EvaluationPeriods: 1,
      Threshold: 1,
      ComparisonOperator: "LessThanThreshold",
      // A disabled schedule sends no data point at all: that must fire, not read as OK.
      TreatMissingData: "breaching",
      AlarmDescription: expect.stringContaining("kubler-reconcile"),
    });
    // Every other alarm counts failures: nothing reported is nothing wrong.
    for (const [, alarm] of ofType("AWS::CloudWatch::Alarm")) {
      if (alarm.Properties.AlarmName === "kubler-reconcile-not-running") continue;
      expect(alarm.Properties, String(alarm.Properties.AlarmName)).toMatchObject({
        ComparisonOperator: "GreaterThanOrEqualToThreshold",
        TreatMissingData: "notBreaching",
      });
    }
    const topic = "arn:aws:sns:eu-west-1:123456789012:oncall";
    const withTopic = templateOf(buildStack({ config: testConfig({ alarmTopicArn: topic }) }));
    withTopic.hasResourceProperties("AWS::CloudWatch::Alarm", {
      AlarmName: "kubler-reconcile-not-running",
      AlarmActions: [topic],
    });
  });

  it("outputs each dead-letter queue's URL, named after the alarm on it", () => {
    const outputs = template.toJSON().Outputs as Record<string, { Value: Cfn; Description: string }>;
    const dlqOutputs = Object.keys(outputs).filter((key) => key.endsWith("DeadLetterQueueUrl"));
    expect(dlqOutputs.sort()).toEqual(
      [
        "PlanStepsDeadLetterQueueUrl",
        "BuildImageDeadLetterQueueUrl",
        "DeployEnvironmentDeadLetterQueueUrl",
        "CleanupEnvironmentsDeadLetterQueueUrl",
        "ReportStatusDeadLetterQueueUrl",
        "ReconcileDeadLetterQueueUrl",
        "EventLogDeadLetterQueueUrl",
        "ExpirySchedulesDeadLetterQueueUrl",
      ].sort(),
    );
    expect(dlqOutputs).toHaveLength(ofType("AWS::SQS::Queue").length);
    // The runbook goes from the alarm that fired to the output: kubler-<name>-dead-letters → <Name>DeadLetterQueueUrl.
    for (const [, alarm] of ofType("AWS::CloudWatch::Alarm")) {
      if (alarm.Properties.MetricName !== "ApproximateNumberOfMessagesVisible") continue;
      const alarmName = String(alarm.Properties.AlarmName);
      const name = alarmName.replace(/^kubler-(.+)-dead-letters$/, "$1");
      const key = `${name.replace(/(^|-)(\w)/g, (_, __, c: string) => c.toUpperCase())}DeadLetterQueueUrl`;
      const queueId = (alarm.Properties.Dimensions as Cfn)[0].Value["Fn::GetAtt"][0];
      // A queue's Ref is its URL.
      expect(outputs[key]?.Value, alarmName).toEqual({ Ref: queueId });
      expect(outputs[key]?.Description, key).toContain(alarmName);
    }
  });

  it("outputs the dedupe table's and the bus's names, which `kubler stop --aws` takes", () => {
    const outputs = template.toJSON().Outputs as Record<string, { Value: Cfn }>;
    // A table's Ref is its name: the one plan-steps and deploy-environment get as KUBLER_DEDUPE_TABLE.
    expect(outputs.DedupeTableName?.Value).toEqual({ Ref: idOf("AWS::DynamoDB::Table") });
    const [, planSteps] = functionOf("plan-steps");
    const variables = (planSteps.Properties.Environment as Cfn).Variables;
    expect(variables[ENV.DEDUPE_TABLE]).toEqual(outputs.DedupeTableName?.Value);
    expect(outputs.EventBusName?.Value).toEqual({ Ref: idOf("AWS::Events::EventBus") });
  });

  it("notifies the configured SNS topic", () => {
    const topic = "arn:aws:sns:eu-west-1:123456789012:oncall";
    const withTopic = templateOf(buildStack({ config: testConfig({ alarmTopicArn: topic }) }));
    for (const alarm of Object.values(withTopic.findResources("AWS::CloudWatch::Alarm"))) {
      expect(alarm.Properties.AlarmActions).toEqual([topic]);
    }
  });
});

describe("the registry pull secret (kubler:registryAuthSecretArn)", () => {
  const withKey = () =>
    templateOf(
      buildStack({ config: testConfig({ registryAuthSecretArn: REGISTRY_AUTH_SECRET_ARN }) }),
    ).toJSON().Resources as Record<string, Resource>;
  const functionIn = (all: Record<string, Resource>, name: FunctionName) =>
    Object.entries(all).find(
      ([, r]) => r.Type === "AWS::Lambda::Function" && r.Properties.FunctionName === `kubler-${name}`,
    ) as [string, Resource];
  const variablesIn = (all: Record<string, Resource>, name: FunctionName) =>
    (functionIn(all, name)[1].Properties.Environment as { Variables: Record<string, unknown> }).Variables;
  /** Every statement of every policy, with the roles it is attached to. */
  const statementsIn = (all: Record<string, Resource>) =>
    Object.values(all)
      .filter((r) => r.Type === "AWS::IAM::Policy")
      .flatMap((p) =>
        (p.Properties.PolicyDocument as { Statement: Cfn[] }).Statement.map((statement) => ({
          roles: p.Properties.Roles,
          statement,
        })),
      );

  it("gives deploy-environment the secret's ARN (never its value) and GetSecretValue on exactly that ARN", () => {
    const all = withKey();
    expect(variablesIn(all, "deploy-environment")[ENV.REGISTRY_AUTH_SECRET]).toBe(REGISTRY_AUTH_SECRET_ARN);
    for (const name of FUNCTIONS.filter((n) => n !== "deploy-environment")) {
      expect(variablesIn(all, name), name).not.toHaveProperty(ENV.REGISTRY_AUTH_SECRET);
    }
    const granting = statementsIn(all).filter(({ statement }) =>
      JSON.stringify(statement).includes("kubler/registry-auth"),
    );
    const deployRole = (functionIn(all, "deploy-environment")[1].Properties.Role as Cfn)["Fn::GetAtt"][0];
    expect(granting).toEqual([
      {
        roles: [{ Ref: deployRole }],
        statement: {
          Effect: "Allow",
          Action: "secretsmanager:GetSecretValue",
          Resource: REGISTRY_AUTH_SECRET_ARN,
        },
      },
    ]);
  });

  it("adds no variable and no statement when the key is not set", () => {
    for (const name of FUNCTIONS) {
      expect(variablesIn(resources, name), name).not.toHaveProperty(ENV.REGISTRY_AUTH_SECRET);
    }
    const secretReads = statementsIn(resources).filter(({ statement }) =>
      [statement.Action].flat().includes("secretsmanager:GetSecretValue"),
    );
    // The webhook credentials, the kubeconfig and the GitLab token: nothing else.
    expect(new Set(secretReads.map(({ statement }) => JSON.stringify(statement.Resource)))).toEqual(
      new Set([
        JSON.stringify({ Ref: idOf("AWS::SecretsManager::Secret") }),
        JSON.stringify(KUBECONFIG_SECRET_ARN),
        JSON.stringify(GITLAB_TOKEN_SECRET_ARN),
      ]),
    );
  });
});
