import { mkdirSync, mkdtempSync, rmSync, symlinkSync, truncateSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import {
  DEFAULT_MAX_FILE_BYTES,
  DEFAULT_MAX_FILES,
  DEFAULT_MAX_TOTAL_BYTES,
} from "../../shared/adapters/gitlab-manifest-source.js";
import { ManifestFilesError } from "../../shared/domain/deploy-manifests.js";
import { ManifestError } from "../../shared/domain/kubler-manifest.js";
import { DirectoryManifestSource } from "../../shared/local/directory-manifest-source.js";

const SHA = "1111111111111111111111111111111111111111";
const project = { projectId: 1, projectPath: "demo/hello" };

let base: string;
let projectDir: string;
let secret: string;
let source: DirectoryManifestSource;

beforeEach(() => {
  base = mkdtempSync(join(tmpdir(), "kubler-dir-source-"));
  projectDir = join(base, "projects", "demo", "hello");
  mkdirSync(join(projectDir, "deploy"), { recursive: true });
  // Stands in for ~/.aws/credentials: a file outside the projects directory.
  secret = join(base, "credentials.yaml");
  writeFileSync(secret, "aws_secret_access_key: do-not-read\n");
  source = new DirectoryManifestSource(join(base, "projects"));
});

afterEach(() => rmSync(base, { recursive: true, force: true }));

describe("DirectoryManifestSource", () => {
  it("reads kubler.yaml and the YAML and JSON files of the manifests directory, in name order", async () => {
    writeFileSync(join(projectDir, "kubler.yaml"), "version: 1\n");
    writeFileSync(join(projectDir, "deploy", "b.yaml"), "b: 1\n");
    writeFileSync(join(projectDir, "deploy", "a.yml"), "a: 1\n");
    writeFileSync(join(projectDir, "deploy", "ab.json"), '{"ab": 1}');
    writeFileSync(join(projectDir, "deploy", "notes.txt"), "ignored");
    writeFileSync(join(projectDir, "deploy", "package.jsonc"), "ignored");

    expect(await source.readManifest(project)).toBe("version: 1\n");
    const files = await source.readDirectory(project, SHA, "deploy/");
    expect([...files]).toEqual([
      ["deploy/a.yml", "a: 1\n"],
      ["deploy/ab.json", '{"ab": 1}'],
      ["deploy/b.yaml", "b: 1\n"],
    ]);
  });

  it("serves its one kubler.yaml as the default branch's too (no history locally)", async () => {
    expect(await source.readDefaultBranchManifest(project)).toBeNull();
    writeFileSync(join(projectDir, "kubler.yaml"), "version: 1\n");
    expect(await source.readDefaultBranchManifest(project)).toBe("version: 1\n");
    await expect(source.readDefaultBranchManifest({ projectPath: "../.." })).rejects.toThrow(/leads outside/);
  });

  it("answers null and an empty map for what does not exist", async () => {
    expect(await source.readManifest(project)).toBeNull();
    expect(await source.readDirectory(project, SHA, "missing/dir")).toEqual(new Map());
    expect(await source.readManifest({ projectPath: "no/such" })).toBeNull();
  });

  it("refuses a kubler.yaml that is a symbolic link, naming it, without reading its target", async () => {
    symlinkSync(secret, join(projectDir, "kubler.yaml"));
    const error: unknown = await source.readManifest(project).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(ManifestError);
    expect((error as Error).message).toMatch(/^kubler\.yaml in demo\/hello is a symbolic link/);
    expect((error as Error).message).not.toContain("do-not-read");
  });

  it("refuses a manifests file that is a symbolic link, naming it", async () => {
    writeFileSync(join(projectDir, "deploy", "a.yaml"), "a: 1\n");
    symlinkSync(secret, join(projectDir, "deploy", "x.yaml"));
    const refused = source.readDirectory(project, SHA, "deploy");
    await expect(refused).rejects.toThrow(ManifestFilesError);
    await expect(refused).rejects.toThrow(/deploy\/x\.yaml in demo\/hello is a symbolic link/);
    rmSync(join(projectDir, "deploy", "x.yaml"));
    symlinkSync(secret, join(projectDir, "deploy", "x.json"));
    await expect(source.readDirectory(project, SHA, "deploy")).rejects.toThrow(
      /deploy\/x\.json in demo\/hello is a symbolic link/,
    );
  });

  it("refuses a manifests directory, or a directory on its way, that is a symbolic link", async () => {
    const elsewhere = join(base, "elsewhere");
    mkdirSync(elsewhere);
    writeFileSync(join(elsewhere, "credentials.yaml"), "aws_secret_access_key: do-not-read\n");
    symlinkSync(elsewhere, join(projectDir, "linked"));
    symlinkSync(elsewhere, join(projectDir, "deploy", "nested"));

    await expect(source.readDirectory(project, SHA, "linked")).rejects.toThrow(
      /^linked in demo\/hello is a symbolic link/,
    );
    await expect(source.readDirectory(project, SHA, "linked/sub")).rejects.toThrow(ManifestFilesError);
    await expect(source.readDirectory(project, SHA, "deploy/nested/")).rejects.toThrow(
      /^deploy\/nested in demo\/hello is a symbolic link/,
    );
  });

  it("refuses files that are not UTF-8, naming the file and line, rather than reading U+FFFD", async () => {
    writeFileSync(join(projectDir, "kubler.yaml"), Buffer.from("version: 1\n# café\n", "latin1"));
    await expect(source.readManifest(project)).rejects.toThrow(
      new ManifestError("kubler.yaml: not UTF-8 text (line 2): save the file as UTF-8"),
    );
    writeFileSync(join(projectDir, "deploy", "a.yaml"), Buffer.from("data: { greeting: café }\n", "latin1"));
    await expect(source.readDirectory(project, SHA, "deploy")).rejects.toThrow(
      new ManifestFilesError("deploy/a.yaml: not UTF-8 text (line 1): save the file as UTF-8"),
    );
  });

  it("skips what is not a file in the manifests directory, as GitLab's tree lists it as no blob", async () => {
    writeFileSync(join(projectDir, "deploy", "a.yaml"), "a: 1\n");
    mkdirSync(join(projectDir, "deploy", "overlays.yaml"));
    expect([...(await source.readDirectory(project, SHA, "deploy")).keys()]).toEqual(["deploy/a.yaml"]);
  });

  it("refuses a kubler.yaml that is a directory, naming it, instead of failing with EISDIR", async () => {
    mkdirSync(join(projectDir, "kubler.yaml"));
    await expect(source.readManifest(project)).rejects.toThrow(
      new ManifestError("kubler.yaml in demo/hello is not a file"),
    );
  });

  it("holds files to the GitLab source's limits, so what deploys here deploys from GitLab", async () => {
    writeFileSync(join(projectDir, "kubler.yaml"), "");
    truncateSync(join(projectDir, "kubler.yaml"), DEFAULT_MAX_FILE_BYTES + 1);
    await expect(source.readManifest(project)).rejects.toThrow(
      new ManifestError(`kubler.yaml: larger than ${DEFAULT_MAX_FILE_BYTES} bytes`),
    );

    writeFileSync(join(projectDir, "deploy", "big.json"), "");
    truncateSync(join(projectDir, "deploy", "big.json"), DEFAULT_MAX_FILE_BYTES + 1);
    await expect(source.readDirectory(project, SHA, "deploy")).rejects.toThrow(
      new ManifestFilesError(`deploy/big.json: larger than ${DEFAULT_MAX_FILE_BYTES} bytes`),
    );
    rmSync(join(projectDir, "deploy", "big.json"));

    // JSON and YAML files count together, as kubectl reads them together.
    const files = Math.floor(DEFAULT_MAX_TOTAL_BYTES / DEFAULT_MAX_FILE_BYTES) + 1;
    for (let i = 0; i < files; i++) {
      const name = `part-${i}.${i % 2 ? "json" : "yaml"}`;
      writeFileSync(join(projectDir, "deploy", name), "");
      truncateSync(join(projectDir, "deploy", name), DEFAULT_MAX_FILE_BYTES);
    }
    await expect(source.readDirectory(project, SHA, "deploy")).rejects.toThrow(
      new ManifestFilesError(`deploy: the manifest files total more than ${DEFAULT_MAX_TOTAL_BYTES} bytes`),
    );
    rmSync(join(projectDir, "deploy"), { recursive: true });
    mkdirSync(join(projectDir, "deploy"));

    for (let i = 0; i <= DEFAULT_MAX_FILES; i++)
      writeFileSync(join(projectDir, "deploy", `${i}.${i % 2 ? "json" : "yaml"}`), "a: 1\n");
    await expect(source.readDirectory(project, SHA, "deploy")).rejects.toThrow(
      new ManifestFilesError(`deploy: more than ${DEFAULT_MAX_FILES} manifest files (*.yaml, *.yml, *.json)`),
    );
  });

  it("still refuses paths that lead outside the projects directory", async () => {
    await expect(source.readManifest({ projectPath: "../.." })).rejects.toThrow(/leads outside/);
    await expect(source.readDirectory(project, SHA, "../../..")).rejects.toThrow(/leads outside/);
  });
});
