/** The cluster `kubler environments` and `kubler sweep` act on, chosen and checked like `npm start`'s. */
import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { commandCluster, listEnvironments, sweep } from "../../cli/environment-commands.js";
import { EMBEDDED_KUBECONFIG } from "../../cli/local-environments.js";
import { loadLocalConfig } from "../../shared/config.js";
import { STOP_HOLD_NAME } from "../../shared/domain/deploy-manifests.js";
import { environmentNamespace } from "../../shared/domain/environment.js";
import { ConfigError } from "../../shared/errors.js";
import { type MemoryKubernetes, startMemoryKubernetes } from "../../shared/local/memory-kubernetes/index.js";
import { STOP_HOLD_FINALIZER } from "../../shared/services/stop-hold.js";
import { environmentState } from "../fakes/managed-environment.js";

describe("commandCluster", () => {
  it("names a bad KUBECONFIG in plain words, as npm start does", () => {
    const dir = mkdtempSync(join(tmpdir(), "kubler-commands-"));
    const empty = join(dir, "empty");
    writeFileSync(empty, "\n");
    const config = { ...loadLocalConfig({ KUBLER_DATA_DIR: dir }), kubeconfig: empty };
    expect(() => commandCluster(config)).toThrow(ConfigError);
    expect(() => commandCluster(config)).toThrow(`KUBECONFIG file ${empty} is empty`);
  });

  it("names KUBECONFIG's server when it does not answer, and what to check", async () => {
    const dir = mkdtempSync(join(tmpdir(), "kubler-commands-"));
    const dead = join(dir, "kubeconfig");
    writeFileSync(
      dead,
      [
        "apiVersion: v1",
        "kind: Config",
        "clusters: [{ name: prod, cluster: { server: 'http://127.0.0.1:1', insecure-skip-tls-verify: true } }]",
        "users: [{ name: me, user: { token: t } }]",
        "contexts: [{ name: prod, context: { cluster: prod, user: me } }]",
        "current-context: prod",
        "",
      ].join("\n"),
    );
    const config = { ...loadLocalConfig({ KUBLER_DATA_DIR: dir }), kubeconfig: dead };
    const listed = listEnvironments({ config, token: null, signingKey: null, print: () => undefined }, false);
    await expect(listed).rejects.toThrow(
      "the cluster at http://127.0.0.1:1 (from KUBECONFIG) does not answer (",
    );
    await expect(listed).rejects.toThrow("check KUBECONFIG's current context");
  });
});

