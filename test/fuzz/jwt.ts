/**
 * Fuzzing of `POST /v1/credentials` with mutated GitLab ID tokens (DESIGN §5, §12), shared by
 * `npm test` and `npm run bench`: header, payload and signature mutations, alg swaps (none, HS256
 * keyed with the public key, others), embedded keys, huge and invalid base64, wrong claim types,
 * Authorization header variants, hostile bodies. Never a 5xx, always 200/400/401/403/413, and a
 * token not signed by the issuer's key never gets credentials.
 */
import { createHmac, createPublicKey, randomUUID, sign } from "node:crypto";
import fc from "fast-check";
import { createJobCredentialsApp } from "../../functions/job-credentials/app.js";
import { JoseIdTokenVerifier } from "../../shared/adapters/jose-id-token-verifier.js";
import type { BusEntry } from "../../shared/domain/catalog.js";
import { parseCredentialsPolicy } from "../../shared/domain/credentials-policy.js";
import { LocalCredentialIssuer } from "../../shared/local/local-credential-issuer.js";
import { gitlabIdTokenClaims, LocalOidcIssuer, signJwt } from "../../shared/local/local-oidc-issuer.js";
import { MemoryDedupeStore } from "../../shared/local/memory-dedupe-store.js";
import { FixedClock, sequentialIds } from "../fakes/index.js";
import { startJwksServer } from "../fakes/jwks-server.js";
import { awkwardString, hostileValue, type Mutation, mutate, mutation, toJsonText } from "./hostile-json.js";

/** AWS only, so that valid tokens need no cluster: the fuzz is about what comes before. */
const POLICY = `
rules:
  - name: artifacts
    match: { project_path: "group/*", environment: "artifacts" }
    aws: { roleArn: "arn:aws:iam::123456789012:role/artifacts", maxDurationSeconds: 3600 }
`;
// 422: a valid token asking for a format its rule cannot give (kubeconfig without Kubernetes access).
const ALLOWED = new Set([200, 400, 401, 403, 413, 422]);

const b64 = (value: string | Buffer) => Buffer.from(value).toString("base64url");

type TokenPlan =
  | { kind: "valid" }
  | { kind: "claims"; mutations: Mutation[] }
  | { kind: "header"; header: Record<string, unknown>; resign: boolean }
  | { kind: "alg-none" | "hs256-with-public-key" | "other-key" }
  | {
      kind: "signature";
      how: "flip" | "truncate" | "empty" | "standard-base64" | "padded" | "huge";
      at: number;
    }
  | {
      kind: "structure";
      how:
        | "two-parts"
        | "four-parts"
        | "empty"
        | "dots"
        | "spaces"
        | "not-base64"
        | "header-not-json"
        | "payload-not-json"
        | "payload-array";
    }
  | { kind: "random"; text: string };

const headerPlan = fc.record(
  {
    alg: fc.oneof(
      fc.constantFrom("none", "None", "HS256", "RS512", "ES256", "PS256", "EdDSA", "", "rs256"),
      hostileValue,
    ),
    kid: fc.oneof(
      fc.constantFrom("kid-unknown", "", "../../../etc/passwd", "kid-1"),
      awkwardString,
      hostileValue,
    ),
    typ: fc.oneof(fc.constantFrom("JWT", "at+jwt", ""), hostileValue),
    crit: fc.constantFrom(["exp"], ["x-unknown"], [], "b64"),
    b64: fc.boolean(),
    jku: fc.constant("http://127.0.0.1:1/jwks"),
    x5u: fc.constant("http://127.0.0.1:1/cert"),
    jwk: fc.constant({ kty: "oct", k: "c2VjcmV0" }),
  },
  { requiredKeys: [] },
);

const tokenPlan: fc.Arbitrary<TokenPlan> = fc.oneof(
  { weight: 2, arbitrary: fc.constant<TokenPlan>({ kind: "valid" }) },
  {
    weight: 5,
    arbitrary: fc.record({
      kind: fc.constant("claims" as const),
      mutations: fc.array(mutation, { minLength: 1, maxLength: 3 }),
    }),
  },
  {
    weight: 3,
    arbitrary: fc.record({ kind: fc.constant("header" as const), header: headerPlan, resign: fc.boolean() }),
  },
  {
    weight: 2,
    arbitrary: fc.constantFrom<TokenPlan>(
      { kind: "alg-none" },
      { kind: "hs256-with-public-key" },
      { kind: "other-key" },
    ),
  },
  {
    weight: 3,
    arbitrary: fc.record({
      kind: fc.constant("signature" as const),
      how: fc.constantFrom("flip", "truncate", "empty", "standard-base64", "padded", "huge"),
      at: fc.nat(),
    }),
  },
  {
    weight: 2,
    arbitrary: fc.record({
      kind: fc.constant("structure" as const),
      how: fc.constantFrom(
        "two-parts",
        "four-parts",
        "empty",
        "dots",
        "spaces",
        "not-base64",
        "header-not-json",
        "payload-not-json",
        "payload-array",
      ),
    }),
  },
  {
    weight: 1,
    arbitrary: fc.record({ kind: fc.constant("random" as const), text: fc.string({ maxLength: 300 }) }),
  },
);

