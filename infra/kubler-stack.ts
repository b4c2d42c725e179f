/**
 * The AWS stack. So far: the `kubler` event bus and one rule per route of the event catalog
 * (generated, never written twice). Functions, targets, DLQs and the rest arrive with the stack issue.
 */
import { Stack, type StackProps } from "aws-cdk-lib";
import { EventBus, Rule } from "aws-cdk-lib/aws-events";
import type { Construct } from "constructs";
import { BUS_NAME, ROUTES } from "../shared/domain/catalog.js";

export class KublerStack extends Stack {
  readonly bus: EventBus;
  readonly rules: Record<string, Rule> = {};

  constructor(scope: Construct, id: string, props: StackProps = {}) {
    super(scope, id, props);
    this.bus = new EventBus(this, "Bus", { eventBusName: BUS_NAME });
    for (const route of ROUTES) {
      const rule = new Rule(this, `Route-${route.name}`, {
        eventBus: this.bus,
        description: `${route.name}: to ${route.target}`,
      });
      // The catalog's pattern verbatim (incl. $or), which the typed EventPattern props cannot express.
      rule.addEventPattern(route.pattern as never);
      this.rules[route.name] = rule;
    }
  }
}
