/**
 * A deploy whose expiry is already past when it ends (a short `ttl` outlasted by a slow rollout, a
 * redelivery to an environment that expired and is not deleted yet): EventBridge Scheduler refuses a
 * one-time schedule in the past, so the deploy must not ask for one, and must still end with
 * `Deploy Finished` and its audit line; reconcile stops the environment. Against the embedded
 * Kubernetes API over HTTP, through the real adapter, as the other deploy tests.
 */
import { readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { beforeEach, describe, expect, it } from "vitest";
import { ScheduleInPastError } from "../../shared/adapters/eventbridge-scheduler.js";
import type { Detail } from "../../shared/domain/catalog.js";
import { namespaceFor } from "../../shared/domain/environment.js";
import { deployEnvironment, LAST_GOOD_CONFIGMAP } from "../../shared/services/deploy-environment.js";
import { EXPIRY_GRACE_MS, reconcileEnvironments } from "../../shared/services/reconcile-environments.js";
import { deployRequested, useDeployCluster } from "../fakes/deploy-deps.js";
import { sequentialIds } from "../fakes/index.js";

const PROJECT = "flightjs/flight-management";
const ENVIRONMENT = "review/feature/x";
const NAMESPACE = namespaceFor(PROJECT, ENVIRONMENT);

const env = useDeployCluster("kubler-expiry-");
beforeEach(() => {
  // The review rule's TTL, one minute.
  const file = join(env.projects, PROJECT, "kubler.yaml");
  writeFileSync(file, readFileSync(file, "utf8").replace("ttl: 72h", "ttl: 1m"));
  refusePastSchedules();
});

/** As EventBridgeScheduler does: a time not after now is refused, and no schedule is created. */
function refusePastSchedules(): void {
  const recording = env.deps.scheduler;
  const scheduleStop = recording.scheduleStop.bind(recording);
  recording.scheduleStop = async (name: string, at: Date, detail: Detail<"Environment Stop Requested">) => {
    if (at.getTime() <= env.deps.clock.now().getTime())
      throw new ScheduleInPastError(name, at, env.deps.clock.now());
    return scheduleStop(name, at, detail);
  };
}

/** The rollout's first look at the Deployment comes `ms` later: a slow cluster. */
function slowRollout(ms: number): void {
  const get = env.deps.cluster.get.bind(env.deps.cluster);
  let slowed = false;
  env.deps.cluster.get = async (ref) => {
    if (ref.kind === "Deployment" && !slowed) {
      slowed = true;
      env.deps.clock.advance(ms);
    }
    return get(ref);
  };
}

function finished(): { status: string; reason: string | null }[] {
  return env.deps.publisher.entries
    .filter((entry) => entry.detailType === "Deploy Finished")
    .map((entry) => entry.detail as { status: string; reason: string | null });
}

describe("deployEnvironment with an expiry already past", () => {
  it("a rollout that outlasts a short ttl still ends with Deploy Finished, audited; reconcile stops it", async () => {
    slowRollout(90_000); // within its 120 s rollout timeout, past its 1 min ttl
    const outcome = await deployEnvironment(env.deps, deployRequested());
    expect(outcome).toMatchObject({ kind: "succeeded", namespace: NAMESPACE });
    expect(finished()).toEqual([expect.objectContaining({ status: "succeeded" })]);
    // No schedule in the past was asked for, and none of an earlier expiry is left behind.
    expect(env.deps.scheduler.calls).toEqual([`cancel ${NAMESPACE}`]);
    expect(env.deps.audit.last()).toMatchObject({
      action: "environment.deploy",
      outcome: "success",
      subject: {
        expiry: expect.stringMatching(/^expired at 2026-11-21T10:01:00.000Z, before the deploy ended/),
      },
    });

    // Reconcile, the backstop for expired environments without a schedule, asks for the stop.
    env.deps.clock.advance(EXPIRY_GRACE_MS);
    const report = await reconcileEnvironments({ ...env.deps, newId: sequentialIds() });
    expect(report.stopsRequested).toEqual([NAMESPACE]);
  });

  it("a redelivery to an expired environment not yet deleted ends with Deploy Finished, no schedule in the past", async () => {
    await deployEnvironment(env.deps, deployRequested());
    // The first attempt's record write failed after its namespace committed: the redelivery writes
    // it again, and would move the schedule the first attempt did not.
    await env.deps.cluster.delete({
      apiVersion: "v1",
      kind: "ConfigMap",
      name: LAST_GOOD_CONFIGMAP,
      namespace: NAMESPACE,
    });
    env.deps.clock.advance(10 * 60_000);
    env.deps.publisher.entries.length = 0;
    env.deps.scheduler.calls.length = 0;

    const outcome = await deployEnvironment(env.deps, deployRequested());
    expect(outcome).toMatchObject({ kind: "succeeded" });
    expect(finished()).toEqual([expect.objectContaining({ status: "succeeded" })]);
    expect(env.deps.scheduler.calls).toEqual([`cancel ${NAMESPACE}`]);
  });
});
