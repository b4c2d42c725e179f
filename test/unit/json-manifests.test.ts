/**
 * `.json` manifests, as `kubectl apply -f dir/` reads them: parsed as JSON, then held to exactly the
 * checks of YAML objects. They were skipped without a word, so a team moving from kubectl lost them.
 */
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { ManifestFilesError, parseManifestFiles } from "../../shared/domain/deploy-manifests.js";
import { jsonSyntaxProblem } from "../../shared/domain/json-syntax.js";

const DEPLOYMENT = {
  apiVersion: "apps/v1",
  kind: "Deployment",
  metadata: { name: "web", labels: { app: "web" } },
  spec: {
    replicas: 2,
    selector: { matchLabels: { app: "web" } },
    template: {
      metadata: { labels: { app: "web" } },
      spec: { containers: [{ name: "web", image: "registry.example.com/group/app:{sha}" }] },
    },
  },
};
const DEPLOYMENT_YAML = `apiVersion: apps/v1
kind: Deployment
metadata: { name: web, labels: { app: web } }
spec:
  replicas: 2
  selector: { matchLabels: { app: web } }
  template:
    metadata: { labels: { app: web } }
    spec:
      containers: [{ name: web, image: "registry.example.com/group/app:{sha}" }]
`;
const CONFIG_LIST = {
  apiVersion: "v1",
  kind: "List",
  items: [
    { apiVersion: "v1", kind: "ConfigMap", metadata: { name: "settings" }, data: { LOG_LEVEL: "info" } },
    { apiVersion: "v1", kind: "ConfigMap", metadata: { name: "flags" } },
  ],
};
const SERVICE_YAML =
  "apiVersion: v1\nkind: Service\nmetadata: { name: web }\nspec: { ports: [{ port: 80 }] }\n";
const names = (files: Map<string, string>) =>
  parseManifestFiles(files).map((o) => `${o.kind}/${o.metadata.name}`);
const refusal = (path: string, text: string) => {
  try {
    parseManifestFiles(new Map([[path, text]]));
  } catch (error) {
    expect(error).toBeInstanceOf(ManifestFilesError);
    return (error as Error).message;
  }
  throw new Error(`${path} was accepted`);
};

