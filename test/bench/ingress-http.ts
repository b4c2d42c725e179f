/**
 * Over HTTP: autocannon (10 connections) against the local runtime, against a bare @hono/node-server
 * route that only reads and parses the same body. Each server runs in its own process on its own
 * core (autocannon is single-threaded and takes the other one).
 */
import { type ChildProcess, execFileSync, spawn } from "node:child_process";
import { join } from "node:path";
import autocannon, { type Request } from "autocannon";
import { signWebhook } from "../../shared/domain/webhook-auth.js";
import { type Figure, fmt, pushBody10k } from "./support.js";

const SIGNING_KEY = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
const HERE = import.meta.dirname;

interface Run {
  rps: number;
  p50: number;
  p99: number;
  non2xx: number;
  errors: number;
}

export async function benchIngressHttp(seconds = 10): Promise<Figure[]> {
  const bare = await measure("bare", seconds);
  const kubler = await measure("kubler", seconds);
  const ratio = kubler.rps / bare.rps;
  return [
    {
      name: "webhook over HTTP, 10 connections, 10 KB signed push",
      value: `${fmt(kubler.rps)} req/s, p50 ${kubler.p50} ms, p99 ${kubler.p99} ms, non-2xx ${kubler.non2xx}, errors ${kubler.errors}`,
      baseline: `bare hono parse+202: ${fmt(bare.rps)} req/s, p99 ${bare.p99} ms`,
      ratio: `${fmt(ratio, 2)}×`,
      target: "≥ 0.7×, p99 < 10 ms, 0 non-2xx",
      met: ratio >= 0.7 && kubler.p99 < 10 && kubler.non2xx === 0 && kubler.errors === 0,
    },
  ];
}

async function measure(mode: "bare" | "kubler", seconds: number): Promise<Run> {
  const { child, url } = await startServer(mode);
  try {
    const body = pushBody10k();
    const bodyBytes = Buffer.from(body);
    let n = 0;
    const options = {
      url: `${url}/webhooks/gitlab`,
      connections: 10,
      method: "POST" as const,
      body,
      requests: [
        {
          // A fresh delivery each time: its own Idempotency-Key and signature, as GitLab sends.
          setupRequest: (request: Request): Request => {
            const id = `bench-${process.pid}-${n++}`;
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
    };
    await autocannon({ ...options, duration: 2 }); // warm-up: JIT, connection pools
    const result = await autocannon({ ...options, duration: seconds });
    return {
      rps: result.requests.average,
      p50: result.latency.p50,
      p99: result.latency.p99,
      non2xx: result.non2xx,
      errors: result.errors + result.timeouts,
    };
  } finally {
    child.kill("SIGTERM");
  }
}

function startServer(mode: string): Promise<{ child: ChildProcess; url: string }> {
  const args = ["--import", "tsx", join(HERE, "http-server.ts"), mode];
  const pinned = hasTaskset()
    ? spawn("taskset", ["-c", "1", process.execPath, ...args], { env: serverEnv() })
    : null;
  const child = pinned ?? spawn(process.execPath, args, { env: serverEnv() });
  return new Promise((resolve, reject) => {
    let out = "";
    child.stdout?.on("data", (chunk) => {
      out += chunk;
      const url = /http:\/\/\S+/.exec(out)?.[0];
      if (url) resolve({ child, url });
    });
    child.stderr?.on("data", (chunk) => {
      out += chunk;
    });
    child.once("exit", (code) => reject(new Error(`${mode} server exited (${code}): ${out}`)));
  });
}

function serverEnv(): NodeJS.ProcessEnv {
  return { ...process.env, KUBLER_WEBHOOK_SIGNING_KEY: SIGNING_KEY, NODE_ENV: "production" };
}

function hasTaskset(): boolean {
  try {
    execFileSync("taskset", ["-p", String(process.pid)], { stdio: "ignore" });
    return true;
  } catch {
    return false;
  }
}
