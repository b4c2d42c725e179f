/**
 * Lambda entry point: `Deploy Requested` and succeeded `Build Finished` from the bus. Config and
 * clients are built once per container; a thrown error makes EventBridge retry, then dead-letter.
 */

import { DynamoDBClient } from "@aws-sdk/client-dynamodb";
import { EventBridgeClient } from "@aws-sdk/client-eventbridge";
import { SchedulerClient } from "@aws-sdk/client-scheduler";
import { DynamoDbEnvironmentStops } from "../../shared/adapters/dynamodb-environment-stops.js";
import { EventBridgePublisher } from "../../shared/adapters/eventbridge-publisher.js";
import { EventBridgeScheduler } from "../../shared/adapters/eventbridge-scheduler.js";
import { GitlabManifestSource } from "../../shared/adapters/gitlab-manifest-source.js";
import { kubernetesClusterFromEnv } from "../../shared/adapters/kubernetes-cluster-from-env.js";
import { createRedactingSecretReader, gitlabApiToken } from "../../shared/adapters/secret-reader.js";
import { createLambdaAuditLog, withLambdaRequestId } from "../../shared/adapters/stdout-audit-log.js";
import { systemClock } from "../../shared/clock.js";
import {
  loadAwsIngressConfig,
  loadAwsStepsConfig,
  loadEnvironmentsConfig,
  loadGitlabApiConfig,
  registryPullSecret,
} from "../../shared/config.js";
import { createDeployEnvironmentConsumer } from "./consumer.js";
import { DEPLOY_ENVIRONMENT_LIMITS as LIMITS } from "./limits.js";

const steps = loadAwsStepsConfig(process.env);
// The stops plan-steps records are in its dedupe table.
const { dedupeTable } = loadAwsIngressConfig(process.env);
const environments = loadEnvironmentsConfig(process.env);
const gitlab = loadGitlabApiConfig(process.env);
// Redacts what Secrets Manager gives (the GitLab token, the kubeconfig, the registry's
// .dockerconfigjson) from every line after.
const audit = createLambdaAuditLog({ secrets: gitlab.token ? [gitlab.token] : [] });
// The GitLab token, the kubeconfig and the pull secret come from Secrets Manager in AWS (the stack
// passes ARNs).
const readSecret = createRedactingSecretReader(audit, LIMITS.aws);
// A registry auth file is checked now, so a bad one fails the init naming the variable; the file or
// the secret (cached like the GitLab token, so a rotation lands) is read again for every deploy.
const pullSecret = registryPullSecret(environments, readSecret);

const cluster = await kubernetesClusterFromEnv(process.env, readSecret, LIMITS.cluster);

const consume = createDeployEnvironmentConsumer({
  cluster,
  manifests: new GitlabManifestSource({
    baseUrl: gitlab.url,
    token: gitlabApiToken(gitlab, readSecret),
    ...LIMITS.gitlab,
  }),
  // The adapters own their retries; SDK retries on top would multiply them.
  scheduler: new EventBridgeScheduler({
    client: new SchedulerClient({ maxAttempts: 1, requestHandler: LIMITS.aws.requestHandler }),
    groupName: steps.scheduleGroup,
    busArn: steps.busArn,
    roleArn: steps.schedulerRoleArn,
    deadLetterArn: steps.scheduleDeadLetterArn,
    maxAttempts: LIMITS.scheduler.maxAttempts,
  }),
  publisher: new EventBridgePublisher({
    client: new EventBridgeClient({ maxAttempts: 1, requestHandler: LIMITS.aws.requestHandler }),
    busName: steps.busName,
    maxAttempts: LIMITS.publisher.maxAttempts,
  }),
  stops: new DynamoDbEnvironmentStops({
    client: new DynamoDBClient(LIMITS.aws),
    tableName: dedupeTable,
    clock: systemClock,
  }),
  audit,
  clock: systemClock,
  sleep: (ms) => new Promise((resolve) => setTimeout(resolve, ms)),
  rolloutPollMs: LIMITS.rolloutPollMs,
  pullSecret,
  defaultTtl: environments.defaultTtl,
  podSecurity: environments.podSecurity,
});

// One deadline for all of an invocation's Kubernetes calls, the rollout's and rollback's reads
// included (./limits.ts): past it they fail at once, and the request goes back to the bus, audited,
// instead of Lambda killing it between two of them.
export const handler = withLambdaRequestId((event: unknown) =>
  cluster.withDeadline(LIMITS.kubernetesDeadlineMs, () => consume(event)),
);
