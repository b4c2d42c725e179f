import { readFileSync } from "node:fs";
import { join } from "node:path";
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import {
  compileGlob,
  decideCredentials,
  matchesGlob,
  PolicyError,
  parseCredentialsPolicy,
} from "../../shared/domain/credentials-policy.js";
import { namespaceFor } from "../../shared/domain/environment.js";
import { type JobClaims, readJobClaims } from "../../shared/domain/job-claims.js";
import { DESIGN_POLICY } from "../fixtures/design-examples.js";
import fixture from "../fixtures/gitlab/id-token/example_payload.json" with { type: "json" };

const POLICY = `${DESIGN_POLICY}  - name: fork-review
    match: { project_path: "group/app", source_project_path: "*", environment: "review/*" }
    aws: { roleArn: "arn:aws:iam::123456789012:role/fork-readonly" }
`;

function claims(overrides: Partial<Record<keyof JobClaims, string | null>> = {}): JobClaims {
  return {
    ...readJobClaims({ ...fixture.payload, aud: "kubler" }),
    project_path: "group/app",
    project_id: "15",
    namespace_path: "group",
    environment: null,
    ...overrides,
  } as JobClaims;
}

function problems(text: string): string[] {
  try {
    parseCredentialsPolicy(text);
  } catch (error) {
    if (error instanceof PolicyError) return error.problems;
    throw error;
  }
  return [];
}

