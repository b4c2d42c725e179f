/**
 * The jose verifier against a real RSA key pair and a JWKS served over node:http, as GitLab serves it.
 */
import { createHmac, createPublicKey } from "node:crypto";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { JoseIdTokenVerifier } from "../../shared/adapters/jose-id-token-verifier.js";
import { createAuditRedactor } from "../../shared/domain/audit.js";
import { TokenRejectedError, UnavailableError } from "../../shared/errors.js";
import { gitlabIdTokenClaims, LocalOidcIssuer } from "../../shared/local/local-oidc-issuer.js";
import { FixedClock } from "../fakes/index.js";
import { startJwksServer } from "../fakes/jwks-server.js";

const key = LocalOidcIssuer.generate("key-1");
const clock = new FixedClock(new Date("2026-11-21T10:00:00Z"));
let jwks: Awaited<ReturnType<typeof startJwksServer>>;

beforeAll(async () => {
  jwks = await startJwksServer([key]);
});
afterAll(() => jwks.close());
afterEach(() => jwks.publish([key]));

function verifier(options: { refetchIntervalMs?: number } = {}) {
  return new JoseIdTokenVerifier({ issuer: jwks.url, audience: "kubler", clock, ...options });
}

function claims(overrides: Record<string, unknown> = {}) {
  return gitlabIdTokenClaims({ iss: jwks.url, aud: "kubler", now: clock.now() }, overrides);
}

/** A verifier for a GitLab served under `/gitlab`, its JWKS fetches recorded in `fetched`. */
function verifierUnderRoot(fetched: string[]) {
  return new JoseIdTokenVerifier({
    issuer: "https://example.com/gitlab",
    audience: "kubler",
    clock,
    fetchJwks: async (url) => {
      fetched.push(url);
      return key.jwks();
    },
  });
}

async function rejection(promise: Promise<unknown>): Promise<{ reason: string; message: string }> {
  const error = await promise.then(
    () => null,
    (e: unknown) => e,
  );
  expect(error).toBeInstanceOf(TokenRejectedError);
  const { reason, message } = error as TokenRejectedError;
  return { reason, message };
}

