/**
 * Job credentials (DESIGN §5): a CI job's GitLab ID token in; AWS credentials and a Kubernetes
 * token for exactly its project and environment out, for minutes. Verify → replay check → policy →
 * namespace checks → STS → ServiceAccount, RoleBinding, TokenRequest → audit and publish.
 */
import { createHash } from "node:crypto";
import { type AuditOutcome, type AuditRecord, REDACTED } from "../domain/audit.js";
import type { Detail } from "../domain/catalog.js";
import type { CredentialsFormat, IssuedCredentials } from "../domain/credentials-output.js";
import {
  type CredentialsPolicy,
  type DecidingClaims,
  type Decision,
  decideCredentials,
  ENVIRONMENT_NAMESPACE,
  MIN_DURATION_SECONDS,
  type PolicyRule,
} from "../domain/credentials-policy.js";
import {
  environmentLabels,
  heldByAnother,
  LABEL,
  MANAGED_BY_KUBLER,
  MANAGED_SELECTOR,
  recordedEnvironment,
} from "../domain/environment.js";
import { type JobClaims, jobProject } from "../domain/job-claims.js";
import type { KubeObject } from "../domain/kube-object.js";
import {
  buildAssumeRoleRequest,
  ExpiredTokenError,
  type OmittedTag,
  SessionPolicyTooLargeError,
  sessionDuration,
} from "../domain/sts-session.js";
import {
  ForbiddenError,
  KubernetesAdmissionDeniedError,
  KubernetesError,
  KubernetesForbiddenError,
  KubernetesUnavailableError,
  messageOf,
  TokenRejectedError,
  UnavailableError,
  UnprocessableError,
} from "../errors.js";
import type {
  AuditLog,
  Clock,
  CredentialIssuer,
  CredentialsCluster,
  DedupeStore,
  EventPublisher,
  IdGenerator,
  IdTokenVerifier,
} from "../ports.js";
import { type ResolvedNamespace, resolveEnvironmentNamespace } from "./resolve-environment-namespace.js";

export const FUNCTION_NAME = "job-credentials";
export const AUDIT_ACTION = "credentials.issue";
/** The prefix of the ServiceAccounts jobs' Kubernetes tokens are for: one per namespace and Role. */
export const JOB_SERVICE_ACCOUNT = "kubler-ci";

/**
 * The ServiceAccount for the rule's Role: one per Role, never shared, so a token minted under a rule
 * that binds a narrow Role does not also carry a wider Role another rule bound in the same namespace.
 *
 * @example
 * jobServiceAccount("kubler-deployer"); // "kubler-ci-kubler-deployer"
 */
export function jobServiceAccount(role: string): string {
  const name = `${JOB_SERVICE_ACCOUNT}-${role}`;
  // A Role name may hold ":" or be up to 253 long; a ServiceAccount name is a DNS subdomain.
  return name.length <= 253 && /^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$/.test(name)
    ? name
    : `${JOB_SERVICE_ACCOUNT}-${createHash("sha256").update(role).digest("hex").slice(0, 16)}`;
}
/** The API server refuses shorter TokenRequests. */
export const MIN_TOKEN_SECONDS = 600;
/** A replayed token may still be inside its leeway after `exp`: remember its `jti` that long too. */
const REPLAY_GRACE_SECONDS = 60;

export interface MintJobCredentialsDeps {
  verifier: IdTokenVerifier;
  policy: CredentialsPolicy;
  /** The `jti` replay cache: `jti:<iss>:<jti>` claimed until the token can no longer be used. */
  replay: DedupeStore;
  issuer: CredentialIssuer;
  /** Null: no cluster configured; rules that grant Kubernetes access cannot be served. */
  cluster: CredentialsCluster | null;
  publisher: EventPublisher;
  audit: AuditLog;
  clock: Clock;
  newId: IdGenerator;
  /** Where an error answered 500 goes (the app's). */
  logError: (error: unknown) => void;
  /**
   * Where what the job never sees goes: a failed publish of the archive-only event, a replay key not
   * released. Not `logError`: the stack alarms on its lines as requests answered 500 and lost.
   */
  logWarning: (error: unknown) => void;
  /** TokenRequest audiences; empty means the API server's own. */
  tokenAudiences?: string[];
}

