/**
 * Lists on the in-memory Kubernetes API: label and field selectors as the API server parses them,
 * and `limit` + `continue` pagination, through the real `@kubernetes/client-node`.
 */
import * as k8s from "@kubernetes/client-node";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type MemoryKubernetes, startMemoryKubernetes } from "../../shared/local/memory-kubernetes/index.js";
import { matchesSelector, parseLabelSelector } from "../../shared/local/memory-kubernetes/selectors.js";
import { failure } from "../fakes/kubernetes-api.js";

let server: MemoryKubernetes;
let core: k8s.CoreV1Api;
let objects: k8s.KubernetesObjectApi;

beforeAll(async () => {
  server = await startMemoryKubernetes();
  const kc = new k8s.KubeConfig();
  kc.loadFromString(server.kubeconfig);
  core = kc.makeApiClient(k8s.CoreV1Api);
  objects = k8s.KubernetesObjectApi.makeApiClient(kc);
});
afterAll(() => server.close());

describe("label selector parsing", () => {
  const labels = { env: "review", tier: "web", "app.kubernetes.io/managed-by": "kubler" };
  const cases: [string, boolean][] = [
    ["", true],
    ["env=review", true],
    ["env==review", true],
    ["env=prod", false],
    ["env!=prod", true],
    ["missing!=x", true],
    ["env in (review,prod)", true],
    ["env in (prod, staging)", false],
    ["env notin (prod,staging)", true],
    ["missing notin (x)", true],
    ["env notin (review)", false],
    ["tier", true],
    ["missing", false],
    ["!missing", true],
    ["!tier", false],
    ["env=review,tier=web", true],
    ["env=review,tier=db", false],
    ["app.kubernetes.io/managed-by=kubler, env in (review), !missing", true],
    ["  env = review  ", true],
  ];
  it.each(cases)("%j matches: %s", (selector, expected) => {
    expect(matchesSelector(parseLabelSelector(selector), labels)).toBe(expected);
  });

  it.each(["env=", "env=,tier"])("%j parses (an empty value is allowed)", (selector) => {
    expect(() => parseLabelSelector(selector)).not.toThrow();
  });

  it.each([
    "env in review",
    "env in (a",
    "=x",
    "env=a=b",
    "env ~ a",
    "-bad=x",
    `env=${"v".repeat(64)}`,
    "env=a,",
    "a,,b",
  ])("%j is refused as a 400", (selector) => {
    expect(() => parseLabelSelector(selector)).toThrow(
      expect.objectContaining({ code: 400, reason: "BadRequest" }),
    );
  });
});

describe("lists over HTTP", () => {
  beforeAll(async () => {
    const seed: [string, Record<string, string>][] = [
      ["sel-a", { env: "review", tier: "web" }],
      ["sel-b", { env: "review", tier: "db" }],
      ["sel-c", { env: "prod", tier: "web" }],
      ["sel-d", { env: "staging" }],
      ["sel-e", {}],
    ];
    for (const [name, labels] of seed) {
      await core.createNamespace({ body: { metadata: { name, labels: { ...labels, suite: "selectors" } } } });
    }
  });

  const names = async (labelSelector: string, fieldSelector?: string) =>
    (await core.listNamespace({ labelSelector, ...(fieldSelector ? { fieldSelector } : {}) })).items
      .map((n) => n.metadata?.name)
      .filter((name) => name?.startsWith("sel-"));

  it("filters by every selector form", async () => {
    expect(await names("suite=selectors,env=review")).toEqual(["sel-a", "sel-b"]);
    expect(await names("suite=selectors,env==review,tier=web")).toEqual(["sel-a"]);
    expect(await names("suite=selectors,env!=review")).toEqual(["sel-c", "sel-d", "sel-e"]);
    expect(await names("suite=selectors,env in (prod,staging)")).toEqual(["sel-c", "sel-d"]);
    expect(await names("suite=selectors,env notin (review)")).toEqual(["sel-c", "sel-d", "sel-e"]);
    expect(await names("suite=selectors,tier")).toEqual(["sel-a", "sel-b", "sel-c"]);
    expect(await names("suite=selectors,!tier")).toEqual(["sel-d", "sel-e"]);
  });

  it("fieldSelector on metadata.name, and the name label every namespace carries", async () => {
    expect(await names("suite=selectors", "metadata.name=sel-c")).toEqual(["sel-c"]);
    expect(await names("suite=selectors", "metadata.name!=sel-c")).toEqual([
      "sel-a",
      "sel-b",
      "sel-d",
      "sel-e",
    ]);
    expect(await names("kubernetes.io/metadata.name=sel-d")).toEqual(["sel-d"]);
    const bad = await failure(core.listNamespace({ fieldSelector: "spec.nope=x" }));
    expect(bad.code).toBe(400);
    expect(bad.status.message).toContain("field label not supported: spec.nope");
  });

  it("a malformed labelSelector is a 400", async () => {
    const bad = await failure(core.listNamespace({ labelSelector: "env in review" }));
    expect(bad.code).toBe(400);
    expect(bad.status.reason).toBe("BadRequest");
  });

  it("lists one namespace or all of them, namespace then name order, items without apiVersion/kind", async () => {
    for (const ns of ["sel-b", "sel-a"]) {
      for (const name of ["z", "m"]) {
        await core.createNamespacedConfigMap({
          namespace: ns,
          body: { metadata: { name, labels: { suite: "lists" } } },
        });
      }
    }
    const all = await fetch(`${server.url}/api/v1/configmaps?labelSelector=suite%3Dlists`, {
      headers: { authorization: "Bearer memory" },
    });
    const body = (await all.json()) as {
      kind: string;
      metadata: { resourceVersion: string };
      items: Record<string, unknown>[];
    };
    expect(body.kind).toBe("ConfigMapList");
    expect(Number(body.metadata.resourceVersion)).toBeGreaterThan(0);
    expect(
      body.items.map(
        (item) =>
          `${(item.metadata as { namespace: string }).namespace}/${(item.metadata as { name: string }).name}`,
      ),
    ).toEqual(["sel-a/m", "sel-a/z", "sel-b/m", "sel-b/z"]);
    // A real API server's list items carry no apiVersion/kind: callers must not rely on them.
    expect(body.items[0]).not.toHaveProperty("kind");
    const one = await objects.list(
      "v1",
      "ConfigMap",
      "sel-b",
      undefined,
      undefined,
      undefined,
      undefined,
      "suite=lists",
    );
    expect(one.items.map((item) => item.metadata?.name)).toEqual(["m", "z"]);
    expect((await core.listNamespacedConfigMap({ namespace: "no-such-namespace" })).items).toEqual([]);
  });
});

