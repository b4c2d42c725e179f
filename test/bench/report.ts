/**
 * `bench/REPORT.md`: every section's figures from one `npm run bench`, with the machine and the
 * date, so that committing it when figures change keeps their history in git.
 */
import { mkdirSync, writeFileSync } from "node:fs";
import { cpus } from "node:os";
import { dirname } from "node:path";
import type { Figure } from "./support.js";

export interface ReportSection {
  title: string;
  figures: readonly Figure[];
}

/** The machine a run measured: figures from different machines are not comparable. */
export function describeMachine(): string {
  const cores = cpus();
  return `${cores[0]?.model.trim() ?? "unknown CPU"}, ${cores.length} cores, node ${process.version}, ${process.platform}/${process.arch}`;
}

/**
 * @example
 * writeReport("bench/REPORT.md", { date: new Date(), sections: [{ title: "Load", figures }] });
 */
export function writeReport(
  path: string,
  run: { date: Date; sections: readonly ReportSection[]; note?: string },
): void {
  const cell = (text: string) => text.replace(/\|/g, "\\|").replace(/\n/g, " ");
  const missed = run.sections.reduce((n, s) => n + s.figures.filter((f) => !f.met).length, 0);
  const lines = [
    "# Kubler benchmarks",
    "",
    `- date: ${run.date.toISOString()}`,
    `- machine: ${describeMachine()}`,
    "- produced by `npm run bench` (test/bench/run.ts); each figure beside a baseline measured in the same run",
    `- ${missed ? `${missed} target(s) missed` : "all targets met"}`,
    ...(run.note ? ["", run.note] : []),
  ];
  for (const section of run.sections) {
    lines.push("", `## ${section.title}`, "");
    if (section.figures.length === 0) continue;
    lines.push("| figure | measured | baseline | ratio | target | met |", "|---|---|---|---|---|---|");
    for (const f of section.figures) {
      lines.push(
        `| ${cell(f.name)} | ${cell(f.value)} | ${cell(f.baseline)} | ${cell(f.ratio)} | ${cell(f.target)} | ${f.met ? "yes" : "**no**"} |`,
      );
    }
  }
  mkdirSync(dirname(path), { recursive: true });
  writeFileSync(path, `${lines.join("\n")}\n`);
}
