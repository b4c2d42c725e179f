/**
 * The cleanup-environments Lambda handler as invoked by hand for a sweep (`aws lambda invoke`):
 * against the embedded Kubernetes API over HTTP, AWS faked at the transport.
 */
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { EventBridgeClient, PutEventsCommand } from "@aws-sdk/client-eventbridge";
import { DeleteScheduleCommand, SchedulerClient } from "@aws-sdk/client-scheduler";
import { mockClient } from "aws-sdk-client-mock";
import {
  afterAll,
  afterEach,
  beforeAll,
  beforeEach,
  describe,
  expect,
  it,
  type MockInstance,
  vi,
} from "vitest";
import { environmentNamespace, namespaceFor } from "../../shared/domain/environment.js";
import { type MemoryKubernetes, startMemoryKubernetes } from "../../shared/local/memory-kubernetes/index.js";

const PROJECT = "flightjs/flight-management";
const ENVIRONMENT = "review/feature/booking-validation";
const NAMESPACE = namespaceFor(PROJECT, ENVIRONMENT);
const scheduler = mockClient(SchedulerClient);
const eventBridge = mockClient(EventBridgeClient);

let k8s: MemoryKubernetes;
let dir: string;
let handler: (event: unknown) => Promise<unknown>;
/** The handler's audit lines (stdout), kept out of the test output. */
let written: MockInstance<typeof process.stdout.write>;

beforeAll(async () => {
  k8s = await startMemoryKubernetes({ namespaceFinalizeMs: 5 });
  dir = mkdtempSync(join(tmpdir(), "kubler-cleanup-handler-"));
  writeFileSync(join(dir, "kubeconfig"), k8s.kubeconfig);
  vi.stubEnv("KUBECONFIG", join(dir, "kubeconfig"));
  vi.stubEnv("AWS_REGION", "eu-west-1");
  vi.stubEnv("KUBLER_EVENT_BUS_ARN", "arn:aws:events:eu-west-1:123456789012:event-bus/kubler");
  vi.stubEnv("KUBLER_SCHEDULE_GROUP", "kubler");
  vi.stubEnv("KUBLER_SCHEDULER_ROLE_ARN", "arn:aws:iam::123456789012:role/scheduler");
  vi.stubEnv(
    "KUBLER_SCHEDULE_DEAD_LETTER_QUEUE_ARN",
    "arn:aws:sqs:eu-west-1:123456789012:kubler-schedule-dlq",
  );
  ({ handler } = await import("../../functions/cleanup-environments/handler.js"));
});
afterAll(async () => {
  vi.unstubAllEnvs();
  await k8s.close();
  rmSync(dir, { recursive: true, force: true });
});
afterEach(() => written.mockRestore());
beforeEach(() => {
  written = vi.spyOn(process.stdout, "write").mockImplementation(() => true);
  scheduler.reset();
  eventBridge.reset();
  scheduler.on(DeleteScheduleCommand).resolves({});
  eventBridge.on(PutEventsCommand).resolves({ FailedEntryCount: 0, Entries: [{ EventId: "e-1" }] });
  k8s.store.put(
    environmentNamespace({
      namespace: NAMESPACE,
      gitlab: { instance: "https://gitlab.example.com", projectId: 2, projectPath: PROJECT },
      environment: ENVIRONMENT,
      sha: "1111111111111111111111111111111111111111",
      ref: "feature/booking-validation",
      pipelineId: 100,
      mrIid: 16,
      ttl: "1h",
      expiresAt: new Date(Date.now() - 60_000),
      deployedAt: new Date(Date.now() - 3_660_000),
      requestedAt: new Date(Date.now() - 3_660_000),
      status: "succeeded",
      rolloutDeadline: null,
      correlationId: "corr-deploy",
      url: null,
      lastGoodDigest: null,
    }),
  );
});

describe("cleanup-environments handler, sweep", () => {
  it("refuses a dry run it cannot read rather than deleting: a string, or a misspelled key", async () => {
    for (const request of [
      { action: "sweep", dryRun: "true" },
      { action: "sweep", dryRun: 1 },
      { action: "sweep", dry_run: true },
      { action: "sweep", dryrun: true },
    ]) {
      written.mockClear();
      await expect(handler(request), JSON.stringify(request)).rejects.toThrow(/dryRun/);
      const lines = written.mock.calls.map(([line]) => JSON.parse(String(line)));
      expect(lines).toEqual([expect.objectContaining({ action: "environment.sweep", outcome: "deny" })]);
    }
    expect(
      k8s.store.get("v1", "Namespace", undefined, NAMESPACE)?.metadata.deletionTimestamp,
    ).toBeUndefined();
    expect(scheduler.calls()).toEqual([]);
    expect(eventBridge.calls()).toEqual([]);
  });

  it("reports without deleting on dryRun: true, and deletes on a plain sweep", async () => {
    expect(await handler({ action: "sweep", dryRun: true })).toMatchObject({
      dryRun: true,
      expired: 1,
      deleted: 0,
    });
    expect(
      k8s.store.get("v1", "Namespace", undefined, NAMESPACE)?.metadata.deletionTimestamp,
    ).toBeUndefined();

    // As the recurring schedule sends it (infra/scheduling.ts SWEEP_INPUT).
    expect(await handler({ action: "sweep" })).toMatchObject({ dryRun: false, deleted: 1 });
    expect(scheduler.commandCalls(DeleteScheduleCommand)).toHaveLength(1);
  });
});