export interface CredentialsRequest {
  /** The `Authorization` header as sent. */
  authorization: string | undefined;
  /** The body's `environment`: unsigned, so only checked against the token's own claim. */
  environment: string | null;
  format: CredentialsFormat;
}

/** A policy denial: the job is told its own claims; the audit line also gets why each rule missed. */
class PolicyDeniedError extends ForbiddenError {
  constructor(
    message: string,
    readonly auditReason: string,
  ) {
    super(message);
  }
}

/**
 * @example
 * const issued = await mintJobCredentials(deps, { authorization: `Bearer ${idToken}`, environment: null, format: "json" });
 * issued.aws?.accessKeyId; issued.kubernetes?.token;
 */
export async function mintJobCredentials(
  deps: MintJobCredentialsDeps,
  request: CredentialsRequest,
): Promise<IssuedCredentials> {
  const correlationId = deps.newId();
  let claims: JobClaims;
  let token: string | null = null;
  try {
    token = bearerToken(request.authorization);
    claims = await deps.verifier.verify(token);
  } catch (error) {
    // Every refusal is audited (§9), an outage too (the JWKS unreadable): the writer redacts the reason.
    deps.audit.record(verifyFailedRecord(correlationId, error, token, deps.clock.now()));
    throw error;
  }
  const audit = new JobAudit(deps, claims, correlationId);
  const replayKey = `jti:${claims.iss}:${claims.jti}`;
  const now = deps.clock.now();
  const ttl = Math.max(1, Math.ceil(claims.exp - now.getTime() / 1000) + REPLAY_GRACE_SECONDS);
  let first: boolean;
  try {
    first = await deps.replay.claim(replayKey, ttl);
  } catch {
    // The replay cache cannot say whether this token was used: refuse, and let the job retry.
    const error = new UnavailableError("the replay cache is unavailable: try again shortly");
    audit.fail(error.message, null);
    throw error;
  }
  if (!first) {
    const error = new TokenRejectedError(
      "replayed",
      "this ID token was already used: each token gets credentials once (request them once per job)",
    );
    audit.deny(error.message, null, { rejection: error.reason });
    throw error;
  }
  let decision: Decision | null = null;
  try {
    decision = decideCredentials(deps.policy, claims, request.environment);
    if (!decision.allowed) throw new PolicyDeniedError(decision.reason, decision.auditReason);
    const placed = await environmentNamespace(deps, claims, decision);
    if (placed) {
      decision = { ...decision, namespace: placed.namespace };
      audit.namespaceResolved = placed.reason;
    }
    const { issued, omittedTags } = await issue(deps, claims, decision, request.format, placed);
    await audit.allow(decision, issued, omittedTags);
    return issued;
  } catch (error) {
    // The token was not used for anything: the job may retry with it once the cause is fixed.
    await deps.replay.release(replayKey).catch(deps.logWarning);
    const failure = asAnswerable(error);
    if (failure instanceof TokenRejectedError) {
      await audit.denyAndPublish(failure.message, decision, { rejection: failure.reason });
    } else if (failure instanceof ForbiddenError || failure instanceof UnprocessableError) {
      const reason = failure instanceof PolicyDeniedError ? failure.auditReason : failure.message;
      await audit.denyAndPublish(reason, decision);
    } else {
      audit.fail(failure.message, decision);
    }
    throw failure;
  }
}

/**
 * The audit line of a request refused for its body (400 bad JSON or fields, 413 too large) before
 * anything else is decided: DESIGN §12 wants one for bad input too. The token is verified only to
 * say who sent it (a token that does not verify leaves the caller unknown); it is neither spent nor
 * logged. Never throws: the caller's answer is the body's error.
 *
 * @example
 * await auditBadRequest(deps, { authorization: c.req.header("authorization"), error });
 */
