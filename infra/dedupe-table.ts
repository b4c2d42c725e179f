/**
 * The dedupe table (DESIGN §4): webhook delivery keys and ID-token `jti`s, claimed with a
 * conditional put and removed by DynamoDB TTL, and plan-steps' stop and merge request records. On
 * demand (bursty, tiny), point-in-time recovery on.
 */
import { RemovalPolicy } from "aws-cdk-lib";
import { AttributeType, BillingMode, Table, TableEncryption } from "aws-cdk-lib/aws-dynamodb";
import { Construct } from "constructs";

/**
 * The key and TTL attribute `shared/adapters/dynamodb-dedupe-store.ts` writes (infra may not import
 * adapters; test/infra checks the two agree).
 */
export const DEDUPE_KEY = { partitionKey: "pk", ttlAttribute: "expiresAt" } as const;

export class DedupeTable extends Construct {
  readonly table: Table;

  constructor(scope: Construct, id: string) {
    super(scope, id);
    this.table = new Table(this, "Table", {
      partitionKey: { name: DEDUPE_KEY.partitionKey, type: AttributeType.STRING },
      billingMode: BillingMode.PAY_PER_REQUEST,
      timeToLiveAttribute: DEDUPE_KEY.ttlAttribute,
      pointInTimeRecoverySpecification: { pointInTimeRecoveryEnabled: true },
      encryption: TableEncryption.AWS_MANAGED,
      // Not only short-lived claims: plan-steps keeps merge request records for good (a merged or
      // closed MR's later pipeline is refused by them) and stop records for 7 days. A table replaced
      // or left by `cdk destroy` is kept, so they can be copied into the new one (docs/operations.md).
      removalPolicy: RemovalPolicy.RETAIN,
    });
  }
}
