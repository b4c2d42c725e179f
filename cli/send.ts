/**
 * `kubler send <event>`: posts one of GitLab's own documented payloads to a Kubler server, with the
 * headers GitLab sends, signed (Standard Webhooks) or with the secret token.
 */
import { randomUUID } from "node:crypto";
import { readdirSync, readFileSync } from "node:fs";
import { basename, dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { signWebhook } from "../shared/domain/webhook-auth.js";

export const FIXTURES_DIR = resolve(
  dirname(fileURLToPath(import.meta.url)),
  "../test/fixtures/gitlab/webhooks",
);

export interface Fixture {
  name: string;
  eventHeader: string;
  body: string;
}

/** The fixture names `send` accepts: the file names without `.json`. */
export function listFixtures(): string[] {
  return readdirSync(FIXTURES_DIR)
    .filter((file) => file.endsWith(".json"))
    .map((file) => basename(file, ".json"))
    .sort();
}

/** Loads a fixture by name, or any file in the same `{ event_header, payload }` form by path. */
export function loadFixture(nameOrPath: string): Fixture {
  const path = nameOrPath.endsWith(".json") ? resolve(nameOrPath) : join(FIXTURES_DIR, `${nameOrPath}.json`);
  let text: string;
  try {
    text = readFileSync(path, "utf8");
  } catch {
    throw new Error(`no GitLab payload "${nameOrPath}"; try one of: ${listFixtures().join(", ")}`);
  }
  let parsed: { event_header?: unknown; payload?: unknown };
  try {
    parsed = JSON.parse(text);
  } catch (error) {
    throw new Error(`${path} is not valid JSON: ${(error as Error).message}`);
  }
  if (parsed === null || typeof parsed !== "object") {
    throw new Error(`${path} must be { "event_header": "...", "payload": {...} }`);
  }
  if (typeof parsed.event_header !== "string" || parsed.payload === undefined) {
    throw new Error(`${path} must be { "event_header": "...", "payload": {...} }`);
  }
  return {
    name: basename(path, ".json"),
    eventHeader: parsed.event_header,
    body: JSON.stringify(parsed.payload),
  };
}

export interface SendOptions {
  url: string;
  /** Sign with this `whsec_` key (GitLab 19+) … */
  signingKey?: string | undefined;
  /** … or send this `X-Gitlab-Token`. */
  token?: string | undefined;
  /** Reuse a key to see deduplication; a fresh UUID otherwise. */
  idempotencyKey?: string | undefined;
  now?: Date;
}

/** The headers GitLab's webhook sender sets (see test/fixtures/gitlab/README.md). */
export function gitlabHeaders(fixture: Fixture, options: SendOptions): Record<string, string> {
  const key = options.idempotencyKey ?? randomUUID();
  const headers: Record<string, string> = {
    "content-type": "application/json",
    "user-agent": "GitLab/19.0.0",
    "x-gitlab-event": fixture.eventHeader,
    "x-gitlab-instance": instanceOf(fixture.body),
    "x-gitlab-webhook-uuid": randomUUID(),
    "x-gitlab-event-uuid": randomUUID(),
    "idempotency-key": key,
  };
  if (options.token) headers["x-gitlab-token"] = options.token;
  if (options.signingKey) {
    Object.assign(
      headers,
      signWebhook(options.signingKey, key, options.now ?? new Date(), Buffer.from(fixture.body)),
    );
  }
  return headers;
}

/**
 * @example
 * const res = await sendFixture(loadFixture("push"), { url: "http://127.0.0.1:8080", signingKey });
 */
export async function sendFixture(fixture: Fixture, options: SendOptions): Promise<Response> {
  return fetch(new URL("/webhooks/gitlab", options.url), {
    method: "POST",
    headers: gitlabHeaders(fixture, options),
    body: fixture.body,
  });
}

function instanceOf(body: string): string {
  const match = /"web_url":"(https?:\/\/[^/"]+)/.exec(body);
  return match?.[1] ?? "https://gitlab.example.com";
}
