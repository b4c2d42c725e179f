/**
 * The defaults every Kubler Lambda shares: Node.js 22 on ARM64, the ESM bundle of `lambda-bundle.ts`
 * (AWS SDK bundled, source maps), its own log group with retention, a role of its own that may write
 * only to that log group (no managed policy), reserved concurrency when configured.
 */
import { join } from "node:path";
import { Duration, RemovalPolicy, Validations } from "aws-cdk-lib";
import { Effect, PolicyStatement, Role, ServicePrincipal } from "aws-cdk-lib/aws-iam";
import { Architecture, Runtime } from "aws-cdk-lib/aws-lambda";
import { type ICommandHooks, NodejsFunction } from "aws-cdk-lib/aws-lambda-nodejs";
import { LogGroup, type RetentionDays } from "aws-cdk-lib/aws-logs";
import type { IQueue } from "aws-cdk-lib/aws-sqs";
import { Construct } from "constructs";
import type { FunctionName } from "../shared/domain/catalog.js";
import type { FunctionSpec } from "./function-specs.js";
import { nodejsBundling } from "./lambda-bundle.js";

export const REPO_ROOT = join(import.meta.dirname, "..");

/** Where a function's entry point is; the bundling test and the bench use the same path. */
export function entryOf(name: FunctionName): string {
  return join(REPO_ROOT, "functions", name, "handler.ts");
}

export interface KublerFunctionProps {
  name: FunctionName;
  spec: FunctionSpec;
  entry: string;
  environment: Record<string, string>;
  logRetentionDays: number;
  reservedConcurrency?: number;
  /** Receives asynchronous invocations (bus, schedules) that failed every attempt. */
  deadLetterQueue?: IQueue;
  commandHooks?: ICommandHooks;
  /** A fixed role name, for roles other accounts' trust policies must name; default generated. */
  roleName?: string;
}

export class KublerFunction extends Construct {
  readonly function: NodejsFunction;
  readonly logGroup: LogGroup;
  readonly role: Role;

  constructor(scope: Construct, id: string, props: KublerFunctionProps) {
    super(scope, id);
    const { name, spec } = props;
    this.logGroup = new LogGroup(this, "Logs", {
      logGroupName: `/aws/lambda/kubler-${name}`,
      retention: props.logRetentionDays as RetentionDays,
      // The audit trail lives here: it outlives the stack.
      removalPolicy: RemovalPolicy.RETAIN,
    });
    this.role = new Role(this, "Role", {
      description: `Kubler ${name}`,
      roleName: props.roleName,
      assumedBy: new ServicePrincipal("lambda.amazonaws.com"),
    });
    // Instead of AWSLambdaBasicExecutionRole (any log group): its own group only. The group exists
    // before the function, so logs:CreateLogGroup is not needed.
    this.role.addToPrincipalPolicy(
      new PolicyStatement({
        effect: Effect.ALLOW,
        actions: ["logs:CreateLogStream", "logs:PutLogEvents"],
        resources: [this.logGroup.logGroupArn],
      }),
    );
    this.function = new NodejsFunction(this, "Function", {
      functionName: `kubler-${name}`,
      description: `Kubler ${name}: ${spec.description}`,
      entry: props.entry,
      projectRoot: REPO_ROOT,
      depsLockFilePath: join(REPO_ROOT, "package-lock.json"),
      runtime: Runtime.NODEJS_22_X,
      architecture: Architecture.ARM_64,
      memorySize: spec.memoryMb,
      timeout: spec.timeout,
      role: this.role,
      logGroup: this.logGroup,
      awsSdkConnectionReuse: false,
      reservedConcurrentExecutions: props.reservedConcurrency,
      environment: { NODE_OPTIONS: "--enable-source-maps", ...props.environment },
      bundling: nodejsBundling(props.commandHooks ? { commandHooks: props.commandHooks } : {}),
      // Bus and schedule deliveries are asynchronous invocations: retried twice by Lambda, then
      // dead-lettered, never dropped. A step that failed is safe to run again (DESIGN §12).
      retryAttempts: spec.asyncInvoke?.retryAttempts ?? 2,
      maxEventAge: spec.asyncInvoke?.maxEventAge ?? Duration.hours(6),
      deadLetterQueue: props.deadLetterQueue,
    });
    Validations.of(this.function).acknowledge({
      id: "AwsSolutions-L1",
      reason:
        "Node.js 22 is the runtime Kubler is built and tested for (DESIGN §11, STACK.md); a newer one is " +
        "adopted deliberately, with the bundles re-measured, not by following 'latest'.",
    });
  }
}
