import * as fc from "fast-check";
import { describe, expect, it } from "vitest";
import type { AuditRecord } from "../../shared/domain/audit.js";
import {
  type AuditFilter,
  insightsQueryText,
  keepNewestDistinct,
  matchesAuditFilter,
  requiredSubstrings,
  SAVED_AUDIT_QUERIES,
  savedQueryDefinitions,
  savedQueryText,
} from "../../shared/domain/audit-queries.js";
import { stepAuditRecord } from "../../shared/services/step-audit.js";

const saved = (name: string) => {
  const query = SAVED_AUDIT_QUERIES.find((q) => q.name === name);
  if (!query) throw new Error(`no saved query ${name}`);
  return query;
};

describe("saved audit queries (Logs Insights text)", () => {
  it("denied credentials", () => {
    expect(savedQueryText(saved("denied-credentials"))).toBe(
      [
        "fields @timestamp, at, function, action, outcome, reason, subject.project, subject.environment, subject.rule, actor.user, actor.job, correlationId",
        '| filter ispresent(auditVersion) and action like /^credentials\\./ and outcome = "deny"',
        "| sort @timestamp desc",
        "| limit 1000",
      ].join("\n"),
    );
  });

  it("credentials issued for a role: the role commented out until given", () => {
    const query = saved("credentials-for-role");
    expect(savedQueryText(query)).toBe(
      [
        "fields @timestamp, at, function, action, outcome, reason, subject.roleArn, subject.project, subject.environment, actor.user, actor.job, actor.pipeline, subject.expiresAt",
        '| filter ispresent(auditVersion) and action like /^credentials\\./ and outcome = "allow"',
        '# | filter subject.roleArn = "arn:aws:iam::123456789012:role/app-prod"',
        "| sort @timestamp desc",
        "| limit 1000",
      ].join("\n"),
    );
    expect(savedQueryText(query, { roleArn: "arn:aws:iam::1:role/x" }).split("\n")[1]).toBe(
      '| filter ispresent(auditVersion) and action like /^credentials\\./ and outcome = "allow" and subject.roleArn = "arn:aws:iam::1:role/x"',
    );
  });

  it("deploys to an environment", () => {
    expect(savedQueryText(saved("deploys-to-environment"), { environment: "production" })).toBe(
      [
        "fields @timestamp, at, function, action, outcome, reason, actor.gitlabUser, subject.project, subject.environment, subject.namespace, subject.sha, subject.status, gitlab.event, correlationId",
        '| filter ispresent(auditVersion) and action in ["environment.deploy", "environment.rollout"] and subject.environment = "production"',
        "| sort @timestamp desc",
        "| limit 1000",
      ].join("\n"),
    );
  });

  it("everything for one correlation id, oldest first", () => {
    expect(savedQueryText(saved("correlation"), { correlationId: "3f0c2b4e" }, 500)).toBe(
      [
        "fields @timestamp, at, function, action, outcome, reason, subject.project, subject.environment, durationMs, requestId",
        '| filter ispresent(auditVersion) and correlationId = "3f0c2b4e"',
        "| sort @timestamp asc",
        "| limit 500",
      ].join("\n"),
    );
  });

  it("sweep deletions: one row per deletion, the newest of its lines (a failed follow-up's)", () => {
    expect(savedQueryText(saved("sweep-deletions"))).toBe(
      [
        "fields @timestamp, at, function, action, outcome, reason, subject.project, subject.environment, subject.namespace, correlationId",
        '| filter ispresent(auditVersion) and action = "environment.sweep.delete"',
        "| sort @timestamp desc",
        "| dedup correlationId, subject.namespace",
        "| limit 1000",
      ].join("\n"),
    );
  });

  it("rejected webhooks by reason and source instance", () => {
    expect(savedQueryText(saved("rejected-webhooks"))).toBe(
      [
        'filter ispresent(auditVersion) and action = "webhook.receive" and outcome in ["deny", "failure"]',
        "| stats count(*) as records, latest(at) as last by reason, gitlab.instance",
        "| sort records desc",
        "| limit 1000",
      ].join("\n"),
    );
  });

  it("names every definition for the CDK stack under kubler/", () => {
    expect(savedQueryDefinitions().map((q) => q.name)).toEqual([
      "kubler/denied-credentials",
      "kubler/credentials-for-role",
      "kubler/deploys-to-environment",
      "kubler/correlation",
      "kubler/sweep-deletions",
      "kubler/rejected-webhooks",
    ]);
  });
});

