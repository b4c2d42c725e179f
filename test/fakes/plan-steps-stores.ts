/**
 * plan-steps' dependencies over each pair of stores it runs on: the local runtime's memory stores and
 * the DynamoDB adapters on dynalite (a new table per call, a real DynamoDB API), with recording fakes
 * for the rest. The project (`CI_BUILT_PROJECT`) builds its image in its own CI: a merge request's
 * successful pipeline deploys `review/{branch}`.
 *
 * @example
 * let dynamodb: DynamoDbEmulator; // started in beforeAll
 * describe.each(planStepsStorePairs(() => dynamodb))("… over $name", ({ deps: create }) => {
 *   it("…", async () => {
 *     const deps = await create(new FixedClock());
 *     await planStepsFor(deps, fact, factAt);
 *   });
 * });
 */
import { DynamoDbDedupeStore } from "../../shared/adapters/dynamodb-dedupe-store.js";
import { DynamoDbEnvironmentStops } from "../../shared/adapters/dynamodb-environment-stops.js";
import { MemoryDedupeStore } from "../../shared/local/memory-dedupe-store.js";
import { MemoryEnvironmentStops } from "../../shared/local/memory-environment-stops.js";
import type { PlanStepsDeps } from "../../shared/services/plan-steps.js";
import type { DynamoDbEmulator } from "./dynamodb-emulator.js";
import { type FixedClock, RecordingAuditLog, RecordingPublisher } from "./index.js";

export const CI_BUILT_PROJECT = {
  instance: "https://gitlab.example.com",
  projectId: 2,
  projectPath: "group/ci-built",
};

const KUBLER_YAML = `version: 1
deploy: { manifests: deploy/ }
environments:
  - { name: "review/{branch}", on: merge_request }
`;

export type PlanStepsStoreDeps = PlanStepsDeps & {
  clock: FixedClock;
  publisher: RecordingPublisher;
  audit: RecordingAuditLog;
};

export interface PlanStepsStorePair {
  name: string;
  deps: (clock: FixedClock) => Promise<PlanStepsStoreDeps>;
}

/** `dynamodb` is read when a test creates its deps: the emulator starts in the file's beforeAll. */
export function planStepsStorePairs(dynamodb: () => DynamoDbEmulator): PlanStepsStorePair[] {
  const common = (clock: FixedClock) => ({
    manifests: {
      readManifest: async () => KUBLER_YAML,
      readDefaultBranchManifest: async () => KUBLER_YAML,
      readDirectory: async () => new Map(),
    },
    publisher: new RecordingPublisher(),
    audit: new RecordingAuditLog(),
    clock,
  });
  return [
    {
      name: "memory stores",
      deps: async (clock) => ({
        ...common(clock),
        dedupe: new MemoryDedupeStore(clock),
        stops: new MemoryEnvironmentStops(clock),
      }),
    },
    {
      name: "DynamoDB adapters on dynalite",
      deps: async (clock) => {
        const { client } = dynamodb();
        const tableName = await dynamodb().createDedupeTable();
        return {
          ...common(clock),
          dedupe: new DynamoDbDedupeStore({ client, tableName, clock }),
          stops: new DynamoDbEnvironmentStops({ client, tableName, clock }),
        };
      },
    },
  ];
}
