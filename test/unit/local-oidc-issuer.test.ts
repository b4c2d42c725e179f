import { mkdirSync, mkdtempSync, rmSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import { LocalOidcIssuer } from "../../shared/local/local-oidc-issuer.js";

const dirs: string[] = [];
function dataDir(): string {
  const dir = mkdtempSync(join(tmpdir(), "kubler-oidc-"));
  dirs.push(dir);
  return dir;
}
afterEach(() => {
  for (const dir of dirs.splice(0)) rmSync(dir, { recursive: true, force: true });
});

describe("LocalOidcIssuer key file", () => {
  it("is made once (mode 0600) and read back as the same key", () => {
    const dir = dataDir();
    const made = LocalOidcIssuer.ensure(dir);
    expect(statSync(join(dir, "local-oidc-key.json")).mode & 0o777).toBe(0o600);
    const again = LocalOidcIssuer.ensure(dir);
    expect(again.kid).toBe(made.kid);
    expect(again.jwks()).toEqual(made.jwks());
  });

  it("a damaged key file (cut short, or not a key) names the file and what to do, not a JSON parser's position", () => {
    const cases = [
      '{"kid": "k", "privateKey": "-----BEGIN PRI',
      '{"kid": "k", "privateKey": "not a PEM"}',
      "",
    ];
    for (const content of cases) {
      const dir = dataDir();
      const file = join(dir, "local-oidc-key.json");
      writeFileSync(file, content);
      expect(() => LocalOidcIssuer.ensure(dir)).toThrow(
        `${file} is not a key file written by kubler; delete it to generate a new key`,
      );
    }
  });

  it("a key file it cannot read says why, not that the file is damaged and to be deleted", () => {
    const dir = dataDir();
    const file = join(dir, "local-oidc-key.json");
    mkdirSync(file);
    expect(() => LocalOidcIssuer.ensure(dir)).toThrow(`${file} is a directory, not a file`);
  });
});
