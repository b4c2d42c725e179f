import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { LOCK_FILE, runtimeUrl } from "../../cli/runtime-address.js";
import { loadLocalConfig } from "../../shared/config.js";

describe("runtimeUrl", () => {
  let dir: string;
  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), "kubler-address-"));
  });
  afterEach(() => rmSync(dir, { recursive: true, force: true }));
  const url = (env: Record<string, string>) => {
    const full = { KUBLER_DATA_DIR: dir, ...env };
    return runtimeUrl(loadLocalConfig(full), full);
  };
  const lock = (text: string) => writeFileSync(join(dir, LOCK_FILE), text);

  it("is the default port when no runtime holds the data dir", () => {
    expect(url({})).toBe("http://127.0.0.1:8080");
  });

  it("is where the runtime holding the data dir listens, unless this shell sets PORT", () => {
    lock(`${JSON.stringify({ pid: 4242, url: "http://127.0.0.1:43210" })}\n`);
    expect(url({})).toBe("http://127.0.0.1:43210");
    expect(url({ PORT: "9090" })).toBe("http://127.0.0.1:9090");
  });

  it("finds a runtime started with PORT=0 (any free port) from a shell that exports PORT=0 too", () => {
    lock(`${JSON.stringify({ pid: 4242, url: "http://127.0.0.1:43210" })}\n`);
    expect(url({ PORT: "0" })).toBe("http://127.0.0.1:43210");
  });

  it("ignores a lock without a usable URL (still starting, or cut short by a crash)", () => {
    lock('{"pid": 4242, "url": null}');
    expect(url({})).toBe("http://127.0.0.1:8080");
    lock('{"pid": 42');
    expect(url({})).toBe("http://127.0.0.1:8080");
    lock('{"url": "http://evil.example.com/path?x"}');
    expect(url({})).toBe("http://127.0.0.1:8080");
  });

  it("connects to the loopback for a runtime bound to every interface", () => {
    expect(url({ KUBLER_HOST: "0.0.0.0", PORT: "9090" })).toBe("http://127.0.0.1:9090");
    expect(url({ KUBLER_HOST: "::1", PORT: "9090" })).toBe("http://[::1]:9090");
  });
});
