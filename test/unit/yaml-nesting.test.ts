import { describe, expect, it } from "vitest";
import { parseDocument } from "yaml";
import { parseManifestFiles } from "../../shared/domain/deploy-manifests.js";
import { ManifestError, parseKublerManifest } from "../../shared/domain/kubler-manifest.js";
import { MAX_FLOW_DEPTH, repeatedKey, yamlNestingProblem } from "../../shared/domain/yaml-nesting.js";

describe("yamlNestingProblem", () => {
  it("lets ordinary YAML through, brackets in quotes and comments included", () => {
    expect(yamlNestingProblem("a: [[[1]]]\nb: { c: [d] }\n  - x")).toBeNull();
    expect(
      yamlNestingProblem(`a: "${"[".repeat(500)}"\nb: '${"{".repeat(500)}'\n# ${"[".repeat(500)}`),
    ).toBeNull();
    expect(yamlNestingProblem(`a: "\\"${"[".repeat(500)}"`)).toBeNull();
    expect(yamlNestingProblem(`${"[".repeat(MAX_FLOW_DEPTH)}${"]".repeat(MAX_FLOW_DEPTH)}`)).toBeNull();
  });

  it("refuses deep flow nesting, deep indentation and compact nesting, naming the line", () => {
    expect(yamlNestingProblem(`a: 1\nb: ${"[".repeat(MAX_FLOW_DEPTH + 1)}`)).toMatch(
      /deeper than 64 levels at line 2/,
    );
    expect(yamlNestingProblem(`${'{"a":'.repeat(5000)}1${"}".repeat(5000)}`)).toMatch(/deeper than 64/);
    expect(yamlNestingProblem(`a:\n${" ".repeat(201)}b: 1`)).toMatch(
      /indented more than 200 columns at line 2/,
    );
    expect(yamlNestingProblem(`a:\n${"- ".repeat(3000)}x`)).toMatch(/at line 2/);
    expect(yamlNestingProblem(`${"? ".repeat(3000)}x`)).toMatch(/at line 1/);
  });

  // An anchor or tag before a node's content stopped the count: "? &x ? &x … x" nests as "? ? x" does
  // and is valid YAML, so yaml built it whole: 300 of them (1.5 KB) held a parse ~6 s, 400 far longer.
  it("counts anchors and tags between indicators as the nesting they are", () => {
    for (const unit of ["? &x ", "? !!map "]) {
      const text = `a:\n${unit.repeat(300)}x\n`;
      expect(yamlNestingProblem(text)).toMatch(/indented more than 200 columns at line 2/);
      expect(() => parseKublerManifest(text)).toThrow("kubler.yaml: not accepted:");
      expect(() => parseManifestFiles(new Map([["deploy/a.yaml", text]]))).toThrow(
        "deploy/a.yaml: not accepted:",
      );
    }
    // Ordinary anchors and tags at a line's start, and a block scalar's line of minified code.
    expect(yamlNestingProblem("a: &a\n  - &b !!str x\n  - ! y\nb: *a\n")).toBeNull();
    expect(
      yamlNestingProblem(`a: |\n  !function(){${"x".repeat(5000)}}\n  &${"y".repeat(5000)}\n`),
    ).toBeNull();
  });

  it("makes parseKublerManifest refuse such a file with a ManifestError, before yaml recurses", () => {
    for (const text of [`version: 1\ndeploy: ${"[".repeat(100_000)}`, `deploy:\n${"- ".repeat(100_000)}x`]) {
      expect(() => parseKublerManifest(text)).toThrow(ManifestError);
    }
  });

  it("reports an alias to no anchor, and an alias bomb, as a ManifestError", () => {
    expect(() => parseKublerManifest("version: 1\ndeploy: *nowhere")).toThrow(/kubler.yaml: not usable YAML/);
    const bomb = [
      'a: &a ["x","x","x","x","x","x","x","x","x"]',
      "b: &b [*a,*a,*a,*a,*a,*a,*a,*a,*a]",
      "c: &c [*b,*b,*b,*b,*b,*b,*b,*b,*b]",
      "d: [*c,*c,*c,*c,*c,*c,*c,*c,*c]",
    ].join("\n");
    expect(() => parseKublerManifest(bomb)).toThrow(ManifestError);
  });
});

describe("repeatedKey", () => {
  const at = (text: string) =>
    repeatedKey(parseDocument(text, { uniqueKeys: false, logLevel: "error" }), text);

  it("names the line and column of the first repeated key, in block and flow mappings", () => {
    expect(at("a: 1\na: 2\n")).toEqual({ line: 2, column: 1 });
    expect(at("a: {b: 1, b: 2}\n")).toEqual({ line: 1, column: 11 });
    expect(at("a: 1\n1: 2\n'1': 3\n")).toBeNull();
  });

  it("leaves a YAML error before the repeated key to be reported, and comes first before a later one", () => {
    expect(at("x: @y\na: 1\na: 2\n")).toBeNull();
    expect(at("a: 1\na: 2\nx: @y\n")).toEqual({ line: 2, column: 1 });
  });
});
