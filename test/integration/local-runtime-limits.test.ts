/**
 * Slow and oversized clients against the local runtime over a real socket: headers or a body
 * trickled byte by byte (slow-loris) are cut off by the server's time limits with a 408, bodies
 * over the limit are refused with 413 (declared or chunked), and the server keeps serving others.
 * The limits are shortened here; the defaults are in cli/server-limits.ts.
 */
import { execFile, spawnSync } from "node:child_process";
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { connect } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { promisify } from "node:util";
import { afterAll, beforeAll, describe, expect, it, vi } from "vitest";
import { type LocalRuntime, startLocalRuntime } from "../../cli/local-runtime.js";
import { LOCK_FILE } from "../../cli/runtime-address.js";
import { loadLocalConfig } from "../../shared/config.js";
import { ConfigError } from "../../shared/errors.js";

const TOKEN = "limits-token";
const MAX_BODY = 64 * 1024;
let runtime: LocalRuntime;
let dataDir: string;
const errors: unknown[] = [];

beforeAll(async () => {
  dataDir = mkdtempSync(join(tmpdir(), "kubler-limits-"));
  runtime = await startLocalRuntime(
    loadLocalConfig({
      PORT: "0",
      KUBLER_DATA_DIR: dataDir,
      KUBLER_WEBHOOK_SECRET: TOKEN,
      KUBLER_WEBHOOK_MAX_BODY_BYTES: String(MAX_BODY),
    }),
    {
      limits: { headersTimeoutMs: 300, requestTimeoutMs: 600, checkEveryMs: 50 },
      onError: (e) => errors.push(e),
    },
  );
});
afterAll(async () => {
  await runtime.close();
  rmSync(dataDir, { recursive: true, force: true });
});

interface Exchange {
  /** Everything the server wrote back. */
  response: string;
  /** How many of the planned chunks were written before the server hung up. */
  written: number;
  /** How many had been written when the first byte of the answer came. */
  writtenAtAnswer: number;
}

/** Writes `head`, then `chunks` one every `everyMs`, until done or the server closes the socket. */
function trickle(head: string, chunks: (string | Buffer)[], everyMs: number): Promise<Exchange> {
  const { port } = new URL(runtime.url);
  return new Promise((resolve) => {
    const socket = connect(Number(port), "127.0.0.1");
    let response = "";
    let written = 0;
    let writtenAtAnswer = -1;
    let timer: ReturnType<typeof setInterval> | undefined;
    socket.on("data", (data) => {
      if (writtenAtAnswer < 0) writtenAtAnswer = written;
      response += data.toString("latin1");
    });
    socket.on("error", () => undefined); // EPIPE/ECONNRESET once the server has hung up
    socket.on("close", () => {
      clearInterval(timer);
      resolve({ response, written, writtenAtAnswer });
    });
    socket.write(head);
    timer = setInterval(() => {
      const chunk = chunks[written];
      if (chunk === undefined || socket.destroyed) {
        clearInterval(timer);
        socket.end();
        return;
      }
      socket.write(chunk);
      written++;
    }, everyMs);
  });
}

async function eventually(check: () => boolean): Promise<void> {
  for (let i = 0; i < 200 && !check(); i++) await new Promise((resolve) => setTimeout(resolve, 10));
  expect(check()).toBe(true);
}

const status = (exchange: Exchange) => /^HTTP\/1\.1 (\d{3})/.exec(exchange.response)?.[1];

function auditLines(): { reason: string; outcome: string }[] {
  return readFileSync(join(dataDir, "audit.jsonl"), "utf8")
    .split("\n")
    .filter(Boolean)
    .map((line) => JSON.parse(line));
}

