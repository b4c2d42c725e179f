/**
 * The commands, names and links README.md and docs/ show a newcomer stay true as the code moves: a
 * renamed flag, script, payload, variable, context key or file would otherwise leave the docs
 * telling people to type something that no longer works, and no other test would notice.
 */
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join, relative } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { CONTEXT } from "../../infra/config.js";
import { ENV, loadBuildConfig } from "../../shared/config.js";
import { environmentNamespace, readEnvironment } from "../../shared/domain/environment.js";
import { environmentState } from "../fakes/managed-environment.js";
import { isolatedKublerEnv, ROOT, runKubler } from "./kubler-process.js";

/** What a newcomer reads: README, docs/ (aws/ included), and the sample policy's comments. */
const DOCS = ["README.md", ...markdownUnder("docs"), "examples/policy.yaml"];

function markdownUnder(dir: string): string[] {
  return readdirSync(join(ROOT, dir), { withFileTypes: true, recursive: true })
    .filter((entry) => entry.isFile() && entry.name.endsWith(".md"))
    .map((entry) => relative(ROOT, join(entry.parentPath, entry.name)));
}

const read = (path: string) => readFileSync(join(ROOT, path), "utf8");

/**
 * The command lines of a doc: each line of its code blocks (a trailing `\` joins the next), and each
 * inline code span. In the YAML file, its comment lines.
 */
