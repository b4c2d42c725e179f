/**
 * Every AWS client a Lambda builds has time limits on its requests (AWS_REQUEST_LIMITS, directly, in
 * AWS_CLIENT_LIMITS or through the function's limits.ts): without them a hung connection waits until Lambda kills the
 * function, before it can report the failure or undo what it started (shared/adapters/aws-request-limits.ts).
 * Read from the handlers' source, as the architecture test reads imports.
 */
import { readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { describe, expect, it } from "vitest";

const FUNCTIONS = join(import.meta.dirname, "../../functions");
const LIMITED = /requestHandler|LIMITS\.aws|AWS_REQUEST_LIMITS|AWS_CLIENT_LIMITS/;

/** The text of each `new <Name>Client(…)` and `createRedactingSecretReader(…)` call, arguments included. */
function clientCalls(source: string): string[] {
  const calls: string[] = [];
  for (const match of source.matchAll(/new \w+Client\(|createRedactingSecretReader\(/g)) {
    let depth = 0;
    let end = match.index;
    for (; end < source.length; end++) {
      if (source[end] === "(") depth++;
      else if (source[end] === ")" && --depth === 0) break;
    }
    calls.push(source.slice(match.index, end + 1));
  }
  return calls;
}

describe("AWS clients in Lambda handlers", () => {
  const handlers = readdirSync(FUNCTIONS).map((name) => ({
    name,
    source: readFileSync(join(FUNCTIONS, name, "handler.ts"), "utf8"),
  }));

  it("finds the clients it checks (the scan itself works)", () => {
    const all = handlers.flatMap((h) => clientCalls(h.source));
    expect(all.length).toBeGreaterThan(10);
    expect(all).toContain("new DynamoDBClient(LIMITS.aws)");
  });

  it.each(handlers.map((h) => [h.name, h.source]))(
    "%s gives every client request time limits",
    (_, source) => {
      const unlimited = clientCalls(source).filter((call) => !LIMITED.test(call));
      expect(unlimited).toEqual([]);
    },
  );
});