describe("pagination", () => {
  const total = 1234;

  beforeAll(() => {
    // Seeded directly: 1,234 creates over HTTP would only test the loop.
    for (let i = 0; i < total; i++) {
      const name = `page-${String(i).padStart(4, "0")}`;
      server.store.put({
        apiVersion: "v1",
        kind: "Namespace",
        metadata: { name, labels: { suite: "pages" } },
      });
    }
    for (let i = 0; i < 10; i++) {
      server.store.put({
        apiVersion: "v1",
        kind: "Namespace",
        metadata: { name: `page-other-${i}`, labels: { suite: "other" } },
      });
    }
  });

  it("walks 1,234 namespaces with limit + continue: every one once, in order, pages full", async () => {
    const seen: string[] = [];
    const sizes: number[] = [];
    let token: string | undefined;
    let first: k8s.V1NamespaceList | undefined;
    do {
      const page = await core.listNamespace({
        labelSelector: "suite=pages",
        limit: 100,
        ...(token ? { _continue: token } : {}),
      });
      first ??= page;
      sizes.push(page.items.length);
      seen.push(...page.items.map((n) => n.metadata?.name as string));
      token = page.metadata?._continue;
      // The list's resourceVersion is the first page's, as with a real paginated list.
      expect(page.metadata?.resourceVersion).toBe(first.metadata?.resourceVersion);
    } while (token);
    expect(seen).toHaveLength(total);
    expect(new Set(seen).size).toBe(total);
    expect(seen).toEqual([...seen].sort());
    expect(sizes).toEqual([...Array(12).fill(100), 34]);
  });

  it("the last page has no continue token, even when it is exactly full", async () => {
    const page = await core.listNamespace({ labelSelector: "suite=other", limit: 10 });
    expect(page.items).toHaveLength(10);
    expect(page.metadata?._continue).toBeUndefined();
  });

  it("remainingItemCount only without a selector", async () => {
    const unfiltered = await core.listNamespace({ limit: 5 });
    const all = (await core.listNamespace()).items.length;
    expect(unfiltered.metadata?.remainingItemCount).toBe(all - 5);
    const filtered = await core.listNamespace({ labelSelector: "suite=pages", limit: 5 });
    expect(filtered.metadata?.remainingItemCount).toBeUndefined();
  });

  it("the generic object API pages too", async () => {
    const page = await objects.list(
      "v1",
      "Namespace",
      undefined,
      undefined,
      undefined,
      undefined,
      undefined,
      "suite=pages",
      1000,
    );
    expect(page.items).toHaveLength(1000);
    const rest = await objects.list(
      "v1",
      "Namespace",
      undefined,
      undefined,
      undefined,
      undefined,
      undefined,
      "suite=pages",
      1000,
      page.metadata?._continue,
    );
    expect(rest.items).toHaveLength(total - 1000);
  });

  it("pages read the live store: a namespace created after the cursor shows up on a later page", async () => {
    const first = await core.listNamespace({ labelSelector: "suite=pages", limit: 2 });
    server.store.put({
      apiVersion: "v1",
      kind: "Namespace",
      metadata: { name: "page-9999", labels: { suite: "pages" } },
    });
    let token = first.metadata?._continue;
    let last: string | undefined;
    while (token) {
      const page = await core.listNamespace({ labelSelector: "suite=pages", limit: 500, _continue: token });
      last = page.items.at(-1)?.metadata?.name;
      token = page.metadata?._continue;
    }
    expect(last).toBe("page-9999");
  });

  it("a continue token it did not issue is a 400", async () => {
    const bad = await failure(core.listNamespace({ limit: 10, _continue: "not-a-token" }));
    expect(bad.code).toBe(400);
    expect(bad.status.message).toContain("continue key is not valid");
  });
});