describe("parseManifestFiles with .json files", () => {
  it("reads a JSON object and a JSON List, in path order with the YAML files, as the same YAML would read", () => {
    const files = new Map([
      ["deploy/b-service.yaml", SERVICE_YAML],
      ["deploy/c-config.json", JSON.stringify(CONFIG_LIST, null, 4)],
      ["deploy/a-web.json", JSON.stringify(DEPLOYMENT, null, 2)],
    ]);
    expect(names(files)).toEqual(["Deployment/web", "Service/web", "ConfigMap/settings", "ConfigMap/flags"]);
    expect(parseManifestFiles(new Map([["deploy/web.json", JSON.stringify(DEPLOYMENT)]]))).toEqual(
      parseManifestFiles(new Map([["deploy/web.yaml", DEPLOYMENT_YAML]])),
    );
  });

  it.each([
    [{ ...DEPLOYMENT, apiVersion: "v1" }, 'deploy/x.json: Deployment belongs to API group "apps", not ""'],
    [
      { apiVersion: "v1", kind: "Namespace", metadata: { name: "x" } },
      "deploy/x.json: kind Namespace cannot be deployed",
    ],
    [
      { apiVersion: "v1", kind: "ConfigMap", metadata: { name: "kubler-last-good" } },
      "the name is Kubler's own",
    ],
    [{ ...DEPLOYMENT, metadata: { name: "web", labels: "app=web" } }, "metadata.labels: expected a mapping"],
    [[DEPLOYMENT], "deploy/x.json: expected a Kubernetes object, found a list"],
    ["web", "deploy/x.json: expected a Kubernetes object, found string"],
    [
      {
        ...CONFIG_LIST,
        items: [...CONFIG_LIST.items, { apiVersion: "v1", kind: "Role", metadata: { name: "r" } }],
      },
      "deploy/x.json (item 3): kind Role cannot be deployed",
    ],
  ])("holds JSON objects to the checks of YAML objects: %j", (value, message) => {
    expect(refusal("deploy/x.json", JSON.stringify(value))).toContain(message);
  });

  it("refuses an object a JSON file and a YAML file both define", () => {
    const files = new Map([
      ["deploy/web.json", JSON.stringify(DEPLOYMENT)],
      ["deploy/web.yaml", DEPLOYMENT_YAML],
    ]);
    expect(() => parseManifestFiles(files)).toThrow("Deployment/web is defined twice");
  });

  it.each([
    [
      '{\n  "apiVersion": "v1",\n  "kind": "ConfigMap"\n  "metadata": { "name": "a" }\n}\n',
      `expected ',' or '}', found "\\"" at line 4, column 3`,
    ],
    ['{ "apiVersion": "v1", }', 'expected a property name in double quotes, found "}" at line 1, column 23'],
    ["{ \"kind\": 'ConfigMap' }", `expected a value, found "'" at line 1, column 11`],
    ['{\n  "items": [1, 2', "the file ends before the JSON value does at line 2, column 17"],
    ['{ "a": tru }', 'expected a value, found "t" at line 1, column 8'],
    [
      '{ "a": "x\ny" }',
      "a line break or control character in a string: write it escaped (\\n, \\t) at line 1, column 10",
    ],
    [
      '{ "a": "\\x" }',
      'an escape JSON does not have in a string (it has \\" \\\\ \\/ \\b \\f \\n \\r \\t \\uXXXX) at line 1, column 9',
    ],
    ['{ "a" 1 }', `expected ':' after the property name, found "1" at line 1, column 7`],
    [
      '{"kind": "ConfigMap"}\n{"kind": "Service"}\n',
      "more text after the JSON value: a file holds one object, or a List at line 2, column 1",
    ],
    ["// a comment\n{}", 'expected a value, found "/" at line 1, column 1'],
  ])("refuses bad JSON %j, naming the file, line and column", (text, message) => {
    expect(refusal("deploy/bad.json", text)).toBe(`deploy/bad.json: not valid JSON: ${message}`);
  });

  it("refuses a property name repeated in one object, as the same text read as YAML is refused", () => {
    // JSON.parse keeps the last silently: a Secret's or a Deployment's field would be lost unseen.
    const text =
      '{"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "a"}, "data": {"x": "1", "x": "2"}}';
    expect(refusal("deploy/a.yaml", text)).toContain("Map keys must be unique at line 1, column 89");
    expect(refusal("deploy/a.json", text)).toBe(
      "deploy/a.json: not valid JSON: a property name repeated in the same object (names must be unique) at line 1, column 89",
    );
    // Equal once unescaped, as JSON.parse compares them.
    expect(refusal("deploy/b.json", '{"kind": "ConfigMap", "\\u006bind": "Secret"}')).toBe(
      "deploy/b.json: not valid JSON: a property name repeated in the same object (names must be unique) at line 1, column 23",
    );
    // The same name in different objects is no repeat.
    expect(
      names(
        new Map([
          [
            "deploy/c.json",
            '{"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "a"}, "data": {"kind": "x", "name": "y"}}',
          ],
        ]),
      ),
    ).toEqual(["ConfigMap/a"]);
  });

  it("never quotes a Secret's value in the error", () => {
    const secret =
      '{"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "db"}, "stringData": {"password": "hunter2" x}}';
    const message = refusal("deploy/db.json", secret);
    expect(message).toBe(
      `deploy/db.json: not valid JSON: expected ',' or '}', found "x" at line 1, column 105`,
    );
    expect(message).not.toContain("hunter2");
  });

  it("refuses deep nesting as a bad file, never a stack overflow later", () => {
    const deep = `{"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "a"}, "x": ${"[".repeat(500_000)}${"]".repeat(500_000)}}`;
    expect(refusal("deploy/deep.json", deep)).toBe(
      "deploy/deep.json: not valid JSON: arrays and objects nested deeper than 64 levels at line 1, column 138",
    );
  });

  it("reads an empty JSON file as no objects, as an empty YAML file", () => {
    expect(
      names(
        new Map([
          ["deploy/empty.json", " \n"],
          ["deploy/web.yaml", DEPLOYMENT_YAML],
        ]),
      ),
    ).toEqual(["Deployment/web"]);
    expect(() => parseManifestFiles(new Map([["deploy/empty.json", ""]]))).toThrow("no Kubernetes objects");
  });
});