describe("kubler environments", () => {
  let kubernetes: MemoryKubernetes;
  let dir: string;
  const HOUR = 3_600_000;

  beforeAll(async () => {
    kubernetes = await startMemoryKubernetes();
    dir = mkdtempSync(join(tmpdir(), "kubler-environments-"));
    writeFileSync(join(dir, EMBEDDED_KUBECONFIG), kubernetes.kubeconfig);
  });
  afterAll(() => kubernetes.close());

  function seed(name: string, createdAgoMs: number, expiresInMs: number | null): void {
    const now = Date.now();
    const namespace = environmentNamespace(
      environmentState({
        namespace: name,
        gitlab: { instance: "https://gitlab.example.com", projectId: 15, projectPath: "group/app" },
        environment: `review/${name}`,
        ref: name,
        ttl: expiresInMs === null ? "never" : "72h",
        expiresAt: expiresInMs === null ? null : new Date(now + expiresInMs),
        deployedAt: new Date(now - createdAgoMs),
        requestedAt: new Date(now - createdAgoMs),
      }),
    );
    namespace.metadata.creationTimestamp = new Date(now - createdAgoMs).toISOString();
    kubernetes.store.put(namespace);
  }

  async function table(): Promise<Map<string, string>> {
    const lines: string[] = [];
    const config = loadLocalConfig({ KUBLER_DATA_DIR: dir });
    expect(
      await listEnvironments({ config, token: null, signingKey: null, print: (l) => lines.push(l) }, false),
    ).toBe(0);
    return new Map(lines.slice(1).map((line) => [line.split(" ")[0] as string, line]));
  }

  it("shows a fresh 72h TTL as 3 days away, and what is left and how old with two units, not rounded down", async () => {
    seed("fresh", 0, 72 * HOUR);
    seed("nearly-three-days", 0, 71 * HOUR);
    seed("ninety-minutes", 50 * HOUR, 1.5 * HOUR);
    seed("a-day-and-an-hour", 5 * 60_000, 25 * HOUR);
    seed("forever", 30_000, null);
    const rows = await table();
    expect(rows.get("fresh")).toMatch(/ 0s +\S+Z \(in 3d\)$/);
    expect(rows.get("nearly-three-days")).toMatch(/\(in 2d 23h\)$/);
    expect(rows.get("ninety-minutes")).toMatch(/ 2d 2h +\S+Z \(in 1h 30m\)$/);
    expect(rows.get("a-day-and-an-hour")).toMatch(/ 5m +\S+Z \(in 1d 1h\)$/);
    expect(rows.get("forever")).toMatch(/ 30s +never$/);
  });

  it("prints no control character a namespace's annotations carry", async () => {
    seed("escaped", 0, HOUR);
    const namespace = kubernetes.store.get("v1", "Namespace", undefined, "escaped");
    if (!namespace?.metadata.annotations) throw new Error("not seeded");
    namespace.metadata.annotations["kubler.dev/project-path"] = "group/\u001b[2Japp";
    namespace.metadata.annotations["kubler.dev/environment-name"] = "review/\u202eexe.x";
    kubernetes.store.put(namespace);
    const row = (await table()).get("escaped") ?? "";
    expect(row).not.toMatch(/[\p{Cc}\u202a-\u202e\u2066-\u2069]/u);
    expect(row).toContain("group/\\x1b[2Japp");
    expect(row).toContain("review/\\u202eexe.x");
  });

  it("--json escapes what JSON.stringify leaves raw (U+009B CSI, U+202E), parsing back to the same text", async () => {
    seed("escaped-json", 0, HOUR);
    const namespace = kubernetes.store.get("v1", "Namespace", undefined, "escaped-json");
    if (!namespace?.metadata.annotations) throw new Error("not seeded");
    namespace.metadata.annotations["kubler.dev/gitlab-instance"] = "https://gitlab.example.com\u009b2J";
    namespace.metadata.annotations["kubler.dev/environment-name"] = "review/\u202eexe.x";
    kubernetes.store.put(namespace);
    const lines: string[] = [];
    const config = loadLocalConfig({ KUBLER_DATA_DIR: dir });
    await listEnvironments({ config, token: null, signingKey: null, print: (l) => lines.push(l) }, true);
    const line = lines.find((l) => l.includes('"escaped-json"')) ?? "";
    expect(line).not.toMatch(/[\p{Cc}\u202a-\u202e\u2066-\u2069]/u);
    expect(JSON.parse(line)).toMatchObject({
      instance: "https://gitlab.example.com\u009b2J",
      environment: "review/\u202eexe.x",
    });
  });

  it("kubler sweep says which stop holds it let go, as its --json and audit line do", async () => {
    seed("held", 2 * HOUR, null);
    const namespace = kubernetes.store.get("v1", "Namespace", undefined, "held");
    if (!namespace) throw new Error("not seeded");
    // A stop dead-lettered an hour ago: its namespace Terminating, held by the stop's ConfigMap.
    namespace.metadata.deletionTimestamp = new Date(Date.now() - HOUR).toISOString();
    kubernetes.store.put(namespace);
    kubernetes.store.put({
      apiVersion: "v1",
      kind: "ConfigMap",
      metadata: { name: STOP_HOLD_NAME, namespace: "held", finalizers: [STOP_HOLD_FINALIZER] },
    });
    const lines: string[] = [];
    const config = loadLocalConfig({ KUBLER_DATA_DIR: dir });
    await sweep(
      { config, token: null, signingKey: null, print: (l) => lines.push(l) },
      { dryRun: false, json: false },
    );
    const printed = lines.join("\n");
    expect(printed).toMatch(/stop holds? let go/i);
    expect(printed).toMatch(/^ {2}held {2}.*told now/m);
  });

  it("says how long ago an environment still listed expired: minutes is the sweep's pace, hours a sweep that does not run", async () => {
    seed("overdue", 80 * HOUR, -2.5 * HOUR);
    expect((await table()).get("overdue")).toMatch(/\S+Z \(expired 2h 30m ago\)$/);
  });
});
