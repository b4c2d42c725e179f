/**
 * One row per Kubler function: its size, its time limit, what it is told (environment) and what it
 * may call (IAM). Typed by the catalog's `FunctionName`, so a function added to the catalog does not
 * compile until it has a row here.
 */
import { Duration } from "aws-cdk-lib";
import type { FunctionName } from "../shared/domain/catalog.js";
import { DEPLOY_FUNCTION_TIMEOUT_SECONDS } from "../shared/domain/kubler-manifest.js";

/**
 * What a function may call; the stack turns each into exactly one IAM statement (see
 * `kubler-stack.ts`), scoped to this stack's resources.
 */
export type Grant =
  /** events:PutEvents on the kubler bus, of the detail-types the catalog's PRODUCERS gives it only. */
  | "publish"
  /** The spec's `dedupe` actions on the dedupe table, on its `dedupe.keys` only. */
  | "dedupe"
  /** secretsmanager:GetSecretValue on the webhook credentials secret. */
  | "webhookSecret"
  /** secretsmanager:GetSecretValue on the GitLab API token secret. */
  | "gitlabToken"
  /** secretsmanager:GetSecretValue on the cluster kubeconfig secret. */
  | "kubeconfig"
  /** secretsmanager:GetSecretValue on the registry pull secret, when one is configured (else nothing). */
  | "registryAuthSecret"
  /**
   * sts:AssumeRole/TagSession/SetSourceIdentity on the role ARNs the credentials policy names (in as
   * many statements as IAM's policy sizes need: a policy may name hundreds of roles).
   */
  | "assumeJobRoles"
  /** scheduler:Create/Update/DeleteSchedule in the expiry group, and iam:PassRole of its role. */
  | "manageSchedules"
  /** scheduler:DeleteSchedule in the expiry group. */
  | "deleteSchedules";

/** Settings a function is given, by the variable names of shared/config.ts. */
export type Setting =
  | "busName"
  | "busArn"
  | "dedupeTable"
  | "scheduleGroup"
  | "schedulerRoleArn"
  | "scheduleDeadLetters"
  | "gitlabUrl"
  | "gitlabTokenSecret"
  | "kubeconfigSecret"
  /** Only when `kubler:registryAuthSecretArn` is set: the variable is absent otherwise. */
  | "registryAuthSecret"
  | "webhookCredentialsSecret"
  | "policyFile"
  | "defaultTtl"
  | "buildImages"
  /** `KUBLER_POD_SECURITY`, from `kubler:podSecurity`. */
  | "podSecurity";

export interface FunctionSpec {
  description: string;
  memoryMb: number;
  timeout: Duration;
  /** Reached over HTTPS by a Function URL (auth NONE: the function authenticates each request). */
  url: boolean;
  /** The largest `index.mjs` allowed (KB): a cold-start budget, checked by test/infra/bundles.test.ts. */
  bundleBudgetKb: number;
  settings: readonly Setting[];
  grants: readonly Grant[];
  /** With the "dedupe" grant: what the function does in the dedupe table, and to which keys. */
  dedupe?: DedupeAccess;
  /**
   * Lambda's retries of an asynchronous invocation that failed, and how long one may wait in
   * Lambda's queue (throttled) before it is dead-lettered. Default: retried twice, kept 6 hours.
   */
  asyncInvoke?: { retryAttempts: number; maxEventAge: Duration };
}

/**
 * One function's share of the dedupe table, which three functions use for different things: a
 * function can neither forge nor free another's keys (the webhook cannot release a `jti:` replay
 * entry, so a replayed ID token stays refused).
 */
export interface DedupeAccess {
  actions: readonly ("PutItem" | "UpdateItem" | "DeleteItem" | "GetItem")[];
  /**
   * `dynamodb:LeadingKeys` patterns (`*`: any characters) of the keys its stores write, or
   * "unprefixed": every key no other function's patterns match.
   */
  keys: readonly string[] | "unprefixed";
}

/** @kubernetes/client-node alone is ≈1.5 MB bundled (STACK.md). */
const KUBERNETES_BUDGET_KB = 2048;
/** Functions without the Kubernetes client: the AWS SDK, hono or valibot, and our code. */
const DEFAULT_BUDGET_KB = 1024;

/** What every environment step reads at start-up (loadAwsStepsConfig) and the cluster. */
const ENVIRONMENT_STEP: readonly Setting[] = [
  "busName",
  "busArn",
  "scheduleGroup",
  "schedulerRoleArn",
  "scheduleDeadLetters",
  "kubeconfigSecret",
];

