/**
 * `kubler start` as an operator runs it: its own process, started in the repository, resolved once
 * the banner has been printed. For the tests that drive the whole runtime over HTTP.
 */
import { type ChildProcess, execFile, spawn } from "node:child_process";
import { join } from "node:path";
import { promisify } from "node:util";

export const ROOT = join(import.meta.dirname, "../..");

/** What a `kubler` command run to its end left: its exit code, stdout and stderr. */
export interface KublerRun {
  code: number;
  stdout: string;
  stderr: string;
}

const run = promisify(execFile);

/**
 * The caller's environment for a `kubler` of the tests' own on `dataDir`: no kubeconfig, webhook
 * secrets or CloudWatch audit groups of the developer's shell reach it.
 *
 * @example
 * const env = isolatedKublerEnv(mkdtempSync(join(tmpdir(), "kubler-cli-")));
 */
export function isolatedKublerEnv(dataDir: string): NodeJS.ProcessEnv {
  return {
    ...process.env,
    KUBLER_DATA_DIR: dataDir,
    KUBECONFIG: "",
    KUBLER_WEBHOOK_SECRET: "",
    KUBLER_WEBHOOK_SIGNING_KEY: "",
    KUBLER_AUDIT_LOG_GROUPS: "",
  };
}

/**
 * `kubler …` in its own process, run to its end: its exit code, stdout and stderr, whatever the code.
 *
 * @example
 * const { code, stderr } = await runKubler(env, "stop", "--help");
 */
export function runKubler(env: NodeJS.ProcessEnv, ...args: string[]): Promise<KublerRun> {
  return run(process.execPath, ["bin/kubler.js", ...args], { cwd: ROOT, env, timeout: 30_000 }).then(
    ({ stdout, stderr }) => ({ code: 0, stdout, stderr }),
    (error: KublerRun) => error,
  );
}

export interface KublerProcess {
  url: string;
  /** Everything it has printed so far, stdout and stderr. */
  output(): string;
  /** Sends it a signal: SIGTERM unless told otherwise. */
  stop(signal?: NodeJS.Signals): void;
  /** Resolves once it has printed something matching `pattern`. */
  waitFor(pattern: RegExp): Promise<void>;
  /** Resolves with its exit code once it has exited. */
  exited(): Promise<number | null>;
}

/**
 * @example
 * const kubler = await startKublerProcess({ ...process.env, PORT: "0", KUBLER_DATA_DIR: dir });
 * await fetch(`${kubler.url}/healthz`);
 */
export async function startKublerProcess(env: NodeJS.ProcessEnv): Promise<KublerProcess> {
  const server: ChildProcess = spawn(process.execPath, ["bin/kubler.js", "start"], {
    cwd: ROOT,
    env,
    stdio: ["ignore", "pipe", "pipe"],
  });
  let output = "";
  server.stderr?.on("data", (chunk) => {
    output += chunk;
  });
  const url = await new Promise<string>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`server did not start:\n${output}`)), 15_000);
    server.stdout?.on("data", (chunk) => {
      output += chunk;
      // The banner's "try it" rows come last: it has been printed whole.
      const match = /listening\s+(http:\/\/\S+)[\s\S]*try it.*\n.*\n/.exec(output);
      if (match?.[1]) {
        clearTimeout(timer);
        resolve(match[1]);
      }
    });
    server.once("exit", (code) => reject(new Error(`server exited with ${code}:\n${output}`)));
  });
  const exited = new Promise<number | null>((resolve) => server.once("exit", (code) => resolve(code)));
  return {
    url,
    output: () => output,
    stop: (signal = "SIGTERM") => server.kill(signal),
    waitFor: async (pattern) => {
      const deadline = Date.now() + 10_000;
      while (!pattern.test(output)) {
        if (Date.now() > deadline) throw new Error(`never printed ${pattern}:\n${output}`);
        await new Promise((resolve) => setTimeout(resolve, 20));
      }
    },
    exited: () => exited,
  };
}
