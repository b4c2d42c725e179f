/**
 * What CloudFormation would make of the synthesized template's values at deploy time: a `Ref` or
 * `Fn::GetAtt … Arn` becomes the name or ARN the resource gets, with a generated physical name where
 * the template sets none. Anything else is left as written; an intrinsic this cannot resolve throws,
 * so a new kind of value in a function's environment is noticed instead of guessed.
 */
import type { FunctionName } from "../../shared/domain/catalog.js";
import type { CfnTemplate } from "./stack-fixture.js";

export const ACCOUNT = "123456789012";
export const REGION = "eu-west-1";
const STACK = "Test";

type Resource = CfnTemplate["Resources"][string];

/**
 * The environment variables the template gives `kubler-<name>`, resolved as CloudFormation would.
 *
 * @example
 * functionEnvironment(template, "reconcile").KUBLER_EVENT_BUS_ARN; // "arn:aws:events:eu-west-1:…:event-bus/kubler"
 */
export function functionEnvironment(template: CfnTemplate, name: FunctionName): Record<string, string> {
  const fn = Object.values(template.Resources).find(
    (r) => r.Type === "AWS::Lambda::Function" && r.Properties.FunctionName === `kubler-${name}`,
  );
  if (!fn) throw new Error(`the template has no function kubler-${name}`);
  const variables = (fn.Properties.Environment as { Variables?: Record<string, unknown> } | undefined)
    ?.Variables;
  return Object.fromEntries(
    Object.entries(variables ?? {}).map(([key, value]) => [key, resolve(template, value)]),
  );
}

/** The input a recurring schedule invokes its function with (`{}` when it names none, as Scheduler sends). */
export function scheduleInput(template: CfnTemplate, scheduleName: string): unknown {
  const schedule = Object.values(template.Resources).find(
    (r) => r.Type === "AWS::Scheduler::Schedule" && r.Properties.Name === scheduleName,
  );
  if (!schedule) throw new Error(`the template has no schedule ${scheduleName}`);
  const input = (schedule.Properties.Target as { Input?: string }).Input;
  return JSON.parse(input ?? "{}");
}

/**
 * A template value as deployed.
 *
 * @example
 * resolve(template, { "Fn::GetAtt": ["EventsBus45DE4339", "Arn"] }); // "arn:aws:events:eu-west-1:123456789012:event-bus/kubler"
 */
export function resolve(template: CfnTemplate, value: unknown): string {
  if (typeof value === "string") return value;
  const intrinsic = value as Record<string, unknown>;
  if (typeof intrinsic.Ref === "string") return ref(template, intrinsic.Ref);
  const getAtt = intrinsic["Fn::GetAtt"];
  if (Array.isArray(getAtt) && getAtt[1] === "Arn") return arnOf(template, String(getAtt[0]));
  const join = intrinsic["Fn::Join"];
  if (Array.isArray(join)) {
    const [separator, parts] = join as [string, unknown[]];
    return parts.map((part) => resolve(template, part)).join(separator);
  }
  throw new Error(`cannot resolve ${JSON.stringify(value)}`);
}

function ref(template: CfnTemplate, id: string): string {
  const pseudo: Record<string, string> = {
    "AWS::Region": REGION,
    "AWS::AccountId": ACCOUNT,
    "AWS::Partition": "aws",
    "AWS::URLSuffix": "amazonaws.com",
    "AWS::StackName": STACK,
  };
  if (pseudo[id]) return pseudo[id];
  const resource = resourceOf(template, id);
  switch (resource.Type) {
    case "AWS::Events::EventBus":
      return String(resource.Properties.Name);
    case "AWS::DynamoDB::Table":
      return physicalName(template, resource, "TableName", id);
    // A secret's Ref is its ARN, with the six characters Secrets Manager appends.
    case "AWS::SecretsManager::Secret":
      return `arn:aws:secretsmanager:${REGION}:${ACCOUNT}:secret:${physicalName(template, resource, "Name", id)}-AbCdEf`;
    default:
      throw new Error(`cannot resolve Ref ${id} (${resource.Type})`);
  }
}

function arnOf(template: CfnTemplate, id: string): string {
  const resource = resourceOf(template, id);
  switch (resource.Type) {
    case "AWS::Events::EventBus":
      return `arn:aws:events:${REGION}:${ACCOUNT}:event-bus/${resource.Properties.Name}`;
    case "AWS::IAM::Role":
      return `arn:aws:iam::${ACCOUNT}:role/${physicalName(template, resource, "RoleName", id)}`;
    case "AWS::SQS::Queue":
      return `arn:aws:sqs:${REGION}:${ACCOUNT}:${physicalName(template, resource, "QueueName", id)}`;
    default:
      throw new Error(`cannot resolve the Arn of ${id} (${resource.Type})`);
  }
}

function resourceOf(template: CfnTemplate, id: string): Resource {
  const resource = template.Resources[id];
  if (!resource) throw new Error(`the template has no resource ${id}`);
  return resource;
}

/** The name the template gives, else what CloudFormation generates: stack, logical id, a suffix. */
function physicalName(template: CfnTemplate, resource: Resource, property: string, id: string): string {
  const named = resource.Properties[property];
  return named === undefined ? `${STACK}-${id}-1A2B3C4D5E6F` : resolve(template, named);
}
