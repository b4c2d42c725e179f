/** Shared pieces of the benchmarks: the ~10 KB push body, timing loops, medians, the table. */
import { loadFixture } from "../../cli/send.js";

/** GitLab lists at most 20 commits in a push; a full list makes the ~10 KB body the targets name. */
export function pushBody10k(): string {
  const payload = JSON.parse(loadFixture("push").body);
  const template = payload.commits[0];
  payload.commits = Array.from({ length: 20 }, (_, i) => ({
    ...template,
    id: (i + 1).toString(16).padStart(40, "a"),
    message: `Change ${i}: ${template.message}`,
  }));
  payload.total_commits_count = 20;
  return JSON.stringify(payload);
}

/** Runs `op` in a tight loop for `ms` and returns operations per second (sync or async ops). */
export async function rate(ms: number, op: (i: number) => unknown | Promise<unknown>): Promise<number> {
  const start = performance.now();
  let n = 0;
  while (performance.now() - start < ms) {
    for (let k = 0; k < 100; k++) await op(n++);
  }
  return n / ((performance.now() - start) / 1000);
}

export function median(values: readonly number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  const mid = Math.floor(sorted.length / 2);
  return sorted.length % 2
    ? (sorted[mid] as number)
    : ((sorted[mid - 1] as number) + (sorted[mid] as number)) / 2;
}

export interface Figure {
  name: string;
  value: string;
  baseline: string;
  ratio: string;
  target: string;
  met: boolean;
}

export function printFigures(title: string, figures: readonly Figure[]): void {
  console.log(`\n## ${title}\n`);
  console.log("| figure | measured | baseline | ratio | target | met |");
  console.log("|---|---|---|---|---|---|");
  for (const f of figures) {
    console.log(
      `| ${f.name} | ${f.value} | ${f.baseline} | ${f.ratio} | ${f.target} | ${f.met ? "yes" : "**no**"} |`,
    );
  }
}

export const fmt = (n: number, digits = 0) => n.toLocaleString("en-US", { maximumFractionDigits: digits });
