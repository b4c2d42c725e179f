/**
 * `kubler stop --aws`: the stop record and the bus of a deployed stack, through the adapters the
 * functions use (the same table item plan-steps writes, the same PutEvents), with the SDK's own
 * resolution of region, credentials and endpoint (AWS_REGION, AWS_PROFILE, AWS_ENDPOINT_URL_*).
 * Loaded only with --aws: the SDK clients are most of its start-up time.
 */
import { DynamoDBClient } from "@aws-sdk/client-dynamodb";
import { EventBridgeClient } from "@aws-sdk/client-eventbridge";
import { GetCallerIdentityCommand, STSClient } from "@aws-sdk/client-sts";
import { DynamoDbEnvironmentStops } from "../shared/adapters/dynamodb-environment-stops.js";
import { EventBridgePublisher } from "../shared/adapters/eventbridge-publisher.js";
import type { Clock, EnvironmentStops, EventPublisher } from "../shared/ports.js";
import { OPERATOR_CLIENT_LIMITS, OPERATOR_REQUEST_LIMITS } from "./aws-setup-problem.js";

export interface AwsStopTargets {
  stops: EnvironmentStops;
  publisher: EventPublisher;
  /** The region the SDK resolved, or a rejection saying none is set. */
  region(): Promise<string>;
  /**
   * One STS GetCallerIdentity (which needs no permission and changes nothing): how far AWS's clock
   * is ahead of this machine's (ms; negative: behind), from its Date header, null when it has none;
   * and the caller's ARN, who the stop is requested by.
   */
  callerIdentity(): Promise<{ clockOffset: number | null; arn: string | null }>;
  close(): void;
}

/**
 * @example
 * const aws = createAwsStopTargets({ table: "Kubler-DedupeTable…", bus: "kubler", clock: systemClock });
 * await aws.stops.record(key, now, STOP_RECORD_TTL_SECONDS);
 * const [eventId] = await aws.publisher.publish([{ detailType: "Environment Stop Requested", detail }]);
 */
export function createAwsStopTargets(options: { table: string; bus: string; clock: Clock }): AwsStopTargets {
  const dynamodb = new DynamoDBClient(OPERATOR_CLIENT_LIMITS);
  // The publisher owns PutEvents retries, as in the functions; SDK retries on top would multiply them.
  const eventbridge = new EventBridgeClient({ maxAttempts: 1, requestHandler: OPERATOR_REQUEST_LIMITS });
  const sts = new STSClient(OPERATOR_CLIENT_LIMITS);
  return {
    stops: new DynamoDbEnvironmentStops({ client: dynamodb, tableName: options.table, clock: options.clock }),
    publisher: new EventBridgePublisher({ client: eventbridge, busName: options.bus }),
    region: () => dynamodb.config.region(),
    callerIdentity: async () => {
      let date: string | undefined;
      // Innermost in the deserialize step: the raw response, before it is parsed.
      sts.middlewareStack.add(
        (next) => async (args) => {
          const result = await next(args);
          date = (result.response as { headers?: Record<string, string> }).headers?.date;
          return result;
        },
        { step: "deserialize", priority: "low", name: "kublerServerDate" },
      );
      const { Arn } = await sts.send(new GetCallerIdentityCommand({}));
      const server = date ? Date.parse(date) : Number.NaN;
      return {
        clockOffset: Number.isFinite(server) ? server - options.clock.now().getTime() : null,
        arn: Arn ?? null,
      };
    },
    close: () => {
      dynamodb.destroy();
      eventbridge.destroy();
      sts.destroy();
    },
  };
}
