import { describe, expect, it } from "vitest";
import type { LocalRuntime } from "../../cli/local-runtime.js";
import { createTerminalReporter, displayPath } from "../../cli/terminal-reporter.js";
import type { LocalConfig } from "../../shared/config.js";
import type { BusEnvelope, Route } from "../../shared/domain/catalog.js";
import { KubernetesUnavailableError } from "../../shared/errors.js";

describe("displayPath", () => {
  it("is relative under the working directory", () => {
    expect(displayPath("/work/app/.kubler", "/work/app")).toBe(".kubler");
    expect(displayPath(".kubler", "/work/app")).toBe(".kubler");
    expect(displayPath("/work/app", "/work/app")).toBe(".");
    // A child whose name starts with two dots is still inside.
    expect(displayPath("/work/app/..data", "/work/app")).toBe("..data");
  });

  it("is absolute outside it, instead of a climb of ../", () => {
    expect(displayPath("/tmp/kubler-x", "/work/app")).toBe("/tmp/kubler-x");
    expect(displayPath("../other", "/work/app")).toBe("/work/other");
  });
});

describe("the terminal reporter", () => {
  const SECRET = "configured-webhook-token-1f2e";
  const runtime = (generated: boolean) =>
    ({
      url: "http://127.0.0.1:8080",
      dataDir: "/tmp/kubler-data",
      generatedSecrets: generated ? { token: "t", signingKey: "whsec_k" } : null,
      consumers: [],
      environments: { description: "embedded" },
      jobCredentials: { issuer: () => "local", localIssuer: true, policyFile: "p.yaml", awsIssuer: "local" },
    }) as unknown as LocalRuntime;
  const config = (secrets: { tokens: string[]; signingKeys: string[] }) =>
    ({ host: "127.0.0.1", projectsDir: "/tmp/projects", webhook: { secrets } }) as unknown as LocalConfig;
  const banner = (generated: boolean, secrets = { tokens: [] as string[], signingKeys: [] as string[] }) => {
    const lines: string[] = [];
    createTerminalReporter((line) => lines.push(line)).started(runtime(generated), config(secrets));
    return lines.find((line) => line.includes("try it")) ?? "";
  };

  it("suggests a send that works with the secrets the runtime expects", () => {
    expect(banner(true)).toContain("npm run send -- merge_request   (in another terminal;");
    const tokenOnly = banner(false, { tokens: [SECRET], signingKeys: [] });
    expect(tokenOnly).toContain("npm run send -- merge_request --token");
    expect(tokenOnly).toContain("with the same KUBLER_WEBHOOK_SECRET exported");
    const signed = banner(false, { tokens: [SECRET], signingKeys: ["whsec_a2V5"] });
    expect(signed).not.toContain("--token");
    expect(signed).toContain("with the same KUBLER_WEBHOOK_SIGNING_KEY exported");
  });

  it("redacts the error of a retried delivery", () => {
    const lines: string[] = [];
    const reporter = createTerminalReporter((line) => lines.push(line));
    reporter.started(runtime(false), config({ tokens: [SECRET], signingKeys: [] }));
    const envelope = { id: "evt-12345678" } as unknown as BusEnvelope;
    const route = { target: "plan-steps" } as unknown as Route;
    reporter.bus.retrying?.(
      envelope,
      route,
      1,
      new Error(`refused ${SECRET} and glpat-abcdefghijklmnop1234`),
    );
    expect(lines.at(-1)).toMatch(
      /plan-steps failed on evt-1234 \(attempt 1\): Error: refused \[redacted\] and \[redacted\]$/,
    );
  });

  it("says what a consumer threw that is not an Error, and never fails on it", () => {
    const lines: string[] = [];
    const reporter = createTerminalReporter((line) => lines.push(line));
    reporter.started(runtime(false), config({ tokens: [SECRET], signingKeys: [] }));
    const envelope = { id: "evt-12345678" } as unknown as BusEnvelope;
    const route = { target: "plan-steps" } as unknown as Route;
    const bare = Object.assign(Object.create(null), { code: "E_BARE" });
    reporter.bus.retrying?.(envelope, route, 1, { statusCode: 502, authorization: `Bearer ${SECRET}` });
    expect(lines.at(-1)).toMatch(/\(attempt 1\): \{"statusCode":502,"authorization":"\[redacted\]"\}$/);
    // String() of an object with no prototype throws: the reporter itself failed on it.
    expect(() => reporter.bus.retrying?.(envelope, route, 2, bare)).not.toThrow();
    expect(lines.at(-1)).toMatch(/\(attempt 2\): \{"code":"E_BARE"\}$/);
  });

  it("prints no control character a payload carried: the operator's terminal would obey it", () => {
    const lines: string[] = [];
    const reporter = createTerminalReporter((line) => lines.push(line));
    reporter.started(runtime(false), config({ tokens: [SECRET], signingKeys: [] }));
    const before = lines.length;
    reporter.audit({
      audit: true,
      action: "plan.steps",
      outcome: "ignored",
      reason: "no kubler.yaml in mike/\u001b[2Jdiaspora at main\u001b[41m\nforged line \u202egnp.exe",
      actor: { function: "plan-steps" },
      subject: { project: "mike/\u001b[2Jdiaspora" },
      correlationId: "\u001b]0;title\u0007",
      gitlab: { instance: null, event: "Push Hook\u001b[8m", idempotencyKey: null, webhookUuid: null },
      function: "plan-steps",
      at: "2026-03-02T11:00:00.000Z",
    });
    reporter.bus.retrying?.(
      { id: "evt-12345678" } as unknown as BusEnvelope,
      { target: "plan-steps" } as unknown as Route,
      1,
      new Error("ref refs/heads/\u001b[2J not found"),
    );
    reporter.operationalError(
      "reconcile",
      new KubernetesUnavailableError("namespace kubler-\u001b[2J unreachable", 0),
    );
    const printed = lines.slice(before);
    expect(printed).toHaveLength(3);
    for (const line of printed) expect(line).not.toMatch(/[\p{Cc}\u202a-\u202e\u2066-\u2069]/u);
    expect(printed[0]).toContain(
      "Push Hook\\x1b[8m: ignored — no kubler.yaml in mike/\\x1b[2Jdiaspora at main\\x1b[41m\\x0aforged line \\u202egnp.exe  [\\x1b]0;titl]",
    );
    expect(printed[1]).toContain("refs/heads/\\x1b[2J not found");
    expect(printed[2]).toContain("namespace kubler-\\x1b[2J unreachable");
  });

  it("says an unreachable cluster in one line, and leaves a bug to the caller", () => {
    const lines: string[] = [];
    const reporter = createTerminalReporter((line) => lines.push(line));
    reporter.started(runtime(false), config({ tokens: [SECRET], signingKeys: [] }));
    const unreachable = new KubernetesUnavailableError(
      `list Namespace failed after 4 attempt(s); last problem: connect ECONNREFUSED (${SECRET})`,
      0,
    );
    const before = lines.length;
    expect(reporter.operationalError("reconcile", unreachable)).toBe(true);
    expect(lines.slice(before)).toHaveLength(1);
    expect(lines.at(-1)).toMatch(/reconcile\s+cannot reach the cluster: list Namespace failed/);
    expect(lines.at(-1)).not.toContain(SECRET);
    expect(lines.at(-1)).not.toContain("    at ");
    expect(reporter.operationalError("reconcile", new TypeError("x is undefined"))).toBe(false);
    expect(lines).toHaveLength(before + 1);
  });
});