describe("slow clients", () => {
  it("headers trickled in: 408 and the connection closed long before the client is done", async () => {
    const exchange = await trickle(
      "POST /webhooks/gitlab HTTP/1.1\r\nHost: local\r\n",
      Array.from({ length: 400 }, (_, i) => `X-Pad-${i}: a\r\n`),
      25,
    );
    expect(status(exchange)).toBe("408");
    expect(exchange.written).toBeLessThan(400);
  });

  it("a body trickled in: cut off long before the client is done, never a 5xx, nothing published", async () => {
    const body = JSON.stringify({ object_kind: "push" }).padEnd(2_000, " ");
    const exchange = await trickle(
      [
        "POST /webhooks/gitlab HTTP/1.1",
        "Host: local",
        "Content-Type: application/json",
        "X-Gitlab-Event: Push Hook",
        `X-Gitlab-Token: ${TOKEN}`,
        `Content-Length: ${body.length}`,
        "",
        "",
      ].join("\r\n"),
      body.split(""),
      25,
    );
    expect(exchange.written).toBeLessThan(body.length);
    expect(status(exchange) ?? "closed").not.toMatch(/^5/);
    expect(errors).toEqual([]);
    await eventually(() => auditLines().some((line) => /cut off/.test(line.reason)));
    const events = join(dataDir, "events.jsonl");
    expect(existsSync(events) ? readFileSync(events, "utf8") : "").not.toContain('"Push"');
  });

  it("keeps serving other clients meanwhile and after", async () => {
    const slow = trickle(
      "GET /healthz HTTP/1.1\r\n",
      Array.from({ length: 100 }, () => "X: y\r\n"),
      25,
    );
    expect((await fetch(`${runtime.url}/healthz`)).status).toBe(200);
    await slow;
    expect((await fetch(`${runtime.url}/healthz`)).status).toBe(200);
  });
});

describe("oversized bodies", () => {
  it("a declared length over the limit: 413 without reading the body, audited", async () => {
    const exchange = await trickle(
      [
        "POST /webhooks/gitlab HTTP/1.1",
        "Host: local",
        "Content-Type: application/json",
        "X-Gitlab-Event: Push Hook",
        `X-Gitlab-Token: ${TOKEN}`,
        `Content-Length: ${50 * 1024 * 1024}`,
        "",
        "",
      ].join("\r\n"),
      Array.from({ length: 40 }, () => Buffer.alloc(64 * 1024, 0x20)),
      5,
    );
    expect(status(exchange)).toBe("413");
    expect(exchange.writtenAtAnswer).toBeLessThan(40);
    expect(auditLines()).toContainEqual(
      expect.objectContaining({
        outcome: "failure",
        reason: `body is larger than the ${MAX_BODY} byte limit`,
      }),
    );
  });

  it("a chunked body that grows over the limit: 413 while it streams in", async () => {
    const chunk = Buffer.alloc(16 * 1024, 0x20);
    const framed = Buffer.concat([
      Buffer.from(`${chunk.length.toString(16)}\r\n`),
      chunk,
      Buffer.from("\r\n"),
    ]);
    const exchange = await trickle(
      [
        "POST /webhooks/gitlab HTTP/1.1",
        "Host: local",
        "Content-Type: application/json",
        "X-Gitlab-Event: Push Hook",
        `X-Gitlab-Token: ${TOKEN}`,
        "Transfer-Encoding: chunked",
        "",
        "",
      ].join("\r\n"),
      Array.from({ length: 400 }, () => framed),
      2,
    );
    expect(status(exchange)).toBe("413");
    expect(exchange.written).toBeLessThan(400);
  });

  it("a body just within the limit is accepted", async () => {
    const body = JSON.stringify({ object_kind: "note" }).padEnd(MAX_BODY, " ");
    const res = await fetch(`${runtime.url}/webhooks/gitlab`, {
      method: "POST",
      headers: { "content-type": "application/json", "x-gitlab-event": "Note Hook", "x-gitlab-token": TOKEN },
      body,
    });
    expect(res.status).toBeLessThan(500);
    expect(res.status).not.toBe(413);
  });
});

