/**
 * All of Kubler in one stack: the eight functions of the catalog (specs in `function-specs.ts`), the
 * bus and its routes, the schedules, the dedupe table, the secrets' wiring and the alarms. Each
 * function's role holds exactly the statements its grants name, on this stack's resources.
 */
import { CfnOutput, Fn, Stack, type StackProps, Token, Validations } from "aws-cdk-lib";
import { Effect, PolicyStatement } from "aws-cdk-lib/aws-iam";
import { FunctionUrlAuthType } from "aws-cdk-lib/aws-lambda";
import { type ISecret, Secret } from "aws-cdk-lib/aws-secretsmanager";
import type { Construct } from "constructs";
import { ENV } from "../shared/config.js";
import { FUNCTIONS, type FunctionName, PRODUCERS, ROUTES } from "../shared/domain/catalog.js";
import { assertStackEnvironment, type KublerConfig } from "./config.js";
import { DeadLetterQueue } from "./dead-letter-queue.js";
import { DedupeTable } from "./dedupe-table.js";
import { CatalogRoutes, KublerBus, putEventsStatements } from "./event-bus.js";
import { type DedupeAccess, FUNCTION_SPECS, type Grant, type Setting } from "./function-specs.js";
import { entryOf, KublerFunction } from "./kubler-function.js";
import { Observability } from "./observability.js";
import { EXPIRY_GROUP_NAME, ExpirySchedules, RecurringSchedules } from "./scheduling.js";

/**
 * job-credentials' role has a fixed name (per region: IAM is global), so that the trust policies of
 * the roles jobs assume can name it before the stack exists (docs/aws/job-role-trust-policy.md).
 */
export const JOB_CREDENTIALS_ROLE_PREFIX = "kubler-job-credentials-";

/** Where job-credentials finds the policy file copied into its bundle (Lambda's task root). */
export const BUNDLED_POLICY_FILE = "/var/task/credentials-policy.yaml";

/** Functions the bus or a schedule invokes asynchronously: each has a dead-letter queue. */
const ASYNC_FUNCTIONS = new Set<FunctionName>([
  ...ROUTES.map((route) => route.target),
  "reconcile",
  "cleanup-environments",
]);

export interface KublerStackProps extends StackProps {
  config: KublerConfig;
  /** Where each function's source is; default `functions/<name>/handler.ts`. */
  entry?: (name: FunctionName) => string;
}

export class KublerStack extends Stack {
  readonly functions = {} as Record<FunctionName, KublerFunction>;
  readonly deadLetterQueues = {} as Partial<Record<FunctionName, DeadLetterQueue>>;
  readonly bus: KublerBus;
  readonly routes: CatalogRoutes;
  readonly expirySchedules: ExpirySchedules;
  readonly dedupe: DedupeTable;
  readonly webhookCredentials: Secret;