export const FUNCTION_SPECS: Record<FunctionName, FunctionSpec> = {
  "gitlab-webhook": {
    description: "GitLab webhooks: verify, dedupe, normalize, PutEvents",
    // More memory is more CPU: verification and JSON.parse are the hot path, GitLab waits at most 10 s.
    memoryMb: 512,
    timeout: Duration.seconds(10),
    url: true,
    // GitLab waits for this one, cold starts included: no Kubernetes client (DESIGN §12); its Secrets
    // Manager client reads the webhook tokens once per container, at cold start.
    bundleBudgetKb: 400,
    settings: ["busName", "dedupeTable", "webhookCredentialsSecret"],
    grants: ["publish", "dedupe", "webhookSecret"],
    // Delivery keys begin with what the delivery carries ("webhook-id …", or the X-Gitlab-Instance
    // value), so they have no prefix of their own. A key is reserved, confirmed in place, or released.
    dedupe: { actions: ["PutItem", "UpdateItem", "DeleteItem"], keys: "unprefixed" },
  },
  "job-credentials": {
    description: "CI job ID token to short-lived AWS credentials and kubeconfig",
    memoryMb: 512,
    timeout: Duration.seconds(15),
    url: true,
    bundleBudgetKb: KUBERNETES_BUDGET_KB,
    settings: ["busName", "dedupeTable", "gitlabUrl", "policyFile", "kubeconfigSecret"],
    grants: ["assumeJobRoles", "dedupe", "publish", "kubeconfig"],
    // The ID-token replay cache: `jti:<iss>:<jti>` (shared/services/mint-job-credentials.ts).
    dedupe: { actions: ["PutItem", "DeleteItem"], keys: ["jti:*"] },
  },
  "plan-steps": {
    description: "GitLab facts to Build/Deploy/Stop requests, from the project's kubler.yaml",
    memoryMb: 512,
    timeout: Duration.seconds(30),
    url: false,
    bundleBudgetKb: DEFAULT_BUDGET_KB,
    settings: ["busName", "dedupeTable", "gitlabUrl", "gitlabTokenSecret"],
    grants: ["publish", "dedupe", "gitlabToken"],
    // Fact and step keys, `plan/fact/…` and `plan/<instance>/…`, and the stop records it reads back,
    // `plan/stop/…` (shared/services/plan-steps.ts, shared/domain/plan-steps.ts). UpdateItem confirms
    // a fact's lease once it is planned.
    dedupe: { actions: ["PutItem", "UpdateItem", "DeleteItem", "GetItem"], keys: ["plan/*"] },
  },
  "build-image": {
    description: "Build Requested to a BuildKit Job in the cluster",
    memoryMb: 512,
    timeout: Duration.seconds(60),
    url: false,
    bundleBudgetKb: KUBERNETES_BUDGET_KB,
    // Reads kubler.yaml (the image to build) through the GitLab API.
    settings: [...ENVIRONMENT_STEP, "gitlabUrl", "gitlabTokenSecret", "buildImages"],
    grants: ["kubeconfig", "publish", "gitlabToken"],
  },
  "deploy-environment": {
    description: "Deploy Requested / Build Finished to a rolled-out environment with an expiry schedule",
    memoryMb: 1024,
    // Waits for the rollout (kubler.yaml rolloutTimeoutSeconds, default 300) and may roll back,
    // waiting again: kubler.yaml's limit on that timeout is derived from this one.
    timeout: Duration.seconds(DEPLOY_FUNCTION_TIMEOUT_SECONDS),
    url: false,
    bundleBudgetKb: KUBERNETES_BUDGET_KB,
    settings: [
      ...ENVIRONMENT_STEP,
      "dedupeTable",
      "defaultTtl",
      "gitlabUrl",
      "gitlabTokenSecret",
      "registryAuthSecret",
      "podSecurity",
    ],
    grants: ["kubeconfig", "publish", "manageSchedules", "gitlabToken", "dedupe", "registryAuthSecret"],
    // Reads the stop records plan-steps writes, `plan/stop/…`, to refuse a deploy asked for before a stop.
    dedupe: { actions: ["GetItem"], keys: ["plan/stop/*"] },
  },
  "cleanup-environments": {
    description: "Environment Stop Requested and the sweep: delete expired environments",
    memoryMb: 1024,
    timeout: Duration.minutes(5),
    url: false,
    bundleBudgetKb: KUBERNETES_BUDGET_KB,
    settings: ENVIRONMENT_STEP,
    grants: ["kubeconfig", "publish", "deleteSchedules"],
  },
  "report-status": {
    description: "Build/Deploy outcomes to GitLab commit statuses",
    memoryMb: 256,
    timeout: Duration.seconds(30),
    url: false,
    bundleBudgetKb: DEFAULT_BUDGET_KB,
    settings: ["gitlabUrl", "gitlabTokenSecret"],
    grants: ["gitlabToken"],
  },
  reconcile: {
    description: "Every minute: finished builds, stuck rollouts, expired environments",
    memoryMb: 1024,
    // Shorter than the schedule's period, so two runs never overlap for long.
    timeout: Duration.seconds(55),
    url: false,
    bundleBudgetKb: KUBERNETES_BUDGET_KB,
    settings: ENVIRONMENT_STEP,
    grants: ["kubeconfig", "publish"],
    // The next minute's run supersedes a failed or throttled one: no retry, no hours-old runs (which
    // would all start at once, each over the whole cluster, once a throttle is lifted). Lambda's
    // shortest allowed age is 60 s.
    asyncInvoke: { retryAttempts: 0, maxEventAge: Duration.minutes(1) },
  },
};
