/**
 * The bundles as `npm run synth` builds them (real esbuild through CDK): each exists, is an ES module
 * with the createRequire banner, has its source map, and fits its size budget; the webhook carries no
 * Kubernetes client. Sizes only: import timings are in `npm run bench` (Lambda bundles table).
 * The webhook's bundle is also run as Lambda runs it: a fresh Node process imports `index.mjs` with the
 * execution role's credentials in its environment and only the secret's ARN for configuration, then
 * handles a Function URL event; a local HTTP server answers as Secrets Manager, DynamoDB and
 * EventBridge (through `AWS_ENDPOINT_URL`), so the test sees what the bundle sends.
 */
import { execFile } from "node:child_process";
import { existsSync, mkdtempSync, readFileSync, rmSync, statSync } from "node:fs";
import { createServer, type IncomingHttpHeaders, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { promisify } from "node:util";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { FUNCTION_SPECS } from "../../infra/function-specs.js";
import { ESM_REQUIRE_BANNER } from "../../infra/lambda-bundle.js";
import { FUNCTIONS, type FunctionName } from "../../shared/domain/catalog.js";
import { type BundledAssets, POLICY_FILE, synthBundled } from "./stack-fixture.js";

let bundled: BundledAssets;
let bundle: string;
let server: Server;
let endpoint: string;
const calls: Call[] = [];
const run = promisify(execFile);
const SECRET_ARN = "arn:aws:secretsmanager:eu-west-1:123456789012:secret:kubler/webhook-AbCdEf";
const TOKEN = "token-from-secrets-manager";
const ACCESS_KEY = "AKIDEXECUTIONROLE";

interface Call {
  target: string;
  authorization: string;
  body: Record<string, unknown>;
}

function answer(target: string, body: Record<string, unknown>): unknown {
  switch (target) {
    case "secretsmanager.GetSecretValue":
      return {
        ARN: body.SecretId,
        Name: "kubler/webhook",
        SecretString: JSON.stringify({ KUBLER_WEBHOOK_SECRET: TOKEN }),
      };
    case "DynamoDB_20120810.PutItem":
      return {};
    case "AWSEvents.PutEvents":
      return { FailedEntryCount: 0, Entries: [{ EventId: "evt-1" }] };
    default:
      return null;
  }
}

/**
 * Over budget when the stack landed, through code outside infra/ (issue 6's report names the cause
 * and the fix). Each is asserted to be STILL over, so the fix fails this test until its entry is
 * deleted here and the budget is enforced again. Do not add to this list.
 */
const KNOWN_OVER_BUDGET: Partial<Record<FunctionName, string>> = {};

beforeAll(async () => {
  bundled = synthBundled(mkdtempSync(join(tmpdir(), "kubler-synth-")));
  bundle = join(bundled.assets["gitlab-webhook"], "index.mjs");
  server = createServer((req, res) => {
    let text = "";
    req.on("data", (chunk: Buffer) => {
      text += chunk.toString("utf8");
    });
    req.on("end", () => {
      const headers: IncomingHttpHeaders = req.headers;
      const target = String(headers["x-amz-target"]);
      const body = JSON.parse(text || "{}") as Record<string, unknown>;
      calls.push({ target, authorization: String(headers.authorization), body });
      const reply = answer(target, body);
      res.writeHead(reply ? 200 : 400, { "content-type": "application/x-amz-json-1.1" });
      res.end(JSON.stringify(reply ?? { __type: "UnknownOperationException" }));
    });
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  endpoint = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
}, 300_000);

afterAll(async () => {
  await new Promise((resolve) => server?.close(resolve));
  if (bundled) rmSync(bundled.outdir, { recursive: true, force: true });
});

/** The packages a bundle was built from, read from its source map. */
function packagesOf(dir: string): Set<string> {
  const map = JSON.parse(readFileSync(join(dir, "index.mjs.map"), "utf8")) as { sources: string[] };
  return new Set(
    map.sources.flatMap((source) => {
      const match = /node_modules\/((?:@[^/]+\/)?[^/]+)/.exec(source);
      return match ? [match[1] as string] : [];
    }),
  );
}

describe("Lambda bundles (real esbuild, as synthesized)", () => {
  it.each(FUNCTIONS.map((name) => [name]))("%s: an ES module with its source map, within budget", (name) => {
    const dir = bundled.assets[name];
    const file = join(dir, "index.mjs");
    expect(existsSync(file), file).toBe(true);
    expect(existsSync(join(dir, "index.mjs.map"))).toBe(true);
    const code = readFileSync(file, "utf8");
    expect(code.startsWith(ESM_REQUIRE_BANNER)).toBe(true);
    expect(code).toMatch(/export\s*\{[^}]*\bhandler\b[^}]*\}/);
    expect(code.trimEnd().endsWith("//# sourceMappingURL=index.mjs.map")).toBe(true);
    const kb = statSync(file).size / 1024;
    const budget = FUNCTION_SPECS[name].bundleBudgetKb;
    if (KNOWN_OVER_BUDGET[name]) {
      expect(kb, `${name} is within budget now: delete it from KNOWN_OVER_BUDGET`).toBeGreaterThan(budget);
    } else {
      expect(kb, `${name} is ${kb.toFixed(1)} KB`).toBeLessThanOrEqual(budget);
    }
    // The AWS SDK ships inside the bundle, not from the runtime.
    if (FUNCTION_SPECS[name].grants.length > 0) expect(packagesOf(dir)).toContain("@aws-sdk/core");
  });

  it("keeps the Kubernetes client out of the webhook, and in the functions that talk to a cluster", () => {
    expect(packagesOf(bundled.assets["gitlab-webhook"])).not.toContain("@kubernetes/client-node");
    for (const name of FUNCTIONS.filter((n) => FUNCTION_SPECS[n].grants.includes("kubeconfig"))) {
      expect(packagesOf(bundled.assets[name]), name).toContain("@kubernetes/client-node");
    }
  });

  it("ships the execution role's env credentials, not the SDK's whole credential chain", () => {
    for (const name of FUNCTIONS.filter((n) => FUNCTION_SPECS[n].grants.length > 0)) {
      const packages = packagesOf(bundled.assets[name]);
      expect(packages, name).toContain("@aws-sdk/credential-provider-env");
      for (const unreachable of ["@aws-sdk/credential-provider-ini", "@aws-sdk/credential-provider-sso"]) {
        expect(packages, name).not.toContain(unreachable);
      }
    }
  });

  it("ships the credentials policy inside job-credentials, and nowhere else", () => {
    const copied = join(bundled.assets["job-credentials"], "credentials-policy.yaml");
    expect(readFileSync(copied, "utf8")).toBe(readFileSync(POLICY_FILE, "utf8"));
    for (const name of FUNCTIONS.filter((n) => n !== "job-credentials")) {
      expect(existsSync(join(bundled.assets[name], "credentials-policy.yaml")), name).toBe(false);
    }
  });
});

describe("the gitlab-webhook bundle, run as Lambda runs it", () => {
  it("reads its token from Secrets Manager at start-up and publishes a delivery signed with the role's credentials", async () => {
    const fixture = readFileSync(join(import.meta.dirname, "../fixtures/gitlab/webhooks/push.json"), "utf8");
    const body = JSON.stringify((JSON.parse(fixture) as { payload: unknown }).payload);
    const event = {
      version: "2.0",
      rawPath: "/webhooks/gitlab",
      rawQueryString: "",
      headers: {
        "content-type": "application/json",
        "x-gitlab-event": "Push Hook",
        "x-gitlab-token": TOKEN,
        "idempotency-key": "bundle-run-1",
        "x-gitlab-instance": "https://gitlab.example.com",
      },
      requestContext: { http: { method: "POST", path: "/webhooks/gitlab", sourceIp: "127.0.0.1" } },
      body,
      isBase64Encoded: false,
    };
    const script = `const { handler } = await import(${JSON.stringify(bundle)});
      const result = await handler(${JSON.stringify(event)}, { awsRequestId: "req-1" });
      process.stdout.write("RESULT " + JSON.stringify(result) + "\\n");`;
    const home = mkdtempSync(join(tmpdir(), "kubler-home-"));
    const { stdout } = await run(process.execPath, ["--input-type=module", "-e", script], {
      // Only what Lambda sets: no profile, no ~/.aws, no webhook token in the environment.
      env: {
        PATH: process.env.PATH ?? "",
        HOME: home,
        AWS_REGION: "eu-west-1",
        AWS_ACCESS_KEY_ID: ACCESS_KEY,
        AWS_SECRET_ACCESS_KEY: "execution-role-secret",
        AWS_SESSION_TOKEN: "execution-role-session",
        AWS_ENDPOINT_URL: endpoint,
        KUBLER_WEBHOOK_CREDENTIALS_SECRET: SECRET_ARN,
        KUBLER_DEDUPE_TABLE: "kubler-dedupe",
        KUBLER_EVENT_BUS_NAME: "kubler",
      },
      timeout: 60_000,
    });
    rmSync(home, { recursive: true, force: true });
    const result = JSON.parse(stdout.split("RESULT ")[1] ?? "null") as { statusCode: number; body: string };
    expect(result.statusCode).toBe(202);
    expect(JSON.parse(result.body)).toMatchObject({ published: true, eventIds: ["evt-1"] });
    expect(calls.map((c) => c.target)).toEqual([
      "secretsmanager.GetSecretValue",
      "DynamoDB_20120810.PutItem",
      "AWSEvents.PutEvents",
      // The reservation, confirmed once the event is out.
      "DynamoDB_20120810.UpdateItem",
    ]);
    // What the store does is what the role's dedupe grant allows (test/infra/kubler-stack.test.ts).
    const granted = FUNCTION_SPECS["gitlab-webhook"].dedupe?.actions ?? [];
    for (const { target } of calls.filter((c) => c.target.startsWith("DynamoDB_20120810."))) {
      expect(granted).toContain(target.replace("DynamoDB_20120810.", ""));
    }
    expect(calls[0]?.body).toEqual({ SecretId: SECRET_ARN });
    for (const call of calls) expect(call.authorization).toContain(`Credential=${ACCESS_KEY}/`);
    expect(stdout).not.toContain(TOKEN);
  });
});