describe("command-line filters as Logs Insights text", () => {
  it("asks for the whole line, newest first, within Logs Insights' row limit", () => {
    expect(
      insightsQueryText(
        { project: "group/app", environment: "staging", action: "environment.deploy", outcome: ["failure"] },
        { limit: 50_000 },
      ),
    ).toBe(
      [
        "fields @timestamp, @message",
        '| filter ispresent(auditVersion) and action = "environment.deploy" and outcome = "failure" and subject.project = "group/app" and subject.environment = "staging"',
        "| sort @timestamp desc",
        "| limit 10000",
      ].join("\n"),
    );
  });

  it("finds an environment in a plan.steps line's list too, unless the action leaves those lines out", () => {
    expect(insightsQueryText({ environment: "review/x" }).split("\n")[1]).toBe(
      '| filter ispresent(auditVersion) and (subject.environment = "review/x" or @message like /"environments":\\[("(\\\\.|[^"\\\\])*",)*"review\\/x"[,\\]]/)',
    );
    expect(insightsQueryText({ environment: "x", action: "plan.*" })).toContain("@message like");
    expect(insightsQueryText({ environment: "x", action: "environment.deploy" })).not.toContain(
      "@message like",
    );
  });

  it("quotes values so that input cannot change the query", () => {
    const text = insightsQueryText({ environment: 'x" or action = "y\\', action: "a/b.*" });
    expect(text).toContain('subject.environment = "x\\" or action = \\"y\\\\"');
    expect(text).toContain("action like /^a\\/b\\./");
    expect(() => insightsQueryText({ project: "a\nb" })).toThrow(RangeError);
    expect(insightsQueryText({ action: ["credentials.*", 'x"y'] })).toContain(
      '(action like /^credentials\\./ or action = "x\\"y")',
    );
  });
});

function record(overrides: Partial<AuditRecord> = {}): AuditRecord {
  return {
    audit: true,
    action: "environment.deploy",
    outcome: "success",
    reason: "deployed",
    actor: { function: "deploy-environment" },
    subject: { project: "group/app", environment: "production", roleArn: "arn:aws:iam::1:role/r" },
    correlationId: "c-1",
    gitlab: {
      instance: "https://gitlab.example.com",
      event: "Deploy Requested",
      idempotencyKey: null,
      webhookUuid: null,
    },
    function: "deploy-environment",
    at: "2026-03-01T10:00:00.000Z",
    ...overrides,
  };
}

const PLAN: Partial<AuditRecord> = {
  action: "plan.steps",
  subject: { project: "group/app", environments: ["staging", "review/x"], steps: ["Deploy Requested"] },
};

