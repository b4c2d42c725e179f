import { createLocalJWKSet, errors, type JSONWebKeySet, type JWTHeaderParameters, jwtVerify } from "jose";
import { type JobClaims, MissingClaimError, REQUIRED_CLAIMS, readJobClaims } from "../domain/job-claims.js";
import { TokenRejectedError, UnavailableError } from "../errors.js";
import type { Clock, IdTokenVerifier } from "../ports.js";

/** GitLab publishes its CI signing keys here (https://docs.gitlab.com/ci/secrets/id_token_authentication/). */
export const JWKS_PATH = "/oauth/discovery/keys";
/** The most clock skew forgiven on `exp`, `nbf` and `iat` (DESIGN §5: small leeway). */
export const MAX_LEEWAY_SECONDS = 60;
/** What a caller is told when the JWKS cannot be read: the URL and the fetch's error stay in the audit line. */
export const JWKS_UNAVAILABLE_MESSAGE = "cannot read the token issuer's signing keys";
const DEFAULT_REFETCH_INTERVAL_MS = 30_000;
const DEFAULT_MAX_AGE_MS = 10 * 60_000;
const DEFAULT_FETCH_TIMEOUT_MS = 5_000;

export interface JoseIdTokenVerifierOptions {
  /**
   * The GitLab instance's URL: the token's `iss` must equal it (or, for an instance under a relative
   * URL root, its origin: `acceptedIssuers`); the JWKS is read from `<issuer>/oauth/discovery/keys`.
   */
  issuer: string;
  audience: string;
  clock: Clock;
  /** Unknown `kid`s cause at most one JWKS fetch per this interval (so a flood cannot reach GitLab). */
  refetchIntervalMs?: number;
  /** Keys older than this are fetched again on the next verification. */
  maxAgeMs?: number;
  /** Clock skew forgiven, at most 60 s. Default 60. */
  leewaySeconds?: number;
  /** Where the JWKS is; default `<issuer>/oauth/discovery/keys`. */
  jwksUrl?: string;
  /** Reads the JWKS document; default `fetch` within `fetchTimeoutMs`. */
  fetchJwks?: (url: string) => Promise<unknown>;
  /** How long the default JWKS fetch may take (default 5 s): part of the caller's time budget. */
  fetchTimeoutMs?: number;
}

type LocalKeys = ReturnType<typeof createLocalJWKSet>;
type Key = Awaited<ReturnType<LocalKeys>>;
type KeyLookup = (header: JWTHeaderParameters) => Promise<Key>;

/**
 * `IdTokenVerifier` with jose: RS256 only, `iss` and `aud` pinned, `exp`/`nbf`/`iat` within the
 * leeway, keys from the issuer's JWKS kept in memory. A token naming a key the cache lacks makes the
 * verifier fetch the JWKS again, at most once per `refetchIntervalMs` however many such tokens come
 * (GitLab rotates its key rarely; a forger can make up `kid`s at will).
 *
 * @example
 * const verifier = new JoseIdTokenVerifier({ issuer: "https://gitlab.example.com", audience: "kubler", clock: systemClock });
 * const claims = await verifier.verify(token); // or TokenRejectedError("wrong_audience", ...)
 */
export class JoseIdTokenVerifier implements IdTokenVerifier {
  readonly #issuers: string[];
  readonly #audience: string;
  readonly #clock: Clock;
  readonly #refetchIntervalMs: number;
  readonly #maxAgeMs: number;
  readonly #leeway: number;
  readonly #jwksUrl: string;
  readonly #fetchJwks: (url: string) => Promise<unknown>;
  #keys: LocalKeys | null = null;
  /** Keys `#keys` resolved, by kid, so that a kid is looked up in the set once per fetch. */
  #byKid = new Map<string, Key>();
  /** When a fetch last started (successful or not): the rate limit counts attempts. */
  #lastAttemptAt = Number.NEGATIVE_INFINITY;
  #fetchedAt = Number.NEGATIVE_INFINITY;
  /** Why the last fetch failed; null once one succeeds. */
  #lastFailure: Error | null = null;
  #inFlight: Promise<void> | null = null;
  readonly #lookup: KeyLookup;