function commandTexts(path: string): string[] {
  const text = read(path);
  if (path.endsWith(".yaml")) return joinContinued(text.split("\n").map((line) => line.replace(/^\s*#/, "")));
  const blocks = [...text.matchAll(/^ *```[^\n]*\n([\s\S]*?)^ *```/gm)].map((match) => match[1] ?? "");
  const prose = text.replace(/^ *```[^\n]*\n[\s\S]*?^ *```/gm, "");
  const spans = [...prose.matchAll(/`([^`\n]+)`/g)].map((match) => match[1] ?? "");
  return [...blocks.flatMap((block) => joinContinued(block.split("\n"))), ...spans];
}

function joinContinued(lines: string[]): string[] {
  const joined: string[] = [];
  let pending = "";
  for (const line of lines) {
    if (line.trimEnd().endsWith("\\")) pending += `${line.trimEnd().slice(0, -1)} `;
    else {
      joined.push(pending + line);
      pending = "";
    }
  }
  return joined;
}

/** `kubler start` is `npm start` in the docs, with no options. */
const COMMANDS = ["send", "deploy", "environments", "credentials", "sweep", "stop", "audit"];

interface DocumentedCommand {
  doc: string;
  command: string;
  /** The words after the command, up to a comment, a pipe or the next command of the line. */
  args: string[];
}

/** Every `kubler <command> …` and `npm run send -- …` the docs show. */
function documentedCommands(): DocumentedCommand[] {
  const found: DocumentedCommand[] = [];
  const pattern = new RegExp(
    `(?:\\bkubler|npm run) (${COMMANDS.join("|")})\\b(?: --(?= ))?([^#|;&)\`]*)`,
    "g",
  );
  for (const doc of DOCS) {
    for (const text of commandTexts(doc)) {
      for (const match of text.matchAll(pattern)) {
        const args = (match[2] ?? "").trim().split(/\s+/).filter(Boolean);
        found.push({ doc, command: match[1] ?? "", args });
      }
    }
  }
  return found;
}

const commands = documentedCommands();
const helpDir = mkdtempSync(join(tmpdir(), "kubler-docs-"));
const helpEnv = isolatedKublerEnv(helpDir);
afterAll(() => rmSync(helpDir, { recursive: true, force: true }));

describe("the kubler commands the docs show", () => {
  it("finds the walkthroughs' commands (this test reads what it checks)", () => {
    const shown = new Set(commands.map(({ command }) => command));
    expect([...shown].sort()).toEqual([...COMMANDS].sort());
    expect(commands.length).toBeGreaterThan(40);
  });

  it.each(COMMANDS)(
    "kubler %s: every option the docs give it is in its --help",
    async (command) => {
      const { code, stdout } = await runKubler(helpEnv, command, "--help");
      expect(code).toBe(0);
      const offered = new Set([...(stdout.match(/--[a-z][a-z-]*/g) ?? []), "--help"]);
      const missing = commands
        .filter((shown) => shown.command === command)
        .flatMap(({ doc, args }) =>
          args
            .map((arg) => arg.replace(/=.*/, ""))
            .filter((arg) => /^--[a-z]/.test(arg) && !offered.has(arg))
            .map((arg) => `${doc}: ${arg}`),
        );
      expect(missing).toEqual([]);
    },
    30_000,
  );

  it("sends only payloads that exist: a GitLab fixture of `send --help`, or a file", async () => {
    const { stdout } = await runKubler(helpEnv, "send", "--help");
    const events = new Set((/events: (.*)/.exec(stdout)?.[1] ?? "").split(", "));
    expect(events.has("merge_request")).toBe(true);
    const unknown = commands
      .filter(({ command, args }) => command === "send" && args[0] !== undefined && !args[0].startsWith("-"))
      .map(({ doc, args }) => ({ doc, payload: args[0] ?? "" }))
      .filter(({ payload }) => !events.has(payload) && !existsSync(join(ROOT, payload)))
      .map(({ doc, payload }) => `${doc}: ${payload}`);
    expect(unknown).toEqual([]);
  }, 30_000);

  it("leaves out of `send --help` exactly the partial payloads README says it leaves out", async () => {
    const { stdout } = await runKubler(helpEnv, "send", "--help");
    const events = (/events: (.*)/.exec(stdout)?.[1] ?? "").split(", ");
    const fixtures = readdirSync(join(ROOT, "test/fixtures/gitlab/webhooks"))
      .filter((name) => name.endsWith(".json"))
      .map((name) => name.replace(/\.json$/, ""));
    const partial = fixtures.filter((name) => name.startsWith("merge_request_partial_"));
    expect(read("README.md")).toContain("The four `merge_request_partial_*` there are left out");
    expect(partial).toHaveLength(4);
    expect(events.sort()).toEqual(fixtures.filter((name) => !partial.includes(name)).sort());
  }, 30_000);

  it("runs only saved queries kubler audit has", async () => {
    const { stdout } = await runKubler(helpEnv, "audit", "--help");
    const saved = (/--query NAME\s+a saved query: (.*)/.exec(stdout)?.[1] ?? "").split(", ");
    expect(saved).toContain("rejected-webhooks");
    const unknown = commands
      .filter(({ command, args }) => command === "audit" && args.includes("--query"))
      .map(({ doc, args }) => ({ doc, query: args[args.indexOf("--query") + 1] ?? "" }))
      .filter(({ query }) => !query.startsWith("<") && !saved.includes(query))
      .map(({ doc, query }) => `${doc}: ${query}`);
    expect(unknown).toEqual([]);
  }, 30_000);

  it("runs only npm scripts package.json has", () => {
    const scripts = Object.keys(JSON.parse(read("package.json")).scripts as Record<string, string>);
    const shown = DOCS.flatMap((doc) =>
      commandTexts(doc).flatMap((text) =>
        [...text.matchAll(/\bnpm run ([a-z][\w:-]*)/g)].map((m) => `${doc}: ${m[1]}`),
      ),
    );
    expect(shown.length).toBeGreaterThan(5);
    expect(shown.filter((entry) => !scripts.includes(entry.split(": ")[1] ?? ""))).toEqual([]);
  });
});

describe("what the docs' jq reads", () => {
  /**
   * The fields a doc's jq program takes from `kubler environments --json`: its `.field` paths and the
   * keys of its object shorthand (`{namespace, status}`). A renamed field would make jq print null,
   * not fail, so nobody following the runbook would notice.
   */
  function environmentsJqFields(): string[] {
    return DOCS.flatMap((doc) =>
      [...read(doc).matchAll(/kubler environments --json \| jq[^']*'([^']*)'/g)].flatMap((match) => {
        const program = (match[1] ?? "").replace(/"(?:[^"\\]|\\.)*"/g, '""');
        const paths = [...program.matchAll(/(?<![\w$])\.([A-Za-z_]\w*)/g)];
        const shorthand = [...program.matchAll(/[{,]\s*([A-Za-z_]\w*)\s*(?=[,}])/g)];
        return [...paths, ...shorthand].map((field) => `${doc}: ${field[1]}`);
      }),
    );
  }

  it("takes from `kubler environments --json` only fields it prints", () => {
    const gitlab = { instance: "https://gitlab.example.com", projectId: 7, projectPath: "group/app" };
    const found = readEnvironment(
      environmentNamespace(environmentState({ namespace: "ns", gitlab, environment: "review/x" })),
    );
    expect(found.kind).toBe("managed");
    // What the command prints: JSON.stringify of the environment read (cli/environment-commands.ts).
    const printed = Object.keys(
      JSON.parse(JSON.stringify(found.kind === "managed" ? found.environment : {})),
    );
    const fields = environmentsJqFields();
    expect(fields.length).toBeGreaterThan(10);
    expect(fields.filter((entry) => !printed.includes(entry.split(": ")[1] ?? ""))).toEqual([]);
  });
});

describe("the names the docs give", () => {
  const readme = read("README.md");

  it("documents every variable Kubler reads (Lambda's own AWS_LAMBDA_FUNCTION_NAME aside)", () => {
    const undocumented = Object.values(ENV).filter(
      (name) => name !== ENV.LAMBDA_FUNCTION_NAME && !readme.includes(`\`${name}\``),
    );
    expect(undocumented).toEqual([]);
  });

  it("names only KUBLER_* variables the code reads (the CI job's own KUBLER_URL and KUBLER_ID_TOKEN aside)", () => {
    const code = ["shared", "cli", "functions", "infra"]
      .flatMap((dir) =>
        readdirSync(join(ROOT, dir), { withFileTypes: true, recursive: true })
          .filter((entry) => entry.isFile() && entry.name.endsWith(".ts"))
          .map((entry) => readFileSync(join(entry.parentPath, entry.name), "utf8")),
      )
      .join("\n");
    const variables = (text: string) => new Set(text.match(/\bKUBLER_[A-Z0-9_]*[A-Z0-9]\b/g) ?? []);
    const inCode = variables(code);
    const ciJobs = ["KUBLER_URL", "KUBLER_ID_TOKEN"];
    const named = [...variables(DOCS.map(read).join("\n"))];
    expect(named.filter((name) => !inCode.has(name) && !ciJobs.includes(name))).toEqual([]);
  });

  it("has the build Secrets created where build Jobs look for them by default", () => {
    const { namespace, gitSecret, registrySecret } = loadBuildConfig({});
    expect(readme).toContain(`kubectl create namespace ${namespace}\``);
    expect(readme).toContain(
      `kubectl -n ${namespace} create secret generic ${gitSecret} --from-literal=token=`,
    );
    expect(readme).toContain(`kubectl -n ${namespace} create secret docker-registry ${registrySecret} `);
  });

  it("lists exactly the stack's context keys in Deploy to AWS's parameters", () => {
    const table = [...readme.matchAll(/^\| `(kubler:[A-Za-z]+)` \|/gm)].map((match) => match[1]);
    expect(table.sort()).toEqual(Object.values(CONTEXT).sort());
  });

  it("links only to files that exist", () => {
    const broken = DOCS.filter((doc) => doc.endsWith(".md")).flatMap((doc) =>
      [...read(doc).matchAll(/\]\(([^)#\s]+)(?:#[^)]*)?\)/g)]
        .map((match) => match[1] ?? "")
        .filter((target) => !/^[a-z]+:/.test(target))
        .filter((target) => !existsSync(join(ROOT, dirname(doc), target)))
        .map((target) => `${doc}: ${target}`),
    );
    expect(broken).toEqual([]);
  });
});
