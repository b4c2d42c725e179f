import * as fc from "fast-check";
import { describe, expect, it } from "vitest";
import {
  AUDIT_SCHEMA_VERSION,
  type AuditRecord,
  createAuditRedactor,
  isSecretName,
  prepareAuditRecord,
  REDACTED,
} from "../../shared/domain/audit.js";
import { parseAuditRecord } from "../../shared/domain/audit-schema.js";

function record(overrides: Partial<AuditRecord> = {}): AuditRecord {
  return {
    audit: true,
    action: "webhook.receive",
    outcome: "success",
    reason: "published Push to master",
    actor: { userAgent: "GitLab/17.4.0", gitlabUser: "jsmith" },
    subject: { project: "group/app", projectId: 15, detailType: "Push", eventIds: ["5b1c0a3e-1d2f"] },
    correlationId: "3f0c2b4e-8a5d-4c1e-9f7a-2b6d8e0a1c3f",
    gitlab: {
      instance: "https://gitlab.example.com",
      event: "Push Hook",
      idempotencyKey: "3f0c2b4e-8a5d-4c1e-9f7a-2b6d8e0a1c3f",
      webhookUuid: "a1b2",
    },
    function: "gitlab-webhook",
    at: "2026-03-01T10:00:00.000Z",
    ...overrides,
  };
}

describe("audit record schema", () => {
  it("accepts a producer's record and the writer's stamped one", () => {
    expect(parseAuditRecord(record())).toMatchObject({ action: "webhook.receive" });
    const stamped = prepareAuditRecord(record(), createAuditRedactor(), { requestId: "req-1" });
    expect(stamped).toMatchObject({ audit: true, auditVersion: AUDIT_SCHEMA_VERSION, requestId: "req-1" });
    expect(Object.keys(stamped).slice(0, 2)).toEqual(["audit", "auditVersion"]);
    expect(parseAuditRecord(JSON.parse(JSON.stringify(stamped)))).toEqual(stamped);
  });

  it("keeps fields a producer adds that this version does not name", () => {
    expect(parseAuditRecord({ ...record(), durationMs: 12, extra: { a: 1 } })).toMatchObject({
      extra: { a: 1 },
    });
  });

  it.each([
    [{ outcome: "maybe" }, "outcome"],
    [{ action: "Webhook Receive" }, "action"],
    [{ at: "yesterday" }, "at"],
    [{ correlationId: 12 }, "correlationId"],
    [{ function: "" }, "function"],
    [{ actor: { user: { nested: true } } }, "actor.user"],
    [{ gitlab: { instance: null } }, "gitlab.event"],
    [{ durationMs: -1 }, "durationMs"],
    [{ audit: false }, "audit"],
  ])("refuses %j naming %s", (change, path) => {
    expect(() => parseAuditRecord({ ...record(), ...change })).toThrow(`invalid audit record at ${path}:`);
  });
});

// --- Redaction -----------------------------------------------------------------------------------

const B64 = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
const B64URL = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
const chars = (alphabet: string, min: number, max = min) =>
  fc.string({ unit: fc.constantFrom(...alphabet), minLength: min, maxLength: max });
const b64url = (value: string) => Buffer.from(value).toString("base64url");

