/**
 * Lambda entry point (Function URL). Config and clients are built once per container, on cold start:
 * a bad policy file or a missing setting fails here, naming the variable.
 */
import { DynamoDBClient } from "@aws-sdk/client-dynamodb";
import { EventBridgeClient } from "@aws-sdk/client-eventbridge";
import { STSClient } from "@aws-sdk/client-sts";
import { handle } from "hono/aws-lambda";
import { DynamoDbDedupeStore } from "../../shared/adapters/dynamodb-dedupe-store.js";
import { EventBridgePublisher } from "../../shared/adapters/eventbridge-publisher.js";
import { JoseIdTokenVerifier } from "../../shared/adapters/jose-id-token-verifier.js";
import {
  hasKubernetesCluster,
  kubernetesClusterFromEnv,
} from "../../shared/adapters/kubernetes-cluster-from-env.js";
import { createRedactingSecretReader } from "../../shared/adapters/secret-reader.js";
import {
  createLambdaAuditLog,
  logErrorToStderr,
  withLambdaRequestId,
} from "../../shared/adapters/stdout-audit-log.js";
import { StsCredentialIssuer } from "../../shared/adapters/sts-credential-issuer.js";
import { randomId, systemClock } from "../../shared/clock.js";
import { loadAwsIngressConfig } from "../../shared/config.js";
import { loadCredentialsConfig } from "../../shared/credentials-config.js";
import { createJobCredentialsApp } from "./app.js";
import { JOB_CREDENTIALS_LIMITS as LIMITS } from "./limits.js";

const credentials = loadCredentialsConfig(process.env, { local: false });
const { busName, dedupeTable } = loadAwsIngressConfig(process.env);

// Redacts the kubeconfig Secrets Manager gives from every line after.
const audit = createLambdaAuditLog();
const cluster = hasKubernetesCluster(process.env)
  ? await kubernetesClusterFromEnv(
      process.env,
      createRedactingSecretReader(audit, LIMITS.aws),
      LIMITS.cluster,
    )
  : null;
const app = createJobCredentialsApp({
  verifier: new JoseIdTokenVerifier({
    issuer: credentials.issuer as string,
    audience: credentials.policy.audience,
    clock: systemClock,
    refetchIntervalMs: credentials.jwksRefetchIntervalMs,
    fetchTimeoutMs: LIMITS.jwks.timeoutMs,
  }),
  policy: credentials.policy,
  // The jti replay cache shares the webhook's dedupe table: keys are prefixed `jti:`.
  // Every call after the `jti:` claim is time-limited (./limits.ts), so a hung one fails, and the key
  // is released, before Lambda's 15 s.
  replay: new DynamoDbDedupeStore({
    client: new DynamoDBClient(LIMITS.aws),
    tableName: dedupeTable,
    clock: systemClock,
  }),
  // The SDK reads AWS_REGION and AWS_ENDPOINT_URL_STS itself.
  issuer: new StsCredentialIssuer(new STSClient(LIMITS.aws)),
  // In AWS the kubeconfig is read from Secrets Manager (the stack passes the secret ARN).
  cluster,
  // One deadline for a request's five Kubernetes calls, retries included (./limits.ts).
  perRequest: (work) => (cluster ? cluster.withDeadline(LIMITS.kubernetesDeadlineMs, work) : work()),
  publisher: new EventBridgePublisher({
    client: new EventBridgeClient({ maxAttempts: 1, requestHandler: LIMITS.aws.requestHandler }),
    busName,
    maxAttempts: LIMITS.publisher.maxAttempts,
  }),
  // Records redacted (ID tokens and AWS keys by their shape), request id stamped, CredentialsIssued/Denied derived.
  audit,
  logError: logErrorToStderr("job-credentials"),
  logWarning: logErrorToStderr("job-credentials", [], "warn"),
  clock: systemClock,
  newId: randomId,
});

export const handler = withLambdaRequestId(handle(app));
