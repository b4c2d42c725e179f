/**
 * Hostile kubler.yaml (DESIGN §7): whatever the text, parseKublerManifest answers with a manifest
 * or a ManifestError naming the file, never another exception. `npm run bench` runs more inputs.
 */
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { parseKublerManifest } from "../../shared/domain/kubler-manifest.js";
import { prototypePolluted } from "../fuzz/hostile-json.js";
import {
  checkManifest,
  type ManifestFuzzCounts,
  manifestText,
  VALID_MANIFESTS,
} from "../fuzz/kubler-manifest.js";

const RUNS = 1_000;

describe("parseKublerManifest under fuzzing", () => {
  it("accepts the unmutated manifests the generator starts from", () => {
    for (const text of VALID_MANIFESTS) expect(parseKublerManifest(text).version).toBe(1);
  });

  it(`throws only ManifestError over ${RUNS} generated texts`, () => {
    const counts: ManifestFuzzCounts = { inputs: 0, accepted: 0, refused: 0 };
    fc.assert(
      fc.property(manifestText, (text) => checkManifest(text, counts)),
      { numRuns: RUNS },
    );
    expect(counts.inputs).toBeGreaterThanOrEqual(RUNS);
    // Both sides reached: some mutations are harmless, most are refused.
    expect(counts.accepted).toBeGreaterThan(0);
    expect(counts.refused).toBeGreaterThan(RUNS / 2);
    expect(prototypePolluted()).toBe(false);
  });
});
