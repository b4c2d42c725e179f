import { describe, expect, it } from "vitest";
import {
  type DetailType,
  MAX_DETAIL_BYTES,
  MAX_REQUESTED_BY_LENGTH,
  stepFieldsOf,
  validateBusDetail,
  validateDetail,
} from "../../shared/domain/catalog.js";
import { InvalidDetailError } from "../../shared/errors.js";
import { samplePush } from "../fakes/index.js";

/** The fields every build and deploy detail carries. */
const STEP = {
  correlationId: "c-1",
  gitlab: { instance: "https://gitlab.example.com", projectId: 15, projectPath: "group/app" },
  environment: "review/x",
  sha: "0123456789abcdef0123456789abcdef01234567",
  ref: "x",
  pipelineId: 7,
  mrIid: null,
};

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
      ...STEP,
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

describe("Environment Stop Requested: who asked", () => {
  const stop = {
    correlationId: "c-1",
    gitlab: { instance: "https://gitlab.example.com", projectId: 15, projectPath: "group/app" },
    environment: "review/x",
    reason: "merged",
  };

  it("takes a stop from before the fields existed, as the expiry schedules already on AWS hold it", () => {
    expect(validateDetail("Environment Stop Requested", stop)).toEqual(stop);
  });

  it("keeps the GitLab user and the operator", () => {
    const gitlab = { ...stop, user: "agarcia" };
    const operator = {
      ...stop,
      reason: "stopped",
      requestedBy: "aws:arn:aws:sts::123456789012:assumed-role/Admin/alice",
    };
    expect(validateDetail("Environment Stop Requested", gitlab)).toEqual(gitlab);
    expect(validateDetail("Environment Stop Requested", { ...stop, user: null })).toHaveProperty(
      "user",
      null,
    );
    expect(validateDetail("Environment Stop Requested", operator)).toEqual(operator);
    const longest = { ...stop, requestedBy: `local:${"u".repeat(MAX_REQUESTED_BY_LENGTH - 6)}` };
    expect(validateBusDetail("Environment Stop Requested", longest).detail).toEqual(longest);
  });

  it("keeps the time of the GitLab fact behind it, which cleanup orders it by", () => {
    const closed = { ...stop, reason: "closed", user: "agarcia", factAt: "2026-11-21T09:00:00.000Z" };
    expect(validateDetail("Environment Stop Requested", closed)).toEqual(closed);
  });

  it.each([
    [{ user: 42 }, /user: /],
    [{ requestedBy: "x".repeat(MAX_REQUESTED_BY_LENGTH + 1) }, /requestedBy: at most 256 characters/],
    [{ requestedBy: "" }, /requestedBy: /],
    [{ requestedBy: "local:alice\nforged line" }, /requestedBy: no control characters/],
    [{ factAt: "yesterday" }, /factAt: /],
  ])("refuses %j", (fields, message) => {
    expect(() => validateDetail("Environment Stop Requested", { ...stop, ...fields })).toThrow(message);
  });

  it("carries them on to Environment Deleted", () => {
    const deleted = { ...stop, namespace: "group-app-review-x", user: "agarcia", requestedBy: "local:bob" };
    const { reason: _, ...detail } = deleted;
    expect(validateDetail("Environment Deleted", detail)).toEqual(detail);
  });

  it("keeps the pipeline of what ran on Environment Deleted, and takes one from before it was carried", () => {
    const deleted = {
      correlationId: "c-1",
      gitlab: STEP.gitlab,
      environment: "review/x",
      namespace: "group-app-review-x",
      sha: STEP.sha,
      ref: "x",
    };
    const inPipeline = { ...deleted, pipelineId: 88 };
    expect(validateDetail("Environment Deleted", inPipeline)).toEqual(inPipeline);
    expect(validateDetail("Environment Deleted", { ...deleted, pipelineId: null })).toHaveProperty(
      "pipelineId",
      null,
    );
    expect(validateDetail("Environment Deleted", deleted)).not.toHaveProperty("pipelineId");
    expect(() => validateDetail("Environment Deleted", { ...deleted, pipelineId: "88" })).toThrow(
      /pipelineId: /,
    );
    expect(() => validateDetail("Environment Deleted", { ...deleted, pipelineId: -1 })).toThrow(
      /pipelineId: /,
    );
  });
});

describe("stepFieldsOf", () => {
  it("carries exactly the step fields from an outcome into the next detail", () => {
    const finished = validateDetail("Build Finished", {
      ...STEP,
      status: "succeeded",
      imageDigest: `sha256:${"a".repeat(64)}`,
      reason: null,
    });
    expect(stepFieldsOf(finished)).toEqual(STEP);
  });
});