  constructor(options: JoseIdTokenVerifierOptions) {
    this.#issuers = acceptedIssuers(options.issuer);
    this.#audience = options.audience;
    this.#clock = options.clock;
    this.#refetchIntervalMs = options.refetchIntervalMs ?? DEFAULT_REFETCH_INTERVAL_MS;
    this.#maxAgeMs = options.maxAgeMs ?? DEFAULT_MAX_AGE_MS;
    this.#leeway = Math.min(MAX_LEEWAY_SECONDS, Math.max(0, options.leewaySeconds ?? MAX_LEEWAY_SECONDS));
    this.#jwksUrl = options.jwksUrl ?? `${options.issuer.replace(/\/+$/, "")}${JWKS_PATH}`;
    const fetchTimeoutMs = options.fetchTimeoutMs ?? DEFAULT_FETCH_TIMEOUT_MS;
    this.#fetchJwks = options.fetchJwks ?? ((url) => fetchJson(url, fetchTimeoutMs));
    this.#lookup = (header) => this.#key(header);
  }

  async verify(token: string): Promise<JobClaims> {
    const now = this.#clock.now();
    let payload: Record<string, unknown>;
    try {
      ({ payload } = await jwtVerify(token, this.#lookup, {
        algorithms: ["RS256"],
        issuer: this.#issuers,
        audience: this.#audience,
        clockTolerance: this.#leeway,
        currentDate: now,
        requiredClaims: [...REQUIRED_CLAIMS],
      }));
    } catch (error) {
      throw rejection(error, this.#audience);
    }
    // jose checks iat's type only: a token issued in the future is as suspect as one not yet valid.
    if ((payload.iat as number) > now.getTime() / 1000 + this.#leeway) {
      throw new TokenRejectedError("not_yet_valid", "the token's iat is in the future: check the clocks");
    }
    try {
      return readJobClaims(payload);
    } catch (error) {
      if (error instanceof MissingClaimError) throw new TokenRejectedError("missing_claim", error.message);
      throw error;
    }
  }