export async function auditBadRequest(
  deps: MintJobCredentialsDeps,
  input: { authorization: string | undefined; error: Error },
): Promise<void> {
  const correlationId = deps.newId();
  const reason = `bad request: ${input.error.message}`;
  let claims: JobClaims;
  try {
    claims = await deps.verifier.verify(bearerToken(input.authorization));
  } catch (error) {
    // Nothing from an unverified token: its claims are not known to be true.
    const rejection = error instanceof TokenRejectedError ? error.reason : "not_verified";
    deps.audit.record(callerUnknownRecord(correlationId, reason, { rejection }, deps.clock.now()));
    return;
  }
  new JobAudit(deps, claims, correlationId).deny(reason, null, {
    environment: claims.environment,
    input: "body",
  });
}

/**
 * The environment's namespace of a rule with `namespace: environment`, found as deploy and stop
 * find it: a renamed or moved project's token names its new path, its namespace keeps the name from
 * the old one. The fast path is the one GET the namespace check made anyway; only when that name is
 * not the environment's does one label-selected list follow. Null: the rule names its namespace.
 */
async function environmentNamespace(
  deps: MintJobCredentialsDeps,
  claims: JobClaims,
  decision: Extract<Decision, { allowed: true }>,
): Promise<ResolvedNamespace | null> {
  const { rule, environment } = decision;
  if (!deps.cluster || rule.kubernetes?.namespace !== ENVIRONMENT_NAMESPACE || environment === null)
    return null;
  const project = jobProject(claims);
  return resolveEnvironmentNamespace(deps.cluster, {
    instance: claims.iss,
    projectId: claimNumber(project.id),
    projectPath: project.path,
    environment,
  });
}

/** A numeric claim (GitLab sends ids as strings) as a number; null when it is not a safe integer. */
function claimNumber(text: string): number | null {
  return /^\d{1,15}$/.test(text) ? Number(text) : null;
}

async function issue(
  deps: MintJobCredentialsDeps,
  claims: JobClaims,
  decision: Extract<Decision, { allowed: true }>,
  format: CredentialsFormat,
  /** The namespace as the lookup read it (null: absent); not given: read by the check. */
  placed: { object: KubeObject | null } | null,
): Promise<{ issued: IssuedCredentials; omittedTags: OmittedTag[] }> {
  const { rule, environment, namespace } = decision;
  if (format === "kubeconfig" && !rule.kubernetes) {
    throw new UnprocessableError(
      `rule "${rule.name}" grants no Kubernetes access: ask for format json or env`,
    );
  }
  const now = deps.clock.now();
  // A Kubernetes-only grant is bound by TokenRequest's floor, not STS's; without AWS there is no
  // rule maximum, so it lasts what STS's shortest session would.
  const duration = sessionDuration({
    maxSeconds: rule.aws?.maxDurationSeconds ?? MIN_DURATION_SECONDS,
    minSeconds: rule.aws ? MIN_DURATION_SECONDS : MIN_TOKEN_SECONDS,
    tokenExp: claims.exp,
    now,
    what: rule.aws ? "AWS credentials" : "Kubernetes tokens",
  });
  const cluster = rule.kubernetes ? requireCluster(deps.cluster, rule) : null;
  // Every check that can refuse runs before anything is minted.
  if (cluster && rule.kubernetes && namespace) {
    // The environment's own namespace (namespace: environment) is checked to be that environment's.
    const held = rule.kubernetes.namespace === ENVIRONMENT_NAMESPACE ? environment : null;
    await checkNamespace(cluster, namespace, rule.kubernetes.role, jobProject(claims).id, held, placed);
  }
  let aws: IssuedCredentials["aws"] = null;
  let omittedTags: OmittedTag[] = [];
  if (rule.aws) {
    const request = buildAssumeRoleRequest({ aws: rule.aws, claims, environment, namespace, now });
    omittedTags = request.omittedTags;
    const credentials = await deps.issuer.assumeRole(request);
    aws = {
      issuer: deps.issuer.kind,
      roleArn: rule.aws.roleArn,
      assumedRoleArn: credentials.assumedRoleArn,
      accessKeyId: credentials.accessKeyId,
      secretAccessKey: credentials.secretAccessKey,
      sessionToken: credentials.sessionToken,
      expiresAt: credentials.expiresAt.toISOString(),
    };
  }
  let kubernetes: IssuedCredentials["kubernetes"] = null;
  if (cluster && rule.kubernetes && namespace) {
    const projectId = jobProject(claims).id;
    const token = await mintKubernetesToken(cluster, {
      namespace,
      role: rule.kubernetes.role,
      labels: environment
        ? environmentLabels(Number(projectId), environment)
        : { [LABEL.MANAGED_BY]: MANAGED_BY_KUBLER, [LABEL.PROJECT_ID]: projectId },
      expirationSeconds: duration,
      audiences: deps.tokenAudiences ?? [],
    });
    const endpoint = cluster.endpoint();
    kubernetes = {
      server: endpoint.server,
      certificateAuthorityData: endpoint.certificateAuthorityData,
      insecureSkipTlsVerify: endpoint.insecureSkipTlsVerify,
      namespace,
      serviceAccount: jobServiceAccount(rule.kubernetes.role),
      token: token.token,
      expiresAt: token.expiresAt.toISOString(),
    };
  }
  const expiries = [aws?.expiresAt, kubernetes?.expiresAt].filter((t): t is string => t !== undefined);
  return {
    issued: {
      rule: rule.name,
      environment,
      jobId: claims.job_id,
      expiresAt: expiries.sort()[0] as string,
      aws,
      kubernetes,
    },
    omittedTags,
  };
}

