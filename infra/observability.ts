/**
 * What on-call watches: alarms on dead letters, function errors (thrown, or answered 500 by a
 * Function URL's function), Function URL throttles, reconcile not running, rejected webhooks and
 * denied credentials (metric filters on the audit lines), and the saved Logs Insights queries.
 */
import { Duration } from "aws-cdk-lib";
import {
  Alarm,
  ComparisonOperator,
  type IAlarmAction,
  type IMetric,
  TreatMissingData,
} from "aws-cdk-lib/aws-cloudwatch";
import { SnsAction } from "aws-cdk-lib/aws-cloudwatch-actions";
import type { IFunction } from "aws-cdk-lib/aws-lambda";
import {
  FilterPattern,
  type ILogGroup,
  MetricFilter,
  QueryDefinition,
  QueryString,
} from "aws-cdk-lib/aws-logs";
import { Topic } from "aws-cdk-lib/aws-sns";
import type { IQueue } from "aws-cdk-lib/aws-sqs";
import { Construct } from "constructs";
import { savedQueryDefinitions } from "../shared/domain/audit-queries.js";

/** Metrics the stack derives from audit lines (distinct from the EMF metrics functions emit). */
export const FILTER_METRICS = {
  namespace: "Kubler",
  rejectedWebhooks: "RejectedWebhooks",
  deniedCredentials: "DeniedCredentials",
  /** Per Function URL function: `InternalErrors-<name>`. */
  internalErrors: "InternalErrors",
} as const;

/**
 * Audit lines of a webhook refused: a bad credential (deny) or a delivery it could not take
 * (failure: unparseable, too large, or publishing failed). The line's fields: shared/domain/audit.ts.
 */
export const REJECTED_WEBHOOK_PATTERN =
  '{ $.audit IS TRUE && $.action = "webhook.receive" && ($.outcome = "deny" || $.outcome = "failure") }';
export const DENIED_CREDENTIALS_PATTERN =
  '{ $.audit IS TRUE && $.action = "credentials.*" && $.outcome = "deny" }';
/**
 * The line a Function URL's function writes for an error it answered 500 (`logErrorToStderr`): the
 * invocation itself succeeds, so Lambda's Errors metric never counts it.
 */
export const UNEXPECTED_ERROR_PATTERN = '{ $.level = "error" }';

/**
 * More than a few refusals in 5 minutes: a misconfigured hook (GitLab retries, then disables it) or
 * someone probing the public URL. A single one is often a manual test.
 */
export const REJECTED_WEBHOOKS_THRESHOLD = 5;

/**
 * Reconcile runs every minute; ten minutes without one invocation is its schedule disabled or
 * deleted, or Lambda refusing it (throttled to 0, a permission gone): a few missed minutes from a
 * Scheduler hiccup are not worth a page, and no error alarm fires when nothing runs.
 */
export const RECONCILE_SILENCE_MINUTES = 10;

export interface ObservabilityProps {
  functions: { name: string; function: IFunction; logGroup: ILogGroup }[];
  deadLetterQueues: { name: string; queue: IQueue }[];
  /**
   * Functions called through their Function URL: a throttled call is answered 429 and never retried
   * by Lambda (GitLab does not redeliver it), and the function never runs to audit it; an error their
   * app catches is answered 500 in an invocation Lambda counts as a success.
   */
  urlFunctions: { name: string; function: IFunction; logGroup: ILogGroup }[];
  /** Alarmed on when it is not invoked at all (its schedule is the every-minute safety net). */
  reconcile: IFunction;
  webhookLogGroup: ILogGroup;
  credentialsLogGroup: ILogGroup;
  alarmTopicArn: string | null;
}

export class Observability extends Construct {
  readonly alarms: Alarm[] = [];

