/**
 * Job credentials in the local runtime (DESIGN §10): `POST /v1/credentials` on the runtime's port, a
 * local OIDC issuer standing in for GitLab (its JWKS at `<url>/local/gitlab/oauth/discovery/keys`,
 * its key in the data dir), and STS when AWS is configured, else the clearly labelled local issuer.
 */
import { STSClient } from "@aws-sdk/client-sts";
import type { Hono } from "hono";
import { createJobCredentialsApp } from "../functions/job-credentials/app.js";
import { JoseIdTokenVerifier, JWKS_PATH } from "../shared/adapters/jose-id-token-verifier.js";
import { logErrorToStderr } from "../shared/adapters/stdout-audit-log.js";
import { StsCredentialIssuer } from "../shared/adapters/sts-credential-issuer.js";
import { randomId, systemClock } from "../shared/clock.js";
import { type CredentialsConfig, loadCredentialsConfig } from "../shared/credentials-config.js";
import { LocalCredentialIssuer } from "../shared/local/local-credential-issuer.js";
import { LOCAL_ISSUER_PATH, LocalOidcIssuer } from "../shared/local/local-oidc-issuer.js";
import { MemoryDedupeStore } from "../shared/local/memory-dedupe-store.js";
import type { AuditLog, CredentialsCluster, EventPublisher, IdTokenVerifier } from "../shared/ports.js";

export type { CredentialsConfig };

export interface LocalCredentials {
  /** The ID tokens' issuer: the policy's or GITLAB_URL, else the local one (`<url>/local/gitlab`). */
  issuer(): string;
  /** True when the issuer is the local one (tokens from `kubler credentials` verify). */
  localIssuer: boolean;
  policyFile: string;
  /** "sts" when AWS is configured; "local" credentials are not valid for AWS. */
  awsIssuer: "sts" | "local";
  /** Tells the credentials where the runtime listens (known only once it does). */
  listening(url: string): void;
}

/**
 * Mounts the job-credentials app and the local issuer's JWKS on `app`.
 *
 * @example
 * const credentials = mountLocalCredentials(app, { dataDir, cluster, publisher: bus, audit });
 * // after listen:
 * credentials.listening("http://127.0.0.1:8080");
 */
export function mountLocalCredentials(
  app: Hono,
  io: {
    config?: CredentialsConfig;
    dataDir: string;
    cluster: CredentialsCluster;
    publisher: EventPublisher;
    audit: AuditLog;
  },
): LocalCredentials {
  const config = io.config ?? loadCredentialsConfig({}, { local: true });
  const oidc = LocalOidcIssuer.ensure(io.dataDir);
  let url: string | null = null;
  const issuer = () => {
    if (config.issuer) return config.issuer;
    if (url === null) throw new Error("the local runtime is not listening yet");
    return `${url}${LOCAL_ISSUER_PATH}`;
  };
  // The verifier needs the issuer's URL, which is known once the server listens.
  let verifier: JoseIdTokenVerifier | null = null;
  const lazyVerifier: IdTokenVerifier = {
    verify: (token) => {
      verifier ??= new JoseIdTokenVerifier({
        issuer: issuer(),
        audience: config.policy.audience,
        clock: systemClock,
        refetchIntervalMs: config.jwksRefetchIntervalMs,
      });
      return verifier.verify(token);
    },
  };

  app.get(`${LOCAL_ISSUER_PATH}${JWKS_PATH}`, (c) => c.json(oidc.jwks()));
  app.route(
    "/",
    createJobCredentialsApp({
      verifier: lazyVerifier,
      policy: config.policy,
      replay: new MemoryDedupeStore(systemClock),
      // The SDK reads AWS_REGION, AWS_ENDPOINT_URL_STS and the credentials chain itself.
      issuer: config.awsConfigured
        ? new StsCredentialIssuer(new STSClient({}))
        : new LocalCredentialIssuer(systemClock),
      cluster: io.cluster,
      publisher: io.publisher,
      audit: io.audit,
      clock: systemClock,
      newId: randomId,
      logError: logErrorToStderr("job-credentials"),
      logWarning: logErrorToStderr("job-credentials", [], "warn"),
    }),
  );
  return {
    issuer,
    localIssuer: config.issuer === null,
    policyFile: config.policyFile,
    awsIssuer: config.awsConfigured ? "sts" : "local",
    listening(listeningUrl) {
      url = listeningUrl;
    },
  };
}
