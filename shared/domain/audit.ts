/**
 * The audit record (DESIGN §9): one JSON line per decision, never a secret.
 *
 * Producers build an `AuditRecord`; every writer passes it through `prepareAuditRecord`, which
 * stamps the schema version (and the Lambda request id when there is one) and redacts anything that
 * looks like a secret. Its validator is in `audit-schema.ts`, apart, so that the functions' bundles
 * (the webhook's has a 400 KB budget) do not carry it.
 */
/** Bumped when a field changes meaning or is removed; adding an optional field keeps it. */
export const AUDIT_SCHEMA_VERSION = 1;

export const AUDIT_OUTCOMES = ["allow", "deny", "success", "failure", "ignored"] as const;
export type AuditOutcome = (typeof AUDIT_OUTCOMES)[number];

export interface AuditRecord {
  audit: true;
  /** Stamped by the writer: the schema version of this line. */
  auditVersion?: number;
  /** What was decided, dotted: `webhook.receive`, `bus.deliver`, ... */
  action: string;
  outcome: AuditOutcome;
  reason: string;
  /** Who caused it: a GitLab user, job or pipeline, or a Kubler function. */
  actor: Record<string, string | number | null>;
  /** What it was about: project, environment, namespace, role ARN, event ids. */
  subject: Record<string, unknown>;
  correlationId: string | null;
  gitlab: {
    instance: string | null;
    event: string | null;
    idempotencyKey: string | null;
    webhookUuid: string | null;
  } | null;
  function: string;
  at: string;
  /** Stamped by the Lambda writer: the invocation's `awsRequestId`. Absent locally. */
  requestId?: string | null;
  /** Optional metrics hint: how long the step took, for the `StepLatency` metric and the timeline. */
  durationMs?: number;
}

// ---------------------------------------------------------------------------------------------
// Redaction: whatever a producer puts in a record, nothing that looks like a secret comes out.

export const REDACTED = "[redacted]";

/**
 * Field names whose value is a secret by name. `key` alone and the compound `*Key` forms that hold
 * key material; not `idempotencyKey` (the correlation id GitLab sends) nor `kid` (a key's public id).
 */
const SECRET_NAME =
  /authori[sz]ation|cookie|passw(?:or)?d|passphrase|secret|token|credential|signature|bearer|^jwt$|^key$|(?:api|private|access|secret|signing|session|encryption|master)[-_]?key/i;
/**
 * Secret-sounding names that hold facts about a secret, not the secret: when it expires, its id,
 * ARN or name, a count. `secretArn`, `tokenExpiresAt`, `credentialsIssued`...
 */
const SAFE_NAME_SUFFIX =
  /(?:At|Expiry|Expiration|Arn|Name|Names|Id|Ids|Count|Type|Kind|Source|Seconds|Ms|Issued|Present|Prefix)$/;

/** Text that is a credential whatever field it is in, found by a keyword (see `KEYWORD`). */
const KEYWORD_SHAPES = [
  // JWTs (GitLab ID tokens, Kubernetes service-account tokens): base64url header that starts `{"`.
  /eyJ[A-Za-z0-9_-]{2,}\.[A-Za-z0-9_-]{2,}\.[A-Za-z0-9_-]*/g,
  // Standard Webhooks signing secrets (GitLab 19+).
  /whsec_[A-Za-z0-9+/=_-]+/g,
  // GitLab tokens by their documented prefixes: https://docs.gitlab.com/security/tokens/#token-prefixes
  /\bgl(?:pat|oas|dt|rt|rtr|cbt|ptt|ft|imt|agent|soat|ffct|wt|cuat|sapat)-[A-Za-z0-9_.-]{8,}/g,
  // EKS tokens (a presigned GetCallerIdentity URL).
  /k8s-aws-v1\.[A-Za-z0-9_-]+/g,
  // PEM private keys.
  /-----BEGIN [A-Z ]*PRIVATE KEY-----[\s\S]*?(?:-----END [A-Z ]*PRIVATE KEY-----|$)/g,
];
/** AWS session tokens and other long base64 blobs: nothing Kubler audits is 100+ such characters. */
const LONG_BASE64 = /[A-Za-z0-9/+=]{100,}/g;
/**
 * `Authorization: Bearer x`: the scheme stays, the value goes. A value in angle brackets is taken
 * whole, spaces included, so that a placeholder (`<GitLab ID token>`) can be told from a value.
 */