/** Values that are credentials by their shape, as a request or a misbehaving producer could carry them. */
const secretShaped = fc.oneof(
  // A GitLab ID token / Kubernetes service-account token.
  fc
    .tuple(fc.constantFrom("RS256", "ES256"), fc.uuid(), chars(B64URL, 20, 80))
    .map(
      ([alg, sub, sig]) =>
        `${b64url(JSON.stringify({ alg, typ: "JWT" }))}.${b64url(JSON.stringify({ sub }))}.${sig}`,
    ),
  chars(B64, 24, 44).map((key) => `whsec_${key}`),
  fc
    .tuple(fc.constantFrom("glpat", "gldt", "glrt", "glcbt", "glptt", "gloas"), chars(B64URL, 20, 30))
    .map(([prefix, body]) => `${prefix}-${body}`),
  chars(B64URL, 12, 60).map((token) => `Bearer ${token}`),
  // AWS secret access key: 40 random base64 characters (mixed case with digits, as AWS issues them).
  fc
    .tuple(
      chars("ABCDEFGHIJKLMNOPQRSTUVWXYZ", 1),
      chars("abcdefghijklmnopqrstuvwxyz", 1),
      chars("0123456789", 1),
      chars(B64, 37),
    )
    .map((parts) => parts.join("")),
  // AWS session token.
  chars(B64, 200, 400).map((body) => `IQoJb3JpZ2luX2VjE${body}`),
  chars(B64, 64, 64).map((body) => `-----BEGIN RSA PRIVATE KEY-----\n${body}\n-----END RSA PRIVATE KEY-----`),
  chars(B64URL, 40, 80).map((body) => `k8s-aws-v1.${body}`),
);

/** Ordinary text around a secret; never base64 characters right next to it. */
const filler = fc.string({ unit: fc.constantFrom(..."abc xyz-_.:/0123456789 "), maxLength: 20 });
const delimiter = fc.constantFrom(" ", ": ", "=", '"', "'", ", ", "\n", "(");

type Path = readonly (string | number)[];
/** The string-valued places of a record a producer could put request text into. */
const stringPaths: Path[] = [
  ["reason"],
  ["correlationId"],
  ["actor", "userAgent"],
  ["actor", "gitlabUser"],
  ["subject", "project"],
  ["subject", "detail"],
  ["subject", "eventIds", 0],
  ["subject", "error", "message"],
  ["gitlab", "instance"],
  ["gitlab", "idempotencyKey"],
  ["function"],
];

function placeAt(base: AuditRecord, path: Path, text: string): AuditRecord {
  const copy = structuredClone(base) as unknown as Record<string | number, unknown>;
  let node = copy;
  path.slice(0, -1).forEach((key, i) => {
    const next = path[i + 1];
    node[key] ??= typeof next === "number" ? [] : {};
    node = node[key] as Record<string | number, unknown>;
  });
  node[path.at(-1) as string | number] = text;
  return copy as unknown as AuditRecord;
}

