/**
 * The local stand-in for a repository (DESIGN §10): `<projectsDir>/<project path>/kubler.yaml` and the
 * manifests directory it names. There is no history here, so every SHA reads the same files, and the
 * default branch (where plan-steps takes the environment rules from) is that one directory too.
 */
import type { Stats } from "node:fs";
import { lstat, readdir, readFile } from "node:fs/promises";
import { join, relative, resolve, sep } from "node:path";
import {
  DEFAULT_MAX_FILE_BYTES,
  DEFAULT_MAX_FILES,
  DEFAULT_MAX_TOTAL_BYTES,
} from "../adapters/gitlab-manifest-source.js";
import {
  isManifestFileName,
  MANIFEST_FILE_NAMES,
  ManifestFilesError,
  utf8Text,
} from "../domain/deploy-manifests.js";
import { MANIFEST_FILE, ManifestError } from "../domain/kubler-manifest.js";
import type { ManifestSource } from "../ports.js";

/**
 * Symbolic links inside a project are refused, as GitlabManifestSource refuses them: one would read a
 * file from anywhere on this machine (~/.aws/credentials) and apply it or quote it in an error. The
 * project directory itself may be a link; the operator lays out the projects directory, the project
 * its contents. Files are held to GitLabManifestSource's limits, and what is not a file (a directory
 * named `x.yaml` or `x.json`) is skipped as its tree skips what is no blob: a project that deploys
 * here deploys from GitLab.
 *
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
    const root = this.#project(project.projectPath);
    const stats = await lstatOrNull(join(root, MANIFEST_FILE));
    if (stats === null) return null;
    if (stats.isSymbolicLink()) throw new ManifestError(symlinkRefusal(MANIFEST_FILE, project.projectPath));
    if (!stats.isFile()) throw new ManifestError(`${MANIFEST_FILE} in ${project.projectPath} is not a file`);
    if (stats.size > DEFAULT_MAX_FILE_BYTES) {
      throw new ManifestError(`${MANIFEST_FILE}: larger than ${DEFAULT_MAX_FILE_BYTES} bytes`);
    }
    const decoded = utf8Text(await readFile(join(root, MANIFEST_FILE)));
    if ("line" in decoded) throw new ManifestError(notUtf8(MANIFEST_FILE, decoded.line));
    return decoded.text;
  }

  /** The directory is every commit and the default branch alike: its one kubler.yaml. */
  readDefaultBranchManifest(project: { projectPath: string }): Promise<string | null> {
    return this.readManifest(project);
  }

  async readDirectory(
    project: { projectPath: string },
    _sha: string,
    directory: string,
  ): Promise<ReadonlyMap<string, string>> {
    const root = this.#project(project.projectPath);
    const dir = this.#inside(root, directory);
    // Every step below the project, so neither "deploy" nor "deploy/base" can lead elsewhere.
    let step = root;
    for (const part of relative(root, dir).split(sep).filter(Boolean)) {
      step = join(step, part);
      const stats = await lstatOrNull(step);
      if (stats === null) return new Map();
      if (stats.isSymbolicLink())
        throw new ManifestFilesError(symlinkRefusal(toPosix(root, step), project.projectPath));
    }
    const entries = await readdir(dir, { withFileTypes: true }).catch((error: NodeJS.ErrnoException) => {
      if (error.code === "ENOENT") return [];
      throw error;
    });
    const manifests = entries.filter((e) => isManifestFileName(e.name)).sort(byName);
    const link = manifests.find((entry) => entry.isSymbolicLink());
    if (link) {
      throw new ManifestFilesError(symlinkRefusal(toPosix(root, join(dir, link.name)), project.projectPath));
    }
    const where = toPosix(root, dir) || ".";
    const regular = manifests.filter((entry) => entry.isFile());
    if (regular.length > DEFAULT_MAX_FILES) {
      throw new ManifestFilesError(
        `${where}: more than ${DEFAULT_MAX_FILES} manifest files (${MANIFEST_FILE_NAMES})`,
      );
    }
    const files = new Map<string, string>();
    let totalBytes = 0;
    for (const entry of regular) {
      const path = toPosix(root, join(dir, entry.name));
      const { size } = await lstat(join(dir, entry.name));
      if (size > DEFAULT_MAX_FILE_BYTES) {
        throw new ManifestFilesError(`${path}: larger than ${DEFAULT_MAX_FILE_BYTES} bytes`);
      }
      totalBytes += size;
      if (totalBytes > DEFAULT_MAX_TOTAL_BYTES) {
        throw new ManifestFilesError(
          `${where}: the manifest files total more than ${DEFAULT_MAX_TOTAL_BYTES} bytes`,
        );
      }
      const decoded = utf8Text(await readFile(join(dir, entry.name)));
      if ("line" in decoded) throw new ManifestFilesError(notUtf8(path, decoded.line));
      files.set(path, decoded.text);
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

/** The entry itself, a link not followed; null when there is none. */
async function lstatOrNull(path: string): Promise<Stats | null> {
  try {
    return await lstat(path);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === "ENOENT") return null;
    throw error;
  }
}

function symlinkRefusal(path: string, projectPath: string): string {
  return `${path} in ${projectPath} is a symbolic link; commit the file itself (links are refused so they cannot read files outside the project)`;
}

function notUtf8(path: string, line: number): string {
  return `${path}: not UTF-8 text (line ${line}): save the file as UTF-8`;
}

function toPosix(root: string, path: string): string {
  return relative(root, path).split(sep).join("/");
}

function byName(left: { name: string }, right: { name: string }): number {
  return left.name < right.name ? -1 : left.name > right.name ? 1 : 0;
}
