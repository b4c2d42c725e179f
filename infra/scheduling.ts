/**
 * EventBridge Scheduler: the group holding each environment's one-time expiry schedule, the role
 * those schedules use (it may put only `Environment Stop Requested` on the bus) and their
 * dead-letter queue, and the recurring schedules of `reconcile` and the expiry sweep, kept in a group
 * of their own so that the functions allowed to manage expiry schedules can never touch them.
 */
import { Duration, RemovalPolicy, Stack } from "aws-cdk-lib";
import type { IEventBus } from "aws-cdk-lib/aws-events";
import { Effect, type IRole, PolicyStatement, Role, ServicePrincipal } from "aws-cdk-lib/aws-iam";
import type { IFunction } from "aws-cdk-lib/aws-lambda";
import { Schedule, ScheduleExpression, ScheduleGroup, ScheduleTargetInput } from "aws-cdk-lib/aws-scheduler";
import { LambdaInvoke, type ScheduleTargetBaseProps } from "aws-cdk-lib/aws-scheduler-targets";
import type { IQueue } from "aws-cdk-lib/aws-sqs";
import { Construct } from "constructs";
import type { DetailType } from "../shared/domain/catalog.js";
import { DeadLetterQueue } from "./dead-letter-queue.js";
import { putEventsStatements } from "./event-bus.js";

export const EXPIRY_GROUP_NAME = "kubler-environments";
export const RECURRING_GROUP_NAME = "kubler-recurring";
export const STOP_DETAIL_TYPE = "Environment Stop Requested" satisfies DetailType;

/** The sweep's input, as functions/cleanup-environments/handler.ts reads it. */
export const SWEEP_INPUT = { action: "sweep" } as const;

export interface ScheduledFunction {
  function: IFunction;
  deadLetterQueue: IQueue;
}

/** The group of per-environment expiry schedules and the role they publish with. */
export class ExpirySchedules extends Construct {
  readonly expiryGroup: ScheduleGroup;
  /** Scheduler assumes it to publish an environment's stop at its expiry. */
  readonly stopRole: Role;
  /** `arn:…:schedule/kubler-environments/*`: what the deploy and cleanup functions may manage. */
  readonly expirySchedulesArn: string;
  /**
   * Where a stop goes that Scheduler could not put on the bus within its retry policy. The schedules
   * are created at run time (shared/adapters/eventbridge-scheduler.ts), each naming this queue.
   */
  readonly deadLetterQueue: DeadLetterQueue;

  constructor(scope: Construct, id: string, props: { bus: IEventBus }) {
    super(scope, id);
    const stack = Stack.of(this);
    this.expiryGroup = new ScheduleGroup(this, "ExpiryGroup", {
      scheduleGroupName: EXPIRY_GROUP_NAME,
      removalPolicy: RemovalPolicy.DESTROY,
    });
    this.expirySchedulesArn = stack.formatArn({
      service: "scheduler",
      resource: "schedule",
      resourceName: `${EXPIRY_GROUP_NAME}/*`,
    });

    this.stopRole = new Role(this, "StopRole", {
      description: `Assumed by EventBridge Scheduler to put "${STOP_DETAIL_TYPE}" on the kubler bus`,
      // Only for schedules of this group (confused-deputy protection): Scheduler's source ARN is the
      // schedule group's. https://docs.aws.amazon.com/scheduler/latest/UserGuide/cross-service-confused-deputy-prevention.html
      assumedBy: new ServicePrincipal("scheduler.amazonaws.com").withConditions({
        StringEquals: {
          "aws:SourceAccount": stack.account,
          "aws:SourceArn": this.expiryGroup.scheduleGroupArn,
        },
      }),
    });
    for (const statement of putEventsStatements(props.bus.eventBusArn, [STOP_DETAIL_TYPE])) {
      this.stopRole.addToPrincipalPolicy(statement);
    }
    this.deadLetterQueue = new DeadLetterQueue(this, "DeadLetters", {
      purpose: "stops the expiry schedules could not put on the bus",
    });
    // Scheduler dead-letters with the schedule's execution role, not through a queue policy:
    // https://docs.aws.amazon.com/scheduler/latest/UserGuide/configuring-schedule-dlq.html
    this.stopRole.addToPrincipalPolicy(
      new PolicyStatement({
        effect: Effect.ALLOW,
        actions: ["sqs:SendMessage"],
        resources: [this.deadLetterQueue.queue.queueArn],
      }),
    );
  }
}

/** `reconcile` every minute and the expiry sweep every hour, in a group of their own. */
export class RecurringSchedules extends Construct {
  constructor(
    scope: Construct,
    id: string,
    props: { reconcile: ScheduledFunction; sweep: ScheduledFunction },
  ) {
    super(scope, id);
    const recurring = new ScheduleGroup(this, "Group", {
      scheduleGroupName: RECURRING_GROUP_NAME,
      removalPolicy: RemovalPolicy.DESTROY,
    });
    new Schedule(this, "Reconcile", {
      scheduleName: "kubler-reconcile",
      description: "reconcile: finished builds, stuck rollouts, expired environments whose stop was lost",
      scheduleGroup: recurring,
      schedule: ScheduleExpression.rate(Duration.minutes(1)),
      // A run that could not start within its minute is superseded by the next one.
      target: new InvokeFunction(props.reconcile.function, {
        retryAttempts: 2,
        maxEventAge: Duration.minutes(1),
        deadLetterQueue: props.reconcile.deadLetterQueue,
      }),
    });
    new Schedule(this, "Sweep", {
      scheduleName: "kubler-sweep",
      description: "cleanup-environments sweep: delete every expired environment",
      scheduleGroup: recurring,
      schedule: ScheduleExpression.rate(Duration.hours(1)),
      target: new InvokeFunction(props.sweep.function, {
        input: ScheduleTargetInput.fromObject(SWEEP_INPUT),
        retryAttempts: 3,
        maxEventAge: Duration.minutes(30),
        deadLetterQueue: props.sweep.deadLetterQueue,
      }),
    });
  }
}

/**
 * Scheduler's Lambda target, allowed to invoke the function itself only: the stock target also
 * allows `<function ARN>:*` (every version and alias), which these schedules never call.
 */
class InvokeFunction extends LambdaInvoke {
  constructor(
    private readonly invoked: IFunction,
    props: ScheduleTargetBaseProps,
  ) {
    super(invoked, props);
  }

  protected override addTargetActionToRole(role: IRole): void {
    role.addToPrincipalPolicy(
      new PolicyStatement({
        effect: Effect.ALLOW,
        actions: ["lambda:InvokeFunction"],
        resources: [this.invoked.functionArn],
      }),
    );
  }
}
