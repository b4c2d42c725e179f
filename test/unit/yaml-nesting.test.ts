import { describe, expect, it } from "vitest";
import { parseDocument } from "yaml";
import { ManifestError, parseKublerManifest } from "../../shared/domain/kubler-manifest.js";
import {
  MAX_FLOW_DEPTH,
  MAX_LINE_INDICATORS,
  repeatedKey,
  yamlNestingProblem,
} from "../../shared/domain/yaml-nesting.js";

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

  // A tab separates an indicator from what follows as a space does: "-\t? " nests, and the count
  // stopped at the tab. 200 of them (800 bytes) held yaml for ~10 s, 250 for minutes.
  it("counts tabs after - and ? as the nesting they are", () => {
    expect(yamlNestingProblem(`${"-\t? ".repeat(200)}x`)).toMatch(/indented more than 200 columns at line 1/);
    expect(yamlNestingProblem(`a:\n${"?\t-\t".repeat(200)}x`)).toMatch(/at line 2/);
    expect(() => parseKublerManifest(`${"-\t? ".repeat(200)}x`)).toThrow(
      "kubler.yaml: not accepted: lines indented more than 200 columns at line 1",
    );
    expect(yamlNestingProblem("a:\n-\tb\n-\t[c]\n")).toBeNull();
  });

  // An anchor or tag before a node's content stopped the count as well: "&x ?\t" repeated (2 KB) held
  // yaml ~20 s, "?\t&x :\t" over a minute (found by fuzzing).
  it("counts anchors and tags between indicators as the nesting they are", () => {
    expect(yamlNestingProblem(`${"&x ?\t".repeat(400)}x`)).toMatch(
      /indented more than 200 columns at line 1/,
    );
    expect(yamlNestingProblem(`a:\n${"?\t&x :\t".repeat(250)}x`)).toMatch(/at line 2/);
    expect(yamlNestingProblem(`${"!!map ? ".repeat(250)}x`)).toMatch(/at line 1/);
    expect(() => parseKublerManifest(`${"&x ?\t".repeat(400)}x`)).toThrow("kubler.yaml: not accepted:");
    // Ordinary anchors and tags at a line's start.
    expect(yamlNestingProblem("a: &a\n  - &b !!str x\n  - ! y\nb: *a\n")).toBeNull();
    expect(
      yamlNestingProblem(`a: |\n  !function(){${"x".repeat(5000)}}\n  &${"y".repeat(5000)}\n`),
    ).toBeNull();
  });

  // Compact nesting need not start the line: "? 'k': ? 'k': …" or "? , *x : ? …" nest once per
  // indicator after a quoted key or an alias, and 2 KB held yaml 10 to 25 s (found by fuzzing).
  it("refuses a line with more block indicators than any real file has, quotes and aliases between them", () => {
    for (const unit of ["? ': ", '?\t":\t', ': ? "', "?\t,*x : ", "? !x <<: :\t"]) {
      expect(yamlNestingProblem(`a:\n${unit.repeat(Math.ceil(2000 / unit.length))}x`)).toMatch(
        new RegExp(`more than ${MAX_LINE_INDICATORS} block indicators on line 2`),
      );
    }
    expect(() => parseKublerManifest(`${"? ': ".repeat(400)}x`)).toThrow("kubler.yaml: not accepted:");
    // Inside flow collections, quotes and comments, and a usual line, they do not count.
    const many = (unit: string) => unit.repeat(MAX_LINE_INDICATORS + 1);
    expect(
      yamlNestingProblem(`a: { ${many("k: 1, ")} }\nb: "${many("- ")}"\nc: 1 # ${many("? ")}\n`),
    ).toBeNull();
    expect(yamlNestingProblem("- - name: web\n    env: [{ name: a, value: 'b: c' }]\n")).toBeNull();
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
