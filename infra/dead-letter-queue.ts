/**
 * An SQS dead-letter queue as every Kubler target uses it: encrypted at rest (SQS-managed keys),
 * TLS only, messages kept the maximum 14 days so an operator can inspect and redrive them.
 */
import { Duration, Validations } from "aws-cdk-lib";
import { Queue, QueueEncryption } from "aws-cdk-lib/aws-sqs";
import { Construct } from "constructs";

export class DeadLetterQueue extends Construct {
  readonly queue: Queue;

  constructor(scope: Construct, id: string, props: { purpose: string }) {
    super(scope, id);
    this.queue = new Queue(this, "Queue", {
      encryption: QueueEncryption.SQS_MANAGED,
      enforceSSL: true,
      retentionPeriod: Duration.days(14),
    });
    Validations.of(this.queue).acknowledge({
      id: "AwsSolutions-SQS3",
      reason: `This queue is itself a dead-letter queue (${props.purpose}); nothing consumes it automatically.`,
    });
  }
}
