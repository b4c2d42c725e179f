/** The cluster `kubler environments` and `kubler sweep` act on, chosen and checked like `npm start`'s. */
import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { commandCluster } from "../../cli/environment-commands.js";
import { loadLocalConfig } from "../../shared/config.js";
import { ConfigError } from "../../shared/errors.js";

describe("commandCluster", () => {
  it("names a bad KUBECONFIG in plain words, as npm start does", () => {
    const dir = mkdtempSync(join(tmpdir(), "kubler-commands-"));
    const empty = join(dir, "empty");
    writeFileSync(empty, "\n");
    const config = { ...loadLocalConfig({ KUBLER_DATA_DIR: dir }), kubeconfig: empty };
    expect(() => commandCluster(config)).toThrow(ConfigError);
    expect(() => commandCluster(config)).toThrow(`KUBECONFIG file ${empty} is empty`);
  });
});
