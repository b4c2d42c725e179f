/**
 * Where the running local runtime answers, for the commands that talk to it (`send`, `deploy`,
 * `credentials`, `sweep`, `stop`): `PORT` when this shell sets it, else the URL the runtime wrote in its
 * data dir's lock when it started listening (so `PORT=9090 npm start` is found without exporting
 * PORT again, or with PORT=0), else the default port.
 */
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { ENV, type Env, type LocalConfig } from "../shared/config.js";

/** One `npm start` per data dir: it holds this file while it runs (see local-runtime.ts). */
export const LOCK_FILE = "kubler.lock";

/**
 * @example
 * runtimeUrl(loadLocalConfig(process.env), process.env); // "http://127.0.0.1:8080"
 */
export function runtimeUrl(config: LocalConfig, env: Env): string {
  // PORT=0 asked the runtime for any free port: only its lock knows which.
  if (!env[ENV.PORT]?.trim() || config.port === 0) {
    const locked = lockedUrl(join(config.dataDir, LOCK_FILE));
    if (locked) return locked;
  }
  return `http://${urlHost(config.host)}:${config.port}`;
}

/** A host to connect to for one the runtime binds: the loopback for a wildcard address. */
export function urlHost(host: string): string {
  if (host === "0.0.0.0" || host === "::") return "127.0.0.1";
  return host.includes(":") ? `[${host}]` : host;
}

/** The lock's `{ pid, url }`, each null when absent or malformed (a write cut short by a crash). */
export function parseLock(text: string): { pid: number | null; url: string | null } {
  let parsed: { pid?: unknown; url?: unknown } = {};
  try {
    parsed = JSON.parse(text) ?? {};
  } catch {
    // No holder.
  }
  const pid = Number.isSafeInteger(parsed.pid) && (parsed.pid as number) > 0 ? (parsed.pid as number) : null;
  const url = typeof parsed.url === "string" && /^http:\/\/[^\s/]+$/.test(parsed.url) ? parsed.url : null;
  return { pid, url };
}

function lockedUrl(path: string): string | null {
  try {
    return parseLock(readFileSync(path, "utf8")).url;
  } catch {
    return null;
  }
}