function requireCluster(cluster: CredentialsCluster | null, rule: PolicyRule): CredentialsCluster {
  if (!cluster) {
    throw new UnprocessableError(
      `rule "${rule.name}" grants Kubernetes access, but this Kubler has no cluster configured`,
    );
  }
  return cluster;
}

/**
 * Only a namespace Kubler manages, for this very project (and, when it was named after the job's
 * environment, that environment: two environments' names can differ by a hash alone, as the deploy
 * and stop check too), still alive, with the rule's Role in it.
 */
async function checkNamespace(
  cluster: CredentialsCluster,
  namespace: string,
  role: string,
  projectId: string,
  environment: string | null,
  read: { object: KubeObject | null } | null,
): Promise<void> {
  const object = read
    ? read.object
    : await cluster.get({ apiVersion: "v1", kind: "Namespace", name: namespace });
  if (!object) {
    throw new ForbiddenError(
      `namespace ${namespace} does not exist: Kubler creates an environment's namespace when it first deploys it`,
    );
  }
  const labels = object.metadata.labels ?? {};
  if (labels[LABEL.MANAGED_BY] !== MANAGED_BY_KUBLER) {
    throw new ForbiddenError(
      `namespace ${namespace} is not managed by Kubler (no ${MANAGED_SELECTOR} label): no credentials are minted into it`,
    );
  }
  const owner = labels[LABEL.PROJECT_ID];
  if (owner !== projectId) {
    throw new ForbiddenError(
      `namespace ${namespace} belongs to another project, not to project ${projectId}`,
    );
  }
  if (environment !== null) {
    const holder = recordedEnvironment(object);
    const other = holder
      ? heldByAnother(namespace, holder, environment)
      : `namespace ${namespace} records no environment, not ${environment}`;
    if (other) throw new ForbiddenError(other);
  }
  if (object.metadata.deletionTimestamp) {
    throw new ForbiddenError(`namespace ${namespace} is being deleted`);
  }
  const found = await cluster.get({
    apiVersion: "rbac.authorization.k8s.io/v1",
    kind: "Role",
    name: role,
    namespace,
  });
  if (!found) {
    throw new UnprocessableError(
      `the policy's Role ${role} does not exist in namespace ${namespace} (Kubler's deploy creates kubler-deployer)`,
    );
  }
}