describe("where it listens (KUBLER_HOST)", () => {
  it("on every interface, the local tools still get a loopback URL", async () => {
    const dir = mkdtempSync(join(tmpdir(), "kubler-host-"));
    const everywhere = await startLocalRuntime(
      loadLocalConfig({ PORT: "0", KUBLER_HOST: "0.0.0.0", KUBLER_DATA_DIR: dir }),
    );
    try {
      expect(everywhere.url).toMatch(/^http:\/\/127\.0\.0\.1:\d+$/);
      expect((await fetch(`${everywhere.url}/healthz`)).status).toBe(200);
    } finally {
      await everywhere.close();
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it("an address this machine does not have is a configuration error naming KUBLER_HOST", async () => {
    const dir = mkdtempSync(join(tmpdir(), "kubler-host-"));
    try {
      // 192.0.2.0/24 is TEST-NET-1 (RFC 5737): never assigned to a real interface.
      const start = startLocalRuntime(
        loadLocalConfig({ PORT: "0", KUBLER_HOST: "192.0.2.1", KUBLER_DATA_DIR: dir }),
      );
      await expect(start).rejects.toThrow("KUBLER_HOST 192.0.2.1 is not an address of this machine");
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe("one runtime per data dir, and start-up checks naming the variable", () => {
  const start = (env: Record<string, string>) => startLocalRuntime(loadLocalConfig({ PORT: "0", ...env }));
  const lockOf = (dir: string) => JSON.parse(readFileSync(join(dir, LOCK_FILE), "utf8"));

  it("refuses a second start on the same data dir, naming it and the pid; releases it on close", async () => {
    const dir = mkdtempSync(join(tmpdir(), "kubler-lock-"));
    const first = await start({ KUBLER_DATA_DIR: dir });
    try {
      expect(lockOf(dir)).toEqual({ pid: process.pid, url: first.url });
      const second = start({ KUBLER_DATA_DIR: dir });
      await expect(second).rejects.toBeInstanceOf(ConfigError);
      await expect(second).rejects.toThrow(
        `KUBLER_DATA_DIR ${dir} is in use by another kubler start (pid ${process.pid}, listening at ${first.url}): stop it, or set KUBLER_DATA_DIR to another directory`,
      );
      // The refused start left the first one's files alone: the CLI still finds its cluster.
      expect(existsSync(join(dir, "kubeconfig"))).toBe(true);
      expect(lockOf(dir).url).toBe(first.url);
    } finally {
      await first.close();
    }
    expect(existsSync(join(dir, LOCK_FILE))).toBe(false);
    const again = await start({ KUBLER_DATA_DIR: dir });
    await again.close();
    rmSync(dir, { recursive: true, force: true });
  });

  it("releases the lock when the process exits without closing the runtime", async () => {
    const dir = mkdtempSync(join(tmpdir(), "kubler-lock-"));
    const script = [
      'const { startLocalRuntime } = await import("./cli/local-runtime.ts");',
      'const { loadLocalConfig } = await import("./shared/config.ts");',
      'await startLocalRuntime(loadLocalConfig({ PORT: "0", KUBLER_DATA_DIR: process.env.KUBLER_DATA_DIR }));',
      "process.exit(0);",
    ].join("\n");
    await promisify(execFile)(process.execPath, ["--import", "tsx", "--input-type=module", "-e", script], {
      cwd: join(import.meta.dirname, "../.."),
      env: { ...process.env, KUBLER_DATA_DIR: dir },
      timeout: 30_000,
    });
    // It did start (its embedded cluster's kubeconfig is there), and left no lock behind.
    expect(existsSync(join(dir, "kubeconfig"))).toBe(true);
    expect(existsSync(join(dir, LOCK_FILE))).toBe(false);
    rmSync(dir, { recursive: true, force: true });
  }, 40_000);

  it("takes over a lock whose pid no longer runs, saying so", async () => {
    const dir = mkdtempSync(join(tmpdir(), "kubler-lock-"));
    const gone = spawnSync(process.execPath, ["-e", ""]).pid;
    writeFileSync(join(dir, LOCK_FILE), JSON.stringify({ pid: gone, url: "http://127.0.0.1:1" }));
    const said: string[] = [];
    const stderr = vi.spyOn(process.stderr, "write").mockImplementation((chunk) => {
      said.push(String(chunk));
      return true;
    });
    let runtime: LocalRuntime | undefined;
    try {
      runtime = await start({ KUBLER_DATA_DIR: dir });
    } finally {
      stderr.mockRestore();
    }
    expect(said).toContain(
      `kubler: ${join(dir, LOCK_FILE)} was left by pid ${gone}, which is no longer running: taking it over\n`,
    );
    expect(lockOf(dir).pid).toBe(process.pid);
    await runtime.close();
    rmSync(dir, { recursive: true, force: true });
  });

  it("takes over a lock whose pid is alive but is not a runtime: its own (a restarted container's pid 1), or one reused", async () => {
    const dir = mkdtempSync(join(tmpdir(), "kubler-lock-"));
    const stderr = vi.spyOn(process.stderr, "write").mockImplementation(() => true);
    try {
      // Left by a runtime killed in a container: this process has its pid now, nothing listens there.
      writeFileSync(join(dir, LOCK_FILE), JSON.stringify({ pid: process.pid, url: "http://127.0.0.1:1" }));
      const restarted = await start({ KUBLER_DATA_DIR: dir });
      await restarted.close();
      // A pid that runs something else (this test's parent) and an address where no runtime answers.
      writeFileSync(join(dir, LOCK_FILE), JSON.stringify({ pid: process.ppid, url: "http://127.0.0.1:1" }));
      const reused = await start({ KUBLER_DATA_DIR: dir });
      expect(lockOf(dir)).toEqual({ pid: process.pid, url: reused.url });
      await reused.close();
    } finally {
      stderr.mockRestore();
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it("a data dir that is a file, or a projects dir that is missing or a file, is a ConfigError naming the variable", async () => {
    const dir = mkdtempSync(join(tmpdir(), "kubler-paths-"));
    const file = join(dir, "file");
    writeFileSync(file, "");
    try {
      await expect(start({ KUBLER_DATA_DIR: file })).rejects.toThrow(
        new ConfigError(`KUBLER_DATA_DIR ${file} is a file, not a directory`),
      );
      await expect(start({ KUBLER_DATA_DIR: join(file, "sub") })).rejects.toThrow(
        new ConfigError(
          `KUBLER_DATA_DIR ${join(file, "sub")} cannot be created: a part of its path is a file`,
        ),
      );
      const data = join(dir, "data");
      await expect(start({ KUBLER_DATA_DIR: data, KUBLER_PROJECTS_DIR: join(dir, "nope") })).rejects.toThrow(
        new ConfigError(`KUBLER_PROJECTS_DIR ${join(dir, "nope")} does not exist`),
      );
      await expect(start({ KUBLER_DATA_DIR: data, KUBLER_PROJECTS_DIR: file })).rejects.toThrow(
        new ConfigError(`KUBLER_PROJECTS_DIR ${file} is not a directory`),
      );
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it("an unusable KUBLER_REGISTRY_AUTH_FILE stops start-up naming it, and leaves the data dir free", async () => {
    const dir = mkdtempSync(join(tmpdir(), "kubler-auth-"));
    const missing = join(dir, "registry.json");
    try {
      await expect(start({ KUBLER_DATA_DIR: dir, KUBLER_REGISTRY_AUTH_FILE: missing })).rejects.toThrow(
        new ConfigError(`KUBLER_REGISTRY_AUTH_FILE ${missing} does not exist`),
      );
      expect(existsSync(join(dir, LOCK_FILE))).toBe(false);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it("an unusable KUBECONFIG stops start-up naming it, and leaves the data dir free", async () => {
    const dir = mkdtempSync(join(tmpdir(), "kubler-kc-"));
    const empty = join(dir, "empty-kubeconfig");
    writeFileSync(empty, "");
    try {
      await expect(start({ KUBLER_DATA_DIR: dir, KUBECONFIG: empty })).rejects.toThrow(
        new ConfigError(`KUBECONFIG file ${empty} is empty`),
      );
      expect(existsSync(join(dir, LOCK_FILE))).toBe(false);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
