/**
 * How long plan-steps remembers a merge request's merge, close and reopen, through `planStepsFor` over
 * each store pair: the local runtime's memory stores and the DynamoDB adapters on dynalite. The
 * project builds its image in its own CI (test/fakes/plan-steps-stores.ts), so a pipeline deploys: a
 * merged or closed MR's must not deploy its environment again however late it runs, until a reopen.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { GitlabFact } from "../../shared/domain/plan-steps.js";
import { planStepsFor } from "../../shared/services/plan-steps.js";
import { type DynamoDbEmulator, startDynamoDbEmulator } from "../fakes/dynamodb-emulator.js";
import { FixedClock } from "../fakes/index.js";
import {
  type PlanStepsStoreDeps as Deps,
  CI_BUILT_PROJECT as GITLAB,
  planStepsStorePairs,
} from "../fakes/plan-steps-stores.js";

const DAY = 86_400_000;
const T0 = new Date("2026-11-21T10:00:00Z");
const day = (n: number) => new Date(T0.getTime() + n * DAY);
const SHA = "b".repeat(40);

function mergeRequest(correlationId: string, action: "close" | "reopen" | "merge"): GitlabFact {
  return {
    detailType: "Merge Request",
    detail: {
      correlationId,
      gitlab: GITLAB,
      action,
      iid: 7,
      state: action === "close" ? "closed" : action === "merge" ? "merged" : "opened",
      sourceBranch: "feature-x",
      targetBranch: "main",
      sourceProjectId: GITLAB.projectId,
      lastCommitSha: SHA,
      oldrev: null,
      url: null,
      user: "dev",
    },
  };
}

function pipeline(correlationId: string): GitlabFact {
  return {
    detailType: "Pipeline",
    detail: {
      correlationId,
      gitlab: GITLAB,
      pipelineId: Number(correlationId.replace(/\D/g, "")),
      status: "success",
      ref: "feature-x",
      tag: false,
      sha: SHA,
      source: "merge_request_event",
      mrIid: 7,
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

describe.each(planStepsStorePairs(() => dynamodb))("merge request records over $name", ({ deps: create }) => {
  /** Plans `fact`, delivered at `deliveredAt`, as GitLab sent it at `factAt`. */
  const plan = async (deps: Deps, fact: GitlabFact, factAt: Date, deliveredAt = factAt) => {
    deps.clock.advance(deliveredAt.getTime() - deps.clock.now().getTime());
    return planStepsFor(deps, fact, factAt);
  };

  it("a closed merge request's pipeline deploys nothing, a month after the close too", async () => {
    const deps = await create(new FixedClock(T0));
    await plan(deps, mergeRequest("c-1", "close"), day(0));
    for (const [n, at] of [
      [2, 1],
      [3, 8],
      [4, 30],
    ] as const) {
      const outcome = await plan(deps, pipeline(`p-${n}`), day(at));
      expect({ at, outcome }).toMatchObject({
        at,
        outcome: { kind: "ignored", reason: expect.stringContaining("!7 was closed") },
      });
    }
    expect(deps.publisher.entries.map((e) => e.detailType)).toEqual(["Environment Stop Requested"]);
  });

  it("a merged merge request's pipeline deploys nothing, a year later too", async () => {
    const deps = await create(new FixedClock(T0));
    await plan(deps, mergeRequest("c-1", "merge"), day(0));
    const outcome = await plan(deps, pipeline("p-2"), day(365));
    expect(outcome).toMatchObject({ kind: "ignored", reason: expect.stringContaining("!7 was merged") });
  });

  it("a reopen is remembered as long as the close it undoes: its pipeline deploys a month later", async () => {
    const deps = await create(new FixedClock(T0));
    await plan(deps, mergeRequest("c-1", "close"), day(0));
    await plan(deps, mergeRequest("c-2", "reopen"), day(1));
    const outcome = await plan(deps, pipeline("p-3"), day(30));
    expect(outcome).toMatchObject({ kind: "published" });
    expect(deps.publisher.entries.at(-1)).toMatchObject({ detailType: "Deploy Requested" });
  });

  it("a close redriven days after a later reopen does not end the merge request", async () => {
    const deps = await create(new FixedClock(T0));
    await plan(deps, mergeRequest("c-2", "reopen"), day(1));
    // The close of day 0 was dead-lettered and is redriven on day 5.
    await plan(deps, mergeRequest("c-1", "close"), day(0), day(5));
    const outcome = await plan(deps, pipeline("p-3"), day(9));
    expect(outcome).toMatchObject({ kind: "published" });
  });
});
