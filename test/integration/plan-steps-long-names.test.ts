/**
 * A branch or tag name long enough for a step's detail to fit on the bus (8 KB) but not its keys in
 * the dedupe table (DynamoDB's 2048-byte partition key): git and GitLab allow it, and any developer
 * may push one. plan-steps over the local runtime's memory stores and the DynamoDB adapters on
 * dynalite (a real DynamoDB API, which refuses such a key as DynamoDB does).
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { validateBusDetail } from "../../shared/domain/catalog.js";
import type { GitlabFact } from "../../shared/domain/plan-steps.js";
import { planStepsFor } from "../../shared/services/plan-steps.js";
import { type DynamoDbEmulator, startDynamoDbEmulator } from "../fakes/dynamodb-emulator.js";
import { FixedClock } from "../fakes/index.js";
import { CI_BUILT_PROJECT as GITLAB, planStepsStorePairs } from "../fakes/plan-steps-stores.js";

const SHA = "b".repeat(40);

/** Eight path components of 250 bytes (git's limit is 255 per component): 2007 bytes in all. */
const LONG_BRANCH = Array.from({ length: 8 }, (_, i) => `part${i}-`.padEnd(250, "x")).join("/");

function pipeline(correlationId: string): GitlabFact {
  return {
    detailType: "Pipeline",
    detail: {
      correlationId,
      gitlab: GITLAB,
      pipelineId: 40,
      status: "success",
      ref: LONG_BRANCH,
      tag: false,
      sha: SHA,
      source: "merge_request_event",
      mrIid: 7,
      mrSourceProjectId: GITLAB.projectId,
      mrSourceBranch: LONG_BRANCH,
      user: "dev",
    },
  } as GitlabFact;
}

let dynamodb: DynamoDbEmulator;

beforeAll(async () => {
  dynamodb = await startDynamoDbEmulator();
});

afterAll(async () => {
  await dynamodb?.close();
});

describe.each(planStepsStorePairs(() => dynamodb))(
  "plan-steps and a branch name too long for a key, over $name",
  ({ deps: create }) => {
    it("fails the fact once, audited with what to do, instead of retrying it for a day", async () => {
      const fact = pipeline("c-1");
      const step = { ...(fact.detail as object), environment: `review/${LONG_BRANCH}` };
      // It fits on the bus: the bus's own limit is not what stops it.
      expect(() => validateBusDetail("Deploy Requested", step)).not.toThrow();
      const deps = await create(new FixedClock());
      const outcome = await planStepsFor(deps, fact, new Date("2026-11-21T10:00:00Z"));
      expect(outcome).toEqual({
        kind: "failed",
        reason: expect.stringMatching(/too long to deploy/),
      });
      expect(deps.publisher.entries).toEqual([]);
      expect(deps.audit.records.at(-1)).toMatchObject({ outcome: "failure", reason: outcome.reason });
      // Final: the bus's retry of the same delivery is a duplicate, not another failure.
      expect(await planStepsFor(deps, fact, new Date("2026-11-21T10:00:00Z"))).toMatchObject({
        kind: "ignored",
        reason: expect.stringContaining("already planned"),
      });
    });
  },
);
