/**
 * The local stand-in for a repository (DESIGN §10): `<projectsDir>/<project path>/kubler.yaml` and the
 * manifests directory it names. There is no history here, so every SHA reads the same files.
 */
import { readdir, readFile } from "node:fs/promises";
import { join, relative, resolve, sep } from "node:path";
import { MANIFEST_FILE } from "../domain/kubler-manifest.js";
import type { ManifestSource } from "../ports.js";

const YAML_FILE = /\.ya?ml$/;

/**
 * @example
 * const source = new DirectoryManifestSource("examples/projects");
 * await source.readManifest({ projectId: 1, projectPath: "demo/hello" }, sha); // examples/projects/demo/hello/kubler.yaml
 */
export class DirectoryManifestSource implements ManifestSource {
  readonly #root: string;

  constructor(projectsDir: string) {
    this.#root = resolve(projectsDir);
  }

  async readManifest(project: { projectPath: string }): Promise<string | null> {
    return readFile(join(this.#project(project.projectPath), MANIFEST_FILE), "utf8").catch(
      (error: NodeJS.ErrnoException) => {
        if (error.code === "ENOENT") return null;
        throw error;
      },
    );
  }

  async readDirectory(
    project: { projectPath: string },
    _sha: string,
    directory: string,
  ): Promise<ReadonlyMap<string, string>> {
    const root = this.#project(project.projectPath);
    const dir = this.#inside(root, directory);
    const names = await readdir(dir).catch((error: NodeJS.ErrnoException) => {
      if (error.code === "ENOENT") return [];
      throw error;
    });
    const files = new Map<string, string>();
    for (const name of names.filter((n) => YAML_FILE.test(n)).sort()) {
      files.set(
        relative(root, join(dir, name)).split(sep).join("/"),
        await readFile(join(dir, name), "utf8"),
      );
    }
    return files;
  }

  #project(projectPath: string): string {
    return this.#inside(this.#root, projectPath);
  }

  /** A project path or manifests directory from an event must never lead outside its root. */
  #inside(root: string, path: string): string {
    const full = resolve(root, path);
    if (full !== root && !full.startsWith(`${root}${sep}`)) {
      throw new Error(`${JSON.stringify(path)} leads outside ${root}`);
    }
    return full;
  }
}
