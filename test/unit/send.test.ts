import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { loadFixture } from "../../cli/send.js";

describe("loadFixture", () => {
  const dir = mkdtempSync(join(tmpdir(), "kubler-send-"));

  it("loads a fixture by name", () => {
    expect(loadFixture("push")).toMatchObject({ name: "push", eventHeader: "Push Hook" });
  });

  it("says a missing payload is missing, and lists the fixtures", () => {
    expect(() => loadFixture(join(dir, "absent.json"))).toThrow(/no GitLab payload .*; try one of: .*push/);
  });

  it("says a file that exists but is not JSON is not valid JSON", () => {
    const bad = join(dir, "bad.json");
    writeFileSync(bad, "{bad");
    expect(() => loadFixture(bad)).toThrow(`${bad} is not valid JSON`);
  });

  it("says what shape a JSON file must have, even for null", () => {
    const empty = join(dir, "null.json");
    writeFileSync(empty, "null");
    expect(() => loadFixture(empty)).toThrow(`${empty} must be { "event_header"`);
  });
});
