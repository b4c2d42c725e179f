/**
 * Lambda entry point: `Build Requested` from the bus becomes a build Job on the cluster. Config and
 * clients are built once per container; a thrown error makes EventBridge retry, then dead-letter.
 */
import { EventBridgeClient } from "@aws-sdk/client-eventbridge";
import { EventBridgePublisher } from "../../shared/adapters/eventbridge-publisher.js";
import { GitlabManifestSource } from "../../shared/adapters/gitlab-manifest-source.js";
import { kubernetesClusterFromEnv } from "../../shared/adapters/kubernetes-cluster-from-env.js";
import { createRedactingSecretReader, gitlabApiToken } from "../../shared/adapters/secret-reader.js";
import { createLambdaAuditLog, withLambdaRequestId } from "../../shared/adapters/stdout-audit-log.js";
import { systemClock } from "../../shared/clock.js";
import { loadAwsStepsConfig, loadBuildConfig, loadGitlabApiConfig } from "../../shared/config.js";
import { createBuildImageConsumer } from "./consumer.js";
import { BUILD_IMAGE_LIMITS } from "./limits.js";

const steps = loadAwsStepsConfig(process.env);
const builds = loadBuildConfig(process.env);
const gitlab = loadGitlabApiConfig(process.env);
// Redacts what Secrets Manager gives (the GitLab token, the kubeconfig) from every line after.
const audit = createLambdaAuditLog({ secrets: gitlab.token ? [gitlab.token] : [] });
const LIMITS = BUILD_IMAGE_LIMITS;
// The GitLab token and the kubeconfig come from Secrets Manager in AWS (the stack passes ARNs).
const readSecret = createRedactingSecretReader(audit, LIMITS.aws);
const cluster = await kubernetesClusterFromEnv(process.env, readSecret, LIMITS.cluster);

const consume = createBuildImageConsumer({
  cluster,
  manifests: new GitlabManifestSource({
    baseUrl: gitlab.url,
    token: gitlabApiToken(gitlab, readSecret),
    ...LIMITS.gitlab,
  }),
  // The adapters own their retries; SDK retries on top would multiply them.
  publisher: new EventBridgePublisher({
    client: new EventBridgeClient({ maxAttempts: 1, requestHandler: LIMITS.aws.requestHandler }),
    busName: steps.busName,
    maxAttempts: LIMITS.publisher.maxAttempts,
  }),
  audit,
  clock: systemClock,
  settings: builds,
  reportBudgetMs: LIMITS.reportBudgetMs,
  logReadMs: LIMITS.logReadMs,
});

// One deadline for all of an invocation's Kubernetes calls (./limits.ts): past it they fail at once,
// and the request goes back to the bus, instead of Lambda killing it between two of them.
export const handler = withLambdaRequestId((event: unknown) =>
  cluster.withDeadline(LIMITS.kubernetesDeadlineMs, () => consume(event)),
);