/** The environment's ServiceAccount, bound to the rule's Role, and a TokenRequest for it. */
async function mintKubernetesToken(
  cluster: CredentialsCluster,
  input: {
    namespace: string;
    role: string;
    labels: Record<string, string>;
    expirationSeconds: number;
    audiences: string[];
  },
): Promise<{ token: string; expiresAt: Date }> {
  const { namespace, role, labels } = input;
  const account = jobServiceAccount(role);
  await cluster.apply({
    apiVersion: "v1",
    kind: "ServiceAccount",
    metadata: { name: account, namespace, labels },
  });
  await cluster.apply({
    apiVersion: "rbac.authorization.k8s.io/v1",
    kind: "RoleBinding",
    metadata: { name: account, namespace, labels },
    roleRef: { apiGroup: "rbac.authorization.k8s.io", kind: "Role", name: role },
    subjects: [{ kind: "ServiceAccount", name: account, namespace }],
  });
  // The API server may shorten the lifetime: the expiry is read back, not assumed.
  return cluster.createToken(
    { namespace, serviceAccount: account },
    { audiences: input.audiences, expirationSeconds: input.expirationSeconds },
  );
}

/** The token of `Authorization: Bearer <token>`. */
function bearerToken(header: string | undefined): string {
  const match = /^Bearer\s+(\S+)\s*$/i.exec(header ?? "");
  if (!match) {
    throw new TokenRejectedError(
      "missing_token",
      "send the job's GitLab ID token as Authorization: Bearer <token> (id_tokens with aud kubler)",
    );
  }
  return match[1] as string;
}

/** Errors of the ports as the named errors the app answers with. */
function asAnswerable(error: unknown): Error {
  if (error instanceof SessionPolicyTooLargeError) return new UnprocessableError(error.message);
  // 401 like an expired token: the token, not the job's rights, is what falls short, and only a
  // fresh one helps.
  if (error instanceof ExpiredTokenError) return new TokenRejectedError("expired", error.message);
  if (error instanceof KubernetesUnavailableError) {
    return new UnavailableError(`the Kubernetes API is unavailable (${error.message})`);
  }
  // A policy refusing the ServiceAccount, RoleBinding or TokenRequest: the cluster's operators, not
  // Kubler's role, must change it.
  if (error instanceof KubernetesAdmissionDeniedError) {
    return new UnprocessableError(
      `the cluster's admission policies refused what Kubler writes for the job's Kubernetes access: ${error.message}`,
    );
  }
  if (error instanceof KubernetesForbiddenError) {
    return new UnprocessableError(`Kubler's own Kubernetes identity was refused: ${error.message}`);
  }
  if (error instanceof KubernetesError) return new UnprocessableError(`Kubernetes refused: ${error.message}`);
  return error instanceof Error ? error : new Error(String(error));
}

/** A token refused (deny) or not verifiable now (failure). Nothing from the token: its claims are not known to be true. */
function verifyFailedRecord(
  correlationId: string,
  error: unknown,
  token: string | null,
  at: Date,
): AuditRecord {
  if (error instanceof TokenRejectedError) {
    return callerUnknownRecord(correlationId, error.message, { rejection: error.reason }, at);
  }
  let reason = `the token could not be verified: ${messageOf(error)}`;
  // An adapter's error is not ours to trust: the token goes even where it is not shaped like one.
  if (token) reason = reason.replaceAll(token, REDACTED);
  return callerUnknownRecord(correlationId, reason, { rejection: "not_verified" }, at, "failure");
}

function callerUnknownRecord(
  correlationId: string,
  reason: string,
  subject: Record<string, unknown>,
  at: Date,
  outcome: AuditOutcome = "deny",
): AuditRecord {
  return {
    audit: true,
    action: AUDIT_ACTION,
    outcome,
    reason,
    actor: { function: FUNCTION_NAME },
    subject,
    correlationId,
    gitlab: null,
    function: FUNCTION_NAME,
    at: at.toISOString(),
  };
}

/** The audit line and archive event of one verified job's request. */
class JobAudit {
  /** Why the environment's namespace is not the name from the token's project path (a renamed project). */
  namespaceResolved: string | null = null;

