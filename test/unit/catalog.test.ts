import { describe, expect, it } from "vitest";
import { stepFieldsOf, validateDetail } from "../../shared/domain/catalog.js";
import { InvalidDetailError } from "../../shared/errors.js";
import { samplePush } from "../fakes/index.js";

describe("validateDetail", () => {
  it("returns a frozen copy, and that copy again without a second check", () => {
    const input = samplePush().detail;
    const valid = validateDetail("Push", input);
    expect(valid).toEqual(input);
    expect(valid).not.toBe(input);
    expect(Object.isFrozen(valid)).toBe(true);
    expect(Object.isFrozen(valid.gitlab)).toBe(true);
    expect(Object.isFrozen(input)).toBe(false);
    expect(validateDetail("Push", valid)).toBe(valid);
  });

  it("checks a validated detail again under another detail-type", () => {
    const valid = validateDetail("Push", samplePush().detail);
    expect(() => validateDetail("Tag Push", valid)).toThrow(InvalidDetailError);
  });

  it("still checks an object it did not produce, frozen or not", () => {
    const forged = Object.freeze({ ...samplePush().detail, after: "not-a-sha" });
    expect(() => validateDetail("Push", forged)).toThrow(/after/);
  });
});

describe("stepFieldsOf", () => {
  it("carries exactly the step fields from an outcome into the next detail", () => {
    const step = {
      correlationId: "c-1",
      gitlab: { instance: "https://gitlab.example.com", projectId: 15, projectPath: "group/app" },
      environment: "review/x",
      sha: "0123456789abcdef0123456789abcdef01234567",
      ref: "x",
      pipelineId: 7,
      mrIid: null,
    };
    const finished = validateDetail("Build Finished", {
      ...step,
      status: "succeeded",
      imageDigest: `sha256:${"a".repeat(64)}`,
      reason: null,
    });
    expect(stepFieldsOf(finished)).toEqual(step);
  });
});
