/**
 * Benchmark processes on one core of their own. The runner (and autocannon in it) keeps the other
 * core; a server or a measurement pinned with `taskset` neither competes with it nor hands work to a
 * thread on another core. Where `taskset` is missing the process runs unpinned, and says so.
 */
import { type ChildProcess, execFileSync, spawn } from "node:child_process";

/** The core benchmark processes are pinned to (the runner has no affinity of its own). */
const BENCH_CORE = "1";

let tasksetWorks: boolean | undefined;

/** Whether `taskset` is here and allowed (a container may forbid changing affinity). */
export function canPin(): boolean {
  if (tasksetWorks === undefined) {
    try {
      execFileSync("taskset", ["-c", BENCH_CORE, "true"], { stdio: "ignore" });
      tasksetWorks = true;
    } catch {
      tasksetWorks = false;
    }
  }
  return tasksetWorks;
}

/** Starts `node --import tsx <script> …args` on the benchmark core (or unpinned, see `canPin`). */
export function spawnPinnedTsx(
  script: string,
  args: readonly string[],
  env: NodeJS.ProcessEnv,
): ChildProcess {
  const argv = ["--import", "tsx", script, ...args];
  return canPin()
    ? spawn("taskset", ["-c", BENCH_CORE, process.execPath, ...argv], { env })
    : spawn(process.execPath, argv, { env });
}

/** A pinned server that prints its URL on stdout once it listens; resolves with that URL. */
export function startPinnedServer(
  script: string,
  args: readonly string[],
  env: NodeJS.ProcessEnv,
): Promise<{ child: ChildProcess; url: string }> {
  const child = spawnPinnedTsx(script, args, { ...process.env, ...env, NODE_ENV: "production" });
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
    child.once("exit", (code) => reject(new Error(`${script} exited (${code}): ${out}`)));
  });
}

/** Runs a pinned script to the end and parses the JSON it prints last. */
export function runPinnedJson<T>(script: string, args: readonly string[]): Promise<T> {
  const child = spawnPinnedTsx(script, args, process.env);
  return new Promise((resolve, reject) => {
    let out = "";
    let err = "";
    child.stdout?.on("data", (chunk) => {
      out += chunk;
    });
    child.stderr?.on("data", (chunk) => {
      err += chunk;
    });
    child.once("exit", (code) => {
      const last = out.trim().split("\n").at(-1) ?? "";
      if (code !== 0) return reject(new Error(`${script} exited (${code}): ${err || out}`));
      try {
        resolve(JSON.parse(last) as T);
      } catch {
        reject(new Error(`${script} printed no JSON result: ${out}`));
      }
    });
  });
}