describe("parseCredentialsPolicy", () => {
  it("reads DESIGN §5's example", () => {
    const policy = parseCredentialsPolicy(POLICY);
    expect(policy.issuer).toBe("https://gitlab.example.com");
    expect(policy.audience).toBe("kubler");
    expect(policy.rules.map((r) => r.name)).toEqual(["review-apps", "production", "fork-review"]);
    expect(policy.rules[1]).toMatchObject({
      match: { ref_protected: true },
      aws: {
        roleArn: "arn:aws:iam::123456789012:role/app-prod",
        maxDurationSeconds: 900,
        sessionPolicy: null,
      },
      kubernetes: { namespace: "app-production", role: "kubler-deployer" },
    });
  });

  it("names the rule, the key and the problem", () => {
    const text = POLICY.replace("ref_protected: true", 'ref_protected: "true"');
    expect(problems(text)).toEqual([
      "policy.rules[1] (production).match.ref_protected: expected boolean, found string",
    ]);
  });

  it("lists every problem at once", () => {
    expect(
      problems(`
audience: 7
rules:
  - name: a
    match: { project_path: "g/*", colour: blue }
    aws: { roleArn: "arn:aws:iam::1:role/x", maxDurationSeconds: 60 }
  - name: a
    match: { ref: main }
    kubernetes: { namespace: Bad_NS }
  - name: b
    match: { project_id: [] }
`),
    ).toEqual([
      "policy.audience: expected non-empty string, found number",
      "policy.rules[0] (a).match.colour: unknown key (expected one of project_path, project_id, namespace_path, source_project_path, ref, ref_type, environment, environment_action, pipeline_source, user_login, ref_protected, environment_protected)",
      'policy.rules[0] (a).aws.roleArn: expected an IAM role ARN (arn:aws:iam::<account>:role/<name>), found "arn:aws:iam::1:role/x"',
      "policy.rules[0] (a).aws.maxDurationSeconds: expected a whole number from 900 to 3600, found 60",
      "policy.rules[1] (a).match: must name the project with project_path, project_id, namespace_path (at least one): no rule may match every project",
      'policy.rules[1] (a).kubernetes.namespace: expected "environment" or a namespace name (DNS-1123 label), found "Bad_NS"',
      "policy.rules[1] (a).kubernetes.role: is required: the namespaced Role to bind",
      'policy.rules[1] (a).name: "a" is already the name of rules[0]',
      "policy.rules[2] (b).match.project_id: expected at least one pattern, found an empty list",
      "policy.rules[2] (b): grants nothing: give it aws, kubernetes or both",
    ]);
  });

  it("refuses maxDurationSeconds over an hour: STS caps a chained session (Lambda's role → the job's) at 3600 s", () => {
    const rule = (max: number) => `
rules:
  - name: long-jobs
    match: { project_path: g/a }
    aws: { roleArn: "arn:aws:iam::123456789012:role/r", maxDurationSeconds: ${max} }`;
    expect(problems(rule(3600))).toEqual([]);
    expect(parseCredentialsPolicy(rule(3600)).rules[0]?.aws?.maxDurationSeconds).toBe(3600);
    for (const max of [3601, 7200, 43_200]) {
      expect(problems(rule(max))).toEqual([
        `policy.rules[0] (long-jobs).aws.maxDurationSeconds: expected a whole number from 900 to 3600, found ${max}: Kubler assumes the role with its own temporary credentials (role chaining), and STS refuses chained sessions longer than one hour`,
      ]);
    }
  });

  it("refuses project patterns that match every project, naming the rule", () => {
    const rule = (match: string) => `
rules:
  - name: everyone
    match: ${match}
    kubernetes: { namespace: shared, role: viewer }`;
    const cases: [string, string, string][] = [
      ['{ project_path: "*" }', "project_path", '"*"'],
      ['{ namespace_path: "*" }', "namespace_path", '"*"'],
      ['{ project_id: "*" }', "project_id", '"*"'],
      ['{ project_path: "**" }', "project_path", '"**"'],
      ['{ project_path: "?*" }', "project_path", '"?*"'],
      ['{ project_path: "*/*" }', "project_path", '"*/*"'],
      ['{ project_id: "??" }', "project_id", '"??"'],
    ];
    for (const [match, key, shown] of cases) {
      expect(problems(rule(match))).toEqual([
        `policy.rules[0] (everyone).match.${key}: ${shown} matches every project: no rule may match every project (name a group or project, e.g. "group/*")`,
      ]);
    }
    // One catch-all in a list makes the whole list match everything.
    expect(problems(rule('{ project_path: ["group/app", "*"] }'))).toHaveLength(1);
    // Even beside a narrowing key: the catch-all says something the author did not mean.
    expect(problems(rule('{ project_path: "group/*", namespace_path: "*" }'))).toHaveLength(1);
    expect(problems(rule('{ project_path: "group/*" }'))).toEqual([]);
    // source_project_path is not whose project the job is: "*" there means "any fork".
    expect(problems(rule('{ project_path: group/app, source_project_path: "*" }'))).toEqual([]);
  });

  it("refuses a project pattern with a wildcard in its top-level group: anyone may create groupevil", () => {
    const rule = (match: string) => `
rules:
  - name: group-wide
    match: ${match}
    kubernetes: { namespace: shared, role: viewer }`;
    const refusal = (key: string, pattern: string) =>
      `policy.rules[0] (group-wide).match.${key}: ${JSON.stringify(pattern)} has a wildcard in its top-level group "${pattern.split("/")[0]}", which also matches groups any GitLab user can create (a job in one would get these credentials): name the group, e.g. "acme/*" or "acme/team-?/app"`;
    const cases: [string, string, string][] = [
      ['{ namespace_path: "group*" }', "namespace_path", "group*"],
      ['{ project_path: "group*" }', "project_path", "group*"],
      ['{ project_path: "*/app" }', "project_path", "*/app"],
      ['{ project_path: "acme?/app" }', "project_path", "acme?/app"],
      ['{ project_path: "ac*me/team/app" }', "project_path", "ac*me/team/app"],
      ['{ namespace_path: "*/team" }', "namespace_path", "*/team"],
      ['{ namespace_path: "g*" }', "namespace_path", "g*"],
    ];
    for (const [match, key, pattern] of cases) {
      expect(problems(rule(match))).toEqual([refusal(key, pattern)]);
    }
    // One such pattern in a list opens the whole rule; each one is named.
    expect(problems(rule('{ project_path: ["acme/app", "evil*/x", "*/y"] }'))).toEqual([
      refusal("project_path", "evil*/x"),
      refusal("project_path", "*/y"),
    ]);
    // A pattern that names no project at all keeps its own message, once.
    expect(problems(rule('{ project_path: "*" }'))).toHaveLength(1);
    // source_project_path is the fork, not whose project the job is: any pattern stays valid there.
    expect(problems(rule('{ project_path: acme/app, source_project_path: "*/app" }'))).toEqual([]);
    for (const ok of [
      '{ project_path: "acme/*" }',
      '{ project_path: "acme/**" }',
      '{ project_path: "acme/*/*" }',
      '{ project_path: "acme/team-?/app" }',
      '{ project_path: "acme" }',
      "{ namespace_path: acme }",
      '{ namespace_path: "acme/*" }',
      '{ namespace_path: "acme/team-?" }',
    ]) {
      expect(problems(rule(ok))).toEqual([]);
    }
  });

  it("refuses any wildcard in project_id: ids go to projects anyone creates later", () => {
    const rule = (match: string) => `
rules:
  - name: by-id
    match: ${match}
    aws: { roleArn: "arn:aws:iam::123456789012:role/r" }`;
    const refusal = (pattern: string) =>
      `policy.rules[0] (by-id).match.project_id: ${JSON.stringify(pattern)} has a wildcard, so it also matches projects created later, by anyone (GitLab assigns ids at creation): list the ids, e.g. project_id: [12, 120]`;
    for (const pattern of ["12*", "1?", "*2", "1*2"]) {
      expect(problems(rule(`{ project_id: "${pattern}" }`))).toEqual([refusal(pattern)]);
    }
    expect(problems(rule('{ project_id: [12, "13*"] }'))).toEqual([refusal("13*")]);
    // All wildcards: the message for a pattern that names no project, once.
    expect(problems(rule('{ project_id: "**" }'))).toHaveLength(1);
    for (const ok of ["{ project_id: 12 }", '{ project_id: "12" }', '{ project_id: [12, "120"] }']) {
      expect(problems(rule(ok))).toEqual([]);
    }
    expect(parseCredentialsPolicy(rule("{ project_id: [12, 120] }")).rules[0]?.match.project_id).toEqual([
      compileGlob("12"),
      compileGlob("120"),
    ]);
  });

  it("refuses YAML errors, a missing rules list and duplicate keys", () => {
    expect(problems("rules: [")[0]).toMatch(/^policy: not valid YAML/);
    expect(problems("issuer: https://x")).toEqual(["policy.rules: is required: a list of rules"]);
    expect(problems("rules: []\nrules: []")[0]).toMatch(/not valid YAML/);
  });

  it("places the YAML error it reports, and stays quick on one long line of errors, as kubler.yaml does", () => {
    expect(problems("rules: [")).toEqual([
      "policy: not valid YAML at line 1, column 9: Flow sequence in block collection must be sufficiently indented and end with a ]",
    ]);
    expect(problems("rules: []\nrules: []")).toEqual([
      "policy: not valid YAML at line 2, column 1: Map keys must be unique",
    ]);
    // yaml's pretty errors copy the whole line into each of its errors: ≈ 1 minute for this before.
    expect(problems("]".repeat(256 * 1024))).toHaveLength(1);
  });

  it("checks session policies: JSON, placeholders, STS's 2048 characters", () => {
    const rule = (sessionPolicy: string) => `
rules:
  - name: r
    match: { project_path: g/a }
    aws:
      roleArn: arn:aws:iam::123456789012:role/r
      sessionPolicy: ${sessionPolicy}`;
    expect(problems(rule("'not json'"))[0]).toMatch(
      /^policy.rules\[0\] \(r\).aws.sessionPolicy: expected an IAM policy document \(JSON\)/,
    );
    expect(problems(rule(`'{"Statement":[{"Resource":"{bucket}"}]}'`))).toEqual([
      "policy.rules[0] (r).aws.sessionPolicy: unknown placeholder {bucket} (known: {project_path}, {project_id}, {environment}, {namespace}, {job_id}, {pipeline_id})",
    ]);
    expect(problems(rule(`'{"Statement":"${"x".repeat(2100)}"}'`))).toEqual([
      "policy.rules[0] (r).aws.sessionPolicy: is 2116 characters minified; STS allows 2048",
    ]);
    const ok = parseCredentialsPolicy(
      rule(
        "{ Version: '2012-10-17', Statement: [{ Effect: Allow, Action: 's3:*', Resource: 'arn:aws:s3:::b/{project_path}/*' }] }",
      ),
    );
    expect(ok.rules[0]?.aws?.sessionPolicy).toBe(
      '{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"s3:*","Resource":"arn:aws:s3:::b/{project_path}/*"}]}',
    );
  });
});

