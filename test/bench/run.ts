/**
 * `npm run bench`: every benchmark, each against a baseline measured in the same run. Figures are
 * medians; machines are shared and noisy, so read ratios rather than absolute numbers.
 */
import { cpus } from "node:os";
import { benchAudit } from "./audit.js";
import { benchBundles } from "./bundles.js";
import { benchColdStart } from "./cold-start.js";
import { benchCredentials } from "./credentials.js";
import { benchDeploy } from "./deploy.js";
import { benchFuzz } from "./fuzz.js";
import { benchIngressHttp } from "./ingress-http.js";
import { benchIngressInProcess } from "./ingress-in-process.js";
import { benchLoad } from "./load.js";
import { benchLocalFlow } from "./local-flow.js";
import { benchManifestParse } from "./manifest-parse.js";
import { benchPlanSteps } from "./plan-steps.js";
import { type ReportSection, writeReport } from "./report.js";
import { type Figure, printFigures } from "./support.js";
import { benchSweep } from "./sweep.js";

const sections: [string, () => Promise<Figure[]>][] = [
  ["Ingress, in-process", () => benchIngressInProcess()],
  ["Ingress over HTTP", () => benchIngressHttp()],
  ["Cold-start proxy", () => benchColdStart()],
  ["Lambda bundles, as `npm run synth` builds them", () => benchBundles()],
  ["Expiry sweep", () => benchSweep()],
  ["Deploy", () => benchDeploy()],
  ["Job credentials", () => benchCredentials()],
  ["Planning", () => benchPlanSteps()],
  ["YAML: a 1 MiB kubler.yaml and deploy/ file, one key a line", async () => benchManifestParse()],
  ["Local flow, webhook to deployed", () => benchLocalFlow()],
  ["Load: mixed GitLab deliveries against the local runtime", () => benchLoad()],
  ["Hostile input: fuzzing", () => benchFuzz()],
  ["Audit: write overhead, and `kubler audit` over 1,000,000 records", () => benchAudit()],
];

const started = new Date();
console.log(`# Kubler benchmarks — ${started.toISOString()}`);
console.log(`node ${process.version}, ${cpus().length} × ${cpus()[0]?.model ?? "unknown CPU"}`);
let missed = 0;
const report: ReportSection[] = [];
for (const [title, run] of sections) {
  process.stderr.write(`running: ${title}…\n`);
  const figures = await run();
  printFigures(title, figures);
  report.push({ title, figures });
  missed += figures.filter((f) => !f.met).length;
}
console.log(missed ? `\n${missed} target(s) missed` : "\nall targets met");
// `KUBLER_BENCH_REPORT=` (empty) skips it, e.g. for a quick partial run.
const reportPath = process.env.KUBLER_BENCH_REPORT ?? "bench/REPORT.md";
if (reportPath) {
  writeReport(reportPath, { date: started, sections: report, note: process.env.KUBLER_BENCH_NOTE });
  console.log(`report: ${reportPath}`);
}
