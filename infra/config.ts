/**
 * The stack's settings: read from CDK context (`cdk.json` or `-c kubler:<name>=<value>`), or passed
 * as props, and validated at synth so a mistake fails `cdk synth` with the setting's name instead of
 * a broken deployment.
 */
import { existsSync, readFileSync } from "node:fs";
import { resolve } from "node:path";
import type { Node } from "constructs";
import { hasUrlCredentials, PLAIN_HTTP_RISK } from "../shared/credentials-config.js";
import { FUNCTIONS, type FunctionName } from "../shared/domain/catalog.js";
import {
  DEFAULT_POD_SECURITY,
  isPodSecurityLevel,
  POD_SECURITY_LEVELS,
  type PodSecurityLevel,
} from "../shared/domain/environment.js";
import { imagesTemplateProblem } from "../shared/domain/image-repository.js";
import { parseTtl } from "../shared/domain/ttl.js";
import { roleArnsOfPolicy } from "./policy-roles.js";

/** Context keys, prefixed so they cannot clash with CDK's own. */
export const CONTEXT = {
  gitlabUrl: "kubler:gitlabUrl",
  policyFile: "kubler:policyFile",
  kubeconfigSecretArn: "kubler:kubeconfigSecretArn",
  gitlabTokenSecretArn: "kubler:gitlabTokenSecretArn",
  defaultTtl: "kubler:defaultTtl",
  reservedConcurrency: "kubler:reservedConcurrency",
  logRetentionDays: "kubler:logRetentionDays",
  alarmTopicArn: "kubler:alarmTopicArn",
  buildImages: "kubler:buildImages",
  registryAuthSecretArn: "kubler:registryAuthSecretArn",
  podSecurity: "kubler:podSecurity",
} as const;

export interface KublerConfig {
  /** The GitLab instance: ID-token issuer, JWKS and API (https). */
  gitlabUrl: string;
  /** The credentials policy (DESIGN §5), copied into job-credentials' bundle. */
  policyFile: string;
  /** The role ARNs the policy names: what job-credentials may assume. */
  jobRoleArns: string[];
  /** Secrets Manager secret holding the cluster's kubeconfig (YAML text). */
  kubeconfigSecretArn: string;
  /** Secrets Manager secret holding the GitLab API token. */
  gitlabTokenSecretArn: string;
  /** TTL of environments whose kubler.yaml rule sets none. */
  defaultTtl: string;
  /** Reserved concurrency by function; a function not named shares the account's pool. */
  reservedConcurrency: Partial<Record<FunctionName, number>>;
  /** Retention of every log group the stack creates. */
  logRetentionDays: number;
  /** An SNS topic the alarms notify; none: alarms only show in the console. */
  alarmTopicArn: string | null;
  /** `KUBLER_BUILD_IMAGES`: the repositories each project may push to; none: any its kubler.yaml names. */
  buildImages: string | null;
  /**
   * Secrets Manager secret holding the `.dockerconfigjson` every environment gets as its pull secret;
   * none: no pull secret (public images, or nodes that pull by their own role, as EKS from ECR).
   */
  registryAuthSecretArn: string | null;
  /** `KUBLER_POD_SECURITY`: the Pod Security level environment namespaces enforce. */
  podSecurity: PodSecurityLevel;
}

/** The values CloudWatch Logs accepts for retention (days). */
const RETENTION_DAYS = [
  1, 3, 5, 7, 14, 30, 60, 90, 120, 150, 180, 365, 400, 545, 731, 1096, 1827, 2192, 2557, 2922, 3288, 3653,
];

const SECRET_ARN = /^arn:aws[a-z-]*:secretsmanager:[a-z0-9-]+:\d{12}:secret:[\w/+=.@-]+$/;
/**
 * The six characters Secrets Manager appends to a secret's name in its ARN. The stack imports the
 * secrets with `fromSecretCompleteArn` and grants GetSecretValue on exactly that ARN: a partial one
 * (the name alone) synthesizes and deploys, then IAM refuses the read at the functions' cold start.
 */
const SECRET_ARN_SUFFIX = /-[A-Za-z0-9]{6}$/;
const SNS_ARN = /^arn:aws[a-z-]*:sns:[a-z0-9-]+:\d{12}:[\w-]{1,256}$/;
/** AWS caps one function's reserved concurrency at the account's limit; 1000 is the default limit. */
const MAX_RESERVED = 1000;

/** A setting that is missing or wrong, named by its context key. */
export class KublerConfigError extends Error {
  override readonly name = "KublerConfigError";
}

/** Raw values as they come from context or props (context values given with `-c` are strings). */
export type KublerSettings = Partial<Record<keyof typeof CONTEXT, unknown>>;

/**
 * Reads every setting from the app's context.
 *
 * @example
 * const config = configFromContext(app.node); // throws KublerConfigError naming the key
 */
