/**
 * A stand-in for GitLab's OIDC side in the local runtime, so job credentials can be seen working
 * without GitLab: an RSA key kept in the data dir (mode 0600, like the generated webhook secrets), its
 * JWKS served where GitLab serves its own (`<issuer>/oauth/discovery/keys`), and RS256 ID tokens with
 * GitLab's documented claims. node:crypto only; never used in AWS mode.
 */
import {
  createPrivateKey,
  createPublicKey,
  generateKeyPairSync,
  type KeyObject,
  randomUUID,
  sign,
} from "node:crypto";
import { existsSync, mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { fileProblem } from "../config.js";

const KEY_FILE = "local-oidc-key.json";
/** Where the local issuer lives under the runtime's URL (its JWKS: `<this>/oauth/discovery/keys`). */
export const LOCAL_ISSUER_PATH = "/local/gitlab";
/** GitLab's documented ID token claims (test/fixtures/gitlab/id-token). */
export const ID_TOKEN_FIXTURE = resolve(
  dirname(fileURLToPath(import.meta.url)),
  "../../test/fixtures/gitlab/id-token/example_payload.json",
);

export type JwtHeader = Record<string, unknown>;

/** `base64url(header).base64url(payload).signature`, RS256 with `key` (or no signature for `alg: none`). */
export function signJwt(header: JwtHeader, payload: Record<string, unknown>, key: KeyObject): string {
  const input = `${base64url(JSON.stringify(header))}.${base64url(JSON.stringify(payload))}`;
  if (header.alg === "none") return `${input}.`;
  return `${input}.${sign("sha256", Buffer.from(input), key).toString("base64url")}`;
}

function base64url(text: string): string {
  return Buffer.from(text).toString("base64url");
}

/**
 * An RSA-2048 signing key with a `kid`, like GitLab's `ci_jwt_signing_key`.
 *
 * @example
 * const issuer = LocalOidcIssuer.generate();
 * const token = issuer.sign(gitlabIdTokenClaims({ iss, aud: "kubler", now }));
 * serve(issuer.jwks()); // { keys: [{ kty: "RSA", kid, alg: "RS256", use: "sig", n, e }] }
 */
export class LocalOidcIssuer {
  private constructor(
    readonly kid: string,
    readonly privateKey: KeyObject,
  ) {}

  static generate(kid: string = randomUUID()): LocalOidcIssuer {
    const { privateKey } = generateKeyPairSync("rsa", { modulusLength: 2048 });
    return new LocalOidcIssuer(kid, privateKey);
  }

  /** The data dir's key, made on first use. */
  static ensure(dataDir: string): LocalOidcIssuer {
    const existing = LocalOidcIssuer.read(dataDir);
    if (existing) return existing;
    const issuer = LocalOidcIssuer.generate();
    mkdirSync(dataDir, { recursive: true });
    const pem = issuer.privateKey.export({ format: "pem", type: "pkcs8" }).toString();
    writeFileSync(
      join(dataDir, KEY_FILE),
      `${JSON.stringify({ kid: issuer.kid, privateKey: pem }, null, 2)}\n`,
      {
        mode: 0o600,
      },
    );
    return issuer;
  }

  static read(dataDir: string): LocalOidcIssuer | null {
    const path = join(dataDir, KEY_FILE);
    if (!existsSync(path)) return null;
    // Cut short (a crash while it was written) or edited: the parser's or OpenSSL's own words
    // ("Unterminated string in JSON at position 42") name neither the file nor the way out.
    const damaged = new Error(`${path} is not a key file written by kubler; delete it to generate a new key`);
    let text: string;
    try {
      text = readFileSync(path, "utf8");
    } catch (error) {
      // Unreadable (a directory, another user's file) is not damaged: deleting it may not be the fix.
      throw new Error(`${path} ${fileProblem(error)}`);
    }
    let parsed: { kid?: unknown; privateKey?: unknown };
    try {
      parsed = JSON.parse(text) ?? {};
    } catch {
      throw damaged;
    }
    if (typeof parsed.kid !== "string" || typeof parsed.privateKey !== "string") throw damaged;
    let privateKey: KeyObject;
    try {
      privateKey = createPrivateKey(parsed.privateKey);
    } catch {
      throw damaged;
    }
    return new LocalOidcIssuer(parsed.kid, privateKey);
  }

  /** The public half, as GitLab's `/oauth/discovery/keys` answers. */
  jwks(): { keys: Record<string, unknown>[] } {
    const jwk = createPublicKey(this.privateKey).export({ format: "jwk" });
    return { keys: [{ ...jwk, kid: this.kid, alg: "RS256", use: "sig" }] };
  }

  /** An RS256 token with GitLab's header (`kid`, `typ: JWT`); `header` overrides it (tests). */
  sign(payload: Record<string, unknown>, header: JwtHeader = {}): string {
    return signJwt({ kid: this.kid, typ: "JWT", alg: "RS256", ...header }, payload, this.privateKey);
  }
}

/**
 * GitLab's documented example claims, made current: `iat`/`nbf` now, `exp` in an hour, a new `jti`,
 * with `overrides` applied (a `null` override removes the claim).
 *
 * @example
 * gitlabIdTokenClaims({ iss: "http://127.0.0.1:8080/local/gitlab", aud: "kubler", now: new Date() }, { environment: "review/x" });
 */
export function gitlabIdTokenClaims(
  base: { iss: string; aud: string; now: Date; lifetimeSeconds?: number },
  overrides: Record<string, unknown> = {},
): Record<string, unknown> {
  const fixture = JSON.parse(readFileSync(ID_TOKEN_FIXTURE, "utf8")) as { payload: Record<string, unknown> };
  const iat = Math.floor(base.now.getTime() / 1000);
  const claims: Record<string, unknown> = {
    ...fixture.payload,
    iss: base.iss,
    aud: base.aud,
    iat,
    nbf: iat - 5,
    exp: iat + (base.lifetimeSeconds ?? 3600),
    jti: randomUUID(),
    ...overrides,
  };
  for (const [key, value] of Object.entries(overrides)) if (value === null) delete claims[key];
  return claims;
}