  constructor(scope: Construct, id: string, props: KublerStackProps) {
    super(scope, id, props);
    const { config } = props;
    // An environment-agnostic stack's region and account are known only at deploy time.
    const known = (value: string) => (Token.isUnresolved(value) ? null : value);
    assertStackEnvironment(config, { region: known(this.region), account: known(this.account) });
    this.templateOptions.description =
      "Kubler: GitLab to Kubernetes control plane (https://github.com/kubler)";

    for (const name of FUNCTIONS) {
      if (ASYNC_FUNCTIONS.has(name)) {
        this.deadLetterQueues[name] = new DeadLetterQueue(this, `DeadLetters-${name}`, {
          purpose: `failed deliveries to ${name}`,
        });
      }
    }
    const dlq = (name: FunctionName) => {
      const queue = this.deadLetterQueues[name]?.queue;
      if (!queue) throw new Error(`${name} is invoked asynchronously but has no dead-letter queue`);
      return queue;
    };

    // The webhook's accepted tokens: generated here, read by the function at start-up; paste the
    // token into GitLab (README "Deploy to AWS"). A JSON object, so a signing key can be added.
    this.webhookCredentials = new Secret(this, "WebhookCredentials", {
      description: `Kubler gitlab-webhook credentials: ${ENV.WEBHOOK_SECRET} and ${ENV.WEBHOOK_SIGNING_KEY}, comma-separated lists`,
      generateSecretString: {
        secretStringTemplate: JSON.stringify({ [ENV.WEBHOOK_SIGNING_KEY]: "" }),
        generateStringKey: ENV.WEBHOOK_SECRET,
        excludePunctuation: true,
        passwordLength: 48,
      },
    });
    Validations.of(this.webhookCredentials).acknowledge({
      id: "AwsSolutions-SMG4",
      reason:
        "Rotating a webhook token needs the new value in GitLab too; it is rotated by hand with an overlap " +
        "(the function accepts a comma-separated list of tokens), not by a rotation Lambda.",
    });
    const importedSecret = (secretId: string, arn: string): ISecret =>
      Secret.fromSecretCompleteArn(this, secretId, arn);
    const secrets = {
      gitlabToken: importedSecret("GitlabToken", config.gitlabTokenSecretArn),
      kubeconfig: importedSecret("Kubeconfig", config.kubeconfigSecretArn),
      registryAuth: config.registryAuthSecretArn
        ? importedSecret("RegistryAuth", config.registryAuthSecretArn)
        : null,
    };

    this.dedupe = new DedupeTable(this, "Dedupe");
    this.bus = new KublerBus(this, "Events", { logRetentionDays: config.logRetentionDays });
    const bus = this.bus.bus;
    this.expirySchedules = new ExpirySchedules(this, "Expiry", { bus });

    // null: not configured, so the function is not given the variable at all.
    const settings: Record<Setting, [string, string] | null> = {
      busName: [ENV.EVENT_BUS_NAME, bus.eventBusName],
      busArn: [ENV.EVENT_BUS_ARN, bus.eventBusArn],
      dedupeTable: [ENV.DEDUPE_TABLE, this.dedupe.table.tableName],
      scheduleGroup: [ENV.SCHEDULE_GROUP, EXPIRY_GROUP_NAME],
      schedulerRoleArn: [ENV.SCHEDULER_ROLE_ARN, this.expirySchedules.stopRole.roleArn],
      scheduleDeadLetters: [
        ENV.SCHEDULE_DEAD_LETTER_QUEUE_ARN,
        this.expirySchedules.deadLetterQueue.queue.queueArn,
      ],
      gitlabUrl: [ENV.GITLAB_URL, config.gitlabUrl],
      gitlabTokenSecret: [ENV.GITLAB_API_TOKEN_SECRET, config.gitlabTokenSecretArn],
      kubeconfigSecret: [ENV.KUBECONFIG_SECRET, config.kubeconfigSecretArn],
      registryAuthSecret: secrets.registryAuth
        ? [ENV.REGISTRY_AUTH_SECRET, secrets.registryAuth.secretArn]
        : null,
      webhookCredentialsSecret: [ENV.WEBHOOK_CREDENTIALS_SECRET, this.webhookCredentials.secretArn],
      policyFile: [ENV.POLICY_FILE, BUNDLED_POLICY_FILE],
      defaultTtl: [ENV.DEFAULT_TTL, config.defaultTtl],
      // Empty when not configured: any repository kubler.yaml names.
      buildImages: [ENV.BUILD_IMAGES, config.buildImages ?? ""],
      podSecurity: [ENV.POD_SECURITY, config.podSecurity],
    };
    const table = this.dedupe.table.tableArn;
    const grants: Record<Grant, PolicyStatement[] | ((name: FunctionName) => PolicyStatement[])> = {
      publish: (name) => putEventsStatements(bus.eventBusArn, PRODUCERS[name]),
      dedupe: (name) => [dedupeStatement(table, name)],
      webhookSecret: [allow(["secretsmanager:GetSecretValue"], [this.webhookCredentials.secretArn])],
      gitlabToken: [allow(["secretsmanager:GetSecretValue"], [secrets.gitlabToken.secretArn])],
      kubeconfig: [allow(["secretsmanager:GetSecretValue"], [secrets.kubeconfig.secretArn])],
      registryAuthSecret: secrets.registryAuth
        ? [allow(["secretsmanager:GetSecretValue"], [secrets.registryAuth.secretArn])]
        : [],
      assumeJobRoles: inSizedGroups(config.jobRoleArns, ASSUME_STATEMENT_CHARS).map((arns) =>
        allow(["sts:AssumeRole", "sts:TagSession", "sts:SetSourceIdentity"], arns),
      ),
      manageSchedules: [
        allow(
          ["scheduler:CreateSchedule", "scheduler:UpdateSchedule", "scheduler:DeleteSchedule"],
          [this.expirySchedules.expirySchedulesArn],
        ),
        new PolicyStatement({
          effect: Effect.ALLOW,
          actions: ["iam:PassRole"],
          resources: [this.expirySchedules.stopRole.roleArn],
          conditions: { StringEquals: { "iam:PassedToService": "scheduler.amazonaws.com" } },
        }),
      ],
      deleteSchedules: [allow(["scheduler:DeleteSchedule"], [this.expirySchedules.expirySchedulesArn])],
    };

    for (const name of FUNCTIONS) {
      const spec = FUNCTION_SPECS[name];
      const fn = new KublerFunction(this, `Fn-${name}`, {
        name,
        spec,
        entry: (props.entry ?? entryOf)(name),
        environment: Object.fromEntries(
          spec.settings.flatMap((setting) => (settings[setting] ? [settings[setting]] : [])),
        ),
        logRetentionDays: config.logRetentionDays,
        reservedConcurrency: config.reservedConcurrency[name],
        deadLetterQueue: this.deadLetterQueues[name]?.queue,
        // The policy is part of the function's code: a policy change is a deploy, reviewed like one.
        commandHooks: spec.settings.includes("policyFile") ? copyPolicyFile(config.policyFile) : undefined,
        roleName: name === "job-credentials" ? `${JOB_CREDENTIALS_ROLE_PREFIX}${this.region}` : undefined,
      });
      for (const grant of spec.grants) {
        const statements = grants[grant];
        for (const statement of typeof statements === "function" ? statements(name) : statements)
          fn.role.addToPrincipalPolicy(statement);
      }
      if (spec.grants.includes("manageSchedules") || spec.grants.includes("deleteSchedules")) {
        Validations.of(fn.role).acknowledge({
          id: `AwsSolutions-IAM5[Resource::arn:<AWS::Partition>:scheduler:${nagValue(this.region, "AWS::Region")}:${nagValue(this.account, "AWS::AccountId")}:schedule/${EXPIRY_GROUP_NAME}/*]`,
          reason:
            "Expiry schedules are created at run time, one per environment, so their names are not known at " +
            "deploy time; the wildcard is limited to the expiry group, which holds nothing else.",
        });
      }
      this.functions[name] = fn;
      if (spec.url) {
        const url = fn.function.addFunctionUrl({ authType: FunctionUrlAuthType.NONE });
        new CfnOutput(this, `${pascal(name)}Url`, { value: url.url, description: `${name} Function URL` });
      }
    }

    this.routes = new CatalogRoutes(this, "Routes", {
      bus,
      consumer: (name) => ({ function: this.functions[name].function, deadLetterQueue: dlq(name) }),
    });
    const scheduled = (name: FunctionName) => ({
      function: this.functions[name].function,
      deadLetterQueue: dlq(name),
    });
    new RecurringSchedules(this, "Recurring", {
      reconcile: scheduled("reconcile"),
      sweep: scheduled("cleanup-environments"),
    });

    // Named as their alarms are, `kubler-<name>-dead-letters`.
    const deadLetterQueues = [
      ...Object.entries(this.deadLetterQueues).map(([name, queue]) => ({
        name,
        queue: queue.queue,
        holds: `failed deliveries to kubler-${name}`,
      })),
      {
        name: "event-log",
        queue: this.bus.eventLogDeadLetters.queue,
        holds: "events that could not be copied to /kubler/events",
      },
      {
        name: "expiry-schedules",
        queue: this.expirySchedules.deadLetterQueue.queue,
        holds: "stops the expiry schedules could not put on the bus",
      },
    ];
    new Observability(this, "Observability", {
      functions: FUNCTIONS.map((name) => ({
        name,
        function: this.functions[name].function,
        logGroup: this.functions[name].logGroup,
      })),
      deadLetterQueues,
      urlFunctions: FUNCTIONS.filter((name) => FUNCTION_SPECS[name].url).map((name) => ({
        name,
        function: this.functions[name].function,
        logGroup: this.functions[name].logGroup,
      })),
      reconcile: this.functions.reconcile.function,
      webhookLogGroup: this.functions["gitlab-webhook"].logGroup,
      credentialsLogGroup: this.functions["job-credentials"].logGroup,
      alarmTopicArn: config.alarmTopicArn,
    });

    new CfnOutput(this, "WebhookCredentialsSecretArn", {
      value: this.webhookCredentials.secretArn,
      description: `The webhook token (${ENV.WEBHOOK_SECRET}) to paste into GitLab`,
    });
    new CfnOutput(this, "EventBusName", { value: bus.eventBusName });
    new CfnOutput(this, "DedupeTableName", {
      value: this.dedupe.table.tableName,
      description: `The dedupe table (${ENV.DEDUPE_TABLE}): where \`kubler stop --aws\` records a stop`,
    });
    // What docs/operations.md reads a queue's URL from, by the name of the alarm that fired.
    for (const { name, queue, holds } of deadLetterQueues) {
      new CfnOutput(this, `${pascal(name)}DeadLetterQueueUrl`, {
        value: queue.queueUrl,
        description: `Dead-letter queue of alarm kubler-${name}-dead-letters: ${holds}`,
      });
    }
    new CfnOutput(this, "ClusterRoleArns", {
      value: Fn.join(
        ",",
        FUNCTIONS.filter((name) => FUNCTION_SPECS[name].grants.includes("kubeconfig")).map(
          (name) => this.functions[name].role.roleArn,
        ),
      ),
      description:
        "The roles that call the cluster: on EKS with IAM authentication, give each an access entry",
    });
    new CfnOutput(this, "JobCredentialsRoleArn", {
      value: this.functions["job-credentials"].role.roleArn,
      description: "The principal the trust policy of every role jobs assume must allow",
    });
  }
}