describe("audit redaction", () => {
  it("removes a configured secret wherever it appears in a record (property)", () => {
    fc.assert(
      fc.property(
        fc
          .string({ minLength: 8, maxLength: 48 })
          .filter((s) => !REDACTED.includes(s) && s.trim().length > 0),
        fc.array(fc.string({ minLength: 8, maxLength: 30 }), { maxLength: 3 }),
        fc.constantFrom(...stringPaths),
        filler,
        filler,
        (secret, otherSecrets, path, before, after) => {
          const redact = createAuditRedactor([...otherSecrets, secret]);
          const out = JSON.stringify(redact(placeAt(record(), path, `${before}${secret}${after}`)));
          expect(out).not.toContain(JSON.stringify(secret).slice(1, -1));
        },
      ),
    );
  });

  it("removes the key of a configured whsec_ secret, with or without its prefix", () => {
    const redact = createAuditRedactor(["whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"]);
    expect(redact(record({ reason: "key MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw here" })).reason).toBe(
      `key ${REDACTED} here`,
    );
  });

  it("removes any credential-shaped value in any field, configured or not (property)", () => {
    fc.assert(
      fc.property(
        secretShaped,
        fc.constantFrom(...stringPaths),
        filler,
        delimiter,
        delimiter,
        filler,
        (secret, path, before, open, close, after) => {
          const out = JSON.stringify(
            createAuditRedactor()(placeAt(record(), path, `${before}${open}${secret}${close}${after}`)),
          );
          const core = secret.replace(/^(Bearer |whsec_|-----BEGIN RSA PRIVATE KEY-----\n)/, "").slice(0, 24);
          expect(out).not.toContain(JSON.stringify(core).slice(1, -1));
        },
      ),
    );
  });

  it("removes the value of any field named like a secret, at any depth (property)", () => {
    const names = fc.constantFrom(
      "authorization",
      "Authorization",
      "cookie",
      "set-cookie",
      "password",
      "token",
      "idToken",
      "x-gitlab-token",
      "webhook-signature",
      "sessionToken",
      "secretAccessKey",
      "apiKey",
      "privateKey",
      "clientSecret",
      "credentials",
      "key",
    );
    fc.assert(
      fc.property(
        names,
        fc.string({ minLength: 1, maxLength: 40 }),
        fc.constantFrom("subject", "actor"),
        (name, value, where) => {
          const marker = `v4lue:${value}`;
          const input = placeAt(record(), [where, "headers", name], marker);
          const out = JSON.stringify(createAuditRedactor()(input));
          expect(out).not.toContain(JSON.stringify(marker).slice(1, -1));
        },
      ),
    );
    const nested = createAuditRedactor()(
      record({
        subject: { credentials: { accessKeyId: "ASIAXXXX", secretAccessKey: "x", sessionToken: "y" } },
      }),
    );
    expect(nested.subject.credentials).toBe(REDACTED);
  });

  it("leaves ordinary records untouched: ids, SHAs, paths, ARNs, digests, prose (property)", () => {
    const word = chars("abcdefghijklmnopqrstuvwxyz", 1, 12);
    const ordinary = fc.record({
      project: fc.array(word, { minLength: 2, maxLength: 3 }).map((parts) => parts.join("/")),
      sha: chars("0123456789abcdef", 40),
      digest: chars("0123456789abcdef", 64).map((hex) => `sha256:${hex}`),
      correlationId: fc.uuid(),
      reason: fc.array(word, { maxLength: 8 }).map((words) => words.join(" ")),
      roleArn: chars("0123456789", 12).map((account) => `arn:aws:iam::${account}:role/kubler-review`),
    });
    fc.assert(
      fc.property(ordinary, (values) => {
        const input = record({
          reason: values.reason,
          correlationId: values.correlationId,
          subject: {
            project: values.project,
            sha: values.sha,
            imageDigest: values.digest,
            roleArn: values.roleArn,
            tokenExpiresAt: "2026-03-01T10:15:00Z",
            secretArn: "arn:aws:secretsmanager:eu-west-1:123456789012:secret:gitlab",
          },
        });
        expect(createAuditRedactor(["a-configured-secret"])(input)).toEqual(input);
      }),
    );
  });

  it("keeps an IAM or STS principal's ARN readable (kubler stop's requestedBy), not a key glued onto one", () => {
    const redact = createAuditRedactor();
    const principals = [
      "aws:arn:aws:sts::123456789012:assumed-role/Admin/alice",
      // The AWS CLI's default session name: `role/<26 characters>/botocore` is a 40-character run.
      "aws:arn:aws:sts::123456789012:assumed-role/KublerPlatformOperatorRole/botocore-session-1700000000",
      "aws:arn:aws:sts::123456789012:assumed-role/KublerOperatorAccess/AliceSmith1234",
      `aws:arn:aws:sts::123456789012:assumed-role/${"Operators".repeat(7)}/${"AliceSmith".repeat(6)}`,
      "aws:arn:aws-us-gov:iam::123456789012:user/platform/KublerOperatorsAliceSmith1",
    ];
    for (const operator of principals) {
      const line = redact(record({ action: "environment.stop", actor: { function: "cleanup", operator } }));
      expect(line.actor.operator).toBe(operator);
    }
    // A secret key or session token beside or inside one still goes.
    const key = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY";
    const token = `IQoJb3JpZ2luX2VjE${"Ab1+/x".repeat(50)}`;
    // Few slashes: names of at most 64 characters, too long only as a whole for a role and a session.
    const slashed = Array.from({ length: 4 }, (_, i) => `IQoJb3JpZ2lu${i}${"Xy9+Zw".repeat(8)}`).join("/");
    for (const glued of [
      `arn:aws:sts::123456789012:assumed-role/Admin/alice ${key}`,
      `arn:aws:sts::123456789012:assumed-role/Admin/alice-${key}`,
      `arn:aws:sts::123456789012:assumed-role/Admin/${token}`,
      `arn:aws:iam::123456789012:user/${token}`,
      `arn:aws:sts::123456789012:assumed-role/Admin/${slashed}`,
    ]) {
      const out = redact.text(glued);
      expect(out).toContain(REDACTED);
      expect(out).not.toContain("bPxRfiCYEXAMPLEKEY");
      expect(out).not.toContain("Ab1+/xAb1+/x");
      expect(out).not.toContain("Xy9+ZwXy9+Zw");
    }
  });

  it("keeps readable what only sounds like a secret", () => {
    const redact = createAuditRedactor();
    const reasons = [
      "X-Gitlab-Token does not match any configured secret",
      "webhook-signature does not match any configured signing key",
      "no token configured for this project",
    ];
    for (const reason of reasons) expect(redact(record({ reason })).reason).toBe(reason);
    expect(redact(record({ reason: "Authorization: Bearer abc.def" })).reason).toBe(
      `Authorization: Bearer ${REDACTED}`,
    );
    expect(isSecretName("idempotencyKey")).toBe(false);
    expect(isSecretName("tokenExpiresAt")).toBe(false);
    expect(isSecretName("sessionToken")).toBe(true);
  });

  it("keeps a placeholder such as <token> readable: a hint names the header, it does not carry one", () => {
    const redact = createAuditRedactor();
    const hints = [
      // job-credentials' 401 missing_token reason, as an operator reads it in `kubler audit`.
      "send the job's GitLab ID token as Authorization: Bearer <token> (id_tokens with aud kubler)",
      "Authorization: Bearer <GitLab ID token>",
      "Authorization: Bearer <…>",
      "Authorization: Bearer <...>",
      "Authorization: bearer <ID_TOKEN>.",
      "set X-Gitlab-Token: <secret> on the hook",
      "export KUBLER_WEBHOOK_SECRET=<token>",
      'body {"token": "<token>"}',
      "Authorization: Basic <base64 of user:password>",
    ];
    for (const reason of hints) expect(redact(record({ reason })).reason).toBe(reason);
    // A value in angle brackets is still a value: only words (or an ellipsis) make a placeholder.
    const cases: [string, string][] = [
      ["Authorization: Bearer <abc.def>", `Authorization: Bearer ${REDACTED}`],
      ["Authorization: Bearer <s3cr3tvalue>", `Authorization: Bearer ${REDACTED}`],
      ["Authorization: Bearer <token>x9f8e7", `Authorization: Bearer ${REDACTED}`],
      ["Authorization: Bearer <aVeryLongOpaqueTokenValue>", `Authorization: Bearer ${REDACTED}`],
      ["export KUBLER_WEBHOOK_SECRET=<hunter2>", `export KUBLER_WEBHOOK_SECRET=${REDACTED}`],
      ["password=<token>abc", `password=${REDACTED}`],
      ["Authorization: Bearer <two words1>", `Authorization: Bearer ${REDACTED}`],
      // A token of letters only, one case (the property below found it): no word is that long.
      ["Authorization: Bearer <AAAAAAAAAAAA>", `Authorization: Bearer ${REDACTED}`],
      ["Authorization: Bearer <xqzvbkqmnrtw>", `Authorization: Bearer ${REDACTED}`],
      // A credential written whole in brackets, scheme included (the property below found it, seed 14845676).
      ["Authorization: Bearer <Bearer AAAAAAA-AAAA>", `Authorization: Bearer ${REDACTED}`],
    ];
    for (const [reason, expected] of cases) expect(redact.text(reason)).toBe(expected);
    // Every shape redacted today is redacted in angle brackets too.
    fc.assert(
      fc.property(secretShaped, filler, (secret, after) => {
        const core = secret.replace(/^(Bearer |whsec_|-----BEGIN RSA PRIVATE KEY-----\n)/, "").slice(0, 24);
        expect(redact.text(`Authorization: Bearer <${secret}> ${after}`)).not.toContain(core);
      }),
    );
    expect(redact.text("Authorization: Bearer <glpat-abcdefghijklmnopqrst>")).not.toContain("abcdefghij");
    expect(redact.text("Authorization: Bearer <eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiIxIn0.c2ln>")).not.toContain(
      "eyJzdWIiOiIxIn0",
    );
  });

  it("keeps a placeholder of several words after a secret-named key: build-image's hint to create its git Secret", () => {
    const redact = createAuditRedactor();
    // checkBuildSecrets' reason, as `kubler audit` and the local terminal print it.
    const hint =
      "kubectl -n kubler-builds create secret generic kubler-git-credentials --from-literal=token=<GitLab token with read_repository>; kubectl -n kubler-builds create secret docker-registry kubler-registry-push --docker-password=<password>";
    expect(redact.text(hint)).toBe(hint);
    expect(redact.text("export KUBLER_WEBHOOK_SECRET=<the webhook token>")).toBe(
      "export KUBLER_WEBHOOK_SECRET=<the webhook token>",
    );
    // Words in brackets that are not a placeholder's go whole, not up to their first space.
    const cases: [string, string][] = [
      ["token=<s3cr3t value> after", `token=${REDACTED} after`],
      ["password=<hunter2 x> after", `password=${REDACTED} after`],
    ];
    for (const [reason, expected] of cases) expect(redact.text(reason)).toBe(expected);
    expect(redact.text("token=<Bearer AAAAAAA-AAAA> after")).not.toContain("AAAA");
  });

  it("removes values assigned to secret-named keys in free text, and passwords in URLs", () => {
    const redact = createAuditRedactor();
    const cases: [string, string][] = [
      [
        "GET /api/v4/projects?private_token=abc123def456&per_page=100",
        `GET /api/v4/projects?private_token=${REDACTED}&per_page=100`,
      ],
      ["login failed: password=hunter2, user=root", `login failed: password=${REDACTED}, user=root`],
      [
        'body {"client_secret": "s3cr3t-value", "grant_type": "x"}',
        `body {"client_secret": "${REDACTED}", "grant_type": "x"}`,
      ],
      ["redirect?access_token%3Dabcdef123456", `redirect?access_token%3D${REDACTED}`],
      ["config api_key: AKfj39fj3 loaded", `config api_key: ${REDACTED} loaded`],
      [
        "clone https://oauth2:not-a-known-shape@gitlab.example.com/group/app.git failed",
        `clone https://oauth2:${REDACTED}@gitlab.example.com/group/app.git failed`,
      ],
      ["Passwd='x1y2z3w4'", `Passwd='${REDACTED}'`],
    ];
    for (const [reason, expected] of cases) expect(redact(record({ reason })).reason).toBe(expected);
    // Already redacted stays as it is; names followed by more name, and URLs without a password, stay.
    const readable = [
      `password=${REDACTED}`,
      "tokenExpiresAt: 2026-03-01T10:15:00Z",
      "secretArn: arn:aws:secretsmanager:eu-west-1:123456789012:secret:gitlab",
      "fetch https://gitlab.example.com:8443/api/v4/projects failed",
      "user@https://gitlab.example.com/group/app",
    ];
    for (const reason of readable) expect(redact(record({ reason })).reason).toBe(reason);
  });

  it("removes secrets in JSON quoted inside JSON, short Basic credentials, and URL-encoded session tokens", () => {
    const redact = createAuditRedactor();
    const cases: [string, string][] = [
      // An error quoting a request whose field is itself JSON (an EventBridge Detail, a GitLab body).
      [
        'PutEvents failed: {"Detail":"{\\"token\\":\\"s3cretvalue123\\",\\"ref\\":\\"main\\"}"}',
        `PutEvents failed: {"Detail":"{\\"token\\":\\"${REDACTED}\\",\\"ref\\":\\"main\\"}"}`,
      ],
      ['body "{\\"password\\": \\"hunter2hunter2\\"}"', `body "{\\"password\\": \\"${REDACTED}\\"}"`],
      // base64("user:hunter"): no digit, no padding, under 20 characters, still a credential.
      ["Authorization: Basic dXNlcjpwYXNz", `Authorization: Basic ${REDACTED}`],
      // A presigned URL's session token, URL-encoded: no part of it may stay.
      [
        "GET https://b.s3.amazonaws.com/k?X-Amz-Security-Token=IQoJb3JpZ2luX2VjEJr%2F%2F%2F%2F%2FwEaCXVzLWVhc3QtMSJHMEUCIQDexampleexample%2Bexample&X-Amz-Date=20260301T100000Z failed",
        `GET https://b.s3.amazonaws.com/k?X-Amz-Security-Token=${REDACTED}&X-Amz-Date=20260301T100000Z failed`,
      ],
    ];
    for (const [reason, expected] of cases) expect(redact.text(reason)).toBe(expected);
    // Prose that names the scheme stays readable: mixed case counts for Basic's base64 only.
    for (const reason of [
      "Basic authentication failed for user deploy-bot",
      "token configured",
      "token expiresAt unknown",
    ])
      expect(redact.text(reason)).toBe(reason);
  });

  it("removes any value assigned to a secret-named key, whatever the separator (property)", () => {
    // Every name form the pattern knows, in several cases: the cheap first look must let each through.
    const names = fc.constantFrom(
      "password",
      "Passwd",
      "PWD",
      "private_token",
      "access_token",
      "client_secret",
      "Secret",
      "api_key",
      "API-KEY",
      "private-key",
      "ACCESS_KEY",
      "credentials",
      "Credential",
      "signature",
      "X-Signature",
      "X-Gitlab-Token",
      "PASSWORD",
    );
    const separators = fc.constantFrom("=", ": ", ":", '": "', '":"', "%3D", "%3d", " = ");
    const value = chars("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-._~+/", 6, 40);
    fc.assert(
      fc.property(filler, names, separators, value, filler, (before, name, separator, secret, after) => {
        const reason = `${before} ${name}${separator}${secret} ${after}`;
        expect(createAuditRedactor()(record({ reason })).reason).not.toContain(secret);
      }),
    );
  });

  it("redacts what JSON.stringify would write for a value with toJSON, and keeps dates readable", () => {
    const redact = createAuditRedactor(["configured-secret-1"]);
    const out = redact(
      record({
        subject: {
          expiresAt: new Date("2026-03-01T10:15:00.000Z"),
          link: new URL("https://user:configured-secret-1@gitlab.example.com/group/app"),
          wrapped: { toJSON: () => "glpat-abcdefghijklmnopqrst" },
          broken: {
            toJSON: () => {
              throw new Error("no");
            },
          },
        },
      }),
    );
    const line = JSON.stringify(out);
    expect(line).not.toContain("configured-secret-1");
    expect(line).not.toContain("glpat-abcdefghijklmnopqrst");
    expect(JSON.parse(line).subject).toEqual({
      expiresAt: "2026-03-01T10:15:00.000Z",
      link: `https://user:${REDACTED}@gitlab.example.com/group/app`,
      wrapped: REDACTED,
      broken: REDACTED,
    });
  });

  it("redacts field names too: a secret used as a key does not reach the line", () => {
    const redact = createAuditRedactor(["configured-secret-1"]);
    const out = redact(
      record({
        subject: { variables: { "configured-secret-1": 1, "glpat-abcdefghijklmnopqrst": 2, ok: 3 } },
      }),
    );
    const line = JSON.stringify(out);
    expect(line).not.toContain("configured-secret-1");
    expect(line).not.toContain("glpat-abcdefghijklmnopqrst");
    expect(out.subject.variables).toMatchObject({ ok: 3 });
  });

  it("is pure: the producer's record is not changed", () => {
    const input = record({ subject: { token: "abc" } });
    const copy = structuredClone(input);
    createAuditRedactor()(input);
    expect(input).toEqual(copy);
  });
});
