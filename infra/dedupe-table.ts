/**
 * The dedupe table (DESIGN §4): webhook delivery keys and ID-token `jti`s, claimed with a
 * conditional put and removed by DynamoDB TTL. On demand (bursty, tiny), point-in-time recovery on.
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
      // Only short-lived claims: losing them on teardown is harmless.
      removalPolicy: RemovalPolicy.DESTROY,
    });
  }
}