  constructor(scope: Construct, id: string, props: ObservabilityProps) {
    super(scope, id);
    const action: IAlarmAction | null = props.alarmTopicArn
      ? new SnsAction(Topic.fromTopicArn(this, "AlarmTopic", props.alarmTopicArn))
      : null;
    const alarm = (
      alarmId: string,
      metric: IMetric,
      threshold: number,
      description: string,
      below = false,
    ) => {
      const created = new Alarm(this, alarmId, {
        alarmName: `kubler-${alarmId}`,
        alarmDescription: description,
        metric,
        threshold,
        evaluationPeriods: 1,
        // "At least" alarms count what went wrong: no data is nothing wrong. A "below" alarm counts
        // what must happen: no data is it not happening.
        comparisonOperator: below
          ? ComparisonOperator.LESS_THAN_THRESHOLD
          : ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
        treatMissingData: below ? TreatMissingData.BREACHING : TreatMissingData.NOT_BREACHING,
      });
      if (action) created.addAlarmAction(action);
      this.alarms.push(created);
    };

    const filtered = (filterId: string, logGroup: ILogGroup, pattern: string, metricName: string) =>
      new MetricFilter(this, filterId, {
        logGroup,
        filterPattern: FilterPattern.literal(pattern),
        metricNamespace: FILTER_METRICS.namespace,
        metricName,
        metricValue: "1",
        defaultValue: 0,
      }).metric({ period: Duration.minutes(5), statistic: "Sum" });

    for (const { name, queue } of props.deadLetterQueues) {
      alarm(
        `${name}-dead-letters`,
        queue.metricApproximateNumberOfMessagesVisible({ period: Duration.minutes(5), statistic: "Maximum" }),
        1,
        `Events for ${name} were dead-lettered: inspect the queue, fix the cause, redrive`,
      );
    }
    for (const { name, function: fn } of props.functions) {
      alarm(
        `${name}-errors`,
        fn.metricErrors({ period: Duration.minutes(5), statistic: "Sum" }),
        1,
        `kubler-${name} threw: see its log group for the error line`,
      );
    }

    for (const { name, function: fn, logGroup } of props.urlFunctions) {
      alarm(
        `${name}-internal-errors`,
        filtered(
          `InternalErrors-${name}`,
          logGroup,
          UNEXPECTED_ERROR_PATTERN,
          `${FILTER_METRICS.internalErrors}-${name}`,
        ),
        1,
        `kubler-${name} answered 500 for an error it did not expect (a bug, or a GitLab shape it cannot read): ` +
          'the request was lost (GitLab does not resend it; a CI job fails); see its { $.level = "error" } line',
      );
      alarm(
        `${name}-throttles`,
        fn.metricThrottles({ period: Duration.minutes(5), statistic: "Sum" }),
        1,
        `kubler-${name} refused calls with 429 (its reserved concurrency, or the account's, was exhausted): ` +
          "they were not retried; raise kubler:reservedConcurrency or find the flood in its Function URL's callers",
      );
    }

    alarm(
      "reconcile-not-running",
      props.reconcile.metricInvocations({
        period: Duration.minutes(RECONCILE_SILENCE_MINUTES),
        statistic: "Sum",
      }),
      1,
      `kubler-reconcile was not invoked for ${RECONCILE_SILENCE_MINUTES} minutes: check the kubler-reconcile schedule ` +
        "(group kubler-recurring) is ENABLED, the function's reserved concurrency is not 0, and its dead-letter queue",
      true,
    );

    alarm(
      "rejected-webhooks",
      filtered(
        "RejectedWebhooks",
        props.webhookLogGroup,
        REJECTED_WEBHOOK_PATTERN,
        FILTER_METRICS.rejectedWebhooks,
      ),
      REJECTED_WEBHOOKS_THRESHOLD,
      "GitLab webhooks refused (bad credential, bad body, or publish failure): run the kubler/rejected-webhooks query",
    );
    alarm(
      "denied-credentials",
      filtered(
        "DeniedCredentials",
        props.credentialsLogGroup,
        DENIED_CREDENTIALS_PATTERN,
        FILTER_METRICS.deniedCredentials,
      ),
      1,
      "A CI job was refused credentials: run the kubler/denied-credentials query",
    );

    const logGroups = props.functions.map((f) => f.logGroup);
    for (const query of savedQueryDefinitions()) {
      new QueryDefinition(this, `Query-${query.name.replace(/\W/g, "-")}`, {
        queryDefinitionName: query.name,
        queryString: new RawQueryString(query.queryString),
        logGroups,
      });
    }
  }
}

/** A query kept as written (the L2 `QueryString` builder re-assembles clauses from parts). */
class RawQueryString extends QueryString {
  constructor(private readonly text: string) {
    super();
  }
  override toString(): string {
    return this.text;
  }
}