  async #key(header: JWTHeaderParameters): Promise<Key> {
    const now = this.#clock.now().getTime();
    // Stale keys are refetched at most once per interval too: while GitLab fails, the held keys serve
    // and requests (anyone can send them) do not each become a fetch.
    if (
      this.#keys === null ||
      (now - this.#fetchedAt >= this.#maxAgeMs && now - this.#lastAttemptAt >= this.#refetchIntervalMs)
    )
      await this.#refresh(now, this.#keys === null);
    // Every token of an issuer names one of its few keys: looking it up again in the set (filtering
    // the candidates by kid, alg and use) cost 15 % of a verification. Reset with each fetch.
    const known = header.kid === undefined ? undefined : this.#byKid.get(header.kid);
    if (known) return known;
    // The key is kept with the set it came from: a fetch that ends during the lookup replaces both,
    // and a key it dropped (GitLab rotated it out) must not reach the new set's cache.
    const byKid = this.#byKid;
    try {
      const key = await (this.#keys as LocalKeys)(header);
      if (header.kid !== undefined) byKid.set(header.kid, key);
      return key;
    } catch (error) {
      if (!(error instanceof errors.JWKSNoMatchingKey)) throw error;
      if (now - this.#lastAttemptAt < this.#refetchIntervalMs) throw this.#unknownKey(error);
    }
    await this.#refresh(now, false);
    try {
      return await (this.#keys as LocalKeys)(header);
    } catch (error) {
      throw error instanceof errors.JWKSNoMatchingKey ? this.#unknownKey(error) : error;
    }
  }

  /**
   * A key the held JWKS lacks: unknown when the last fetch read GitLab's keys; when it failed, the
   * key may be GitLab's newly rotated one, so the job is told to retry (503), not that it is forged.
   */
  #unknownKey(error: Error): Error {
    return this.#lastFailure ? this.#unavailable(this.#lastFailure) : error;
  }

  #unavailable(error: Error): UnavailableError {
    // The caller (anyone with a token-shaped string) hears only that; where and why are for
    // the audit line, whose writer redacts them (fetch's errors repeat the URL they were given).
    return new UnavailableError(
      `${JWKS_UNAVAILABLE_MESSAGE} from ${withoutCredentials(this.#jwksUrl)}: ${error.message}`,
      { publicMessage: JWKS_UNAVAILABLE_MESSAGE },
    );
  }

  /** One fetch at a time; a failure keeps the keys already held, unless there are none. */
  async #refresh(now: number, required: boolean): Promise<void> {
    if (!this.#inFlight) {
      this.#lastAttemptAt = now;
      this.#inFlight = this.#fetchJwks(this.#jwksUrl)
        .then((document) => {
          if (!isJwks(document)) throw new Error("the answer is not a JWKS ({ keys: [...] })");
          this.#keys = createLocalJWKSet(document);
          this.#byKid = new Map();
          this.#fetchedAt = now;
          this.#lastFailure = null;
        })
        .catch((error: unknown) => {
          this.#lastFailure = error instanceof Error ? error : new Error(String(error));
          throw error;
        })
        .finally(() => {
          this.#inFlight = null;
        });
    }
    try {
      await this.#inFlight;
    } catch (error) {
      if (required || this.#keys === null) throw this.#unavailable(error as Error);
    }
  }
}

/**
 * The `iss` values of the instance at `url`. GitLab signs `iss` as its base URL (scheme, host, port:
 * `Settings.gitlab.base_url`), without the relative URL root it serves everything else under, the
 * JWKS included: for `https://example.com/gitlab` its tokens say `https://example.com`. The origin
 * is no wider a trust than the URL: a token still verifies only with the keys served under the root.
 *
 * @example
 * acceptedIssuers("https://example.com/gitlab"); // ["https://example.com/gitlab", "https://example.com"]
 * acceptedIssuers("https://gitlab.example.com"); // ["https://gitlab.example.com"]
 */
function acceptedIssuers(url: string): string[] {
  if (!URL.canParse(url)) return [url];
  const { origin, pathname } = new URL(url);
  return pathname.replace(/\/+$/, "") === "" || origin === "null" ? [url] : [url, origin];
}

/** `url` without its `user:password@`, for messages. */
function withoutCredentials(url: string): string {
  return url.replace(/^([a-z][a-z0-9+.-]*:[/\\]{2})[^/\\?#]*@/i, "$1");
}

/** The JWKS document at `url`, within `timeoutMs`. */
async function fetchJson(url: string, timeoutMs: number): Promise<unknown> {
  const response = await fetch(url, {
    headers: { accept: "application/json" },
    signal: AbortSignal.timeout(timeoutMs),
  });
  if (!response.ok) throw new Error(`HTTP ${response.status}`);
  return response.json();
}

function isJwks(document: unknown): document is JSONWebKeySet {
  return (
    typeof document === "object" && document !== null && Array.isArray((document as { keys?: unknown }).keys)
  );
}

/**
 * jose's error as a rejection a job's author can act on. Messages never describe keys or signatures
 * beyond "does not verify", which is all a forger could learn anyway.
 */
function rejection(error: unknown, audience: string): Error {
  if (error instanceof UnavailableError) return error;
  if (error instanceof errors.JWTExpired) {
    return new TokenRejectedError(
      "expired",
      "the token has expired: request credentials while the job's ID token is still valid",
    );
  }
  if (error instanceof errors.JWTClaimValidationFailed) {
    if (error.reason === "missing") {
      return new TokenRejectedError("missing_claim", `the token has no usable "${error.claim}" claim`);
    }
    switch (error.claim) {
      case "nbf":
        return new TokenRejectedError("not_yet_valid", "the token is not valid yet (nbf): check the clocks");
      case "iss":
        return new TokenRejectedError(
          "wrong_issuer",
          "the token was not issued by the GitLab instance Kubler trusts",
        );
      case "aud":
        return new TokenRejectedError(
          "wrong_audience",
          `the token's audience is not "${audience}": declare it in .gitlab-ci.yml (id_tokens: <NAME>: aud: ${audience})`,
        );
      default:
        return new TokenRejectedError("missing_claim", `the token's "${error.claim}" claim is not usable`);
    }
  }
  if (error instanceof errors.JOSEAlgNotAllowed || error instanceof errors.JOSENotSupported) {
    return new TokenRejectedError("algorithm_not_allowed", "the token must be signed with RS256");
  }
  if (error instanceof errors.JWKSNoMatchingKey || error instanceof errors.JWKSMultipleMatchingKeys) {
    return new TokenRejectedError(
      "unknown_key",
      "the token is signed with a key the issuer does not publish",
    );
  }
  if (error instanceof errors.JWSSignatureVerificationFailed) {
    return new TokenRejectedError("bad_signature", "the token's signature does not verify");
  }
  if (error instanceof errors.JOSEError || error instanceof TypeError) {
    // Worded without "bearer <word>": the audit redaction would take the word for a token.
    return new TokenRejectedError(
      "malformed",
      "the Authorization header does not carry a signed JWT (a GitLab ID token)",
    );
  }
  return error instanceof Error ? error : new Error(String(error));
}
