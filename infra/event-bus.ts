/**
 * The `kubler` bus and what sees every event on it (an archive, and a rule copying each event to
 * `/kubler/events`), then one rule per route of the event catalog (generated, never written twice).
 * Every target has a retry policy and an encrypted dead-letter queue.
 */
import { ArnFormat, Duration, RemovalPolicy, Stack } from "aws-cdk-lib";
import {
  EventBus,
  type IEventBus,
  type IRule,
  type IRuleTarget,
  Rule,
  type RuleTargetConfig,
} from "aws-cdk-lib/aws-events";
import {
  addToDeadLetterQueueResourcePolicy,
  bindBaseTargetConfig,
  LambdaFunction,
} from "aws-cdk-lib/aws-events-targets";
import { Effect, PolicyDocument, PolicyStatement, ServicePrincipal } from "aws-cdk-lib/aws-iam";
import type { IFunction } from "aws-cdk-lib/aws-lambda";
import { CfnResourcePolicy, LogGroup, type RetentionDays } from "aws-cdk-lib/aws-logs";
import type { IQueue } from "aws-cdk-lib/aws-sqs";
import { Construct } from "constructs";
import { BUS_NAME, type DetailType, type FunctionName, ROUTES, sourceOf } from "../shared/domain/catalog.js";
import { DeadLetterQueue } from "./dead-letter-queue.js";

export const EVENT_LOG_GROUP_NAME = "/kubler/events";

/**
 * How long EventBridge keeps trying to deliver (throttling, a function at its concurrency limit)
 * before dead-lettering: long enough to ride out an incident, short enough that the DLQ alarm tells
 * someone the same day. https://docs.aws.amazon.com/eventbridge/latest/userguide/eb-rule-retry-policy.html
 */
export const TARGET_RETRY = { retryAttempts: 50, maxEventAge: Duration.hours(6) } as const;

export interface Consumer {
  function: IFunction;
  deadLetterQueue: IQueue;
}

/**
 * events:PutEvents on the bus for these detail-types only, one statement per catalog source, so no
 * detail-type can be put with another's source (a "kubler.gitlab" fact is the webhook's alone).
 * EventBridge authorizes each entry by itself and refuses the others with
 * NotAuthorizedForSourceException / NotAuthorizedForDetailTypeException. `events:source` is a
 * multivalued key (ForAllValues, and Null so that a request without it cannot pass vacuously);
 * `events:detail-type` is single-valued.
 * https://docs.aws.amazon.com/service-authorization/latest/reference/list_amazoneventbridge.html#amazoneventbridge-policy-keys
 *
 * @example
 * role.addToPrincipalPolicy(...putEventsStatements(bus.eventBusArn, ["Environment Stop Requested"]));
 */
export function putEventsStatements(busArn: string, detailTypes: readonly DetailType[]): PolicyStatement[] {
  if (detailTypes.length === 0) throw new Error("PutEvents for no detail-type: grant nothing instead");
  const bySource = new Map<string, DetailType[]>();
  for (const type of new Set(detailTypes)) {
    bySource.set(sourceOf(type), [...(bySource.get(sourceOf(type)) ?? []), type]);
  }
  return [...bySource].map(
    ([source, types]) =>
      new PolicyStatement({
        effect: Effect.ALLOW,
        actions: ["events:PutEvents"],
        resources: [busArn],
        conditions: {
          "ForAllValues:StringEquals": { "events:source": [source] },
          Null: { "events:source": "false" },
          StringEquals: { "events:detail-type": types },
        },
      }),
  );
}

export class KublerBus extends Construct {
  readonly bus: EventBus;
  readonly eventLog: LogGroup;
  readonly eventLogDeadLetters: DeadLetterQueue;

