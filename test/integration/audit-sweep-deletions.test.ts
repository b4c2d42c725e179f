/**
 * `kubler audit --query sweep-deletions` over what the sweep really writes: a deletion whose
 * follow-up (schedule cancel, Environment Deleted) failed adds a second `environment.sweep.delete`
 * line, and the query must still list the deletion once, the failure in its fields.
 */

import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import {
  CloudWatchLogsClient,
  GetQueryResultsCommand,
  StartQueryCommand,
} from "@aws-sdk/client-cloudwatch-logs";
import { mockClient } from "aws-sdk-client-mock";
import { afterEach, beforeEach, expect, it } from "vitest";
import { runAuditCommand } from "../../cli/audit-command.js";
import { createKubernetesCluster } from "../../shared/adapters/kubernetes-cluster.js";
import { environmentNamespace, namespaceFor } from "../../shared/domain/environment.js";
import { JsonlAuditLog } from "../../shared/local/jsonl-audit-log.js";
import { JsonlFile } from "../../shared/local/jsonl-file.js";
import { type MemoryKubernetes, startMemoryKubernetes } from "../../shared/local/memory-kubernetes/index.js";
import { sweepExpiredEnvironments } from "../../shared/services/cleanup-environments.js";
import { cleanupTestDeps } from "../fakes/cleanup-deps.js";
import { sequentialIds } from "../fakes/index.js";

const NOW = new Date("2026-11-21T10:00:00Z");
const HOUR = 3_600_000;
const PROJECT = "group/app";
const gitlab = { instance: "https://gitlab.example.com", projectId: 2, projectPath: PROJECT };

let k8s: MemoryKubernetes;
let dataDir: string;

beforeEach(async () => {
  k8s = await startMemoryKubernetes({ namespaceFinalizeMs: 5 });
  dataDir = mkdtempSync(join(tmpdir(), "kubler-sweep-audit-"));
});
afterEach(() => k8s.close());

/** An environment that expired an hour ago, stored as Kubler writes its namespace. */
function seedExpired(environment: string, correlationId: string): string {
  const namespace = namespaceFor(PROJECT, environment);
  k8s.store.put(
    environmentNamespace({
      namespace,
      gitlab,
      environment,
      sha: "1111111111111111111111111111111111111111",
      ref: "main",
      pipelineId: 100,
      mrIid: null,
      ttl: "72h",
      expiresAt: new Date(NOW.getTime() - HOUR),
      deployedAt: new Date(NOW.getTime() - 73 * HOUR),
      requestedAt: new Date(NOW.getTime() - 73 * HOUR),
      status: "succeeded",
      rolloutDeadline: null,
      correlationId,
      url: null,
      lastGoodDigest: null,
    }),
  );
  return namespace;
}

it("lists each namespace the sweep deleted once, a failed follow-up shown in that row's fields", async () => {
  const failing = seedExpired("review/a", "corr-a");
  const fine = seedExpired("review/b", "corr-b");
  const file = new JsonlFile(join(dataDir, "audit.jsonl"));
  const deps = {
    ...cleanupTestDeps(createKubernetesCluster({ kubeconfig: k8s.kubeconfig, sleep: async () => {} }), NOW),
    audit: new JsonlAuditLog(file),
  };
  const cancel = deps.scheduler.cancel.bind(deps.scheduler);
  deps.scheduler.cancel = async (name) => {
    if (name === failing) throw new Error("could not delete schedule: ThrottlingException");
    return cancel(name);
  };
  const report = await sweepExpiredEnvironments(deps, { newId: sequentialIds("sweep") });
  expect(report.deleted.map((d) => d.namespace).sort()).toEqual([failing, fine].sort());
  await file.close();

  const out: string[] = [];
  const code = await runAuditCommand(["--query", "sweep-deletions", "--json"], {
    print: (line) => out.push(line),
    progress: () => undefined,
    env: { KUBLER_DATA_DIR: dataDir },
    now: () => new Date(NOW.getTime() + HOUR),
  });
  expect(code).toBe(0);
  const rows = out.map((line) => JSON.parse(line));
  expect(rows.map((r) => r.subject.namespace).sort()).toEqual([failing, fine].sort());
  expect(rows.find((r) => r.subject.namespace === failing)).toMatchObject({
    outcome: "failure",
    reason: expect.stringMatching(/^deleted, but schedule not cancelled: .*ThrottlingException/),
  });
  expect(rows.find((r) => r.subject.namespace === fine)).toMatchObject({
    outcome: "success",
    reason: `expired at ${new Date(NOW.getTime() - HOUR).toISOString()}`,
  });
});

it("asks Logs Insights for the same: the newest line of each deletion", async () => {
  const logs = mockClient(CloudWatchLogsClient);
  try {
    logs.on(StartQueryCommand).resolves({ queryId: "q-1" });
    logs.on(GetQueryResultsCommand).resolves({ status: "Complete", results: [] });
    const code = await runAuditCommand(["--query", "sweep-deletions", "--json"], {
      print: () => undefined,
      progress: () => undefined,
      env: { KUBLER_AUDIT_LOG_GROUPS: "/aws/lambda/cleanup" },
      now: () => NOW,
      sleep: async () => {},
    });
    expect(code).toBe(0);
    const sent = logs.commandCalls(StartQueryCommand)[0]?.args[0].input.queryString;
    expect(sent?.split("\n")).toEqual([
      "fields @timestamp, @message, correlationId, subject.namespace",
      '| filter ispresent(auditVersion) and action = "environment.sweep.delete"',
      "| sort @timestamp desc",
      "| dedup correlationId, subject.namespace",
      "| limit 1000",
    ]);
  } finally {
    logs.restore();
  }
});
