/**
 * `Deploy Finished`'s reason is bounded in bytes of its JSON, as the bus counts the detail's 8 KB,
 * not in characters: a refusal full of control characters (6 bytes each once JSON-escaped) or of
 * multi-byte ones passed the limit at 2,000 characters, the publish was refused, and every retry the
 * same, so the deploy never ended.
 */
import { expect, it } from "vitest";
import { MAX_DETAIL_BYTES } from "../../shared/domain/catalog.js";
import { deployEnvironment } from "../../shared/services/deploy-environment.js";
import { deployRequested, useDeployCluster } from "../fakes/deploy-deps.js";

const env = useDeployCluster("kubler-reason-bytes-");

it.each([
  ["control characters (\\u0001: 6 bytes each in JSON)", "\u0001"],
  ["three-byte characters (━)", "━"],
])(
  "bounds Deploy Finished's reason in JSON bytes, not characters: a refusal of %s still ends the deploy, whole in the audit line",
  async (_, unit) => {
    const message = `Deployment.apps "flight-management" is invalid: metadata.annotations: Invalid value: "${unit.repeat(1_990)}"`;
    const refused = env.k8s.faults.add({ verb: "apply", resource: "deployments", status: 422, message });
    try {
      const outcome = await deployEnvironment(env.deps, deployRequested());
      expect(outcome).toMatchObject({ kind: "failed" });
      expect(env.deps.publisher.entries.map((e) => e.detailType)).toEqual(["Deploy Finished"]);
      const detail = env.deps.publisher.entries[0]?.detail as { reason: string };
      const reason = detail.reason;
      expect(reason).toMatch(/… \(clipped: the whole reason is in the audit line\)$/);
      expect(reason.startsWith("the cluster refused a manifest: Deployment.apps")).toBe(true);
      expect(Buffer.byteLength(JSON.stringify(reason)) - 2).toBeLessThanOrEqual(2_000);
      expect(Buffer.byteLength(JSON.stringify(detail))).toBeLessThanOrEqual(MAX_DETAIL_BYTES);
      expect(env.deps.audit.last()).toMatchObject({
        outcome: "failure",
        reason: expect.stringContaining(message),
      });
    } finally {
      refused.remove();
    }
  },
);