  constructor(scope: Construct, id: string, props: { logRetentionDays: number }) {
    super(scope, id);
    this.bus = new EventBus(this, "Bus", { eventBusName: BUS_NAME });
    // Only this account can put events on the bus (it has no resource policy), so matching the
    // account matches every event.
    const everyEvent = { account: [Stack.of(this).account] };
    this.bus.archive("Archive", {
      archiveName: `${BUS_NAME}-archive`,
      description: "Every event on the kubler bus, for replay and audit",
      eventPattern: everyEvent,
      retention: Duration.days(365),
    });

    this.eventLog = new LogGroup(this, "EventLog", {
      logGroupName: EVENT_LOG_GROUP_NAME,
      retention: props.logRetentionDays as RetentionDays,
      removalPolicy: RemovalPolicy.RETAIN,
    });
    this.eventLogDeadLetters = new DeadLetterQueue(this, "EventLogDeadLetters", {
      purpose: `events that could not be written to ${EVENT_LOG_GROUP_NAME}`,
    });
    const copy = new Rule(this, "CopyToEventLog", {
      ruleName: `${BUS_NAME}-every-event-to-log`,
      eventBus: this.bus,
      description: `Every event on the bus, to ${EVENT_LOG_GROUP_NAME}`,
      eventPattern: everyEvent,
    });
    copy.addTarget(new EventLogTarget(this.eventLog, this.eventLogDeadLetters.queue));
  }
}

/** One rule per route of the catalog, each targeting its consumer. */
export class CatalogRoutes extends Construct {
  /** By route name (the catalog's). */
  readonly rules: Record<string, Rule> = {};

  constructor(
    scope: Construct,
    id: string,
    props: { bus: IEventBus; consumer: (name: FunctionName) => Consumer },
  ) {
    super(scope, id);
    for (const route of ROUTES) {
      const rule = new Rule(this, route.name, {
        ruleName: `${BUS_NAME}-${route.name}`,
        eventBus: props.bus,
        description: `${route.name}: to ${route.target}`,
      });
      // The catalog's pattern verbatim (incl. $or), which the typed EventPattern props cannot express.
      rule.addEventPattern(route.pattern as never);
      const consumer = props.consumer(route.target);
      rule.addTarget(
        new LambdaFunction(consumer.function, { ...TARGET_RETRY, deadLetterQueue: consumer.deadLetterQueue }),
      );
      this.rules[route.name] = rule;
    }
  }
}

/**
 * A log group as a rule target, with its resource policy as a plain `AWS::Logs::ResourcePolicy`
 * limited to this rule. (aws-events-targets' `CloudWatchLogGroup` writes the policy through a
 * custom-resource Lambda allowed on `*`: one more function, and a wildcard, for a static policy.)
 */
class EventLogTarget implements IRuleTarget {
  constructor(
    private readonly logGroup: LogGroup,
    private readonly deadLetterQueue: IQueue,
  ) {}

  bind(rule: IRule): RuleTargetConfig {
    const stack = Stack.of(this.logGroup);
    new CfnResourcePolicy(this.logGroup, "EventsMayWrite", {
      policyName: `${BUS_NAME}-events-to-log`,
      policyDocument: stack.toJsonString(
        new PolicyDocument({
          statements: [
            new PolicyStatement({
              effect: Effect.ALLOW,
              principals: [new ServicePrincipal("events.amazonaws.com")],
              actions: ["logs:CreateLogStream", "logs:PutLogEvents"],
              resources: [this.logGroup.logGroupArn],
              conditions: { ArnEquals: { "aws:SourceArn": rule.ruleArn } },
            }),
          ],
        }),
      ),
    });
    addToDeadLetterQueueResourcePolicy(rule, this.deadLetterQueue);
    return {
      ...bindBaseTargetConfig({ ...TARGET_RETRY, deadLetterQueue: this.deadLetterQueue }),
      arn: stack.formatArn({
        service: "logs",
        resource: "log-group",
        arnFormat: ArnFormat.COLON_RESOURCE_NAME,
        resourceName: this.logGroup.logGroupName,
      }),
      targetResource: this.logGroup,
    };
  }
}
