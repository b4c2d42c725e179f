/**
 * How long report-status may wait on GitLab, inside its 30 s Lambda timeout
 * (infra/function-specs.ts): the GitLab token (Secrets Manager, when its cache expired), the GET of
 * the latest status, then the POST of the new one. The GET only guards the POST (a final state is set
 * even when the GET fails), so it gets one short attempt and the POST keeps most of the time: a slow
 * GitLab must not spend the budget on the GET and leave the final status unwritten.
 * Right after a token rotation a refused request reads the secret again and sends once more, even
 * past its last attempt (the GET then sends twice, or the POST three times): that case, not the
 * plain one, sets these timeouts. Checked by test/infra/function-budgets.test.ts.
 */
import { AWS_CLIENT_LIMITS } from "../../shared/adapters/aws-request-limits.js";

export const REPORT_STATUS_LIMITS = {
  latest: { maxAttempts: 1, timeoutMs: 2_000 },
  set: { maxAttempts: 2, timeoutMs: 4_000 },
  aws: AWS_CLIENT_LIMITS,
} as const;