describe("the same filters as a predicate over local records", () => {
  it.each<[AuditFilter, Partial<AuditRecord>, boolean]>([
    [{ action: "environment.deploy" }, {}, true],
    [{ action: "environment.*" }, { action: "environment.sweep.delete" }, true],
    [{ action: "credentials.*" }, {}, false],
    [{ action: ["credentials.*", "environment.deploy"] }, {}, true],
    [{ action: ["credentials.*", "environment.stop"] }, {}, false],
    [{ outcome: ["deny", "failure"] }, { outcome: "failure" }, true],
    [{ outcome: ["deny"] }, {}, false],
    [{ since: new Date("2026-03-01T10:00:00.000Z") }, {}, true],
    [{ since: new Date("2026-03-01T10:00:00.001Z") }, {}, false],
    [{ until: new Date("2026-03-01T10:00:00.000Z") }, {}, false],
    [{ project: "group/app", environment: "production" }, {}, true],
    [{ environment: "staging" }, {}, false],
    [{ correlationId: "c-2" }, {}, false],
    [{ roleArn: "arn:aws:iam::1:role/r" }, {}, true],
    [{ instance: "https://other.example.com" }, {}, false],
    [{ instance: "https://other.example.com" }, { gitlab: null }, false],
    // plan.steps names the environments it decided for in a list: the stop of review/x is in its story.
    [{ environment: "review/x" }, PLAN, true],
    [{ environment: "staging", action: "plan.steps" }, PLAN, true],
    [{ environment: "review" }, PLAN, false],
    [{ environment: "staging", action: "environment.*" }, PLAN, false],
  ])("%j on %j → %s", (filter, change, expected) => {
    expect(matchesAuditFilter(record(change), filter)).toBe(expected);
  });

  it("agrees with the Logs Insights text on a plan.steps line's list of environments (property)", () => {
    // Names with what JSON escapes or a list is made of: quotes, backslashes, commas, brackets.
    const name = fc.stringMatching(/^[a-z"\\,[\]/ ]{0,6}$/);
    fc.assert(
      fc.property(
        fc.array(name, { maxLength: 4 }),
        fc.option(name, { nil: undefined }),
        name,
        fc.nat(),
        fc.constantFrom(undefined, "plan.steps", "plan.*", "environment.deploy"),
        (environments, environment, other, pick, action) => {
          // Half the time one of the list, else any name (maybe one of the list all the same).
          const wanted =
            pick % 2 && environments.length ? (environments[pick % environments.length] ?? other) : other;
          const r = record({ action: "plan.steps", subject: { environment, environments } });
          const filter: AuditFilter = { environment: wanted, ...(action ? { action } : {}) };
          const text = insightsQueryText(filter).split("\n")[1] ?? "";
          // What Logs Insights would do with the condition: the field compared, the regex on the line.
          const regex = /@message like \/(.*)\/\)$/.exec(text)?.[1];
          const insights =
            (action === undefined || action.startsWith("plan") || r.action === action) &&
            (environment === wanted || (regex !== undefined && new RegExp(regex).test(JSON.stringify(r))));
          expect(matchesAuditFilter(r, filter)).toBe(insights);
          for (const needle of requiredSubstrings(filter))
            if (insights) expect(JSON.stringify(r)).toContain(needle);
        },
      ),
    );
  });

  it("never rejects a matching line on its raw text (property)", () => {
    const text = fc.string({ minLength: 1, maxLength: 20 });
    fc.assert(
      fc.property(
        text,
        text,
        text,
        fc.constantFrom("success", "deny", "ignored"),
        (project, environment, id, outcome) => {
          const r = record({
            subject: { project, environment },
            correlationId: id,
            outcome: outcome as AuditRecord["outcome"],
          });
          const filter: AuditFilter = {
            project,
            environment,
            correlationId: id,
            outcome: [r.outcome],
            action: r.action,
          };
          const line = JSON.stringify(r);
          expect(matchesAuditFilter(r, filter)).toBe(true);
          for (const needle of requiredSubstrings(filter)) expect(line).toContain(needle);
        },
      ),
    );
  });
});

describe("dedup over local records (what sort @timestamp desc | dedup | limit answers)", () => {
  const line = (namespace: string | undefined, reason: string): AuditRecord =>
    record({
      action: "environment.sweep.delete",
      reason,
      correlationId: "c-1",
      subject: namespace === undefined ? {} : { namespace },
    });
  const reasons = (limit: number, records: AuditRecord[]) => {
    const keep = keepNewestDistinct(limit, ["correlationId", "subject.namespace"]);
    for (const r of records) keep.add(r);
    return keep.records().map((r) => r.reason);
  };

  it("keeps the newest line of each combination, oldest first", () => {
    expect(
      reasons(10, [line("a", "a deleted"), line("b", "b deleted"), line("a", "a follow-up failed")]),
    ).toEqual(["b deleted", "a follow-up failed"]);
  });

  it("never takes a line missing one of the fields for a duplicate", () => {
    expect(reasons(10, [line(undefined, "x"), line(undefined, "y")])).toEqual(["x", "y"]);
  });

  it("answers the newest `limit` combinations, a combination pushed out coming back with a newer line", () => {
    const records = [line("a", "a1"), line("b", "b1"), line("c", "c1"), line("a", "a2"), line("d", "d1")];
    expect(reasons(2, records)).toEqual(["a2", "d1"]);
    expect(reasons(3, records)).toEqual(["c1", "a2", "d1"]);
  });
});

describe("saved queries over the lines their writers write", () => {
  const gitlab = { instance: "https://gitlab.example.com", projectId: 2, projectPath: "group/app" };
  const subject = { environment: "production", namespace: "group-app-production", sha: "3f2a9c1b" };

  it("deploys-to-environment ends a deploy whose rollout reconcile marked failed past its deadline", () => {
    const query = saved("deploys-to-environment");
    // As shared/services/reconcile-environments.ts writes it (its `audit`), after the deploy
    // function stopped before the rollout finished and wrote no line of its own.
    const markedFailed = stepAuditRecord({
      fn: "reconcile",
      action: "environment.rollout",
      outcome: "success",
      reason:
        "rollout did not finish by its deadline 2026-03-01T10:15:00.000Z: Deploy Finished failed published",
      correlationId: "c-1",
      gitlab,
      trigger: "schedule",
      subject,
      at: new Date("2026-03-01T10:16:00.000Z"),
    });
    expect(matchesAuditFilter(markedFailed, { ...query.filter, environment: "production" })).toBe(true);
    expect(savedQueryText(query, { environment: "production" }).split("\n")[1]).toBe(
      '| filter ispresent(auditVersion) and action in ["environment.deploy", "environment.rollout"] and subject.environment = "production"',
    );
  });
});
