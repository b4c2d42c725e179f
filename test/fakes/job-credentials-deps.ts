/**
 * job-credentials' dependencies as its tests use them: the jose verifier against the JWKS served at
 * `issuer` (audience `kubler`), the credentials policy `policy` (YAML), the in-memory jti cache, the
 * local AWS issuer, `cluster`, and recording fakes sharing one clock; `overrides` for the request
 * scope and where errors go.
 *
 * @example
 * const deps = jobCredentialsTestDeps(jwks.url, POLICY, cluster, { logError: (e) => errors.push(e) });
 * await createJobCredentialsApp(deps).request("/v1/credentials", { method: "POST", headers });
 */
import type { JobCredentialsAppDeps } from "../../functions/job-credentials/app.js";
import { JoseIdTokenVerifier } from "../../shared/adapters/jose-id-token-verifier.js";
import type { KubernetesCluster } from "../../shared/adapters/kubernetes-cluster.js";
import { parseCredentialsPolicy } from "../../shared/domain/credentials-policy.js";
import { LocalCredentialIssuer } from "../../shared/local/local-credential-issuer.js";
import { MemoryDedupeStore } from "../../shared/local/memory-dedupe-store.js";
import { FixedClock, RecordingAuditLog, RecordingPublisher, sequentialIds } from "./index.js";

export type JobCredentialsTestDeps = JobCredentialsAppDeps & {
  audit: RecordingAuditLog;
  publisher: RecordingPublisher;
  clock: FixedClock;
};

export function jobCredentialsTestDeps(
  issuer: string,
  policy: string,
  cluster: KubernetesCluster,
  overrides: Partial<Pick<JobCredentialsAppDeps, "perRequest" | "logError" | "logWarning">> = {},
): JobCredentialsTestDeps {
  const clock = new FixedClock(new Date());
  return {
    verifier: new JoseIdTokenVerifier({ issuer, audience: "kubler", clock }),
    policy: parseCredentialsPolicy(policy),
    replay: new MemoryDedupeStore(clock),
    issuer: new LocalCredentialIssuer(clock),
    cluster,
    publisher: new RecordingPublisher(sequentialIds("evt")),
    audit: new RecordingAuditLog(),
    clock,
    newId: sequentialIds("corr"),
    logError: () => {},
    logWarning: () => {},
    ...overrides,
  };
}
