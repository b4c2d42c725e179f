/**
 * The claims of a GitLab CI ID token (https://docs.gitlab.com/ci/secrets/id_token_authentication/)
 * that Kubler decides on, read from a verified payload. GitLab sends ids and booleans as strings
 * (`"project_id": "20"`, `"ref_protected": "false"`); they stay strings here, as signed.
 */

/** Claims without which no decision can be made: a token lacking one is refused (401). */
export const REQUIRED_CLAIMS = [
  "iss",
  "aud",
  "exp",
  "iat",
  "jti",
  "sub",
  "project_id",
  "project_path",
  "namespace_path",
  "pipeline_id",
  "pipeline_source",
  "job_id",
  "ref",
  "ref_type",
  "ref_protected",
  "user_login",
] as const;

export interface JobClaims {
  iss: string;
  jti: string;
  /** Epoch seconds. */
  exp: number;
  iat: number;
  sub: string;
  /** The project of the code: in an MR pipeline from a fork, the fork. */
  project_id: string;
  project_path: string;
  namespace_path: string;
  /** The project the job runs in (GitLab 18.3+); absent on older instances, where `project_*` is it. */
  job_project_id: string | null;
  job_project_path: string | null;
  job_namespace_path: string | null;
  pipeline_id: string;
  pipeline_source: string;
  job_id: string;
  ref: string;
  ref_type: string;
  ref_protected: string;
  user_login: string;
  environment: string | null;
  environment_protected: string | null;
  /**
   * What the job does to its environment (`start`, `prepare`, `verify`, `access`, `stop`): only
   * `start` jobs are held for deployment approval. Null when absent (older GitLab) or no environment.
   */
  environment_action: string | null;
}

/** A claim that is missing or of the wrong type: the message names it. */
export class MissingClaimError extends Error {
  override readonly name = "MissingClaimError";
  constructor(readonly claim: string) {
    super(`the token has no usable "${claim}" claim`);
  }
}

/**
 * @example
 * const claims = readJobClaims(payload); // throws MissingClaimError naming the first missing claim
 */
export function readJobClaims(payload: Readonly<Record<string, unknown>>): JobClaims {
  for (const claim of REQUIRED_CLAIMS) {
    const value = payload[claim];
    const ok =
      claim === "exp" || claim === "iat"
        ? typeof value === "number" && Number.isFinite(value)
        : claim === "aud"
          ? typeof value === "string" || Array.isArray(value)
          : typeof value === "string" && value.length > 0;
    if (!ok) throw new MissingClaimError(claim);
  }
  const text = (claim: string) => payload[claim] as string;
  const optional = (claim: string): string | null => {
    const value = payload[claim];
    if (value === undefined || value === null || value === "") return null;
    if (typeof value !== "string") throw new MissingClaimError(claim);
    return value;
  };
  return {
    iss: text("iss"),
    jti: text("jti"),
    exp: payload.exp as number,
    iat: payload.iat as number,
    sub: text("sub"),
    project_id: text("project_id"),
    project_path: text("project_path"),
    namespace_path: text("namespace_path"),
    job_project_id: optional("job_project_id"),
    job_project_path: optional("job_project_path"),
    job_namespace_path: optional("job_namespace_path"),
    pipeline_id: text("pipeline_id"),
    pipeline_source: text("pipeline_source"),
    job_id: text("job_id"),
    ref: text("ref"),
    ref_type: text("ref_type"),
    ref_protected: text("ref_protected"),
    user_login: text("user_login"),
    environment: optional("environment"),
    environment_protected: optional("environment_protected"),
    environment_action: optional("environment_action"),
  };
}

/** The project the job runs in: `job_project_*` when the token has them, else `project_*`. */
export function jobProject(claims: JobClaims): { id: string; path: string; namespacePath: string } {
  return {
    id: claims.job_project_id ?? claims.project_id,
    path: claims.job_project_path ?? claims.project_path,
    namespacePath: claims.job_namespace_path ?? claims.namespace_path,
  };
}

/** True for an MR pipeline from a fork that runs in the target project: the code is not the project's own. */
export function isForkPipeline(claims: JobClaims): boolean {
  return claims.job_project_path !== null && claims.job_project_path !== claims.project_path;
}
