/**
 * Time limits of the local runtime's HTTP server against slow clients (slow-loris). Node's defaults
 * (headers 60 s, whole request 300 s, checked every 30 s) let a client that trickles its headers
 * or body hold a connection for minutes; GitLab itself gives up on a webhook after 10 s, so no
 * honest sender needs more than that.
 */
import type { ServerOptions } from "node:http";

export interface ServerLimits {
  /** All headers must have arrived within this (Node answers 408 and closes). */
  headersTimeoutMs: number;
  /** The whole request, body included, must have arrived within this (408). */
  requestTimeoutMs: number;
  /** How often Node checks connections against the two limits above. */
  checkEveryMs: number;
}

export const DEFAULT_SERVER_LIMITS: ServerLimits = {
  headersTimeoutMs: 10_000,
  requestTimeoutMs: 15_000,
  checkEveryMs: 1_000,
};

/**
 * The `node:http` server options for the limits.
 *
 * @example
 * serve({ fetch: app.fetch, port, serverOptions: serverLimitOptions(DEFAULT_SERVER_LIMITS) });
 */
export function serverLimitOptions(limits: ServerLimits): ServerOptions {
  return {
    headersTimeout: limits.headersTimeoutMs,
    requestTimeout: limits.requestTimeoutMs,
    connectionsCheckingInterval: limits.checkEveryMs,
  };
}
