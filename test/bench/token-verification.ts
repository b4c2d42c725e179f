/**
 * ID token verification with a warm JWKS cache against bare `crypto.verify` of the same token, in
 * alternating rounds. Run as a script (`credentials.ts` starts it pinned to one core) it prints the
 * two medians as JSON on its last line.
 *
 * jose verifies through WebCrypto, whose `subtle.verify` runs the RSA work on a libuv pool thread.
 * Unpinned, every verification hands off to another core and back, and the cross-core wake-ups cost
 * more than the RSA itself; on one core the pool thread runs in the main thread's wake-up slot.
 */
import { createPublicKey, verify } from "node:crypto";
import { JoseIdTokenVerifier } from "../../shared/adapters/jose-id-token-verifier.js";
import { systemClock } from "../../shared/clock.js";
import { gitlabIdTokenClaims, LocalOidcIssuer } from "../../shared/local/local-oidc-issuer.js";
import { median, rate } from "./support.js";

export interface VerificationRates {
  /** Verifications per second through `JoseIdTokenVerifier` (median of the rounds). */
  verified: number;
  /** `crypto.verify` of the same signature per second (median of the rounds). */
  floor: number;
}

const ISSUER = "https://gitlab.example.com";

export async function measureVerification(rounds: number, ms: number): Promise<VerificationRates> {
  const key = LocalOidcIssuer.generate("bench");
  const verifier = new JoseIdTokenVerifier({
    issuer: ISSUER,
    audience: "kubler",
    clock: systemClock,
    fetchJwks: async () => key.jwks(),
  });
  const token = key.sign(gitlabIdTokenClaims({ iss: ISSUER, aud: "kubler", now: new Date() }));
  await verifier.verify(token); // the JWKS is fetched once: the cache is warm from here on
  const [header, payload, signature] = token.split(".") as [string, string, string];
  const input = Buffer.from(`${header}.${payload}`);
  const sig = Buffer.from(signature, "base64url");
  const publicKey = createPublicKey(key.privateKey);
  const bare = () => verify("sha256", input, publicKey, sig);
  const full = () => verifier.verify(token);
  await rate(ms, bare);
  await rate(ms, full);
  const bares: number[] = [];
  const fulls: number[] = [];
  for (let r = 0; r < rounds; r++) {
    bares.push(await rate(ms, bare));
    fulls.push(await rate(ms, full));
  }
  return { verified: median(fulls), floor: median(bares) };
}

if (process.argv[1] === import.meta.filename) {
  const [rounds = "5", ms = "1000"] = process.argv.slice(2);
  console.log(JSON.stringify(await measureVerification(Number(rounds), Number(ms))));
}
