/**
 * `GitlabManifestSource.readDefaultBranchManifest` over HTTP against the fake GitLab
 * (test/fakes/gitlab-server.ts): kubler.yaml at `ref=HEAD` (the default branch, where plan-steps
 * takes the environment rules from), reused for a minute per project unless asked afresh.
 */
import { afterAll, beforeAll, beforeEach, describe, expect, it } from "vitest";
import {
  DEFAULT_BRANCH_CACHE_SECONDS,
  GitlabManifestSource,
} from "../../shared/adapters/gitlab-manifest-source.js";
import { ManifestError } from "../../shared/domain/kubler-manifest.js";
import { ConfigError } from "../../shared/errors.js";
import { type FakeGitlab, startFakeGitlab } from "../fakes/gitlab-server.js";
import { FixedClock } from "../fakes/index.js";

const TOKEN = "glpat-default-branch-0123456789";
const PROJECT = { projectId: 15, projectPath: "group/app" };
const OTHER = { projectId: 16, projectPath: "group/other" };
const MAIN = "1".repeat(40);
const MERGED = "2".repeat(40);
const BRANCH = "3".repeat(40);
const ON_MAIN = "version: 1\n# main\n";
const ON_BRANCH = "version: 1\n# a branch's own\n";

let gitlab: FakeGitlab;
let clock: FixedClock;
let source: GitlabManifestSource;

beforeAll(async () => {
  gitlab = await startFakeGitlab({ token: TOKEN });
  gitlab.commit(PROJECT.projectId, MAIN, { "kubler.yaml": ON_MAIN }); // the first commit: HEAD
  gitlab.commit(PROJECT.projectId, BRANCH, { "kubler.yaml": ON_BRANCH });
  gitlab.commit(PROJECT.projectId, MERGED, { "kubler.yaml": `${ON_MAIN}# merged\n` });
});

afterAll(() => gitlab.close());

beforeEach(() => {
  gitlab.head(PROJECT.projectId, MAIN);
  gitlab.requests.length = 0;
  clock = new FixedClock();
  source = new GitlabManifestSource({ baseUrl: gitlab.url, token: async () => TOKEN, clock, maxAttempts: 1 });
});

const fileReads = () =>
  gitlab.requests.map((r) => `${r.path.replace(/^\/projects\/(\d+)\/.*$/, "$1")} ref=${r.query.get("ref")}`);

describe("GitlabManifestSource.readDefaultBranchManifest", () => {
  it("reads kubler.yaml at ref=HEAD, the default branch, not at any commit of the event", async () => {
    expect(await source.readDefaultBranchManifest(PROJECT)).toBe(ON_MAIN);
    expect(gitlab.requests).toEqual([
      expect.objectContaining({
        method: "GET",
        path: "/projects/15/repository/files/kubler.yaml/raw",
        token: TOKEN,
      }),
    ]);
    expect(fileReads()).toEqual(["15 ref=HEAD"]);
    // The commit's own file is still read at the commit.
    expect(await source.readManifest(PROJECT, BRANCH)).toBe(ON_BRANCH);
  });

  it("reads a project's default branch once a minute, a burst of events sharing the read", async () => {
    const burst = await Promise.all([
      source.readDefaultBranchManifest(PROJECT),
      source.readDefaultBranchManifest(PROJECT),
    ]);
    expect(burst).toEqual([ON_MAIN, ON_MAIN]);
    gitlab.head(PROJECT.projectId, MERGED); // a merge: the next minute still has the old rules
    clock.advance(DEFAULT_BRANCH_CACHE_SECONDS * 1000 - 1);
    expect(await source.readDefaultBranchManifest(PROJECT)).toBe(ON_MAIN);
    expect(fileReads()).toEqual(["15 ref=HEAD"]);
    clock.advance(1);
    expect(await source.readDefaultBranchManifest(PROJECT)).toBe(`${ON_MAIN}# merged\n`);
    expect(fileReads()).toEqual(["15 ref=HEAD", "15 ref=HEAD"]);
  });

  it("reads afresh when asked (a push), and keeps what it read for the events after", async () => {
    expect(await source.readDefaultBranchManifest(PROJECT)).toBe(ON_MAIN);
    gitlab.head(PROJECT.projectId, MERGED);
    expect(await source.readDefaultBranchManifest(PROJECT, { fresh: true })).toBe(`${ON_MAIN}# merged\n`);
    expect(await source.readDefaultBranchManifest(PROJECT)).toBe(`${ON_MAIN}# merged\n`);
    expect(fileReads()).toEqual(["15 ref=HEAD", "15 ref=HEAD"]);
  });

  it("keeps each project's default branch apart", async () => {
    gitlab.commit(OTHER.projectId, "4".repeat(40), { "README.md": "no kubler.yaml" });
    expect(await source.readDefaultBranchManifest(OTHER)).toBeNull();
    expect(await source.readDefaultBranchManifest(PROJECT)).toBe(ON_MAIN);
    expect(await source.readDefaultBranchManifest(OTHER)).toBeNull();
    expect(fileReads()).toEqual(["16 ref=HEAD", "15 ref=HEAD"]);
  });

  it("is null for a default branch without kubler.yaml, or a repository without one", async () => {
    gitlab.head(PROJECT.projectId, null);
    expect(await source.readDefaultBranchManifest(PROJECT)).toBeNull();
  });

  it("keeps no failure: the next event reads again", async () => {
    const refused = new GitlabManifestSource({
      baseUrl: gitlab.url,
      token: async () => "glpat-WRONG",
      clock,
      maxAttempts: 1,
    });
    await expect(refused.readDefaultBranchManifest(PROJECT)).rejects.toThrow(ConfigError);
    await expect(refused.readDefaultBranchManifest(PROJECT)).rejects.toThrow(/GITLAB_API_TOKEN/);
    expect(fileReads()).toEqual(["15 ref=HEAD", "15 ref=HEAD"]);
  });

  it("refuses an oversized kubler.yaml on the default branch, naming where it was read", async () => {
    const small = new GitlabManifestSource({
      baseUrl: gitlab.url,
      token: async () => TOKEN,
      clock,
      maxFileBytes: 8,
    });
    const error = await small.readDefaultBranchManifest(PROJECT).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(ManifestError);
    expect((error as Error).message).toBe("kubler.yaml: larger than 8 bytes at the default branch (HEAD)");
  });
});
