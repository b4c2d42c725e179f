/**
 * The bundle tests' shared synthesis (stack-fixture.ts `synthBundledOnce`): its key changes with
 * everything the bundles and the template are built from, and a run killed mid-synth does not leave
 * the next one waiting on its lock.
 */
import { execFileSync } from "node:child_process";
import { cpSync, existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join, relative } from "node:path";
import { build } from "esbuild";
import { afterEach, describe, expect, it } from "vitest";
import { entryOf } from "../../infra/kubler-function.js";
import { LAMBDA_ESBUILD_OPTIONS } from "../../infra/lambda-bundle.js";
import { FUNCTIONS } from "../../shared/domain/catalog.js";
import { ROOT, SYNTH_INPUTS, synthInputsHash, synthOnce } from "./stack-fixture.js";

const temps: string[] = [];
function temp(): string {
  const dir = mkdtempSync(join(tmpdir(), "kubler-synth-cache-"));
  temps.push(dir);
  return dir;
}
afterEach(() => {
  for (const dir of temps.splice(0)) rmSync(dir, { recursive: true, force: true });
});

/** A pid no process has: one that has just exited. */
function deadPid(): number {
  return Number(execFileSync(process.execPath, ["-e", "process.stdout.write(String(process.pid))"]));
}

describe("the synthesis key", () => {
  /** A checkout with the inputs' small files (the directories stand in with one file each). */
  function checkout(): string {
    const root = temp();
    for (const input of SYNTH_INPUTS) {
      const path = join(root, input);
      if (["functions", "shared", "infra"].includes(input)) {
        mkdirSync(path, { recursive: true });
        writeFileSync(join(path, "a.ts"), "export {};\n");
      } else {
        mkdirSync(dirname(path), { recursive: true });
        cpSync(join(ROOT, input), path);
      }
    }
    return root;
  }

  it.each([
    ["package.json", '{ "type": "module", "sideEffects": false }\n'],
    ["test/infra/stack-fixture.ts", "// synthBundled's config changed\n"],
    ["docs/aws/credentials-policy.example.yaml", "rules: []\n"],
    ["tsconfig.json", "{}\n"],
    ["shared/a.ts", "export const changed = 1;\n"],
  ])("changes when %s does", (file, content) => {
    const root = checkout();
    const before = synthInputsHash(root);
    mkdirSync(dirname(join(root, file)), { recursive: true });
    writeFileSync(join(root, file), content);
    expect(synthInputsHash(root)).not.toBe(before);
  });

  it("covers every file the bundles are built from (esbuild's own list of inputs)", async () => {
    const covered = (path: string) =>
      path.startsWith("node_modules/") ||
      SYNTH_INPUTS.some((input) => path === input || path.startsWith(`${input}/`));
    const outside = new Set<string>();
    for (const name of FUNCTIONS) {
      const result = await build({
        ...LAMBDA_ESBUILD_OPTIONS,
        minify: false,
        entryPoints: [entryOf(name)],
        outfile: join(tmpdir(), "kubler-synth-cache.mjs"),
        absWorkingDir: ROOT,
        write: false,
        metafile: true,
        logLevel: "silent",
      });
      for (const input of Object.keys(result.metafile.inputs)) {
        if (!covered(relative(ROOT, join(ROOT, input)))) outside.add(input);
      }
    }
    expect([...outside]).toEqual([]);
  });
});

describe("synthOnce", () => {
  const built = (staging: string) => {
    mkdirSync(staging, { recursive: true });
    writeFileSync(join(staging, "kubler-assets.json"), "{}");
  };

  it("builds once, then serves what it built", async () => {
    const cache = temp();
    let builds = 0;
    const count = (staging: string) => {
      builds++;
      built(staging);
    };
    const dirs = await Promise.all([synthOnce(cache, "k1", count), synthOnce(cache, "k1", count)]);
    expect(await synthOnce(cache, "k1", count)).toBe(join(cache, "k1"));
    expect(dirs).toEqual([join(cache, "k1"), join(cache, "k1")]);
    expect(builds).toBe(1);
  });

  it("takes over at once the lock of a run killed mid-synth", async () => {
    const cache = temp();
    mkdirSync(join(cache, "k1.lock"));
    writeFileSync(join(cache, "k1.lock", "pid"), String(deadPid()));
    // Waiting on it would outlast the test's timeout (the old lock was only stale after 5 minutes).
    expect(await synthOnce(cache, "k1", built)).toBe(join(cache, "k1"));
    expect(existsSync(join(cache, "k1.lock"))).toBe(false);
  });

  it("waits for a lock whose process is alive", async () => {
    const cache = temp();
    mkdirSync(join(cache, "k1.lock"));
    writeFileSync(join(cache, "k1.lock", "pid"), String(process.pid));
    let builds = 0;
    const waiting = synthOnce(cache, "k1", () => builds++);
    // The owner (this process, standing in) finishes: the waiter serves its result and builds nothing.
    built(join(cache, "k1"));
    rmSync(join(cache, "k1.lock"), { recursive: true });
    expect(await waiting).toBe(join(cache, "k1"));
    expect(builds).toBe(0);
  });
});
