import { describe, expect, it } from "vitest";
import { validateDetail } from "../../shared/domain/catalog.js";
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