/** A reference matcher: the textbook recursive definition, to check the regex compilation against. */
function reference(pattern: string, value: string): boolean {
  const p = Array.from(pattern);
  const v = Array.from(value);
  const memo = new Map<string, boolean>();
  const go = (i: number, j: number): boolean => {
    const key = `${i},${j}`;
    const cached = memo.get(key);
    if (cached !== undefined) return cached;
    let result: boolean;
    if (i === p.length) result = j === v.length;
    else if (p[i] === "*") result = go(i + 1, j) || (j < v.length && go(i, j + 1));
    else result = j < v.length && (p[i] === "?" || p[i] === v[j]) && go(i + 1, j + 1);
    memo.set(key, result);
    return result;
  };
  return go(0, 0);
}

describe("glob matching (property tests)", () => {
  const alphabet = fc.constantFrom("a", "b", "/", "-", ".", "*", "?", "(", "[", "\\", "$", "é");
  const text = fc.array(alphabet, { maxLength: 12 }).map((cs) => cs.join(""));
  const literal = fc
    .array(fc.constantFrom("a", "b", "/", "-", ".", "(", "[", "\\", "$", "+", "é", "^"), { maxLength: 12 })
    .map((cs) => cs.join(""));

  it("agrees with the reference matcher on any pattern and value", () => {
    fc.assert(
      fc.property(text, literal, (pattern, value) => {
        expect(matchesGlob(compileGlob(pattern), value)).toBe(reference(pattern, value));
      }),
      { numRuns: 2000 },
    );
  });

  it("a pattern without wildcards matches exactly itself (regex characters are literal)", () => {
    fc.assert(
      fc.property(literal, literal, (pattern, value) => {
        expect(matchesGlob(compileGlob(pattern), value)).toBe(pattern === value);
      }),
    );
  });

  it("prefix* matches exactly the values that start with the prefix, slashes included", () => {
    fc.assert(
      fc.property(literal, literal, (prefix, value) => {
        expect(matchesGlob(compileGlob(`${prefix}*`), value)).toBe(value.startsWith(prefix));
      }),
    );
    expect(matchesGlob(compileGlob("review/*"), "review/feature/x")).toBe(true);
  });

  it("? matches exactly one character (one code point)", () => {
    fc.assert(
      fc.property(literal, (value) => {
        expect(matchesGlob(compileGlob("?".repeat(Array.from(value).length)), value)).toBe(true);
        expect(matchesGlob(compileGlob(`?${"?".repeat(Array.from(value).length)}`), value)).toBe(false);
      }),
    );
  });
});

