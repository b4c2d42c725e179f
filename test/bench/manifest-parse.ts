/**
 * Reading the largest YAML Kubler accepts: a 1 MiB kubler.yaml (buildArgs) and a 1 MiB deploy/ file
 * (a ConfigMap's data), each with one short key a line. yaml's own repeated-key check compared each
 * key with every earlier one of its mapping (100-190 s for such a file); the set per mapping that
 * replaced it (repeatedKeyOffset) keeps the parse linear. The functional tests read these files too,
 * but only a figure can say how long it took. A 1 MiB `.json` file is read too: checked by
 * jsonSyntaxProblem (JavaScript, a character at a time) before JSON.parse builds it.
 *
 * Baseline, same run: JSON.parse of the same keys and values, the floor under any parser.
 */
import { parseManifestFiles } from "../../shared/domain/deploy-manifests.js";
import { parseKublerManifest } from "../../shared/domain/kubler-manifest.js";
import { type Figure, fmt, median } from "./support.js";

const MIB = 1024 * 1024;
const ROUNDS = 5;
// yaml parses a few MB/s; a check that went quadratic again costs minutes, thousands of times this.
const TARGET_RATIO = 100;

/** Short keys, one a line indented by `indent`: as many as fit in 1 MiB beside what `wrap` adds. */
function keysUnderOneMib(indent: string, wrap: (keys: string) => string): Record<string, string> {
  const keys: Record<string, string> = {};
  let size = wrap("").length;
  for (let i = 0; ; i++) {
    const line = `${indent}K${i}: v\n`;
    if (size + line.length > MIB) return keys;
    keys[`K${i}`] = "v";
    size += line.length;
  }
}

function yamlOf(keys: Record<string, string>, indent: string): string {
  return Object.keys(keys)
    .map((key) => `${indent}${key}: ${keys[key]}\n`)
    .join("");
}

/** Short keys, one a line as `JSON.stringify(…, null, 2)` writes them: as many as fit in 1 MiB. */
function jsonKeysUnderOneMib(head: object): Record<string, string> {
  const keys: Record<string, string> = {};
  let size = JSON.stringify({ ...head, data: {} }, null, 2).length;
  for (let i = 0; ; i++) {
    const line = `    "K${i}": "v",\n`;
    if (size + line.length > MIB) return keys;
    keys[`K${i}`] = "v";
    size += line.length;
  }
}

function timeMs(op: () => unknown): number {
  const start = performance.now();
  op();
  return performance.now() - start;
}

/** Median of ROUNDS interleaved rounds of `parse` and of JSON.parse over the same keys. */
function figure(name: string, yaml: string, json: string, parse: () => number, keyCount: number): Figure {
  if (yaml.length > MIB) throw new Error(`${name}: ${yaml.length} bytes, over 1 MiB`);
  if (parse() !== keyCount) throw new Error(`${name}: did not read ${keyCount} keys`);
  const parsed: number[] = [];
  const baseline: number[] = [];
  for (let round = 0; round < ROUNDS; round++) {
    parsed.push(timeMs(parse));
    baseline.push(timeMs(() => JSON.parse(json)));
  }
  const ratio = median(parsed) / median(baseline);
  return {
    name: `${name}: ${fmt(yaml.length / 1024)} KiB, ${fmt(keyCount)} keys one a line (median of ${ROUNDS})`,
    value: `${fmt(median(parsed), 1)} ms`,
    baseline: `${fmt(median(baseline), 1)} ms: JSON.parse of the same keys`,
    ratio: `${fmt(ratio, 1)}× the baseline's time`,
    target: `≤ ${fmt(TARGET_RATIO)}×`,
    met: ratio <= TARGET_RATIO,
  };
}

export function benchManifestParse(): Figure[] {
  const kublerHead = "version: 1\nimage:\n  name: registry.example.com/group/app\n  buildArgs:\n";
  const kublerTail = "deploy: { manifests: deploy/ }\nenvironments: [{ name: x, on: merge_request }]\n";
  const buildArgs = keysUnderOneMib("    ", (keys) => kublerHead + keys + kublerTail);
  const kublerYaml = kublerHead + yamlOf(buildArgs, "    ") + kublerTail;

  const configMapHead = "apiVersion: v1\nkind: ConfigMap\nmetadata: { name: big }\ndata:\n";
  const data = keysUnderOneMib("  ", (keys) => configMapHead + keys);
  const configMap = configMapHead + yamlOf(data, "  ");
  const files = new Map([["deploy/big.yaml", configMap]]);

  const configMapObject = { apiVersion: "v1", kind: "ConfigMap", metadata: { name: "big" } };
  const jsonData = jsonKeysUnderOneMib(configMapObject);
  const jsonConfigMap = JSON.stringify({ ...configMapObject, data: jsonData }, null, 2);
  const jsonFiles = new Map([["deploy/big.json", jsonConfigMap]]);

  return [
    figure(
      "parseKublerManifest",
      kublerYaml,
      JSON.stringify({ image: { buildArgs } }),
      () => Object.keys(parseKublerManifest(kublerYaml).image?.buildArgs ?? {}).length,
      Object.keys(buildArgs).length,
    ),
    figure(
      "parseManifestFiles",
      configMap,
      JSON.stringify({ data }),
      () => Object.keys((parseManifestFiles(files)[0]?.data as object) ?? {}).length,
      Object.keys(data).length,
    ),
    figure(
      "parseManifestFiles (.json)",
      jsonConfigMap,
      jsonConfigMap,
      () => Object.keys((parseManifestFiles(jsonFiles)[0]?.data as object) ?? {}).length,
      Object.keys(jsonData).length,
    ),
  ];
}
