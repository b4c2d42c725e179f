/**
 * `Deploy Finished`'s reason is bounded in bytes of its JSON, as the bus counts the detail's 8 KB,
 * not in characters: a refusal full of control characters (6 bytes each once JSON-escaped) or of
 * multi-byte ones passed the limit at 2,000 characters, the publish was refused, and every retry the
 * same, so the deploy never ended.
 */
import { afterAll, beforeAll, beforeEach, expect, it } from "vitest";
import { MAX_DETAIL_BYTES } from "../../shared/domain/catalog.js";
import { type MemoryKubernetes, startMemoryKubernetes } from "../../shared/local/memory-kubernetes/index.js";
import { deployEnvironment } from "../../shared/services/deploy-environment.js";
import {
  clearNamespaces,
  type DeployTestDeps,
  deployRequested,
  deployTestDeps,
  NAMESPACE,
} from "../fakes/deploy-deps.js";

let k8s: MemoryKubernetes;
let deps: DeployTestDeps;

beforeAll(async () => {
  k8s = await startMemoryKubernetes({ rolloutDelayMs: 20, namespaceFinalizeMs: 10 });
});
afterAll(() => k8s.close());
beforeEach(async () => {
  ({ deps } = deployTestDeps(k8s, "kubler-reason-bytes-"));
  await clearNamespaces(k8s, deps.cluster, NAMESPACE);
});

it.each([
  ["control characters (\\u0001: 6 bytes each in JSON)", "\u0001"],
  ["three-byte characters (━)", "━"],
])(
  "bounds Deploy Finished's reason in JSON bytes, not characters: a refusal of %s still ends the deploy, whole in the audit line",
  async (_, unit) => {
    const message = `Deployment.apps "flight-management" is invalid: metadata.annotations: Invalid value: "${unit.repeat(1_990)}"`;
    const refused = k8s.faults.add({ verb: "apply", resource: "deployments", status: 422, message });
    try {
      const outcome = await deployEnvironment(deps, deployRequested());
      expect(outcome).toMatchObject({ kind: "failed" });
      expect(deps.publisher.entries.map((e) => e.detailType)).toEqual(["Deploy Finished"]);
      const detail = deps.publisher.entries[0]?.detail as { reason: string };
      const reason = detail.reason;
      expect(reason).toMatch(/… \(clipped: the whole reason is in the audit line\)$/);
      expect(reason.startsWith("the cluster refused a manifest: Deployment.apps")).toBe(true);
      expect(Buffer.byteLength(JSON.stringify(reason)) - 2).toBeLessThanOrEqual(2_000);
      expect(Buffer.byteLength(JSON.stringify(detail))).toBeLessThanOrEqual(MAX_DETAIL_BYTES);
      expect(deps.audit.last()).toMatchObject({
        outcome: "failure",
        reason: expect.stringContaining(message),
      });
    } finally {
      refused.remove();
    }
  },
);