/** How cdk-nag writes a value in a finding's id: a pseudo parameter as `<AWS::Region>`. */
function nagValue(value: string, pseudo: string): string {
  return Token.isUnresolved(value) ? `<${pseudo}>` : value;
}

/**
 * The most characters of role ARNs one sts:AssumeRole statement holds. CDK moves what exceeds a
 * role's inline policy (IAM: 10,240 characters) into managed policies of at most 6,000, statement
 * by statement, never splitting one: a policy naming a few hundred roles in one statement made a
 * managed policy IAM refuses (6,144 at most), failing the deploy long after synth.
 */
const ASSUME_STATEMENT_CHARS = 5_500;

/** `values` in order, in groups whose quoted, comma-separated text stays within `maxChars`. */
function inSizedGroups(values: readonly string[], maxChars: number): string[][] {
  const groups: string[][] = [];
  let chars = Number.POSITIVE_INFINITY;
  for (const value of values) {
    const cost = value.length + 3;
    if (chars + cost > maxChars) {
      groups.push([]);
      chars = 0;
    }
    groups.at(-1)?.push(value);
    chars += cost;
  }
  return groups;
}

function allow(actions: string[], resources: string[]): PolicyStatement {
  return new PolicyStatement({ effect: Effect.ALLOW, actions, resources });
}

