import { describe, expect, it } from "vitest";
import { displayPath } from "../../cli/terminal-reporter.js";

describe("displayPath", () => {
  it("is relative under the working directory", () => {
    expect(displayPath("/work/app/.kubler", "/work/app")).toBe(".kubler");
    expect(displayPath(".kubler", "/work/app")).toBe(".kubler");
    expect(displayPath("/work/app", "/work/app")).toBe(".");
    // A child whose name starts with two dots is still inside.
    expect(displayPath("/work/app/..data", "/work/app")).toBe("..data");
  });

  it("is absolute outside it, instead of a climb of ../", () => {
    expect(displayPath("/tmp/kubler-x", "/work/app")).toBe("/tmp/kubler-x");
    expect(displayPath("../other", "/work/app")).toBe("/work/other");
  });
});