const BEARER_VALUE = /\b(Bearer)(\s+|=|:\s*)(<[^<>\r\n"']{1,62}>[.,:;)\]]*(?=[\s"',;]|$)|[^\s"',;]+)/gi;
/**
 * A placeholder where a value would go, as a hint or usage text writes it: `<token>`, `<GitLab ID
 * token>`, `<…>`, maybe followed by punctuation. Redacted, job-credentials' 401 hint read "send
 * Authorization: Bearer [redacted]", which tells an operator nothing. Only words of letters (at most
 * one case change inside each, as in `GitLab`; at most 11 letters each, as a word has: a token of
 * 12 or more letters that happen to be all one case is still a value) or an ellipsis: a digit, a dot,
 * a long run or base64's mixed case inside the brackets is a value, and goes. Never one that starts
 * with the scheme: `<Bearer AAAAAAA-AAAA>` is a credential written whole in brackets, as a
 * placeholder names only what follows the scheme.
 */
const PLACEHOLDER = /^<(?!bearer[ _-])(?:…|\.\.\.|[A-Za-z]{1,11}(?:[ _-][A-Za-z]{1,11}){0,5})>[.,:;)\]]*$/i;
const CASE_CHANGES = /[a-z][A-Z][\s\S]*[a-z][A-Z]/;

function isPlaceholder(value: string): boolean {
  return (
    value.length <= 64 &&
    PLACEHOLDER.test(value) &&
    !value.split(/[ _-]/).some((word) => CASE_CHANGES.test(word))
  );
}
/**
 * `Basic x`, `token x`: only a value that looks like one (a digit or symbol, or 20+ characters; for
 * Basic, base64's mixed case too), so prose such as "token configured" stays readable. `%` is in the
 * value: a URL-encoded one (`X-Amz-Security-Token=IQo…%2F…`) goes whole, not up to its first escape.
 */
const SCHEME_VALUE = /\b(Basic|Token|Digest)(\s+|=|:\s*)([A-Za-z0-9._~+/=%-]{8,})/gi;

/**
 * `password=x`, `private_token=x`, `"client_secret": "x"`, `api_key%3Dx` (URL-encoded): a value
 * assigned to a secret-named key in free text (a URL's query, a form body, JSON inside a message).
 * The key stays, the value goes. Prose ("token configured", "tokenExpiresAt: …") has no separator
 * right after the name, and an ARN's `:secret:` segment follows a colon: both stay readable. Quotes
 * may be escaped (`{\"token\":\"x\"}`: JSON quoted inside JSON, as in an error quoting a request).
 * A value in angle brackets is taken whole, spaces included, as after `Bearer`: build-image's hint
 * `--from-literal=token=<GitLab token with read_repository>` lost its first word to `[redacted]`.
 */
const SECRET_ASSIGNMENT =
  /(?<![:/])(passw(?:or)?d|\bpwd|secret|token|api[-_]?key|private[-_]?key|access[-_]?key|credentials?|signature)(\\?["']?\s*(?:[:=]|%3[AaDd])\s*\\?["']?)(<[^<>\r\n"']{1,62}>[.,:;)\]]*(?=[\s"',;]|$)|(?:[^\s"'&,;)}\]\\]|\\(?!["']))+)/gi;