export function configFromContext(node: Node, baseDir = process.cwd()): KublerConfig {
  const settings = Object.fromEntries(
    Object.entries(CONTEXT).map(([name, key]) => [name, node.tryGetContext(key)]),
  ) as KublerSettings;
  // A misspelt key would be ignored and its setting left at the default (alarms notifying nobody).
  const known = Object.values(CONTEXT) as string[];
  const unknown = Object.keys(node.getAllContext()).filter(
    (key) => key.startsWith("kubler:") && !known.includes(key),
  );
  return validateConfig(settings, baseDir, unknown);
}

/** The setting a misspelt key most likely meant: the same but for case, or one a prefix of the other. */
function meantKey(key: string): string | undefined {
  const known = Object.values(CONTEXT) as string[];
  const lower = key.toLowerCase();
  return (
    known.find((k) => k.toLowerCase() === lower) ??
    known.find((k) => k.toLowerCase().startsWith(lower) || lower.startsWith(k.toLowerCase()))
  );
}

/**
 * Checks raw settings and reads the policy file; all problems are reported at once.
 *
 * @example
 * validateConfig({ gitlabUrl: "https://gitlab.example.com", policyFile: "policy.yaml", ... });
 */
export function validateConfig(
  settings: KublerSettings,
  baseDir = process.cwd(),
  unknownKeys: readonly string[] = [],
): KublerConfig {
  const problems: string[] = unknownKeys.map((key) => {
    const meant = meantKey(key);
    return `${key}: is not a Kubler setting (${meant ? `did you mean ${JSON.stringify(meant)}?` : `settings are ${Object.values(CONTEXT).join(", ")}`})`;
  });
  const fail = (name: keyof typeof CONTEXT, message: string) => problems.push(`${CONTEXT[name]}: ${message}`);
  const text = (name: keyof typeof CONTEXT): string | null => {
    const value = settings[name];
    if (value === undefined || value === null || value === "") return null;
    if (typeof value !== "string") {
      fail(name, `must be a string, got ${JSON.stringify(value)}`);
      return null;
    }
    return value.trim();
  };

  const gitlabUrl = text("gitlabUrl");
  if (gitlabUrl === null)
    fail("gitlabUrl", "is required (the GitLab instance, e.g. https://gitlab.example.com)");
  else if (hasUrlCredentials(gitlabUrl)) {
    // Checked first, and never quoted: the value would put the credential in the template, every
    // function's environment and this message; the functions refuse such a GITLAB_URL anyway.
    fail(
      "gitlabUrl",
      "must be the instance's address only, without credentials (user:token@): the API token goes in kubler:gitlabTokenSecretArn",
    );
  } else if (!URL.canParse(gitlabUrl) || new URL(gitlabUrl).protocol !== "https:") {
    const why = /^http:/i.test(gitlabUrl) ? `: ${PLAIN_HTTP_RISK}` : "";
    fail("gitlabUrl", `must be an https URL, got ${JSON.stringify(gitlabUrl)}${why}`);
  }

  const policyFile = text("policyFile");
  let jobRoleArns: string[] = [];
  let policyPath = "";
  if (policyFile === null) fail("policyFile", "is required (the credentials policy YAML, DESIGN §5)");
  else {
    policyPath = resolve(baseDir, policyFile);
    if (!existsSync(policyPath)) fail("policyFile", `${policyPath} does not exist`);
    else {
      try {
        jobRoleArns = roleArnsOfPolicy(readFileSync(policyPath, "utf8"));
      } catch (error) {
        fail("policyFile", `${policyPath}: ${(error as Error).message}`);
      }
    }
  }

  const secretArn = (
    name: "kubeconfigSecretArn" | "gitlabTokenSecretArn" | "registryAuthSecretArn",
    what: string,
    optional = false,
  ): string => {
    const value = text(name);
    if (value === null) {
      if (!optional) fail(name, `is required (the Secrets Manager secret ARN of ${what})`);
    } else if (!SECRET_ARN.test(value))
      fail(name, `must be a Secrets Manager secret ARN, got ${JSON.stringify(value)}`);
    else if (!SECRET_ARN_SUFFIX.test(value)) {
      fail(
        name,
        `looks like a partial ARN: the complete one ends in the -AbCdEf suffix Secrets Manager adds to the name ` +
          `(aws secretsmanager describe-secret --secret-id <name> --query ARN), got ${JSON.stringify(value)}`,
      );
    }
    return value ?? "";
  };
  const kubeconfigSecretArn = secretArn("kubeconfigSecretArn", "the cluster's kubeconfig");
  const gitlabTokenSecretArn = secretArn("gitlabTokenSecretArn", "the GitLab API token");
  const registryAuthSecretArn =
    secretArn("registryAuthSecretArn", "the registry's .dockerconfigjson", true) || null;

  const defaultTtl = text("defaultTtl") ?? "72h";
  try {
    parseTtl(defaultTtl);
  } catch (error) {
    fail("defaultTtl", (error as Error).message);
  }

  const reservedConcurrency = readReservedConcurrency(settings.reservedConcurrency, (m) =>
    fail("reservedConcurrency", m),
  );

  const retention = settings.logRetentionDays ?? 365;
  const logRetentionDays = Number(retention);
  if (!RETENTION_DAYS.includes(logRetentionDays)) {
    fail("logRetentionDays", `must be one of ${RETENTION_DAYS.join(", ")}, got ${JSON.stringify(retention)}`);
  }

  const alarmTopicArn = text("alarmTopicArn");
  if (alarmTopicArn !== null && !SNS_ARN.test(alarmTopicArn)) {
    fail("alarmTopicArn", `must be an SNS topic ARN, got ${JSON.stringify(alarmTopicArn)}`);
  }

  const buildImages = text("buildImages");
  const imagesProblem = buildImages === null ? null : imagesTemplateProblem(buildImages);
  if (imagesProblem) fail("buildImages", imagesProblem);

  const podSecurity = text("podSecurity") ?? DEFAULT_POD_SECURITY;
  if (!isPodSecurityLevel(podSecurity)) {
    fail(
      "podSecurity",
      `must be one of ${POD_SECURITY_LEVELS.join(", ")} (the Pod Security level environment namespaces enforce), got ${JSON.stringify(podSecurity)}`,
    );
  }

  if (problems.length > 0) {
    throw new KublerConfigError(`invalid Kubler stack settings:\n  ${problems.join("\n  ")}`);
  }
  return {
    gitlabUrl: gitlabUrl as string,
    policyFile: policyPath,
    jobRoleArns,
    kubeconfigSecretArn,
    gitlabTokenSecretArn,
    defaultTtl,
    reservedConcurrency,
    logRetentionDays,
    alarmTopicArn,
    buildImages,
    registryAuthSecretArn,
    podSecurity: podSecurity as PodSecurityLevel,
  };
}