  constructor(
    private readonly deps: MintJobCredentialsDeps,
    private readonly claims: JobClaims,
    private readonly correlationId: string,
  ) {}

  async allow(
    decision: Extract<Decision, { allowed: true }>,
    issued: IssuedCredentials,
    omittedTags: OmittedTag[],
  ): Promise<void> {
    const roleArn = decision.rule.aws?.roleArn ?? null;
    this.#record("allow", decision.reason, decision.claims, {
      rule: decision.rule.name,
      environment: decision.environment,
      namespace: decision.namespace,
      roleArn,
      assumedRoleArn: issued.aws?.assumedRoleArn ?? null,
      issuer: issued.aws?.issuer ?? null,
      serviceAccount: issued.kubernetes?.serviceAccount ?? null,
      expiresAt: issued.expiresAt,
      ...(omittedTags.length > 0 ? { omittedTags } : {}),
    });
    await this.#publish({
      detailType: "Credentials Issued",
      detail: { ...this.#detailBase(decision.environment, decision.rule.name, decision.reason), roleArn },
    });
  }

  deny(reason: string, decision: Decision | null, extra: Record<string, unknown> = {}): void {
    this.#record("deny", reason, decision?.claims ?? null, { ...this.#decided(decision), ...extra });
  }

  async denyAndPublish(
    reason: string,
    decision: Decision | null,
    extra: Record<string, unknown> = {},
  ): Promise<void> {
    this.deny(reason, decision, extra);
    await this.#publish({
      detailType: "Credentials Denied",
      detail: this.#detailBase(decision?.environment ?? null, decision?.rule?.name ?? null, reason),
    });
  }

  fail(reason: string, decision: Decision | null): void {
    this.#record("failure", reason, decision?.claims ?? null, this.#decided(decision));
  }

  /** What the policy settled, so a refusal after it (the namespace, STS) says where it was going (§9). */
  #decided(decision: Decision | null): Record<string, unknown> {
    return {
      rule: decision?.rule?.name ?? null,
      environment: decision?.environment ?? null,
      ...(decision?.allowed
        ? { namespace: decision.namespace, roleArn: decision.rule.aws?.roleArn ?? null }
        : {}),
    };
  }

  #record(
    outcome: AuditOutcome,
    reason: string,
    claims: DecidingClaims | null,
    subject: Record<string, unknown>,
  ): void {
    const project = jobProject(this.claims);
    this.deps.audit.record({
      audit: true,
      action: AUDIT_ACTION,
      outcome,
      reason,
      actor: { user: this.claims.user_login, job: this.claims.job_id, pipeline: this.claims.pipeline_id },
      subject: {
        project: project.path,
        projectId: project.id,
        ...subject,
        ...(this.namespaceResolved ? { namespaceResolved: this.namespaceResolved } : {}),
        jti: this.claims.jti,
        claims,
      },
      correlationId: this.correlationId,
      gitlab: { instance: this.claims.iss, event: "id_token", idempotencyKey: null, webhookUuid: null },
      function: FUNCTION_NAME,
      at: this.deps.clock.now().toISOString(),
    });
  }

  #detailBase(environment: string | null, rule: string | null, reason: string): Detail<"Credentials Denied"> {
    const project = jobProject(this.claims);
    return {
      correlationId: this.correlationId,
      gitlab: {
        instance: this.claims.iss,
        projectId: claimNumber(project.id) ?? 0,
        projectPath: project.path,
      },
      environment,
      jobId: claimNumber(this.claims.job_id),
      rule,
      reason: reason.slice(0, 1000),
    };
  }

  /** Archive only: a failed publish is logged, never turned into a failed job. */
  async #publish(
    entry:
      | { detailType: "Credentials Issued"; detail: Detail<"Credentials Issued"> }
      | { detailType: "Credentials Denied"; detail: Detail<"Credentials Denied"> },
  ): Promise<void> {
    try {
      await this.deps.publisher.publish([entry]);
    } catch (error) {
      this.deps.logWarning(error);
    }
  }
}
