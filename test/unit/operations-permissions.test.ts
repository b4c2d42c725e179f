/**
 * The on-call policy in docs/operations.md against the SDK calls `kubler audit` and `kubler stop --aws`
 * make: a Command added to one of their adapters without its action in the policy would reach
 * on-call as an AccessDeniedException in the middle of an incident.
 */
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { describe, expect, it } from "vitest";

const ROOT = join(import.meta.dirname, "../..");

/** The files whose SDK calls the CLI makes in AWS, with the IAM prefix of their service. */
const CLI_SOURCES: [file: string, prefix: string][] = [
  ["shared/adapters/cloudwatch-audit-query.ts", "logs"],
  ["shared/adapters/dynamodb-environment-stops.ts", "dynamodb"],
  ["shared/adapters/eventbridge-publisher.ts", "events"],
  ["cli/stop-aws.ts", "sts"],
];

/** Calls those files make that need no grant from on-call. */
const NOT_NEEDED: Record<string, string> = {
  "sts:GetCallerIdentity": "needs no permission",
  "dynamodb:GetItem": "stoppedAt: deploy-environment's read, never the CLI's",
};

function commandsSent(file: string, prefix: string): string[] {
  const text = readFileSync(join(ROOT, file), "utf8");
  return [...text.matchAll(/new (\w+)Command\(/g)].map(([, name]) => `${prefix}:${name}`);
}

function documentedActions(): Set<string> {
  const doc = readFileSync(join(ROOT, "docs/operations.md"), "utf8");
  const section = doc.slice(doc.indexOf("## The permissions you need"));
  const json = /```json\n([\s\S]*?)```/.exec(section)?.[1];
  if (!json) throw new Error("docs/operations.md has no policy JSON under 'The permissions you need'");
  const policy = JSON.parse(json) as { Statement: { Action: string[] }[] };
  return new Set(policy.Statement.flatMap((statement) => statement.Action));
}

describe("docs/operations.md's on-call policy", () => {
  it("grants every SDK call kubler audit and kubler stop --aws make, and no call they never make", () => {
    const actions = documentedActions();
    const sent = CLI_SOURCES.flatMap(([file, prefix]) => commandsSent(file, prefix));
    expect(sent).toEqual(expect.arrayContaining(["logs:StartQuery", "dynamodb:PutItem", "events:PutEvents"]));
    const needed = sent.filter((action) => !(action in NOT_NEEDED));
    expect(needed.filter((action) => !actions.has(action))).toEqual([]);
    expect(Object.keys(NOT_NEEDED).filter((action) => actions.has(action))).toEqual([]);
  });
});