const authorizationPlan = fc.oneof(
  { weight: 8, arbitrary: fc.constant("Bearer <t>") },
  {
    weight: 1,
    arbitrary: fc.constantFrom(
      "bearer <t>",
      "BEARER <t>",
      "Bearer  <t>",
      "Bearer\t<t>",
      "<t>",
      "Basic <t>",
      "Bearer <t> extra",
      "Bearer <t>, Bearer <t>",
      "Bearer",
      "",
    ),
  },
  { weight: 1, arbitrary: fc.constant(null) },
);

const bodyPlan = fc.oneof(
  { weight: 6, arbitrary: fc.constant('{"environment":"artifacts","format":"json"}') },
  { weight: 1, arbitrary: fc.constant("") },
  {
    weight: 2,
    arbitrary: fc
      .record(
        {
          environment: fc.oneof(fc.constant("artifacts"), hostileValue),
          format: fc.oneof(fc.constantFrom("json", "env", "kubeconfig", "yaml"), hostileValue),
        },
        { requiredKeys: [] },
      )
      .map((body) => toJsonText(body)),
  },
  {
    weight: 1,
    arbitrary: fc.oneof(
      fc.string({ maxLength: 50 }),
      fc.integer({ min: 4_000, max: 10_000 }).map((n) => `{"environment":"${"a".repeat(n)}"}`),
    ),
  },
);

export interface JwtCase {
  label: string;
  plan: TokenPlan;
  authorization: string | null;
  body: string;
}

export const jwtCase: fc.Arbitrary<JwtCase> = fc
  .record({ plan: tokenPlan, authorization: authorizationPlan, body: bodyPlan })
  .map(({ plan, authorization, body }) => ({
    label: `${plan.kind}${"how" in plan ? `:${plan.how}` : ""}, authorization ${authorization === null ? "none" : JSON.stringify(authorization.replace("<t>", "…"))}`,
    plan,
    authorization,
    body,
  }));

export interface JwtFuzzCounts {
  inputs: number;
  byStatus: Record<number, number>;
  issued: number;
  unhandledRejections: number;
}

/**
 * The real credentials app with the jose verifier against a JWKS served over HTTP; `check(case)`
 * builds the token (signing it where the case says so), sends it in-process and throws when the
 * answer breaks a promise.
 *
 * @example
 * const target = await createJwtFuzzTarget();
 * await fc.assert(fc.asyncProperty(jwtCase, (c) => target.check(c)), { numRuns: 2_000 });
 * await target.close();
 */
