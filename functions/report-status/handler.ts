/**
 * Lambda entry point: build and deploy steps and outcomes from the bus become GitLab commit statuses
 * (DESIGN §8). The GitLab token comes from GITLAB_API_TOKEN or, better, the Secrets Manager secret
 * GITLAB_API_TOKEN_SECRET names (read once, cached, re-read after a while, and at once when GitLab
 * refuses it: a rotation revokes the old token before the cache expires).
 */
import { GitlabCommitStatuses } from "../../shared/adapters/gitlab-commit-statuses.js";
import { createRedactingSecretReader, gitlabApiToken } from "../../shared/adapters/secret-reader.js";
import { createLambdaAuditLog, withLambdaRequestId } from "../../shared/adapters/stdout-audit-log.js";
import { systemClock } from "../../shared/clock.js";
import { loadGitlabApiConfig } from "../../shared/config.js";
import { createReportStatusConsumer } from "./consumer.js";
import { REPORT_STATUS_LIMITS as LIMITS } from "./limits.js";

const gitlab = loadGitlabApiConfig(process.env);
// Redacts the GitLab token Secrets Manager gives from every line after.
const audit = createLambdaAuditLog({ secrets: gitlab.token ? [gitlab.token] : [] });
// Every call is time-limited (./limits.ts): the GET of the latest status gets one short attempt, so
// the POST keeps enough of Lambda's 30 s. The token is re-read mid-invocation when its cache expires,
// or after a 401 (right after a rotation only): a changed token is sent again after one Secrets
// Manager read: as one of the POST's two attempts, or a third after the last, and as a second of the GET.
const readSecret = gitlab.tokenSecret ? createRedactingSecretReader(audit, LIMITS.aws) : null;

const consume = createReportStatusConsumer({
  statuses: new GitlabCommitStatuses({
    baseUrl: gitlab.url,
    token: gitlabApiToken(gitlab, readSecret),
    ...LIMITS.set,
    latest: LIMITS.latest,
  }),
  audit,
  clock: systemClock,
});

export const handler = withLambdaRequestId((event: unknown) => consume(event));