describe("JoseIdTokenVerifier", () => {
  it("accepts a GitLab ID token and returns its claims", async () => {
    const token = key.sign(claims({ environment: "review/x" }));
    const verified = await verifier().verify(token);
    expect(verified).toMatchObject({
      iss: jwks.url,
      project_path: "my-group/my-project",
      project_id: "20",
      job_id: "302",
      ref_protected: "false",
      environment: "review/x",
      job_project_path: null,
    });
  });

  it("forgives 60 s of clock skew, not more", async () => {
    const now = clock.now().getTime() / 1000;
    await expect(verifier().verify(key.sign(claims({ exp: now - 50 })))).resolves.toBeDefined();
    expect(await rejection(verifier().verify(key.sign(claims({ exp: now - 61 }))))).toEqual({
      reason: "expired",
      message: "the token has expired: request credentials while the job's ID token is still valid",
    });
    await expect(verifier().verify(key.sign(claims({ nbf: now + 50 })))).resolves.toBeDefined();
    expect((await rejection(verifier().verify(key.sign(claims({ nbf: now + 120 }))))).reason).toBe(
      "not_yet_valid",
    );
    expect((await rejection(verifier().verify(key.sign(claims({ iat: now + 120, nbf: now }))))).reason).toBe(
      "not_yet_valid",
    );
  });

  it("pins the issuer and the audience", async () => {
    expect(
      await rejection(verifier().verify(key.sign(claims({ iss: "https://gitlab.evil.example" })))),
    ).toEqual({
      reason: "wrong_issuer",
      message: "the token was not issued by the GitLab instance Kubler trusts",
    });
    expect(
      await rejection(verifier().verify(key.sign(claims({ aud: "https://vault.example.com" })))),
    ).toEqual({
      reason: "wrong_audience",
      message: `the token's audience is not "kubler": declare it in .gitlab-ci.yml (id_tokens: <NAME>: aud: kubler)`,
    });
  });

  it("a GitLab under a relative URL root: its tokens' iss is the origin, its JWKS is under the root", async () => {
    // GitLab signs iss as Settings.gitlab.base_url (scheme, host, port), not its url with the
    // relative root, and serves /oauth/discovery/keys under the root.
    const fetched: string[] = [];
    const v = verifierUnderRoot(fetched);
    const sign = (iss: string) => key.sign(gitlabIdTokenClaims({ iss, aud: "kubler", now: clock.now() }, {}));

    await expect(v.verify(sign("https://example.com"))).resolves.toMatchObject({
      iss: "https://example.com",
    });
    await expect(v.verify(sign("https://example.com/gitlab"))).resolves.toBeDefined();
    expect(fetched).toEqual(["https://example.com/gitlab/oauth/discovery/keys"]);
    // Still pinned: another root on the same host, or another host, is another instance.
    for (const iss of [
      "https://example.com/other",
      "https://example.com:8443",
      "https://gitlab.example.com",
    ]) {
      expect((await rejection(v.verify(sign(iss)))).reason).toBe("wrong_issuer");
    }
  });

  it("a GitLab under a relative URL root: another GitLab on the same origin signs the same iss, and is refused by its keys", async () => {
    // https://example.com/other also signs iss "https://example.com"; only the keys served under the
    // configured root decide, whether its kid is one they lack or one they have.
    const fetched: string[] = [];
    const v = verifierUnderRoot(fetched);
    const origin = gitlabIdTokenClaims({ iss: "https://example.com", aud: "kubler", now: clock.now() }, {});
    await expect(v.verify(key.sign(origin))).resolves.toBeDefined();

    const other = LocalOidcIssuer.generate("other-instance-key");
    expect((await rejection(v.verify(other.sign(origin)))).reason).toBe("unknown_key");
    const sameKid = LocalOidcIssuer.generate("key-1");
    expect((await rejection(v.verify(sameKid.sign(origin)))).reason).toBe("bad_signature");
    // The unknown kid made one more fetch, of the configured root's keys: never another path's.
    expect(new Set(fetched)).toEqual(new Set(["https://example.com/gitlab/oauth/discovery/keys"]));
  });

  it("refuses alg none, and HS256 signed with the public key", async () => {
    const payload = claims();
    const none = key.sign(payload, { alg: "none" });
    expect((await rejection(verifier().verify(none))).reason).toBe("algorithm_not_allowed");
    // The classic confusion attack: HMAC keyed with the (public) RSA key's PEM.
    const pem = createPublicKey(key.privateKey).export({ format: "pem", type: "spki" }).toString();
    const header = Buffer.from(JSON.stringify({ alg: "HS256", typ: "JWT", kid: "key-1" })).toString(
      "base64url",
    );
    const body = Buffer.from(JSON.stringify(payload)).toString("base64url");
    const mac = createHmac("sha256", pem).update(`${header}.${body}`).digest("base64url");
    expect((await rejection(verifier().verify(`${header}.${body}.${mac}`))).reason).toBe(
      "algorithm_not_allowed",
    );
  });

  it("refuses an unknown key, a tampered payload, a malformed token and missing claims", async () => {
    const stranger = LocalOidcIssuer.generate("key-unknown");
    expect(await rejection(verifier().verify(stranger.sign(claims())))).toEqual({
      reason: "unknown_key",
      message: "the token is signed with a key the issuer does not publish",
    });
    // Same kid as the real key, another key's signature.
    const forged = LocalOidcIssuer.generate("key-1");
    expect((await rejection(verifier().verify(forged.sign(claims())))).reason).toBe("bad_signature");
    const [header, , signature] = key.sign(claims()).split(".");
    const tampered = Buffer.from(JSON.stringify(claims({ project_path: "group/app" }))).toString("base64url");
    expect(await rejection(verifier().verify(`${header}.${tampered}.${signature}`))).toEqual({
      reason: "bad_signature",
      message: "the token's signature does not verify",
    });
    const malformed = await rejection(verifier().verify("not-a-jwt"));
    expect(malformed.reason).toBe("malformed");
    // The reason is audited as written: nothing in it looks like a credential to the redaction.
    expect(createAuditRedactor().text(malformed.message)).toBe(malformed.message);
    expect(await rejection(verifier().verify(key.sign(claims({ job_id: null }))))).toEqual({
      reason: "missing_claim",
      message: 'the token has no usable "job_id" claim',
    });
    expect((await rejection(verifier().verify(key.sign(claims({ jti: null }))))).reason).toBe(
      "missing_claim",
    );
    expect((await rejection(verifier().verify(key.sign(claims({ project_path: 7 }))))).message).toBe(
      'the token has no usable "project_path" claim',
    );
  });

  it("fetches a rotated-in key once; a flood of unknown kids does not flood the JWKS endpoint", async () => {
    const v = verifier({ refetchIntervalMs: 30_000 });
    const before = jwks.requests;
    await v.verify(key.sign(claims()));
    await v.verify(key.sign(claims()));
    expect(jwks.requests - before).toBe(1);

    // GitLab rotates: a new key is published and used after start.
    const next = LocalOidcIssuer.generate("key-2");
    jwks.publish([key, next]);
    clock.advance(31_000);
    await v.verify(next.sign(claims()));
    await v.verify(next.sign(claims()));
    expect(jwks.requests - before).toBe(2);

    // A forger's flood of made-up kids: at most one fetch per interval, however many arrive.
    // Any key will do: the made-up kid is what matters.
    const flood = Array.from({ length: 500 }, (_, i) => key.sign(claims(), { kid: `bogus-${i}` }));
    const results = await Promise.allSettled(flood.map((token) => v.verify(token)));
    expect(
      results.every(
        (r) => r.status === "rejected" && (r.reason as TokenRejectedError).reason === "unknown_key",
      ),
    ).toBe(true);
    expect(jwks.requests - before).toBe(2);
    clock.advance(31_000);
    await Promise.allSettled(flood.slice(0, 50).map((token) => v.verify(token)));
    expect(jwks.requests - before).toBe(3);
    // The genuine keys still work throughout.
    await expect(v.verify(key.sign(claims()))).resolves.toBeDefined();
  }, 30_000);

  it("keys past their max age with GitLab failing: the held keys serve, refetched at most once per interval", async () => {
    let fetches = 0;
    const v = new JoseIdTokenVerifier({
      issuer: jwks.url,
      audience: "kubler",
      clock,
      maxAgeMs: 60_000,
      refetchIntervalMs: 30_000,
      fetchJwks: async () => {
        fetches++;
        if (fetches > 1) throw new Error("HTTP 502");
        return key.jwks();
      },
    });
    await v.verify(key.sign(claims()));
    clock.advance(61_000);
    // Sequential requests (anyone can send them: any RS256 header will do) must not each reach GitLab.
    for (let i = 0; i < 20; i++) await expect(v.verify(key.sign(claims()))).resolves.toBeDefined();
    expect(fetches).toBe(2);
    clock.advance(31_000);
    await v.verify(key.sign(claims()));
    expect(fetches).toBe(3);
  });

  it("a rotated-in key while GitLab's JWKS fails: 503 (retry later), not unknown_key; the held keys still serve", async () => {
    let failing = false;
    let fetches = 0;
    const next = LocalOidcIssuer.generate("key-2");
    let published = [key];
    const v = new JoseIdTokenVerifier({
      issuer: jwks.url,
      audience: "kubler",
      clock,
      refetchIntervalMs: 30_000,
      fetchJwks: async () => {
        fetches++;
        if (failing) throw new Error("HTTP 502");
        return { keys: published.flatMap((issuer) => issuer.jwks().keys) };
      },
    });
    await v.verify(key.sign(claims()));
    clock.advance(31_000);
    published = [key, next];
    failing = true;
    // GitLab signs with a key Kubler has not seen, and its JWKS cannot be read: whether the key is
    // GitLab's is unknown, so the job is told to retry, not that its token is forged.
    const first = await v.verify(next.sign(claims())).catch((e: unknown) => e);
    expect(first).toBeInstanceOf(UnavailableError);
    expect(fetches).toBe(2);
    // Within the interval no fetch is made, and the answer is still "unavailable".
    const again = await v.verify(next.sign(claims())).catch((e: unknown) => e);
    expect(again).toBeInstanceOf(UnavailableError);
    expect(fetches).toBe(2);
    await expect(v.verify(key.sign(claims()))).resolves.toBeDefined();
    // GitLab back: the next fetch (after the interval) finds the key.
    failing = false;
    clock.advance(31_000);
    await expect(v.verify(next.sign(claims()))).resolves.toBeDefined();
    expect(fetches).toBe(3);
    // A made-up kid once the JWKS answers is unknown_key again.
    clock.advance(31_000);
    expect((await rejection(v.verify(key.sign(claims(), { kid: "bogus" })))).reason).toBe("unknown_key");
  });

  it("a key GitLab dropped from its JWKS stays dropped, even when a lookup of it straddled the fetch", async () => {
    const dropped = LocalOidcIssuer.generate("key-dropped");
    let answer: () => Promise<unknown> = async () => ({
      keys: [...dropped.jwks().keys, ...key.jwks().keys],
    });
    const v = new JoseIdTokenVerifier({
      issuer: jwks.url,
      audience: "kubler",
      clock,
      maxAgeMs: 60_000,
      fetchJwks: () => answer(),
    });
    await v.verify(key.sign(claims()));
    clock.advance(61_000);
    let answerWith: (document: unknown) => void = () => {};
    answer = () => new Promise((resolve) => (answerWith = resolve));
    // The keys are stale: this request fetches them again and waits; GitLab no longer has key-dropped.
    const refetching = v.verify(key.sign(claims()));
    answerWith({ keys: key.jwks().keys });
    // Sent as the answer arrives: within the interval it does not wait, and is looked up in the held set.
    const straddling = v.verify(dropped.sign(claims())).catch((e: unknown) => e);
    await refetching;
    await straddling;
    expect((await rejection(v.verify(dropped.sign(claims())))).reason).toBe("unknown_key");
  });

  it("an unreachable JWKS is 'unavailable' (503), not a rejected token", async () => {
    const v = new JoseIdTokenVerifier({ issuer: "http://127.0.0.1:9", audience: "kubler", clock });
    const error = await v.verify(key.sign(claims({ iss: "http://127.0.0.1:9" }))).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(UnavailableError);
    expect((error as Error).message).toMatch(
      /^cannot read the token issuer's signing keys from http:\/\/127.0.0.1:9\/oauth\/discovery\/keys/,
    );
  });

  it("an unreadable JWKS tells the caller nothing of where or why; the detail keeps no URL credentials", async () => {
    const issuer = "https://kubler:glpat-Xq9vR2mT7wLp4sK8nB3c@gitlab.example.com";
    // fetch itself refuses such a URL, and repeats it in its error: real fetch, no network needed.
    const v = new JoseIdTokenVerifier({ issuer, audience: "kubler", clock });
    const error = await v.verify(key.sign(claims({ iss: issuer }))).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(UnavailableError);
    expect((error as UnavailableError).publicMessage).toBe("cannot read the token issuer's signing keys");
    const { message } = error as Error;
    expect(message).toMatch(
      /^cannot read the token issuer's signing keys from https:\/\/gitlab.example.com\/oauth\/discovery\/keys: /,
    );
    expect(createAuditRedactor().text(message)).not.toContain("glpat-Xq9vR2mT7wLp4sK8nB3c");
  });
});
