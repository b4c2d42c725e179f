import { createHmac } from "node:crypto";
import { describe, expect, it } from "vitest";
import { createWebhookCredentials, signWebhook, verifyWebhook } from "../../shared/domain/webhook-auth.js";
import { UnauthorizedError } from "../../shared/errors.js";

// The Standard Webhooks spec's own example secret and message.
const KEY = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
const OTHER_KEY = "whsec_dGhpcyBpcyBhbm90aGVyIHNpZ25pbmcga2V5IQ==";
const NOW = new Date("2026-11-21T10:00:00Z");
const BODY = Buffer.from('{"object_kind":"push"}');

const signed = (key = KEY, at = NOW, body: Uint8Array = BODY) => signWebhook(key, "msg_1", at, body);
const reader = (headers: Record<string, string>) => (name: string) => headers[name];
const creds = (signingKeys: string[] = [KEY], tokens: string[] = []) =>
  createWebhookCredentials({ signingKeys, tokens });

function denied(fn: () => unknown): string {
  try {
    fn();
  } catch (error) {
    expect(error).toBeInstanceOf(UnauthorizedError);
    return (error as Error).message;
  }
  throw new Error("expected UnauthorizedError");
}

describe("Standard Webhooks signature", () => {
  it("matches the spec's published test vector", () => {
    // https://github.com/standard-webhooks/standard-webhooks/blob/main/spec/standard-webhooks.md
    const body = Buffer.from('{"test": 2432232314}');
    const headers = {
      "webhook-id": "msg_p5jXN8AQM9LWM0D4loKWxJek",
      "webhook-timestamp": "1614265330",
      "webhook-signature": "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=",
    };
    expect(verifyWebhook(creds(), reader(headers), body, new Date(1614265330_000))).toBe("signature");
  });

  it("accepts a valid signature", () => {
    expect(verifyWebhook(creds(), reader(signed()), BODY, NOW)).toBe("signature");
  });

  it("rejects a signature made with another key", () => {
    expect(denied(() => verifyWebhook(creds(), reader(signed(OTHER_KEY)), BODY, NOW))).toMatch(
      /does not match/,
    );
  });

  it("rejects a tampered body", () => {
    const tampered = Buffer.from('{"object_kind":"pushed"}');
    expect(denied(() => verifyWebhook(creds(), reader(signed()), tampered, NOW))).toMatch(/does not match/);
  });

  it("rejects a tampered webhook-id or timestamp", () => {
    expect(() => verifyWebhook(creds(), reader({ ...signed(), "webhook-id": "msg_2" }), BODY, NOW)).toThrow(
      UnauthorizedError,
    );
    const ts = String(Math.floor(NOW.getTime() / 1000) + 1);
    expect(() => verifyWebhook(creds(), reader({ ...signed(), "webhook-timestamp": ts }), BODY, NOW)).toThrow(
      UnauthorizedError,
    );
  });

  it("accepts timestamps within ±5 minutes and rejects stale and future ones", () => {
    const at = (s: number) => new Date(NOW.getTime() + s * 1000);
    expect(verifyWebhook(creds(), reader(signed(KEY, at(-300))), BODY, NOW)).toBe("signature");
    expect(verifyWebhook(creds(), reader(signed(KEY, at(300))), BODY, NOW)).toBe("signature");
    expect(denied(() => verifyWebhook(creds(), reader(signed(KEY, at(-301))), BODY, NOW))).toMatch(
      /tolerance/,
    );
    expect(denied(() => verifyWebhook(creds(), reader(signed(KEY, at(301))), BODY, NOW))).toMatch(
      /tolerance/,
    );
  });

  it("passes when any of several signatures matches (sender rotating keys)", () => {
    const good = signed()["webhook-signature"];
    const bad = signed(OTHER_KEY)["webhook-signature"];
    const headers = { ...signed(), "webhook-signature": `${bad} v2,abc ${good}` };
    expect(verifyWebhook(creds(), reader(headers), BODY, NOW)).toBe("signature");
  });

  it("passes with any of several configured keys (receiver rotating keys)", () => {
    expect(verifyWebhook(creds([OTHER_KEY, KEY]), reader(signed()), BODY, NOW)).toBe("signature");
  });

  it("names each missing or malformed header", () => {
    const { "webhook-id": _id, ...noId } = signed();
    const { "webhook-timestamp": _ts, ...noTs } = signed();
    expect(denied(() => verifyWebhook(creds(), reader(noId), BODY, NOW))).toMatch(/webhook-id/);
    expect(denied(() => verifyWebhook(creds(), reader(noTs), BODY, NOW))).toMatch(/webhook-timestamp/);
    const notANumber = { ...signed(), "webhook-timestamp": "yesterday" };
    expect(denied(() => verifyWebhook(creds(), reader(notANumber), BODY, NOW))).toMatch(/webhook-timestamp/);
    const noV1 = { ...signed(), "webhook-signature": "v2,abc" };
    expect(denied(() => verifyWebhook(creds(), reader(noV1), BODY, NOW))).toMatch(/no v1 signature/);
    expect(denied(() => verifyWebhook(creds(), reader({}), BODY, NOW))).toMatch(/missing webhook-signature/);
  });

  it("signs over the raw bytes: id.timestamp.body, HMAC-SHA256 with the decoded key", () => {
    const key = Buffer.from(KEY.slice("whsec_".length), "base64");
    const ts = String(Math.floor(NOW.getTime() / 1000));
    const expected = createHmac("sha256", key).update(`msg_1.${ts}.${BODY.toString()}`).digest("base64");
    expect(signed()["webhook-signature"]).toBe(`v1,${expected}`);
  });

  it("refuses malformed configured keys with the key's position", () => {
    expect(() => creds(["abc"])).toThrow(/#1 must start with "whsec_"/);
    expect(() => creds([KEY, "whsec_!!!"])).toThrow(/#2 must be "whsec_" followed by base64/);
    expect(() => creds(["whsec_c2hvcnQ="])).toThrow(/≥ 16 bytes/);
  });
});

describe("X-Gitlab-Token", () => {
  const tokens = creds([], ["s3cret-token", "rotated-token"]);
  it("accepts the right token and any rotated one", () => {
    expect(verifyWebhook(tokens, reader({ "x-gitlab-token": "s3cret-token" }), BODY, NOW)).toBe("token");
    expect(verifyWebhook(tokens, reader({ "x-gitlab-token": "rotated-token" }), BODY, NOW)).toBe("token");
  });

  it("rejects a wrong token, one of another length, and an empty one, without echoing it", () => {
    for (const token of ["s3cret-tokem", "s3cret", "s3cret-token-and-more", ""]) {
      const message = denied(() => verifyWebhook(tokens, reader({ "x-gitlab-token": token }), BODY, NOW));
      expect(message).toBe("X-Gitlab-Token does not match any configured secret");
    }
  });

  it("rejects an absent token", () => {
    expect(denied(() => verifyWebhook(tokens, reader({}), BODY, NOW))).toBe("missing X-Gitlab-Token header");
  });

  it("falls back to the token when the delivery is signed but no signing key is configured", () => {
    const headers = { ...signed(), "x-gitlab-token": "s3cret-token" };
    expect(verifyWebhook(tokens, reader(headers), BODY, NOW)).toBe("token");
    expect(denied(() => verifyWebhook(tokens, reader(signed()), BODY, NOW))).toMatch(/no signing key/);
  });

  it("prefers the signature when both are configured and sent: a bad signature fails despite a good token", () => {
    const both = creds([KEY], ["s3cret-token"]);
    const headers = { ...signed(OTHER_KEY), "x-gitlab-token": "s3cret-token" };
    expect(() => verifyWebhook(both, reader(headers), BODY, NOW)).toThrow(UnauthorizedError);
    expect(verifyWebhook(both, reader({ "x-gitlab-token": "s3cret-token" }), BODY, NOW)).toBe("token");
  });
});