export async function createJwtFuzzTarget() {
  const key = LocalOidcIssuer.generate("kid-1");
  const other = LocalOidcIssuer.generate("kid-1");
  const jwks = await startJwksServer([key]);
  const publicPem = createPublicKey(key.privateKey).export({ format: "pem", type: "spki" }).toString();
  const clock = new FixedClock(new Date());
  let issuedEvents = 0;
  const errors: unknown[] = [];
  const app = createJobCredentialsApp({
    verifier: new JoseIdTokenVerifier({ issuer: jwks.url, audience: "kubler", clock }),
    policy: parseCredentialsPolicy(POLICY),
    replay: new MemoryDedupeStore(clock),
    issuer: new LocalCredentialIssuer(clock),
    cluster: null,
    publisher: {
      async publish(entries: readonly BusEntry[]) {
        issuedEvents += entries.filter((e) => e.detailType === "Credentials Issued").length;
        return entries.map(() => randomUUID());
      },
    },
    audit: { record: () => undefined },
    clock,
    newId: sequentialIds("corr"),
    logError: (error) => errors.push(error),
    logWarning: (error) => errors.push(error),
  });
  const counts: JwtFuzzCounts = { inputs: 0, byStatus: {}, issued: 0, unhandledRejections: 0 };
  const onUnhandled = () => {
    counts.unhandledRejections++;
  };
  process.on("unhandledRejection", onUnhandled);

  const claims = () =>
    gitlabIdTokenClaims(
      { iss: jwks.url, aud: "kubler", now: clock.now() },
      { project_path: "group/app", namespace_path: "group", environment: "artifacts" },
    );

  /** The token, and whether it carries the issuer's valid RS256 signature over what it says. */
  function tokenFor(plan: TokenPlan): { token: string; signedByIssuer: boolean } {
    const valid = () => key.sign(claims());
    switch (plan.kind) {
      case "valid":
        return { token: valid(), signedByIssuer: true };
      case "claims":
        // Signed properly: only the claims are hostile.
        return {
          token: signRaw(
            { kid: key.kid, typ: "JWT", alg: "RS256" },
            toJsonText(mutate(claims(), plan.mutations)),
            key,
          ),
          signedByIssuer: true,
        };
      case "header": {
        const header = { kid: key.kid, typ: "JWT", alg: "RS256", ...plan.header };
        if (plan.resign)
          return {
            token: signRaw(header, JSON.stringify(claims()), key, toJsonText(header)),
            signedByIssuer: header.alg === "RS256",
          };
        const [, payload, signature] = valid().split(".");
        return { token: `${b64(toJsonText(header))}.${payload}.${signature}`, signedByIssuer: false };
      }
      case "alg-none":
        return {
          token: signJwt({ kid: key.kid, typ: "JWT", alg: "none" }, claims(), key.privateKey),
          signedByIssuer: false,
        };
      case "hs256-with-public-key": {
        const input = `${b64(JSON.stringify({ kid: key.kid, typ: "JWT", alg: "HS256" }))}.${b64(JSON.stringify(claims()))}`;
        return {
          token: `${input}.${createHmac("sha256", publicPem).update(input).digest("base64url")}`,
          signedByIssuer: false,
        };
      }
      case "other-key":
        return { token: other.sign(claims()), signedByIssuer: false };
      case "signature": {
        const [header, payload, signature = ""] = valid().split(".");
        const bytes = Buffer.from(signature, "base64url");
        let mangled: string;
        switch (plan.how) {
          case "flip":
            bytes[plan.at % bytes.length] = (bytes[plan.at % bytes.length] ?? 0) ^ (1 << (plan.at % 8));
            mangled = bytes.toString("base64url");
            break;
          case "truncate":
            mangled = signature.slice(0, plan.at % signature.length);
            break;
          case "empty":
            mangled = "";
            break;
          case "standard-base64":
            // Same bytes, wrong alphabet: JWS is base64url without padding (RFC 7515 §2).
            mangled = bytes.toString("base64");
            if (mangled === signature) mangled += "=";
            break;
          case "padded":
            mangled = `${signature}==`;
            break;
          case "huge":
            mangled = b64(Buffer.alloc(64 * 1024 + (plan.at % 1024), 1));
            break;
        }
        // Padding, or the other alphabet, encodes the same signature bytes: jose decodes them
        // leniently, so such a token is the issuer's signature written differently, not a forgery.
        const sameBytes = plan.how === "padded" || plan.how === "standard-base64";
        return { token: `${header}.${payload}.${mangled}`, signedByIssuer: sameBytes };
      }
      case "structure": {
        const [header = "", payload = "", signature = ""] = valid().split(".");
        const token = {
          "two-parts": `${header}.${payload}`,
          "four-parts": `${header}.${payload}.${signature}.${signature}`,
          empty: "",
          dots: "..",
          spaces: `${header} .${payload}.${signature}`,
          "not-base64": `${header}.${payload.slice(0, 10)}!*%${payload.slice(10)}.${signature}`,
          "header-not-json": `${b64("{alg:RS256")}.${payload}.${signature}`,
          "payload-not-json": signRaw({ kid: key.kid, typ: "JWT", alg: "RS256" }, "{not json", key),
          "payload-array": signRaw({ kid: key.kid, typ: "JWT", alg: "RS256" }, "[1,2,3]", key),
        }[plan.how];
        return { token, signedByIssuer: false };
      }
      case "random":
        return { token: plan.text, signedByIssuer: false };
    }
  }

  async function check(input: JwtCase): Promise<void> {
    const { token, signedByIssuer } = tokenFor(input.plan);
    const headers: Record<string, string> = { "content-type": "application/json" };
    const authorization = input.authorization?.replace(/<t>/g, token);
    // Header values cannot hold CR, LF or NUL, nor anything past latin-1: such a token never
    // reaches a server.
    if (authorization !== undefined && /^[\t\x20-\x7e\x80-\xff]*$/.test(authorization)) {
      headers.authorization = authorization;
    }
    const before = issuedEvents;
    const res = await app.request("/v1/credentials", { method: "POST", headers, body: input.body });
    const text = await res.text();
    counts.inputs++;
    counts.byStatus[res.status] = (counts.byStatus[res.status] ?? 0) + 1;
    counts.issued += issuedEvents - before;
    const fail = (why: string) => {
      throw new Error(`${why} — ${input.label}: ${res.status} ${text.slice(0, 200)}`);
    };
    if (res.status >= 500) fail("a 5xx");
    if (!ALLOWED.has(res.status)) fail(`status ${res.status}`);
    if (errors.length > 0) fail(`an unexpected error reached logError: ${String(errors[0])}`);
    if (res.status === 200 && !signedByIssuer) fail("credentials for a token the issuer did not sign");
    if ((issuedEvents - before === 1) !== (res.status === 200))
      fail("Credentials Issued does not match the answer");
    if (res.status !== 200 && /AKIA|ASIA|secretAccessKey/i.test(text)) fail("credentials in a refusal");
    if (/\bat \S+ \(\S+:\d+:\d+\)/.test(text)) fail("a stack trace in the answer");
  }

  return {
    counts,
    check,
    async close() {
      process.off("unhandledRejection", onUnhandled);
      await jwks.close();
    },
  };
}

/** A JWS over raw header and payload texts, RS256 with `issuer`'s key. */
function signRaw(
  header: Record<string, unknown>,
  payload: string,
  issuer: LocalOidcIssuer,
  headerText = JSON.stringify(header),
): string {
  const input = `${b64(headerText)}.${b64(payload)}`;
  return `${input}.${sign("sha256", Buffer.from(input), issuer.privateKey).toString("base64url")}`;
}
