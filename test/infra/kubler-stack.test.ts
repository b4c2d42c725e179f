import { App } from "aws-cdk-lib";
import { Template } from "aws-cdk-lib/assertions";
import { describe, expect, it } from "vitest";
import { KublerStack } from "../../infra/kubler-stack.js";
import { BUS_NAME, ROUTES } from "../../shared/domain/catalog.js";

describe("KublerStack", () => {
  const app = new App({ context: { "aws:cdk:bundling-stacks": [] } });
  const template = Template.fromStack(new KublerStack(app, "Test"));

  it("creates the kubler bus", () => {
    template.hasResourceProperties("AWS::Events::EventBus", { Name: BUS_NAME });
  });

  it("has one rule per catalog route, with the catalog's pattern exactly", () => {
    const rules = Object.values(template.findResources("AWS::Events::Rule"));
    expect(rules).toHaveLength(ROUTES.length);
    const patterns = rules.map((rule) => rule.Properties.EventPattern);
    for (const route of ROUTES) expect(patterns).toContainEqual(route.pattern);
  });
});
