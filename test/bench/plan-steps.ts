/**
 * Planning (DESIGN §4): `planSteps` over 100,000 GitLab facts with one parsed kubler.yaml (the cached
 * manifest), facts built beforehand from the fixtures (merge requests opened and updated, pushes,
 * tag pushes, pipelines, jobs; every branch and commit different, so nothing is memoized by accident).
 *
 * Baseline, same run and same facts: a loop that builds one step-shaped object per fact from its
 * fields, with no rule matching and no name templates. Any planner has to read a fact and write a
 * step; the ratio is what deciding costs on top of that.
 */

import { loadFixture } from "../../cli/send.js";
import { normalizeGitlabEvent } from "../../shared/domain/gitlab-event.js";
import { parseKublerManifest } from "../../shared/domain/kubler-manifest.js";
import { type GitlabFact, planSteps } from "../../shared/domain/plan-steps.js";
import { type Figure, fmt, median } from "./support.js";

const FACTS = 100_000;
const ROUNDS = 7;
const TARGET_PER_SECOND = 100_000;

const MANIFEST = parseKublerManifest(`
version: 1
image: { name: registry.example.com/group/app }
deploy: { manifests: deploy/, url: "https://{environment_slug}.apps.example.com" }
environments:
  - { name: "review/{branch}", on: merge_request, ttl: 72h }
  - { name: staging, on: { branch: main } }
  - { name: "release-{branch}", on: { branch: "release/*" } }
  - { name: production, on: { tag: "v*" } }
`);

function factOf(
  name: string,
  edit: (payload: { object_attributes: Record<string, unknown> }) => void,
): GitlabFact {
  const fixture = loadFixture(name);
  const payload = JSON.parse(fixture.body);
  edit(payload);
  const result = normalizeGitlabEvent({
    eventHeader: fixture.eventHeader,
    payload,
    instance: null,
    correlationId: "bench",
  });
  if (result.kind !== "fact") throw new Error(`${name}: ${result.reason}`);
  return result.entry as GitlabFact;
}

/** Fact `i` of the mix, with its own branch and commit. */
function makeFacts(): GitlabFact[] {
  const templates = {
    open: factOf("merge_request", () => {}),
    update: factOf("merge_request", (p) => {
      p.object_attributes.action = "update";
      p.object_attributes.oldrev = "a".repeat(40);
    }),
    push: factOf("push", () => {}),
    tag: factOf("tag_push", () => {}),
    pipeline: factOf("pipeline", () => {}),
    job: factOf("job", () => {}),
  };
  const mix = ["open", "open", "open", "update", "update", "push", "push", "pipeline", "job", "tag"] as const;
  return Array.from({ length: FACTS }, (_, i) => {
    const kind = mix[i % mix.length] as (typeof mix)[number];
    const sha = i.toString(16).padStart(40, "0");
    const template = templates[kind];
    const detail = { ...template.detail, correlationId: `c-${i}` } as Record<string, unknown>;
    if (kind === "open" || kind === "update")
      Object.assign(detail, { sourceBranch: `feature/${i}`, lastCommitSha: sha });
    if (kind === "push")
      Object.assign(detail, { branch: i % 20 === 5 ? "main" : `release/${i}`, after: sha });
    if (kind === "tag") Object.assign(detail, { tag: `v1.${i}`, after: sha });
    if (kind === "pipeline" || kind === "job") Object.assign(detail, { sha });
    return { detailType: template.detailType, detail } as GitlabFact;
  });
}

/** A step-shaped object per fact, with no decision: the floor under any planner. */
function copyOnly(fact: GitlabFact): unknown {
  const d = fact.detail as Record<string, unknown>;
  return {
    detailType: "Build Requested",
    detail: {
      correlationId: d.correlationId,
      gitlab: d.gitlab,
      environment: d.sourceBranch ?? d.branch ?? d.tag ?? d.ref,
      sha: d.lastCommitSha ?? d.after ?? d.sha,
      ref: d.sourceBranch ?? d.branch ?? d.ref,
      pipelineId: d.pipelineId ?? null,
      mrIid: d.iid ?? d.mrIid ?? null,
    },
  };
}

function timeRound(facts: GitlabFact[], plan: (fact: GitlabFact) => unknown): { ms: number; kept: number } {
  let kept = 0;
  const start = performance.now();
  for (const fact of facts) if (plan(fact)) kept++;
  return { ms: performance.now() - start, kept };
}

export async function benchPlanSteps(): Promise<Figure[]> {
  const facts = makeFacts();
  const steps = facts.filter((fact) => planSteps(fact, MANIFEST).kind === "steps").length;
  // Warm both loops, then interleave their rounds so load on the shared machine hits both alike.
  timeRound(facts, (f) => planSteps(f, MANIFEST));
  timeRound(facts, copyOnly);
  const planned: number[] = [];
  const copied: number[] = [];
  for (let round = 0; round < ROUNDS; round++) {
    planned.push(timeRound(facts, (f) => planSteps(f, MANIFEST)).ms);
    copied.push(timeRound(facts, copyOnly).ms);
  }
  const perSecond = FACTS / (median(planned) / 1000);
  const baselinePerSecond = FACTS / (median(copied) / 1000);
  return [
    {
      name: `planSteps over ${fmt(FACTS)} facts, one cached kubler.yaml (${fmt(steps)} lead to a step; median of ${ROUNDS} rounds)`,
      value: `${fmt(perSecond)} facts/s (${fmt(median(planned), 1)} ms)`,
      baseline: `${fmt(baselinePerSecond)} facts/s: a step object copied from each fact, no decision`,
      ratio: `${fmt(baselinePerSecond / perSecond, 1)}× the baseline's time`,
      target: `≥ ${fmt(TARGET_PER_SECOND)} facts/s`,
      met: perSecond >= TARGET_PER_SECOND,
    },
  ];
}