describe("jsonSyntaxProblem", () => {
  // The check must accept exactly what JSON.parse reads: mutations of a real manifest, both ways.
  it("agrees with JSON.parse on thousands of damaged manifests", () => {
    const valid = JSON.stringify(
      { ...DEPLOYMENT, data: { s: 'a "quoted" \\ \u00e9 \t', n: -1.5e3, t: true } },
      null,
      2,
    );
    const alphabet = [
      '"',
      "{",
      "}",
      "[",
      "]",
      ",",
      ":",
      " ",
      "\n",
      "\\",
      "u",
      "0",
      "-",
      ".",
      "e",
      "t",
      "n",
      "\t",
      "\u0001",
    ];
    let seed = 42;
    const random = (n: number) => {
      seed = (seed * 1_103_515_245 + 12_345) % 2 ** 31;
      return seed % n;
    };
    let rejected = 0;
    for (let i = 0; i < 5_000; i++) {
      let text = valid;
      for (let edits = 1 + random(3); edits > 0; edits--) {
        const at = random(text.length + 1);
        const choice = random(3);
        const c = alphabet[random(alphabet.length)] as string;
        text =
          choice === 0
            ? text.slice(0, at) + text.slice(at + 1)
            : text.slice(0, at) + c + text.slice(at + (choice - 1));
      }
      let parses = true;
      try {
        JSON.parse(text);
      } catch {
        parses = false;
      }
      const problem = jsonSyntaxProblem(text, 64);
      expect(problem === null, text).toBe(parses);
      if (problem) {
        rejected++;
        expect(problem.offset).toBeGreaterThanOrEqual(0);
        expect(problem.offset).toBeLessThanOrEqual(text.length);
      }
    }
    expect(rejected).toBeGreaterThan(1_000);
  });

  // The spellings the damaged manifests above never reach: every escape, lone surrogates escaped and
  // raw, numbers at the edges of the grammar, and the characters outside it (BOM, NUL, NBSP, U+2028).
  it("agrees with JSON.parse on the grammar's edges: escapes, surrogates, numbers, BOM and NUL", () => {
    const leaf = fc.constantFrom(
      ...["-0", "0", "1e999", "-1E-999", "0.5e+3", "12", "true", "false", "null"],
      ...['"\\u00e9"', '"\\uD800"', '"\\udc00x"', '"\\ud83d\\ude00"', '"\\u0000"', '"\\/\\b\\f"'],
      ...['"\ud800"', '"\udfff"', '"\u2028\u00a0\u007f"', '"\ufeff"', '""'],
    );
    // Names unique once unescaped (a repeat is refused: that is checked apart, below).
    const names = fc.uniqueArray(fc.constantFrom('"a"', '"b"', '"\\u0063"', '"\\ud800"', '""'), {
      maxLength: 4,
    });
    const gap = fc.constantFrom("", " ", "\n", "\t", "\r\n");
    const { value } = fc.letrec<{ value: string }>((tie) => ({
      value: fc.oneof(
        { depthSize: "small", withCrossShrink: true },
        leaf,
        fc.array(tie("value"), { maxLength: 3 }).map((items) => `[${items.join(",")}]`),
        fc
          .tuple(names, fc.array(tie("value"), { minLength: 4, maxLength: 4 }), gap)
          .map(([keys, values, g]) => `{${keys.map((k, i) => `${g}${k}${g}:${values[i]}`).join(",")}}`),
      ),
    }));
    const damage = fc.constantFrom(
      ...[
        "",
        "\ufeff",
        "\u0000",
        "\u001f",
        "\u00a0",
        "\u2028",
        "0",
        "-",
        ".",
        "e",
        "+",
        "\\",
        "\\u",
        "\\u12",
      ],
      ...['"', ",", ":", "{", "}", "[", "]", "01", "-01", "1.", ".5", "nul", "\ud800"],
    );
    fc.assert(
      fc.property(value, damage, fc.nat(), fc.boolean(), (text, insert, where, replace) => {
        const at = where % (text.length + 1);
        const damaged = text.slice(0, at) + insert + text.slice(at + (replace ? 1 : 0));
        let parses = true;
        try {
          JSON.parse(damaged);
        } catch {
          parses = false;
        }
        const problem = jsonSyntaxProblem(damaged, 64);
        // A repeat is reported where it stands, before any error after it (as for YAML): not JSON.parse's.
        if (!problem?.problem.startsWith("a property name repeated")) {
          expect(problem === null, damaged).toBe(parses);
        }
        expect(jsonSyntaxProblem(text, 64), text).toBeNull();
      }),
      { numRuns: 3_000 },
    );
  });
});
