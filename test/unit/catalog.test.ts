import { describe, expect, it } from "vitest";
import {
  type DetailType,
  MAX_DETAIL_BYTES,
  stepFieldsOf,
  validateBusDetail,
  validateDetail,
} from "../../shared/domain/catalog.js";
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

  it("refuses a name that is no detail-type, even one every object inherits", () => {
    for (const name of ["toString", "constructor", "__proto__", "hasOwnProperty", "Nope"]) {
      expect(() => validateDetail(name as DetailType, {})).toThrow(InvalidDetailError);
      expect(() => validateDetail(name as DetailType, {})).toThrow(/unknown detail-type/);
    }
  });

  it("still checks an object it did not produce, frozen or not", () => {
    const forged = Object.freeze({ ...samplePush().detail, after: "not-a-sha" });
    expect(() => validateDetail("Push", forged)).toThrow(/after/);
  });
});

describe("validateBusDetail", () => {
  it("returns the valid detail and the JSON that is sent", () => {
    const { detail, json } = validateBusDetail("Push", samplePush().detail);
    expect(Object.isFrozen(detail)).toBe(true);
    expect(JSON.parse(json)).toEqual(samplePush().detail);
  });

  it("refuses a detail over MAX_DETAIL_BYTES, counted in UTF-8 bytes", () => {
    const reason = "ü".repeat(MAX_DETAIL_BYTES / 2);
    const finished = {
      correlationId: "c-1",
      gitlab: { instance: "https://gitlab.example.com", projectId: 15, projectPath: "group/app" },
      environment: "review/x",
      sha: "0123456789abcdef0123456789abcdef01234567",
      ref: "x",
      pipelineId: 7,
      mrIid: null,
      status: "failed",
      namespace: "kubler-review-x",
      url: null,
      reason,
    };
    expect(reason.length).toBeLessThan(MAX_DETAIL_BYTES);
    expect(() => validateBusDetail("Deploy Finished", finished)).toThrow(InvalidDetailError);
    expect(() => validateBusDetail("Deploy Finished", finished)).toThrow(/over the 8192-byte limit/);
    expect(() => validateBusDetail("Deploy Finished", { ...finished, reason: "short" })).not.toThrow();
  });

  it("refuses an invalid detail like validateDetail", () => {
    expect(() => validateBusDetail("Push", { ...samplePush().detail, after: "x" })).toThrow(/after/);
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
