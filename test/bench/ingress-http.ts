/**
 * Over HTTP: autocannon (10 connections) against the gitlab-webhook function served alone (its app
 * with the local runtime's bus, dedupe and audit files), against a bare @hono/node-server
 * route that only reads and parses the same body. Each server runs in its own process on its own
 * core (autocannon is single-threaded and takes the other one).
 */
import type { ChildProcess } from "node:child_process";
import { join } from "node:path";
import autocannon, { type Request } from "autocannon";
import { signWebhook } from "../../shared/domain/webhook-auth.js";
import { startPinnedServer } from "./pinned.js";
import { type Figure, fmt, median, pushBody10k } from "./support.js";

const SIGNING_KEY = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
const HERE = import.meta.dirname;

interface Run {
  rps: number;
  p50: number;
  p99: number;
  non2xx: number;
  errors: number;
}

export async function benchIngressHttp(rounds = 3, seconds = 5): Promise<Figure[]> {
  const servers = {
    bare: await startServer("bare"),
    floor: await startServer("floor"),
    floorNode: await startServer("floor-node"),
    kubler: await startServer("webhook"),
  };
  try {
    // Warm each (JIT, connection pools), then alternate rounds so drift on this shared machine hits all.
    for (const server of Object.values(servers)) await load(server.url, 5);
    const runs: Record<keyof typeof servers, Run[]> = { bare: [], floor: [], floorNode: [], kubler: [] };
    for (let r = 0; r < rounds; r++) {
      for (const [name, server] of Object.entries(servers)) {
        runs[name as keyof typeof servers].push(await load(server.url, seconds));
      }
    }
    const bare = summarize(runs.bare);
    const floor = summarize(runs.floor);
    const floorNode = summarize(runs.floorNode);
    const kubler = summarize(runs.kubler);
    const ratio = kubler.rps / bare.rps;
    return [
      {
        name: `webhook over HTTP, 10 connections, signed 10 KB push (median of ${rounds} × ${seconds} s)`,
        value: `${fmt(kubler.rps)} req/s, p50 ${kubler.p50} ms, p99 ${kubler.p99} ms, non-2xx ${kubler.non2xx}, errors ${kubler.errors}`,
        baseline: `bare hono parse+202: ${fmt(bare.rps)} req/s, p99 ${bare.p99} ms`,
        ratio: `${fmt(ratio, 2)}×`,
        target: "≥ 0.7×, p99 < 10 ms, 0 non-2xx",
        met: ratio >= 0.7 && kubler.p99 < 10 && kubler.non2xx === 0 && kubler.errors === 0,
      },
      {
        name: "… its floor: the body read as the webhook reads it, the signature checked, JSON.parse, 202",
        value: `${fmt(floor.rps)} req/s, p99 ${floor.p99} ms, non-2xx ${floor.non2xx}`,
        baseline: `bare hono parse+202: ${fmt(bare.rps)} req/s`,
        ratio: `${fmt(floor.rps / bare.rps, 2)}×`,
        target: "— (printed: the ratio no ingress can pass)",
        met: floor.non2xx === 0,
      },
      {
        name: "… the same floor reading Node's request directly (headers and body past Hono's Request)",
        value: `${fmt(floorNode.rps)} req/s, p99 ${floorNode.p99} ms, non-2xx ${floorNode.non2xx}`,
        baseline: `bare hono parse+202: ${fmt(bare.rps)} req/s`,
        ratio: `${fmt(floorNode.rps / bare.rps, 2)}×`,
        target: `— (printed: ${budgetText(perRequestBudgetUs(bare.rps, floorNode.rps))})`,
        met: floorNode.non2xx === 0,
      },
    ];
  } finally {
    for (const server of Object.values(servers)) server.child.kill("SIGTERM");
  }
}

/** What a 0.7× target leaves per request above a floor: 1 / (0.7 × bare) − 1 / floor, in µs. */
function perRequestBudgetUs(bareRps: number, floorRps: number): number {
  return 1e6 / (0.7 * bareRps) - 1e6 / floorRps;
}

function budgetText(budgetUs: number): string {
  return budgetUs > 0
    ? `0.7× of bare leaves ${fmt(budgetUs, 1)} µs a request for dedupe, normalize, publish and audit`
    : "below 0.7× of bare before dedupe, normalize, publish or audit";
}

function summarize(runs: readonly Run[]): Run {
  return {
    rps: median(runs.map((r) => r.rps)),
    p50: median(runs.map((r) => r.p50)),
    p99: median(runs.map((r) => r.p99)),
    non2xx: runs.reduce((sum, r) => sum + r.non2xx, 0),
    errors: runs.reduce((sum, r) => sum + r.errors, 0),
  };
}

const body = pushBody10k();
const bodyBytes = Buffer.from(body);
let sent = 0;

async function load(url: string, seconds: number): Promise<Run> {
  const result = await autocannon({
    url: `${url}/webhooks/gitlab`,
    connections: 10,
    method: "POST",
    body,
    duration: seconds,
    requests: [
      {
        // A fresh delivery each time: its own Idempotency-Key and signature, as GitLab sends.
        setupRequest: (request: Request): Request => {
          const id = `bench-${process.pid}-${sent++}`;
          return {
            ...request,
            headers: {
              "content-type": "application/json",
              "x-gitlab-event": "Push Hook",
              "x-gitlab-instance": "https://gitlab.example.com",
              "idempotency-key": id,
              ...signWebhook(SIGNING_KEY, id, new Date(), bodyBytes),
            },
          };
        },
      },
    ],
  });
  return {
    rps: result.requests.average,
    p50: result.latency.p50,
    p99: result.latency.p99,
    non2xx: result.non2xx,
    errors: result.errors + result.timeouts,
  };
}

function startServer(mode: string): Promise<{ child: ChildProcess; url: string }> {
  return startPinnedServer(join(HERE, "http-server.ts"), [mode], { KUBLER_WEBHOOK_SIGNING_KEY: SIGNING_KEY });
}
