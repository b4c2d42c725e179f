/**
 * `kubler send <event>`: posts one of GitLab's own documented payloads to a Kubler server, with the
 * headers GitLab sends, signed (Standard Webhooks) or with the secret token.
 */
import { randomUUID } from "node:crypto";
import { readdirSync, readFileSync } from "node:fs";
import { basename, dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { fileProblem } from "../shared/config.js";
import { signWebhook, tokenHeaderValue } from "../shared/domain/webhook-auth.js";
import { printable } from "./terminal-text.js";
import { UsageError } from "./usage-error.js";

export const FIXTURES_DIR = resolve(
  dirname(fileURLToPath(import.meta.url)),
  "../test/fixtures/gitlab/webhooks",
);

export interface Fixture {
  name: string;
  eventHeader: string;
  body: string;
  /**
   * `partial: true` in the file: GitLab's docs show only part of a delivery there (the fields of one
   * action), and Kubler answers it 400, as it would a real delivery missing the rest. Unset: whole.
   */
  partial?: boolean;
}

/**
 * The fixtures `send` offers (its help, and the list when a name is wrong): the file names without
 * `.json`, whole deliveries only. A partial one is still sent when named, and its 400 explained.
 *
 * @example
 * listFixtures(); // ["deployment", "issue", …, "merge_request", "pipeline", "push", …]
 */
export function listFixtures(): string[] {
  return wholeFixtures().map((fixture) => fixture.name);
}

/** The whole deliveries, by name: each file read once, for the list and for its event header. */
function wholeFixtures(): Fixture[] {
  return readdirSync(FIXTURES_DIR)
    .filter((file) => file.endsWith(".json"))
    .map((file) => basename(file, ".json"))
    .sort()
    .map((name) => loadFixture(name))
    .filter((fixture) => !fixture.partial);
}

/** Loads a fixture by name, or any file in the same `{ event_header, payload }` form by path. */
export function loadFixture(nameOrPath: string): Fixture {
  const path = nameOrPath.endsWith(".json") ? resolve(nameOrPath) : join(FIXTURES_DIR, `${nameOrPath}.json`);
  let text: string;
  try {
    text = readFileSync(path, "utf8");
  } catch (error) {
    // A name or path that is not there is a mistake in the call; a file there that cannot be read is not.
    const code = (error as NodeJS.ErrnoException).code;
    if (code !== "ENOENT" && code !== "ENOTDIR") throw new Error(`${path} ${fileProblem(error)}`);
    throw new UsageError(`no GitLab payload "${nameOrPath}"; try one of: ${listFixtures().join(", ")}`);
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
    partial: (parsed as { partial?: unknown }).partial === true,
  };
}

/**
 * What `send` prints for Kubler's answer: the answer, and for a partial fixture refused as bad
 * input, why (a newcomer would otherwise take `"project.id" is missing` for Kubler's bug) and
 * which whole one to send instead.
 *
 * @example
 * describeAnswer(loadFixture("push"), 202, '{"published":true,…}');
 * // ["Push Hook (push) → 202 {\"published\":true,…}"]
 */
export function describeAnswer(fixture: Fixture, status: number, body: string): string[] {
  // The answer may be another program's (PORT pointing elsewhere): its escapes are shown, not obeyed.
  const answer = `${fixture.eventHeader} (${fixture.name}) → ${status} ${printable(body)}`;
  if (!fixture.partial || status !== 400) return [answer];
  const whole = wholeFixtures().find((other) => other.eventHeader === fixture.eventHeader)?.name;
  return [
    answer,
    `  as expected: ${fixture.name} is part of a delivery, as GitLab's docs show it ("partial": true), ` +
      "not a whole one, and Kubler refuses it as it would a real delivery missing those fields" +
      (whole ? `; for a whole ${fixture.eventHeader}: npm run send -- ${whole}` : ""),
  ];
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
  /** How long to wait for the whole answer; default `SEND_TIMEOUT_MS`. */
  timeoutMs?: number;
}

/**
 * GitLab's webhook timeout: it gives up on an answer after 10 s, and so does `send`, rather than
 * wait for ever on a port whose process was stopped (Ctrl-Z) or is not a Kubler.
 * https://docs.gitlab.com/user/project/integrations/webhooks/#webhook-timeout-limits
 */
export const SEND_TIMEOUT_MS = 10_000;

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
  if (options.token) headers["x-gitlab-token"] = tokenHeaderValue(options.token);
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
  const timeoutMs = options.timeoutMs ?? SEND_TIMEOUT_MS;
  const signal = AbortSignal.timeout(timeoutMs);
  try {
    const response = await fetch(new URL("/webhooks/gitlab", options.url), {
      method: "POST",
      headers: gitlabHeaders(fixture, options),
      body: fixture.body,
      signal,
    });
    // The body is read now, under the same limit: a server can answer its headers and then stall.
    const body = await response.arrayBuffer();
    // A 204 (or any status without a body) cannot be rebuilt with one, even empty.
    return new Response(body.byteLength > 0 ? body : null, {
      status: response.status,
      headers: response.headers,
    });
  } catch (error) {
    if (!signal.aborted) throw error;
    throw new Error(
      `no answer within ${timeoutMs / 1000} s (GitLab gives up at ${SEND_TIMEOUT_MS / 1000} s); a runtime stopped with Ctrl-Z answers nothing until resumed (fg)`,
    );
  }
}

function instanceOf(body: string): string {
  const match = /"web_url":"(https?:\/\/[^/"]+)/.exec(body);
  return match?.[1] ?? "https://gitlab.example.com";
}