/**
 * The function's actions on the dedupe table, for its own keys only. `dynamodb:LeadingKeys` is
 * multivalued, hence ForAllValues, which a request without the key would pass vacuously: Null rules
 * that out. https://docs.aws.amazon.com/amazondynamodb/latest/developerguide/specifying-conditions.html
 */
function dedupeStatement(tableArn: string, name: FunctionName): PolicyStatement {
  const access = dedupeAccessOf(name);
  const claimed = (other: FunctionName) => {
    const keys = FUNCTION_SPECS[other].dedupe?.keys;
    return other === name || keys === undefined || keys === "unprefixed" ? [] : keys;
  };
  const others = FUNCTIONS.flatMap(claimed);
  if (access.keys === "unprefixed" && others.length === 0) {
    throw new Error(`${name}: "unprefixed" dedupe keys, but no other function's keys to keep it from`);
  }
  const condition =
    access.keys === "unprefixed"
      ? { "ForAllValues:StringNotLike": { "dynamodb:LeadingKeys": others } }
      : { "ForAllValues:StringLike": { "dynamodb:LeadingKeys": [...access.keys] } };
  return new PolicyStatement({
    effect: Effect.ALLOW,
    actions: access.actions.map((action) => `dynamodb:${action}`),
    resources: [tableArn],
    conditions: { ...condition, Null: { "dynamodb:LeadingKeys": "false" } },
  });
}

function dedupeAccessOf(name: FunctionName): DedupeAccess {
  const access = FUNCTION_SPECS[name].dedupe;
  if (!access || access.actions.length === 0 || access.keys.length === 0) {
    throw new Error(`${name} has the dedupe grant but no dedupe actions and keys in its spec`);
  }
  return access;
}

function copyPolicyFile(policyFile: string) {
  return {
    beforeBundling: () => [],
    beforeInstall: () => [],
    afterBundling: (_input: string, output: string) => [
      `cp ${shellQuote(policyFile)} ${shellQuote(`${output}/credentials-policy.yaml`)}`,
    ],
  };
}

function shellQuote(value: string): string {
  return `'${value.replaceAll("'", `'\\''`)}'`;
}

function pascal(name: string): string {
  return name.replace(/(^|-)(\w)/g, (_, __, c: string) => c.toUpperCase());
}
