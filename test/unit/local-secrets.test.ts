/**
 * The generated webhook secrets file: a damaged one (a write cut short, a hand edit) is named, with
 * what to do, for `npm start` and `kubler send` alike.
 */
import { mkdirSync, mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { ensureLocalSecrets, readLocalSecrets } from "../../cli/local-secrets.js";

function dataDirWith(content: string): string {
  const dir = mkdtempSync(join(tmpdir(), "kubler-secrets-"));
  writeFileSync(join(dir, "webhook-secrets.json"), content);
  return dir;
}

describe("webhook-secrets.json", () => {
  it.each([
    ["cut short", '{"token": "ab'],
    ["null", "null"],
    ["empty", ""],
    ["the wrong shape", '{"token": 1}'],
  ])("%s: names the file and says to delete it", (_, content) => {
    const dir = dataDirWith(content);
    const expected = `${join(dir, "webhook-secrets.json")} is not a secrets file written by kubler; delete it to generate new secrets`;
    expect(() => readLocalSecrets(dir)).toThrow(expected);
    expect(() => ensureLocalSecrets(dir)).toThrow(expected);
  });

  it("a directory in its place is named", () => {
    const dir = mkdtempSync(join(tmpdir(), "kubler-secrets-"));
    mkdirSync(join(dir, "webhook-secrets.json"));
    expect(() => readLocalSecrets(dir)).toThrow(`${join(dir, "webhook-secrets.json")}`);
  });

  it("one it wrote reads back", () => {
    const dir = mkdtempSync(join(tmpdir(), "kubler-secrets-"));
    const made = ensureLocalSecrets(dir);
    expect(readLocalSecrets(dir)).toEqual(made);
  });
});
