/**
 * The dependency direction of STYLE.md, checked on the import lines of every source file:
 * functions → services → domain + ports; only adapters touch SDKs; domain stays pure.
 */
import { readdirSync, readFileSync, statSync } from "node:fs";
import { join, relative } from "node:path";
import { describe, expect, it } from "vitest";

const ROOT = join(import.meta.dirname, "../..");

function sources(dir: string): string[] {
  return readdirSync(join(ROOT, dir)).flatMap((name) => {
    const path = join(dir, name);
    if (statSync(join(ROOT, path)).isDirectory()) return sources(path);
    return name.endsWith(".ts") ? [path] : [];
  });
}

function imports(file: string): string[] {
  const text = readFileSync(join(ROOT, file), "utf8");
  return [...text.matchAll(/^\s*(?:import|export)\s[^;]*?from\s+"([^"]+)"/gms)].map((m) => m[1] as string);
}

/** Files under `dir` that import something matching `forbidden`, as "file → import". */
function violations(dir: string, forbidden: (specifier: string, file: string) => boolean): string[] {
  return sources(dir).flatMap((file) =>
    imports(file)
      .filter((specifier) => forbidden(specifier, file))
      .map((specifier) => `${file} → ${specifier}`),
  );
}

const SDK = /^(@aws-sdk\/|@kubernetes\/client-node|jose$)/;
const resolvesInto = (specifier: string, file: string, dir: string) =>
  specifier.startsWith(".") && relative(ROOT, join(ROOT, file, "..", specifier)).startsWith(dir);

describe("architecture", () => {
  it("finds the imports it checks (the scanner works)", () => {
    expect(imports("functions/gitlab-webhook/handler.ts")).toContain("@aws-sdk/client-eventbridge");
  });

  it("only shared/adapters import the AWS SDK, the Kubernetes client or jose", () => {
    const outside = ["functions", "shared/domain", "shared/services", "shared/local"].flatMap((dir) =>
      violations(dir, (s, file) => SDK.test(s) && !file.endsWith("handler.ts")),
    );
    expect(outside).toEqual([]);
  });

  it("keeps shared/domain pure: no I/O modules, no environment, no wall clock", () => {
    expect(violations("shared/domain", (s) => /^node:(fs|http|https|net|child_process)/.test(s))).toEqual([]);
    const code = (file: string) =>
      readFileSync(join(ROOT, file), "utf8")
        .split("\n")
        .filter((line) => !/^\s*(\*|\/\/|\/\*)/.test(line))
        .join("\n");
    const impure = sources("shared/domain").filter((file) =>
      /process\.env|Date\.now\(\)|new Date\(\)/.test(code(file)),
    );
    expect(impure).toEqual([]);
  });

  it("shared/ never imports functions/, cli/ or infra/", () => {
    const up = violations("shared", (s, file) =>
      ["functions", "cli", "infra"].some((dir) => resolvesInto(s, file, dir)),
    );
    expect(up).toEqual([]);
  });

  it("no function imports another function", () => {
    const across = sources("functions").flatMap((file) => {
      const own = file.split("/")[1] as string;
      return imports(file)
        .filter((s) => resolvesInto(s, file, "functions") && !resolvesInto(s, file, `functions/${own}`))
        .map((s) => `${file} → ${s}`);
    });
    expect(across).toEqual([]);
  });

  it("infra/ depends on the domain only, never on functions or services", () => {
    const wrong = violations("infra", (s, file) =>
      ["functions", "shared/services", "shared/adapters", "shared/local"].some((dir) =>
        resolvesInto(s, file, dir),
      ),
    );
    expect(wrong).toEqual([]);
  });
});