/**
 * The settings whose ARN must be in the stack's region and, for secrets, its account: the functions
 * read secrets with a client of their own region (Secrets Manager does not follow an ARN's region, so
 * another's deploys and then fails every read), another account's secret is readable only through a
 * customer-managed key the stack grants nothing on, and CloudWatch alarms notify only topics of their
 * own region (another account's, with a topic policy allowing it, is fine). A part still a token
 * (an environment-agnostic stack) is not checked.
 *
 * @example
 * assertStackEnvironment(config, { region: "eu-west-1", account: "123456789012" }); // throws KublerConfigError naming each key elsewhere
 */
export function assertStackEnvironment(
  config: KublerConfig,
  stack: { region: string | null; account: string | null },
): void {
  const arns: [keyof typeof CONTEXT, string | null, "secret" | "topic"][] = [
    ["kubeconfigSecretArn", config.kubeconfigSecretArn, "secret"],
    ["gitlabTokenSecretArn", config.gitlabTokenSecretArn, "secret"],
    ["registryAuthSecretArn", config.registryAuthSecretArn, "secret"],
    ["alarmTopicArn", config.alarmTopicArn, "topic"],
  ];
  const problems = arns.flatMap(([name, arn, kind]) => {
    if (!arn) return [];
    const [, , , region, account] = arn.split(":");
    if (stack.region && region !== stack.region) {
      return [
        `${CONTEXT[name]}: is in ${region}, but the stack deploys to ${stack.region}: use one in ${stack.region}`,
      ];
    }
    if (kind === "secret" && stack.account && account !== stack.account) {
      return [
        `${CONTEXT[name]}: is in account ${account}, but the stack deploys to ${stack.account}: the functions can read only ` +
          "a secret of their own account (another's needs a customer-managed KMS key, which the stack grants nothing on)",
      ];
    }
    return [];
  });
  if (problems.length > 0) {
    throw new KublerConfigError(`invalid Kubler stack settings:\n  ${problems.join("\n  ")}`);
  }
}

/** `{ "gitlab-webhook": 50 }`, as an object (cdk.json) or its JSON text (`-c`). */
function readReservedConcurrency(
  raw: unknown,
  fail: (message: string) => void,
): Partial<Record<FunctionName, number>> {
  if (raw === undefined || raw === null || raw === "") return {};
  let value = raw;
  if (typeof raw === "string") {
    try {
      value = JSON.parse(raw);
    } catch {
      fail(`must be a JSON object like {"gitlab-webhook": 50}, got ${JSON.stringify(raw)}`);
      return {};
    }
  }
  if (typeof value !== "object" || value === null || Array.isArray(value)) {
    fail(`must be an object of function name to a number, got ${JSON.stringify(value)}`);
    return {};
  }
  const result: Partial<Record<FunctionName, number>> = {};
  for (const [name, count] of Object.entries(value)) {
    if (!(FUNCTIONS as readonly string[]).includes(name)) {
      fail(`unknown function ${JSON.stringify(name)}; functions are ${FUNCTIONS.join(", ")}`);
    } else if (!Number.isInteger(count) || count < 1 || count > MAX_RESERVED) {
      fail(`${name} must be a whole number from 1 to ${MAX_RESERVED}, got ${JSON.stringify(count)}`);
    } else {
      result[name as FunctionName] = count;
    }
  }
  return result;
}