describe("decideCredentials", () => {
  const policy = parseCredentialsPolicy(POLICY);

  it("first matching rule wins, with the environment's namespace", () => {
    const decision = decideCredentials(policy, claims({ environment: "review/feature-x" }), null);
    expect(decision).toMatchObject({
      allowed: true,
      rule: { name: "review-apps" },
      environment: "review/feature-x",
      namespace: namespaceFor("group/app", "review/feature-x"),
      reason: 'rule "review-apps" matches',
    });
  });

  it("production needs a protected ref; the reason says which rule wanted what", () => {
    const unprotected = decideCredentials(
      policy,
      claims({ environment: "production", ref_protected: "false" }),
      null,
    );
    expect(unprotected).toMatchObject({
      allowed: false,
      reason: "no rule matches this job (project group/app, ref feature-branch-1, environment production)",
      auditReason:
        'no rule matches this job (project group/app, ref feature-branch-1, environment production): review-apps: environment "production" does not match "review/*"; production: ref_protected is false, rule needs true; fork-review: environment "production" does not match "review/*"',
    });
    const protectedRef = decideCredentials(
      policy,
      claims({ environment: "production", ref_protected: "true" }),
      null,
    );
    expect(protectedRef).toMatchObject({
      allowed: true,
      rule: { name: "production" },
      namespace: "app-production",
    });
  });

  it("a requested environment must be the token's own", () => {
    const decision = decideCredentials(policy, claims({ environment: "review/mine" }), "production");
    expect(decision).toMatchObject({
      allowed: false,
      reason: 'the job asked for environment "production", but its token is for environment "review/mine"',
    });
    expect(decideCredentials(policy, claims({ environment: "review/mine" }), "review/mine").allowed).toBe(
      true,
    );
  });

  it("a token without an environment claim cannot name one in the body: the body is not signed", () => {
    // A lint job on protected main asking for production: the production rule would match.
    const lint = claims({ ref: "main", ref_protected: "true", environment: null });
    const decision = decideCredentials(policy, lint, "production");
    expect(decision).toMatchObject({
      allowed: false,
      rule: null,
      environment: null,
      reason:
        'the job asked for environment "production", but its ID token has no environment claim: declare `environment: production` on the job in .gitlab-ci.yml (the request body cannot choose an environment)',
    });
    expect(decideCredentials(policy, claims(), "review/other")).toMatchObject({
      allowed: false,
      environment: null,
    });
    // Without a body environment it is decided on its claims alone: no environment, no production.
    expect(decideCredentials(policy, lint, null)).toMatchObject({ allowed: false, environment: null });
  });

  it("a denial tells the job its own claims only, never the rules (other projects' paths)", () => {
    const decision = decideCredentials(
      policy,
      claims({ project_path: "other/tool", project_id: "99", namespace_path: "other" }),
      null,
    );
    expect(decision.reason).toBe(
      "no rule matches this job (project other/tool, ref feature-branch-1, no environment)",
    );
    for (const secret of ["group/app", "review-apps", "review/*", "production"]) {
      expect(decision.reason).not.toContain(secret);
    }
    expect(decision).toMatchObject({ auditReason: expect.stringContaining('"group/app"') });
  });

  it("a job asking for another project's environment is denied", () => {
    const other = claims({
      project_path: "other/tool",
      project_id: "99",
      namespace_path: "other",
      environment: "production",
      ref_protected: "true",
    });
    const decision = decideCredentials(policy, other, null);
    expect(decision).toMatchObject({
      allowed: false,
      auditReason: expect.stringContaining(
        'production: project_path "other/tool" does not match "group/app"',
      ),
    });
    // And its review environments are its own namespaces, never group/app's.
    const own = decideCredentials(
      policy,
      { ...other, project_path: "group/tool", environment: "review/x" },
      "review/x",
    );
    expect(own).toMatchObject({ allowed: true, namespace: namespaceFor("group/tool", "review/x") });
  });

  it("job_project_* take precedence over project_* for whose project the job is", () => {
    const moved = claims({
      project_path: "group/app",
      job_project_path: "group/app",
      job_project_id: "15",
      project_id: "15",
      environment: "review/x",
    });
    expect(decideCredentials(policy, moved, null)).toMatchObject({
      allowed: true,
      rule: { name: "review-apps" },
    });
    // Older GitLab (no job_project_*): project_* is the running project.
    const decision = decideCredentials(
      policy,
      claims({ environment: "production", ref_protected: "true" }),
      null,
    );
    expect(decision.claims).toMatchObject({
      project_path: "group/app",
      source_project_path: "group/app",
      job_project_path: null,
    });
  });

  it("a fork's MR pipeline gets only what the rule for forks allows", () => {
    const fork = claims({
      project_path: "contributor/app",
      project_id: "77",
      namespace_path: "contributor",
      job_project_path: "group/app",
      job_project_id: "15",
      job_namespace_path: "group",
      ref: "refs/merge-requests/3/head",
      pipeline_source: "merge_request_event",
      environment: "review/fix",
    });
    const decision = decideCredentials(policy, fork, null);
    expect(decision).toMatchObject({
      allowed: true,
      rule: {
        name: "fork-review",
        aws: { roleArn: "arn:aws:iam::123456789012:role/fork-readonly" },
        kubernetes: null,
      },
      namespace: null,
    });
    expect(decision.claims).toMatchObject({
      project_path: "group/app",
      source_project_path: "contributor/app",
      job_project_path: "group/app",
    });
    // Without a rule for forks, nothing: not the target's review-apps rule.
    const strict = parseCredentialsPolicy(POLICY.split("  - name: fork-review")[0] as string);
    const denied = decideCredentials(strict, fork, null);
    expect(denied).toMatchObject({
      allowed: false,
      auditReason: expect.stringContaining(
        'review-apps: the pipeline runs code from the fork "contributor/app" and the rule names no source_project_path',
      ),
    });
  });

  it("environment_action: only `start` jobs wait for GitLab's deployment approval, so a rule can require it", () => {
    // GitLab 18.0+: `action: access|prepare|verify` jobs skip the approval, yet carry the protected environment.
    const gated = parseCredentialsPolicy(
      POLICY.replace(
        "environment: production, ref_protected: true",
        "environment: production, environment_action: start, ref_protected: true",
      ),
    );
    const production = { environment: "production", environment_protected: "true", ref_protected: "true" };
    expect(
      decideCredentials(gated, claims({ ...production, environment_action: "start" }), null),
    ).toMatchObject({
      allowed: true,
      rule: { name: "production" },
      claims: { environment_action: "start" },
    });
    const access = decideCredentials(gated, claims({ ...production, environment_action: "access" }), null);
    expect(access).toMatchObject({ allowed: false, claims: { environment_action: "access" } });
    expect(access.allowed || access.auditReason).toContain(
      'production: environment_action "access" does not match "start"',
    );
    // A token without the claim (older GitLab) does not meet a rule that names it.
    const older = decideCredentials(gated, claims({ ...production, environment_action: null }), null);
    expect(older.allowed || older.auditReason).toContain(
      'production: the job has no environment_action (rule needs "start")',
    );
    // A rule without the key matches any action, as before: existing policies keep their meaning.
    expect(
      decideCredentials(policy, claims({ ...production, environment_action: "access" }), null),
    ).toMatchObject({
      allowed: true,
      rule: { name: "production" },
    });
  });

  it("examples/policy.yaml's production rule needs environment_action: start", () => {
    const example = parseCredentialsPolicy(
      readFileSync(join(import.meta.dirname, "../../examples/policy.yaml"), "utf8"),
    );
    const deploy = claims({
      project_path: "flightjs/flight-management",
      namespace_path: "flightjs",
      environment: "production",
      environment_protected: "true",
      ref_protected: "true",
    });
    expect(decideCredentials(example, { ...deploy, environment_action: "start" }, null)).toMatchObject({
      allowed: true,
      rule: { name: "sample-production" },
    });
    expect(decideCredentials(example, { ...deploy, environment_action: "verify" }, null).rule?.name).not.toBe(
      "sample-production",
    );
  });

  it("a rule that mints into the environment's namespace needs an environment", () => {
    const decision = decideCredentials(policy, claims(), null);
    expect(decision).toMatchObject({
      allowed: false,
      auditReason: expect.stringContaining("review-apps: the job has no environment"),
    });
  });
});