/** `scheme://user:password@host`: the user stays, the password goes. */
const URL_PASSWORD = /\b([a-z][a-z0-9+.-]*:\/\/[^\s:/?#@]*:)([^\s/?#@]+)@/gi;
/**
 * Cheap first looks for `SECRET_ASSIGNMENT`: a separator, and a fragment of every name it knows.
 * Without the second, every URL and timestamp (a `:`) ran the full pattern, the slowest of a record.
 * A name added to `SECRET_ASSIGNMENT` needs its fragment here; the property test lists every name.
 */
const SEPARATOR = /[:=%]/;
const SECRET_NAME_FRAGMENT = /passw|pwd|secret|token|key|credential|signature/i;

/** An upper-case letter after the first: base64, not a word ("Basic authentication"). */
const MIXED_CASE = /.[A-Z]/;
/** Only Basic's value is base64: mixed case after `token` is prose (`token expiresAt`). */
const BASIC = /^basic$/i;

function looksLikeCredential(text: string): boolean {
  return text.length >= 20 || /[0-9._~+/=-]/.test(text);
}
/**
 * An AWS secret access key: 40 base64 characters with no neighbours of the same kind, mixed case
 * and a digit or `+`/`/` (commit SHAs are lower-case hex and stay readable). A false positive costs
 * a readable field, never a leak.
 */
const AWS_SECRET_KEY = /(?<![A-Za-z0-9/+])[A-Za-z0-9/+]{40}(?![A-Za-z0-9/+])/g;

function looksLikeAwsSecretKey(text: string): boolean {
  return /[A-Z]/.test(text) && /[a-z]/.test(text) && /[0-9+/]/.test(text);
}

/**
 * An IAM or STS principal's ARN (`kubler stop`'s operator, a role credentials were issued for) ends
 * in a run such as `role/KublerPlatformOperatorRole/botocore` that has the shape of a key: kept. Only
 * a run that starts at the ARN's resource type, of names of at most 64 characters (IAM's limit) and
 * no longer than a role and a session: it cannot hold a 40-character key, nor a session token.
 */
const PRINCIPAL_ARN_BEFORE = /\barn:aws(?:-[a-z]+)*:(?:iam|sts)::\d{12}:(?:assumed-|federated-)?$/;
const PRINCIPAL_RESOURCE = /^(?:role|user)(?:\/[A-Za-z0-9+=]{1,64}){1,8}$/;
const MAX_PRINCIPAL_RESOURCE_LENGTH = "role/".length + 64 + "/".length + 64;

function isPrincipalArnResource(run: string, offset: number, text: string): boolean {
  return (
    run.length <= MAX_PRINCIPAL_RESOURCE_LENGTH &&
    PRINCIPAL_RESOURCE.test(run) &&
    PRINCIPAL_ARN_BEFORE.test(text.slice(Math.max(0, offset - 64), offset))
  );
}

/**
 * Cheap first looks, so most strings (ids, names, reasons) skip the patterns entirely. Two regexes,
 * not one: an alternation of both ran ~8× slower than the two apart (irregexp loses its literal
 * search), and that was most of the cost of writing a record.
 */
const KEYWORD =
  /eyJ|whsec_|gl[a-z]{1,6}-|k8s-aws|PRIVATE KEY|[Bb]earer|BEARER|[Bb]asic|BASIC|[Tt]oken|TOKEN|[Dd]igest|DIGEST/;
const LONG_RUN = /[A-Za-z0-9/+=]{40}/;
const UPPER = /[A-Z]/;
/** Shorter than this, a string holds no credential shape (a configured secret is still looked for). */
const MIN_SHAPED_LENGTH = 8;

/** Below this length a configured secret would redact ordinary words; such secrets are refused. */
export const MIN_REDACTED_SECRET_LENGTH = 6;

export interface AuditRedactor {
  /** A redacted copy; its fields are added to `seed` (which fixes the order of the first keys). */
  (record: AuditRecord, seed?: Partial<AuditRecord>): AuditRecord;
  /** The same scrubbing for one string (a reason built elsewhere, an error message). */
  text(value: string): string;
  /** A secret learned after start-up (read from Secrets Manager): redacted from now on. */
  add(secret: string): void;
}

/**
 * The redaction layer every writer applies. Pure: returns a new record and never throws. Redacts
 * values of fields named like secrets, the configured secrets wherever they appear (and the key of
 * a `whsec_` secret without its prefix), and text shaped like a credential.
 *
 * @example
 * const redact = createAuditRedactor(["s3cr3t-token"]);
 * redact(record).reason; // "bad token [redacted]" — was "bad token s3cr3t-token"
 */
export function createAuditRedactor(secrets: readonly string[] = []): AuditRedactor {
  const unique = new Set<string>();
  let literals: string[] = [];
  let configured: RegExp | null = null;
  const add = (secret: string) => {
    const before = unique.size;
    if (secret.length >= MIN_REDACTED_SECRET_LENGTH) unique.add(secret);
    const body = secret.startsWith("whsec_") ? secret.slice("whsec_".length) : null;
    if (body && body.length >= MIN_REDACTED_SECRET_LENGTH) unique.add(body);
    if (unique.size === before) return;
    literals = [...unique];
    // Longest first, so a secret that contains another is removed whole.
    configured = new RegExp(
      [...literals]
        .sort((a, b) => b.length - a.length)
        .map(escapeRegExp)
        .join("|"),
      "g",
    );
  };
  for (const secret of secrets) add(secret);

  const text = (value: string): string => {
    let out = value;
    if (configured && literals.some((secret) => out.includes(secret)))
      out = out.replace(configured, REDACTED);
    if (out.length >= MIN_SHAPED_LENGTH) {
      if (KEYWORD.test(out)) {
        for (const shape of KEYWORD_SHAPES) out = out.replace(shape, REDACTED);
        out = out.replace(BEARER_VALUE, (match, scheme: string, separator: string, value: string) =>
          isPlaceholder(value) ? match : `${scheme}${separator}${REDACTED}`,
        );
        out = out.replace(SCHEME_VALUE, (match, scheme: string, separator: string, secret: string) =>
          looksLikeCredential(secret) || (BASIC.test(scheme) && MIXED_CASE.test(secret))
            ? `${scheme}${separator}${REDACTED}`
            : match,
        );
      }
      if (SEPARATOR.test(out)) {
        if (SECRET_NAME_FRAGMENT.test(out)) {
          out = out.replace(SECRET_ASSIGNMENT, (match, name: string, separator: string, secret: string) =>
            REDACTED.startsWith(secret) || isPlaceholder(secret) ? match : `${name}${separator}${REDACTED}`,
          );
        }
        if (out.includes("@") && out.includes("://")) out = out.replace(URL_PASSWORD, `$1${REDACTED}@`);
      }
      // Commit SHAs and digests (lower-case hex) pass the first look but neither of these gates.
      if (out.length >= 40 && LONG_RUN.test(out)) {
        if (out.length >= 100) {
          out = out.replace(LONG_BASE64, (match, offset: number, whole: string) =>
            isPrincipalArnResource(match, offset, whole) ? match : REDACTED,
          );
        }
        if (UPPER.test(out)) {
          out = out.replace(AWS_SECRET_KEY, (match, offset: number, whole: string) =>
            looksLikeAwsSecretKey(match) && !isPrincipalArnResource(match, offset, whole) ? REDACTED : match,
          );
        }
      }
    }
    // A replacement that joined fragments into a configured secret again: drop the whole string.
    if (configured && out !== value && literals.some((secret) => out.includes(secret))) return REDACTED;
    return out;
  };

  const value = (input: unknown, depth: number): unknown => {
    if (typeof input === "string") return text(input);
    if (input === null || typeof input !== "object") return input;
    // Records are small and flat; anything nested this deep is not something we meant to log.
    if (depth > 8) return REDACTED;
    // JSON.stringify writes what toJSON returns (a Date's ISO string, a URL's href with its password,
    // anything a class chooses), not the fields copied here: redact that instead.
    const toJSON = (input as { toJSON?: unknown }).toJSON;
    if (typeof toJSON === "function") {
      try {
        return value(toJSON.call(input), depth + 1);
      } catch {
        return REDACTED;
      }
    }
    if (Array.isArray(input)) return input.map((item) => value(item, depth + 1));
    return fields(input as Record<string, unknown>, depth, {});
  };
  // Field names can come from input too (a map of variables, headers): scrubbed like values, and
  // remembered, as they are mostly the producers' few dozen.
  const keys = new Map<string, string>();
  const key = (name: string): string => {
    let known = keys.get(name);
    if (known === undefined) {
      known = text(name);
      if (keys.size < 4096) keys.set(name, known);
    }
    return known;
  };
  const fields = (input: Record<string, unknown>, depth: number, out: Record<string, unknown>) => {
    for (const name in input) {
      if (!Object.hasOwn(input, name)) continue;
      const item = input[name];
      out[key(name)] =
        item !== null && typeof item !== "boolean" && secretName(name) ? REDACTED : value(item, depth + 1);
    }
    return out;
  };

  const redact = ((record: AuditRecord, seed: Partial<AuditRecord> = {}): AuditRecord =>
    fields(record as unknown as Record<string, unknown>, 0, seed) as unknown as AuditRecord) as AuditRedactor;
  redact.text = text;
  redact.add = add;
  return redact;
}

/** True for a field name whose value is a secret by name (`authorization`, `sessionToken`, ...). */
export function isSecretName(name: string): boolean {
  return SECRET_NAME.test(name) && !SAFE_NAME_SUFFIX.test(name);
}

/**
 * `isSecretName`, remembered: field names are the producers' vocabulary (a few dozen), and the
 * name regex was a large share of a record's cost. Bounded, in case names ever come from input.
 */
const secretNames = new Map<string, boolean>();
function secretName(name: string): boolean {
  let known = secretNames.get(name);
  if (known === undefined) {
    known = isSecretName(name);
    if (secretNames.size < 4096) secretNames.set(name, known);
  }
  return known;
}

function escapeRegExp(text: string): string {
  return text.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");
}

export interface AuditStamp {
  /** The Lambda invocation's request id, when there is one. */
  requestId?: string | null;
  /** Milliseconds from the start of the invocation to this decision, unless the producer said. */
  durationMs?: number;
}

/**
 * What every writer does before a record leaves the process: redact, stamp the schema version and
 * the request id. The stamps come first, then the producer's fields in their order, but `actor` and
 * `subject` last: Logs Insights extracts at most 200 fields of a JSON line ("CloudWatch Logs Insights
 * can extract a maximum of 200 log event fields from a JSON log",
 * https://docs.aws.amazon.com/AmazonCloudWatch/latest/logs/CWL_AnalyzeLogData-discoverable-fields.html),
 * each array item one, and a subject's list (a deploy's pruned objects) pushed `correlationId`, `at`
 * and `gitlab` past them: the correlation query no longer found that line.
 *
 * @example
 * const line = JSON.stringify(prepareAuditRecord(record, redact, { requestId: context.awsRequestId }));
 */
export function prepareAuditRecord(
  record: AuditRecord,
  redact: AuditRedactor,
  stamp: AuditStamp = {},
): AuditRecord {
  const seed: Partial<AuditRecord> = { audit: true, auditVersion: AUDIT_SCHEMA_VERSION };
  if (stamp.requestId) seed.requestId = stamp.requestId;
  if (stamp.durationMs !== undefined && record.durationMs === undefined) seed.durationMs = stamp.durationMs;
  const { actor, subject, ...rest } = record;
  const prepared = redact({ ...rest, actor, subject } as AuditRecord, seed);
  prepared.audit = true;
  prepared.auditVersion = AUDIT_SCHEMA_VERSION;
  if (stamp.requestId) prepared.requestId = stamp.requestId;
  // A producer's `durationMs: undefined` was copied over the seed's.
  if (stamp.durationMs !== undefined && prepared.durationMs === undefined)
    prepared.durationMs = stamp.durationMs;
  return prepared;
}
