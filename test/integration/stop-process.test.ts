/**
 * `kubler stop` as an operator types it, in its own process: on a running local runtime (the
 * environment deployed by `kubler deploy` is deleted by cleanup, audited with its reason), and with
 * --aws against the fake AWS endpoint (AWS_ENDPOINT_URL): the stop record plan-steps would write,
 * before the PutEvents the catalog describes, and the errors that name what to set.
 */

import { once } from "node:events";
import { existsSync, mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import { createServer, type Socket } from "node:net";
import { tmpdir, userInfo } from "node:os";
import { join } from "node:path";
import { DynamoDBClient } from "@aws-sdk/client-dynamodb";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { readLocalSecrets } from "../../cli/local-secrets.js";
import { runStopCommand } from "../../cli/stop-command.js";
import { DynamoDbEnvironmentStops } from "../../shared/adapters/dynamodb-environment-stops.js";
import { createKubernetesCluster } from "../../shared/adapters/kubernetes-cluster.js";
import { systemClock } from "../../shared/clock.js";
import { loadLocalConfig } from "../../shared/config.js";
import { sourceOf, validateDetail } from "../../shared/domain/catalog.js";
import { namespaceFor } from "../../shared/domain/environment.js";
import { environmentStopKey, type GitlabFact } from "../../shared/domain/plan-steps.js";
import { MemoryDedupeStore } from "../../shared/local/memory-dedupe-store.js";
import { type MemoryKubernetes, startMemoryKubernetes } from "../../shared/local/memory-kubernetes/index.js";
import { deployEnvironment } from "../../shared/services/deploy-environment.js";
import { planStepsFor, STOP_RECORD_TTL_SECONDS } from "../../shared/services/plan-steps.js";
import { type AwsAnswer, type FakeAws, startFakeAws } from "../fakes/aws-endpoint.js";
import { deployTestDeps } from "../fakes/deploy-deps.js";
import { FixedClock, RecordingAuditLog, RecordingPublisher } from "../fakes/index.js";
import { seedManagedEnvironment } from "../fakes/managed-environment.js";
import { isolatedKublerEnv, type KublerProcess, runKubler, startKublerProcess } from "./kubler-process.js";

const NO_STACK = /\n\s+at |"stack"/;
const CALLER_IDENTITY = {
  xml: `<GetCallerIdentityResponse xmlns="https://sts.amazonaws.com/doc/2011-06-15/"><GetCallerIdentityResult><Arn>arn:aws:iam::123456789012:user/operator</Arn><UserId>AIDAOPERATOR</UserId><Account>123456789012</Account></GetCallerIdentityResult><ResponseMetadata><RequestId>r-1</RequestId></ResponseMetadata></GetCallerIdentityResponse>`,
};

function readLines(path: string): Record<string, unknown>[] {
  const lines = existsSync(path) ? readFileSync(path, "utf8").split("\n").filter(Boolean) : [];
  return lines.map((line) => JSON.parse(line));
}

async function waitForLine(
  path: string,
  which: (line: Record<string, unknown>) => boolean,
): Promise<Record<string, unknown> | undefined> {
  const deadline = Date.now() + 15_000;
  for (;;) {
    const found = readLines(path).find(which);
    if (found || Date.now() > deadline) return found;
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

describe("kubler stop on the local runtime (process)", () => {
  const dataDir = mkdtempSync(join(tmpdir(), "kubler-stop-"));
  const env = { ...isolatedKublerEnv(dataDir), PORT: "" };
  const PROJECT = "flightjs/flight-management";
  const ENVIRONMENT = "review/feature/booking-validation";
  const events = join(dataDir, "events.jsonl");
  const stops = () => readLines(events).filter((e) => e["detail-type"] === "Environment Stop Requested");
  let runtime: KublerProcess;

  beforeAll(async () => {
    runtime = await startKublerProcess({ ...env, PORT: "0" });
  }, 30_000);
  afterAll(async () => {
    runtime?.stop();
    await runtime?.exited();
  });

  it("prints its usage for --help (rc 0), and is in kubler's", async () => {
    const [help, all] = await Promise.all([runKubler(env, "stop", "--help"), runKubler(env, "--help")]);
    expect(help).toMatchObject({ code: 0, stderr: "" });
    expect(help.stdout).toMatch(/^usage: kubler stop --project PATH --environment NAME/);
    expect(help.stdout).toContain("--dry-run");
    expect(all.stdout).toContain("kubler stop --project P --environment E");
  }, 30_000);

  it("refuses an environment Kubler does not manage, publishing nothing", async () => {
    const unknown = await runKubler(env, "stop", "--project", PROJECT, "--environment", "review/nope");
    expect(unknown.code).toBe(1);
    expect(unknown.stderr).toContain(
      `kubler: not stopping review/nope of ${PROJECT}: Kubler manages no such environment on the embedded cluster`,
    );
    expect(unknown.stderr).toContain(`no namespace ${namespaceFor(PROJECT, "review/nope")}`);
    expect(unknown.stderr).toContain("nothing was published");
    expect(unknown.stderr).not.toMatch(NO_STACK);
    const usage = await runKubler(env, "stop", "--environment", ENVIRONMENT);
    expect(usage.code).toBe(2);
    expect(usage.stderr).toContain("kubler stop: --project and --environment are required");
    expect(usage.stderr).toContain("\nusage: kubler stop");
    const local = await runKubler(
      env,
      "stop",
      "--project",
      PROJECT,
      "--environment",
      ENVIRONMENT,
      "--table",
      "t",
    );
    expect(local.code).toBe(2);
    expect(local.stderr).toContain("kubler stop: --table and --bus are for stopping in AWS: add --aws");
    expect(stops()).toEqual([]);
  }, 60_000);

  it("stops the deployed sample environment: namespace gone, environment.stop audited with its reason", async () => {
    const deployed = await runKubler(env, "deploy", "--sha", "abcdef0123456789abcdef0123456789abcdef01");
    expect(deployed.code).toBe(0);
    const finished = await waitForLine(events, (e) => e["detail-type"] === "Deploy Finished");
    expect(finished?.detail).toMatchObject({ status: "succeeded", environment: ENVIRONMENT });

    const dry = await runKubler(env, "stop", "--project", PROJECT, "--environment", ENVIRONMENT, "--dry-run");
    expect(dry.code).toBe(0);
    expect(dry.stdout).toContain(
      `Dry run: nothing is changed. Would stop ${ENVIRONMENT} of ${PROJECT} (project 2 at https://gitlab.example.com), namespace ${namespaceFor(PROJECT, ENVIRONMENT)}`,
    );
    expect(stops()).toEqual([]);

    const stopped = await runKubler(env, "stop", "--project", PROJECT, "--environment", ENVIRONMENT);
    expect(stopped.code).toBe(0);
    expect(stopped.stdout).toMatch(/^Environment Stop Requested \S+ \(reason stopped\)/);
    expect(stopped.stdout).toContain("npx kubler audit --action environment.stop");
    const operator = `local:${userInfo().username}`;
    expect(stopped.stdout).toContain(`Requested by ${operator} `);
    const audit = await waitForLine(
      join(dataDir, "audit.jsonl"),
      (a) => a.action === "environment.stop" && a.outcome === "success",
    );
    expect(audit).toMatchObject({
      function: "cleanup-environments",
      reason: "deleted (stopped)",
      subject: {
        environment: ENVIRONMENT,
        namespace: namespaceFor(PROJECT, ENVIRONMENT),
        stopReason: "stopped",
      },
      // Who stopped it: the operator, as kubler audit's WHO column shows.
      actor: { function: "cleanup-environments", operator },
    });
    expect(String(audit?.correlationId)).toMatch(/^kubler-stop-/);
    const who = await runKubler(env, "audit", "--action", "environment.stop", "--local");
    expect(who.code).toBe(0);
    expect(who.stdout).toMatch(new RegExp(`environment\\.stop\\s+success\\s+${operator}\\s+${PROJECT}`));
    // Read from the namespace, not asked of the operator: the project id and instance of the deploy.
    expect(stops().map((e) => e.detail)).toEqual([
      {
        correlationId: audit?.correlationId,
        gitlab: { instance: "https://gitlab.example.com", projectId: 2, projectPath: PROJECT },
        environment: ENVIRONMENT,
        reason: "stopped",
        requestedBy: operator,
      },
    ]);
    const listed = await runKubler(env, "environments", "--json");
    expect(listed).toMatchObject({ code: 0, stdout: "" });

    // The runtime recorded the stop: a deploy GitLab asked for before it (a late build) is refused.
    const { token } = readLocalSecrets(dataDir) ?? {};
    const late = await fetch(`${runtime.url}/local/events`, {
      method: "POST",
      headers: { "content-type": "application/json", "x-gitlab-token": token ?? "" },
      body: JSON.stringify({
        detailType: "Deploy Requested",
        detail: {
          correlationId: "late-1",
          gitlab: { instance: "https://gitlab.example.com", projectId: 2, projectPath: PROJECT },
          environment: ENVIRONMENT,
          sha: "1234567890123456789012345678901234567890",
          ref: "feature/booking-validation",
          pipelineId: 1,
          mrIid: null,
          factAt: new Date(Date.now() - 60_000).toISOString(),
        },
      }),
    });
    expect(late.status).toBe(202);
    const refused = await waitForLine(
      events,
      (e) =>
        e["detail-type"] === "Deploy Finished" &&
        (e.detail as { correlationId?: unknown }).correlationId === "late-1",
    );
    expect(refused?.detail).toMatchObject({
      status: "superseded",
      reason: expect.stringMatching(/^stopped: /),
    });
  }, 90_000);
});

describe("kubler stop --aws (process, fake AWS endpoint)", () => {
  const GITLAB = { instance: "https://gitlab.example.com", projectId: 15, projectPath: "group/app" };
  const ENVIRONMENT = "review/feature-x";
  const TABLE = "Kubler-DedupeTable-ABC";
  const dir = mkdtempSync(join(tmpdir(), "kubler-stop-aws-"));
  const kubeconfig = join(dir, "kubeconfig");
  const fakes: FakeAws[] = [];
  let k8s: MemoryKubernetes;

  beforeAll(async () => {
    k8s = await startMemoryKubernetes();
    writeFileSync(kubeconfig, k8s.kubeconfig);
    await seed(namespaceFor(GITLAB.projectPath, ENVIRONMENT), ENVIRONMENT);
  });
  afterAll(async () => {
    await Promise.all(fakes.map((aws) => aws.close()));
    await k8s?.close();
  });

  /** A managed environment of `gitlab` in `namespace`, as a deploy leaves it, through the real adapter. */
  async function seed(namespace: string, environment: string, gitlab = GITLAB): Promise<void> {
    const cluster = createKubernetesCluster({ kubeconfig: k8s.kubeconfig });
    await seedManagedEnvironment(cluster, { namespace, gitlab, environment });
    cluster.close();
  }

  /** STS's GetCallerIdentity, which kubler stop --aws reads AWS's clock from, then `fn`'s answers. */
  function answering(aws: FakeAws, fn: AwsAnswer = () => undefined): void {
    aws.answer((call) => (call.operation === "GetCallerIdentity" ? CALLER_IDENTITY : fn(call)));
  }

  async function fakeAws(): Promise<FakeAws> {
    const aws = await startFakeAws();
    answering(aws);
    fakes.push(aws);
    return aws;
  }

  /** The operator's shell: the stack's region and table, keys of their own, nothing from this machine's AWS config. */
  function awsEnv(aws: FakeAws, overrides: NodeJS.ProcessEnv = {}): NodeJS.ProcessEnv {
    return {
      ...process.env,
      KUBLER_DATA_DIR: dir,
      KUBECONFIG: kubeconfig,
      AWS_ENDPOINT_URL: aws.url,
      AWS_REGION: "eu-west-1",
      AWS_DEFAULT_REGION: undefined,
      AWS_ACCESS_KEY_ID: "AKIDOPERATOR",
      AWS_SECRET_ACCESS_KEY: "operator-secret",
      AWS_SESSION_TOKEN: "",
      AWS_PROFILE: "",
      AWS_CONFIG_FILE: join(dir, "no-aws-config"),
      AWS_SHARED_CREDENTIALS_FILE: join(dir, "no-aws-credentials"),
      KUBLER_DEDUPE_TABLE: TABLE,
      KUBLER_EVENT_BUS_NAME: "",
      ...overrides,
    };
  }

  const stopArgsFor = (environment: string, project = GITLAB.projectPath) => [
    "stop",
    "--aws",
    "--project",
    project,
    "--environment",
    environment,
  ];
  const stopArgs = stopArgsFor(ENVIRONMENT);

  /** What plan-steps writes when GitLab closes the merge request of the same environment. */
  async function planStepsStopRecord(aws: FakeAws): Promise<Record<string, unknown>> {
    const clock = new FixedClock(new Date());
    const client = new DynamoDBClient({
      endpoint: aws.url,
      region: "eu-west-1",
      credentials: { accessKeyId: "AKIDPLANSTEPS", secretAccessKey: "s" },
    });
    const fact: GitlabFact = {
      detailType: "Merge Request",
      detail: {
        correlationId: "mr-close-1",
        gitlab: GITLAB,
        action: "close",
        iid: 7,
        state: "closed",
        sourceBranch: "feature-x",
        targetBranch: "main",
        sourceProjectId: GITLAB.projectId,
        lastCommitSha: "a".repeat(40),
        oldrev: null,
        url: null,
        user: "dev",
      },
    };
    const publisher = new RecordingPublisher();
    await planStepsFor(
      {
        manifests: {
          readManifest: async () =>
            'version: 1\ndeploy: { manifests: deploy/ }\nenvironments:\n  - { name: "review/{branch}", on: merge_request }\n',
          readDefaultBranchManifest: async () =>
            'version: 1\ndeploy: { manifests: deploy/ }\nenvironments:\n  - { name: "review/{branch}", on: merge_request }\n',
          readDirectory: async () => new Map(),
        },
        publisher,
        dedupe: new MemoryDedupeStore(clock),
        stops: new DynamoDbEnvironmentStops({ client, tableName: TABLE, clock }),
        audit: new RecordingAuditLog(),
        clock,
      },
      fact,
      clock.now(),
    );
    client.destroy();
    expect(publisher.entries.map((e) => e.detailType)).toEqual(["Environment Stop Requested"]);
    const [put] = aws.callsOf("dynamodb.PutItem");
    return put?.body ?? {};
  }

  it("records the stop plan-steps would record, then puts the catalog's event on the bus", async () => {
    const aws = await fakeAws();
    const before = Date.now();
    const result = await runKubler(awsEnv(aws), ...stopArgs);
    const after = Date.now();
    expect(result.stderr).not.toMatch(NO_STACK);
    expect(result.code).toBe(0);

    const operations = aws.calls.map((c) => `${c.service}.${c.operation}`);
    expect(operations).toEqual(["sts.GetCallerIdentity", "dynamodb.PutItem", "events.PutEvents"]);
    const [, put, events] = aws.calls;
    expect(put?.region).toBe("eu-west-1");
    expect(put?.accessKeyId).toBe("AKIDOPERATOR");

    const key = environmentStopKey(GITLAB, ENVIRONMENT);
    const item = put?.body.Item as Record<string, { S?: string; N?: string }>;
    expect(item.pk?.S).toBe(key);
    const factAt = Number(item.factAt?.N);
    expect(factAt).toBeGreaterThanOrEqual(before);
    expect(factAt).toBeLessThanOrEqual(after);
    expect(Number(item.expiresAt?.N)).toBeGreaterThanOrEqual(
      Math.floor(before / 1000) + STOP_RECORD_TTL_SECONDS,
    );

    // The same item, key and condition as plan-steps' own stop of this environment.
    const planned = await planStepsStopRecord(await fakeAws());
    expect(planned.TableName).toBe(put?.body.TableName);
    expect((planned.Item as Record<string, { S?: string }>).pk?.S).toBe(key);
    expect(Object.keys(planned.Item as object).sort()).toEqual(Object.keys(item).sort());
    expect(planned.ConditionExpression).toBe(put?.body.ConditionExpression);

    const entries = events?.body.Entries as Record<string, string>[];
    expect(entries).toHaveLength(1);
    const [entry] = entries;
    expect(entry).toMatchObject({
      EventBusName: "kubler",
      Source: sourceOf("Environment Stop Requested"),
      DetailType: "Environment Stop Requested",
    });
    expect(entry?.Source).toBe("kubler");
    const detail = validateDetail("Environment Stop Requested", JSON.parse(entry?.Detail ?? "null"));
    expect(detail).toMatchObject({ gitlab: GITLAB, environment: ENVIRONMENT, reason: "stopped" });
    // Who: the ARN STS answered for the operator's credentials, from the call that read AWS's clock.
    expect(detail.requestedBy).toBe("aws:arn:aws:iam::123456789012:user/operator");
    expect(result.stdout).toContain("Requested by aws:arn:aws:iam::123456789012:user/operator ");

    expect(result.stdout).toContain(`Recorded the stop in ${TABLE} (eu-west-1): key ${key}`);
    expect(result.stdout).toContain("Put Environment Stop Requested evt-1 (reason stopped)");
    expect(result.stdout).toContain(namespaceFor(GITLAB.projectPath, ENVIRONMENT));
    expect(result.stdout).toContain(
      `npx kubler audit --action environment.stop --environment ${ENVIRONMENT} --since 1h`,
    );
  }, 60_000);

  it("takes --table, --bus and --reason, and changes nothing with --dry-run", async () => {
    const aws = await fakeAws();
    const dry = await runKubler(
      awsEnv(aws, { KUBLER_DEDUPE_TABLE: "" }),
      ...stopArgs,
      "--table",
      "other-table",
      "--bus",
      "other-bus",
      "--reason",
      "merged",
      "--dry-run",
    );
    expect(dry.code).toBe(0);
    expect(dry.stdout).toContain("Dry run: nothing is changed.");
    expect(dry.stdout).toContain("other-table");
    expect(dry.stdout).toContain("(reason merged) on bus other-bus");
    expect(aws.calls).toEqual([]);

    const real = await runKubler(awsEnv(aws), ...stopArgs, "--bus", "other-bus", "--reason", "merged");
    expect(real.code).toBe(0);
    const [call] = aws.callsOf("events.PutEvents");
    const [entry] = (call?.body.Entries ?? []) as Record<string, string>[];
    expect(entry?.EventBusName).toBe("other-bus");
    expect(JSON.parse(entry?.Detail ?? "{}").reason).toBe("merged");
  }, 60_000);

  it("stops a namespace from before the name annotation (its slug label alone), as cleanup takes it", async () => {
    const older = "review/older-one";
    const namespace = namespaceFor(GITLAB.projectPath, older);
    await seed(namespace, older);
    const seeded = k8s.store.get("v1", "Namespace", undefined, namespace);
    delete seeded?.metadata.annotations?.["kubler.dev/environment-name"];
    if (seeded) k8s.store.put(seeded);
    expect(k8s.store.get("v1", "Namespace", undefined, namespace)?.metadata.labels).toMatchObject({
      "kubler.dev/environment": "review-older-one",
    });

    const aws = await fakeAws();
    const result = await runKubler(awsEnv(aws), ...stopArgsFor(older));
    expect(result.stderr).not.toMatch(NO_STACK);
    expect(result.code).toBe(0);
    const [call] = aws.callsOf("events.PutEvents");
    const [entry] = (call?.body.Entries ?? []) as Record<string, string>[];
    // The environment's own name: cleanup finds the namespace by it, not by the slug.
    expect(JSON.parse(entry?.Detail ?? "{}").environment).toBe(older);
  }, 60_000);

  it("prints its next command with a GitLab environment name of spaces and $ quoted for the shell", async () => {
    // GitLab's environment names may hold spaces, $, { and }.
    const spaced = "Staging EU $HOME";
    await seed(namespaceFor(GITLAB.projectPath, spaced), spaced);
    const aws = await fakeAws();
    const result = await runKubler(awsEnv(aws), ...stopArgsFor(spaced));
    expect(result.code).toBe(0);
    expect(result.stdout).toContain(
      "npx kubler audit --action environment.stop --environment 'Staging EU $HOME' --since 1h",
    );
  }, 60_000);

  it("prints no terminal control the namespace's GitLab instance carries (X-Gitlab-Instance is Latin-1)", async () => {
    // U+009B is CSI to a terminal, U+202E reverses what follows: neither is JSON-escaped.
    const hostile = "https://gitlab.example.com\u009b2J\u202e";
    const environment = "review/hostile-instance";
    await seed(namespaceFor(GITLAB.projectPath, environment), environment, { ...GITLAB, instance: hostile });
    const aws = await fakeAws();
    const [dryRun, mismatch] = await Promise.all([
      runKubler(awsEnv(aws), ...stopArgsFor(environment), "--dry-run"),
      runKubler(awsEnv(aws), ...stopArgsFor(environment), "--instance", GITLAB.instance),
    ]);
    expect(dryRun.code).toBe(0);
    expect(dryRun.stdout).toContain("at https://gitlab.example.com\\x9b2J\\u202e)");
    expect(mismatch.code).toBe(1);
    expect(mismatch.stderr).toContain("is GitLab instance");
    for (const output of [dryRun.stdout, dryRun.stderr, mismatch.stderr])
      expect(output).not.toMatch(/[\u009b\u202e]/);
    expect(aws.calls).toEqual([]);
  }, 60_000);

  it("refuses a namespace another environment of the project holds (a hash collision), sending nothing", async () => {
    const colliding = "review/colliding";
    const namespace = namespaceFor(GITLAB.projectPath, colliding);
    // Production's namespace under the name the branch's hash gives, as a found branch name would make it.
    await seed(namespace, "production");

    const aws = await fakeAws();
    const result = await runKubler(awsEnv(aws), ...stopArgsFor(colliding));
    expect(result.code).toBe(1);
    expect(result.stderr).toContain(`namespace ${namespace} is environment "production", not "${colliding}"`);
    expect(result.stderr).not.toMatch(NO_STACK);
    expect(aws.calls).toEqual([]);
  }, 60_000);

  it("takes --instance with a trailing slash as the webhook keys GitLab's instance", async () => {
    const aws = await fakeAws();
    // A namespace that does not say which instance it came from: the stop is keyed by --instance.
    const bare = "review/no-instance";
    const name = namespaceFor(GITLAB.projectPath, bare);
    await seed(name, bare);
    const seeded = k8s.store.get("v1", "Namespace", undefined, name);
    if (!seeded) throw new Error(`${name} was not seeded`);
    delete seeded.metadata.annotations?.["kubler.dev/gitlab-instance"];
    k8s.store.put(seeded);

    const slash = ["--instance", `${GITLAB.instance}/`, "--dry-run"];
    const [recorded, given] = await Promise.all([
      runKubler(awsEnv(aws), ...stopArgs, ...slash),
      runKubler(awsEnv(aws), ...stopArgsFor(bare), ...slash),
    ]);
    // Not refused against the namespace's https://gitlab.example.com.
    expect(recorded).toMatchObject({ code: 0 });
    expect(recorded.stdout).toContain(`key ${environmentStopKey(GITLAB, ENVIRONMENT)})`);
    // Keyed as GitLab's events of the project are, not by the text typed.
    expect(given).toMatchObject({ code: 0 });
    expect(given.stdout).toContain(`(project 15 at ${GITLAB.instance}),`);
    expect(given.stdout).toContain(`key ${environmentStopKey(GITLAB, bare)})`);
    expect(aws.calls).toEqual([]);
  }, 60_000);

  it("names what to set: no table, no region, an unknown environment (nothing sent)", async () => {
    const aws = await fakeAws();
    const [noTable, noRegion, emptyRegion, unknown, badReason] = await Promise.all([
      runKubler(awsEnv(aws, { KUBLER_DEDUPE_TABLE: "" }), ...stopArgs),
      // Unset: the SDK's own resolution finds none (this shell has no config file either).
      runKubler(awsEnv(aws, { AWS_REGION: undefined, AWS_DEFAULT_REGION: undefined }), ...stopArgs),
      runKubler(awsEnv(aws, { AWS_REGION: "" }), ...stopArgs),
      runKubler(awsEnv(aws), ...stopArgsFor("review/other")),
      runKubler(awsEnv(aws), ...stopArgs, "--reason", "bored"),
    ]);
    expect(noTable.code).toBe(1);
    expect(noTable.stderr).toContain(
      "no dedupe table to record the stop in: set KUBLER_DEDUPE_TABLE or --table to the stack's DedupeTableName output",
    );
    for (const result of [noRegion, emptyRegion]) {
      expect(result.code).toBe(1);
      expect(result.stderr).toContain("no AWS region");
      expect(result.stderr).toContain("set AWS_REGION to the stack's region");
    }
    expect(unknown.code).toBe(1);
    expect(unknown.stderr).toContain("Kubler manages no such environment");
    expect(badReason.code).toBe(2);
    expect(badReason.stderr).toContain(
      "--reason must be one of stopped, merged, closed, branch_deleted, expired",
    );
    expect(badReason.stderr).toContain("\nusage: kubler stop");
    for (const result of [noTable, noRegion, emptyRegion, unknown, badReason])
      expect(result.stderr).not.toMatch(NO_STACK);
    expect(aws.calls).toEqual([]);
  }, 60_000);

  it("names the AWS_PROFILE that gives no credentials, rather than asking to set the one already set", async () => {
    const aws = await fakeAws();
    const result = await runKubler(
      awsEnv(aws, { AWS_PROFILE: "nope", AWS_ACCESS_KEY_ID: undefined, AWS_SECRET_ACCESS_KEY: undefined }),
      ...stopArgs,
    );
    expect(result.code).toBe(1);
    expect(result.stderr).toContain('no AWS credentials from AWS_PROFILE "nope"');
    expect(result.stderr).not.toContain("set AWS_PROFILE, or");
    expect(result.stderr).not.toMatch(NO_STACK);
    expect(aws.calls).toEqual([]);
  }, 60_000);

  it("says which permission is missing, and publishes nothing when the record fails", async () => {
    const denied = await fakeAws();
    answering(denied, (call) =>
      call.operation === "PutItem"
        ? {
            status: 400,
            type: "AccessDeniedException",
            message: "not authorized to perform dynamodb:PutItem",
          }
        : undefined,
    );
    const noBus = await fakeAws();
    answering(noBus, (call) =>
      call.operation === "PutEvents"
        ? { status: 400, type: "ResourceNotFoundException", message: "Event bus kubler does not exist." }
        : undefined,
    );
    const [refused, unpublished] = await Promise.all([
      runKubler(awsEnv(denied), ...stopArgs),
      runKubler(awsEnv(noBus), ...stopArgs),
    ]);
    expect(refused.code).toBe(1);
    expect(refused.stderr).toContain(
      `AccessDeniedException: your AWS identity may not dynamodb:PutItem on table ${TABLE}`,
    );
    expect(refused.stderr).toContain("nothing was changed");
    expect(denied.callsOf("events.PutEvents")).toEqual([]);

    expect(unpublished.code).toBe(1);
    expect(unpublished.stderr).toContain("the stop is recorded, but the request did not reach the bus");
    expect(unpublished.stderr).toContain(
      "no bus kubler in this region: set KUBLER_EVENT_BUS_NAME or --bus to the stack's EventBusName output",
    );
    expect(noBus.callsOf("dynamodb.PutItem")).toHaveLength(1);
    for (const result of [refused, unpublished]) {
      expect(result.stderr).not.toMatch(NO_STACK);
      expect(`${result.stdout}${result.stderr}`).not.toContain("operator-secret");
    }

    // Re-running once the bus is there: recorded again (harmless), put once, and says so.
    answering(noBus);
    const again = await runKubler(awsEnv(noBus), ...stopArgs);
    expect(again.code).toBe(0);
    expect(noBus.callsOf("dynamodb.PutItem")).toHaveLength(2);
    expect(noBus.callsOf("events.PutEvents").at(-1)?.body.Entries).toHaveLength(1);
  }, 60_000);

  it("refuses to read the local runtime's embedded cluster for a stop in AWS, sending nothing", async () => {
    const aws = await fakeAws();
    const local = mkdtempSync(join(tmpdir(), "kubler-stop-embedded-"));
    // What a running (or killed) `npm start` leaves: its embedded cluster's kubeconfig.
    writeFileSync(join(local, "kubeconfig"), k8s.kubeconfig);
    const result = await runKubler(awsEnv(aws, { KUBECONFIG: "", KUBLER_DATA_DIR: local }), ...stopArgs);
    expect(result.code).toBe(1);
    expect(result.stderr).toContain("--aws reads the environment from the stack's cluster: set KUBECONFIG");
    expect(result.stderr).not.toMatch(NO_STACK);
    expect(aws.calls).toEqual([]);
  }, 60_000);

  it("without --aws but with KUBECONFIG set and no local runtime, points at --aws, not only at npm start", async () => {
    const aws = await fakeAws();
    const local = ["stop", "--project", GITLAB.projectPath, "--environment", ENVIRONMENT];
    const none = { KUBLER_WEBHOOK_SECRET: "", KUBLER_WEBHOOK_SIGNING_KEY: "" };
    const [noSecret, unreachable] = await Promise.all([
      runKubler(awsEnv(aws, none), ...local),
      runKubler(awsEnv(aws, { ...none, KUBLER_WEBHOOK_SECRET: "a-secret", PORT: "1" }), ...local),
    ]);
    for (const result of [noSecret, unreachable]) {
      expect(result.code).toBe(1);
      expect(result.stderr).toContain(
        "to stop it in the deployed stack KUBECONFIG's cluster belongs to, add --aws",
      );
      expect(result.stderr).not.toMatch(NO_STACK);
    }
    expect(unreachable.stderr).toContain("could not reach the local runtime");
    expect(aws.calls).toEqual([]);
  }, 60_000);

  it("ends, saying AWS did not answer, when its endpoint accepts the connection and never answers", async () => {
    // A proxy or a VPC endpoint that takes the connection and says nothing: without a time limit
    // the command waited silently for ever.
    const sockets: Socket[] = [];
    const silent = createServer((socket) => sockets.push(socket)).listen(0, "127.0.0.1");
    await once(silent, "listening");
    const { port } = silent.address() as { port: number };
    try {
      const aws = await fakeAws();
      const result = await runKubler(
        awsEnv(aws, { AWS_ENDPOINT_URL: `http://127.0.0.1:${port}` }),
        ...stopArgs,
      );
      expect(result.code).toBe(1);
      expect(result.stderr).toContain("AWS did not answer");
      expect(result.stderr).toContain("nothing was changed");
      expect(result.stderr).not.toMatch(NO_STACK);
    } finally {
      for (const socket of sockets) socket.destroy();
      silent.close();
    }
  }, 60_000);

  it("times the stop by AWS's clock, not a skewed laptop's", async () => {
    const aws = await fakeAws();
    const env = awsEnv(aws);
    const saved = { ...process.env };
    // The SDK reads region, credentials and endpoint from the process, as in the command's own.
    Object.assign(process.env, Object.fromEntries(Object.entries(env).filter(([, v]) => v !== undefined)));
    delete process.env.AWS_DEFAULT_REGION;
    const lines: string[] = [];
    const ahead = 3_600_000;
    const before = Date.now();
    try {
      const code = await runStopCommand(stopArgs.slice(1), {
        print: (line) => lines.push(line),
        env,
        context: () => ({
          config: loadLocalConfig(env),
          token: null,
          signingKey: null,
          print: (line) => lines.push(line),
        }),
        now: () => new Date(Date.now() + ahead),
      });
      expect(code).toBe(0);
    } finally {
      for (const name of Object.keys(process.env)) if (!(name in saved)) delete process.env[name];
      Object.assign(process.env, saved);
    }
    const after = Date.now();
    const item = aws.callsOf("dynamodb.PutItem")[0]?.body.Item as Record<string, { N?: string }>;
    // The Date header has whole seconds.
    expect(Number(item.factAt?.N)).toBeGreaterThanOrEqual(before - 1000);
    expect(Number(item.factAt?.N)).toBeLessThanOrEqual(after);
    expect(Number(item.expiresAt?.N)).toBeLessThanOrEqual(Math.ceil(after / 1000) + STOP_RECORD_TTL_SECONDS);
    expect(lines.join("\n")).toMatch(/This machine's clock is 360[01] s ahead of AWS's/);
  }, 60_000);

  it("its record makes deploy-environment refuse a deploy GitLab asked for before it, and take a later one", async () => {
    const PROJECT = "flightjs/flight-management";
    const SAMPLE = "review/feature/booking-validation";
    const sample = { instance: "https://gitlab.example.com", projectId: 2, projectPath: PROJECT };
    await seed(namespaceFor(PROJECT, SAMPLE), SAMPLE, sample);
    const aws = await fakeAws();
    const stopped = await runKubler(awsEnv(aws), ...stopArgsFor(SAMPLE, PROJECT));
    expect(stopped.code).toBe(0);
    const item = aws.callsOf("dynamodb.PutItem")[0]?.body.Item as Record<string, unknown>;
    const stopAt = Number((item.factAt as { N: string }).N);

    // The stack's table as deploy-environment reads it: the item the command wrote.
    answering(aws, (call) => (call.operation === "GetItem" ? { Item: item } : undefined));
    const client = new DynamoDBClient({
      endpoint: aws.url,
      region: "eu-west-1",
      credentials: { accessKeyId: "AKIDDEPLOY", secretAccessKey: "s" },
    });
    // Where cleanup has deleted the environment: a cluster of its own.
    const cluster = await startMemoryKubernetes({ rolloutDelayMs: 20, namespaceFinalizeMs: 10 });
    try {
      const { deps } = deployTestDeps(cluster, "kubler-stop-deploy-");
      const stops = new DynamoDbEnvironmentStops({ client, tableName: TABLE, clock: systemClock });
      const request = (factAt: number, sha: string, pipelineId: number) => ({
        detailType: "Deploy Requested" as const,
        time: new Date(factAt + 60_000),
        detail: {
          correlationId: `c-${pipelineId}`,
          gitlab: sample,
          environment: SAMPLE,
          sha,
          ref: "feature/booking-validation",
          pipelineId,
          mrIid: 16,
          factAt: new Date(factAt).toISOString(),
        },
      });
      const late = await deployEnvironment({ ...deps, stops }, request(stopAt - 60_000, "1".repeat(40), 100));
      expect(late).toMatchObject({ kind: "ignored", reason: expect.stringContaining("stopped") });
      expect(deps.publisher.entries.map((e) => e.detail)).toMatchObject([{ status: "superseded" }]);
      expect(cluster.store.get("v1", "Namespace", undefined, namespaceFor(PROJECT, SAMPLE))).toBeUndefined();
      // A push after the operator's stop deploys again: the stop does not block the environment.
      const pushed = await deployEnvironment({ ...deps, stops }, request(stopAt + 2000, "2".repeat(40), 101));
      expect(pushed.kind).toBe("succeeded");
      expect(aws.callsOf("dynamodb.GetItem").map((c) => (c.body.Key as { pk: { S: string } }).pk.S)).toEqual([
        environmentStopKey(sample, SAMPLE),
        environmentStopKey(sample, SAMPLE),
      ]);
    } finally {
      client.destroy();
      await cluster.close();
    }
  }, 60_000);
});
