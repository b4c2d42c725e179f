import { describe, expect, it } from "vitest";
import {
  DEPLOYER_VERBS,
  ManifestFilesError,
  parseManifestFiles,
  renderManifests,
  repositoryOf,
  roleRulesFor,
} from "../../shared/domain/deploy-manifests.js";
import { deploymentRollout } from "../../shared/domain/rollout.js";

const DEPLOYMENT = `apiVersion: apps/v1
kind: Deployment
metadata: { name: web, namespace: somewhere-else, labels: { app: web } }
spec:
  replicas: 2
  selector: { matchLabels: { app: web } }
  template:
    metadata: { labels: { app: web } }
    spec:
      initContainers: [{ name: migrate, image: "registry.example.com/group/app:{sha}" }]
      containers:
        - { name: web, image: "registry.example.com/group/app:latest" }
        - { name: proxy, image: "nginx:1.27" }
`;
const SERVICE_AND_CONFIG = `apiVersion: v1
kind: Service
metadata: { name: web }
spec: { selector: { app: web }, ports: [{ port: 80 }] }
---
apiVersion: v1
kind: ConfigMap
metadata: { name: settings }
data: { LOG_LEVEL: info }
`;
const files = new Map([
  ["deploy/web.yaml", DEPLOYMENT],
  ["deploy/service.yaml", SERVICE_AND_CONFIG],
]);
const SHA = "da1560886d4f094c3e6c9ef40349f7d38b5d27d7";

interface PodSpec {
  containers?: { image: string }[];
  initContainers?: { image: string }[];
  imagePullSecrets?: unknown;
}
const podSpec = (object: unknown) => (object as { spec: { template: { spec: PodSpec } } }).spec.template.spec;
const DIGEST = `sha256:${"ab".repeat(32)}`;

describe("parseManifestFiles", () => {
  it("reads every document, in path order", () => {
    expect(parseManifestFiles(files).map((o) => `${o.kind}/${o.metadata.name}`)).toEqual([
      "Service/web",
      "ConfigMap/settings",
      "Deployment/web",
    ]);
  });

  it.each([
    ["kind: Namespace\napiVersion: v1\nmetadata: { name: x }", "kind Namespace cannot be deployed"],
    [
      "kind: ClusterRole\napiVersion: rbac.authorization.k8s.io/v1\nmetadata: { name: x }",
      "kind ClusterRole cannot be deployed",
    ],
    [
      "kind: Role\napiVersion: rbac.authorization.k8s.io/v1\nmetadata: { name: x }",
      "kind Role cannot be deployed",
    ],
    ["kind: Deployment\napiVersion: v1\nmetadata: { name: x }", 'belongs to API group "apps", not ""'],
    ["kind: Service\napiVersion: v1\nmetadata: {}", "Service has no metadata.name"],
    ["- a\n- b", "expected a Kubernetes object, found a list"],
    ["kind: [", "not valid YAML"],
  ])("refuses %j, naming the file and document", (text, message) => {
    const bad = new Map([
      ["deploy/x.yaml", `apiVersion: v1\nkind: ConfigMap\nmetadata: { name: ok }\n---\n${text}`],
    ]);
    expect(() => parseManifestFiles(bad)).toThrow(ManifestFilesError);
    expect(() => parseManifestFiles(bad)).toThrow(`deploy/x.yaml (document 2)`);
    expect(() => parseManifestFiles(bad)).toThrow(message);
  });

  it("refuses hostile YAML as a bad file, never a crash: deep nesting, a dangling alias, an alias bomb", () => {
    const refuse = (text: string, message: string) => {
      const bad = new Map([["deploy/x.yaml", text]]);
      expect(() => parseManifestFiles(bad)).toThrow(ManifestFilesError);
      expect(() => parseManifestFiles(bad)).toThrow(message);
    };
    // Thousands of levels crash Node inside yaml (a fatal out-of-memory nothing can catch).
    refuse(`${"[".repeat(5000)}${"]".repeat(5000)}`, "deploy/x.yaml: not accepted:");
    refuse("apiVersion: v1\nkind: ConfigMap\nmetadata: { name: *nowhere }", "deploy/x.yaml (document 1)");
    const bomb = ["a: &a [x, x, x, x, x, x, x, x, x]"];
    for (let i = 1; i < 10; i++)
      bomb.push(
        `${"b".repeat(i)}: &${"b".repeat(i)} [${Array(9)
          .fill(i === 1 ? "*a" : `*${"b".repeat(i - 1)}`)
          .join(", ")}]`,
      );
    refuse(bomb.join("\n"), "not usable YAML");
  });

  it("refuses an empty directory and duplicates", () => {
    expect(() => parseManifestFiles(new Map([["deploy/a.yaml", "# nothing\n"]]))).toThrow(
      "no Kubernetes objects",
    );
    expect(() =>
      parseManifestFiles(
        new Map([
          ["a.yaml", SERVICE_AND_CONFIG],
          ["b.yaml", SERVICE_AND_CONFIG],
        ]),
      ),
    ).toThrow("Service/web is defined twice");
  });
});

describe("renderManifests", () => {
  const labels = { "app.kubernetes.io/managed-by": "kubler", "kubler.dev/project-id": "15" };
  const render = (image: { match: string; pinned: string } | null, pullSecret: string | null = null) =>
    renderManifests(parseManifestFiles(files), { namespace: "ns-1", labels, sha: SHA, image, pullSecret });

  it("forces the namespace and adds the contract labels, without touching the originals", () => {
    const parsed = parseManifestFiles(files);
    const { objects } = renderManifests(parsed, {
      namespace: "ns-1",
      labels,
      sha: SHA,
      image: null,
      pullSecret: null,
    });
    for (const object of objects) {
      expect(object.metadata.namespace).toBe("ns-1");
      expect(object.metadata.labels).toMatchObject(labels);
    }
    expect(objects[2]?.metadata.labels?.app).toBe("web");
    expect(parsed[2]?.metadata.namespace).toBe("somewhere-else");
  });

  it("pins the built image by digest and fills {sha} in the others", () => {
    const { objects, pinned } = render({ match: "app", pinned: `registry.example.com/group/app@${DIGEST}` });
    const spec = podSpec(objects[2]);
    expect(spec.containers?.map((c) => c.image)).toEqual([
      `registry.example.com/group/app@${DIGEST}`,
      "nginx:1.27",
    ]);
    expect(spec.initContainers?.map((c) => c.image)).toEqual([`registry.example.com/group/app@${DIGEST}`]);
    expect(pinned).toBe(2);
  });

  it("uses images as written, with {sha} filled in, when nothing was built", () => {
    const { objects, pinned } = render(null);
    const spec = podSpec(objects[2]);
    expect(spec.initContainers?.[0]?.image).toBe(`registry.example.com/group/app:${SHA}`);
    expect(pinned).toBe(0);
  });

  it("adds the pull secret to pod templates once", () => {
    const { objects } = render(null, "kubler-registry");
    const spec = podSpec(objects[2]);
    expect(spec.imagePullSecrets).toEqual([{ name: "kubler-registry" }]);
  });

  it("knows image repositories", () => {
    expect(repositoryOf("registry:5000/group/app:1@sha256:abc")).toBe("registry:5000/group/app");
    expect(repositoryOf("app")).toBe("app");
    expect(repositoryOf("app:1")).toBe("app");
  });
});

describe("roleRulesFor", () => {
  it("grants exactly the resources in the manifests, with the deployer verbs and nothing else", () => {
    expect(roleRulesFor(parseManifestFiles(files))).toEqual([
      {
        apiGroups: [""],
        resources: ["configmaps", "services"],
        verbs: ["get", "list", "watch", "create", "patch"],
      },
      { apiGroups: ["apps"], resources: ["deployments"], verbs: ["get", "list", "watch", "create", "patch"] },
    ]);
    expect(DEPLOYER_VERBS).not.toContain("delete");
    expect(DEPLOYER_VERBS).not.toContain("*");
  });
});

describe("deploymentRollout", () => {
  const deployment = (status: object, generation = 2) => ({
    metadata: { name: "web", generation },
    spec: { replicas: 2 },
    status,
  });
  it("reads progress like kubectl rollout status", () => {
    expect(deploymentRollout(deployment({ observedGeneration: 1 })).kind).toBe("progressing");
    expect(
      deploymentRollout(deployment({ observedGeneration: 2, updatedReplicas: 1, replicas: 2 })).kind,
    ).toBe("progressing");
    expect(
      deploymentRollout(
        deployment({ observedGeneration: 2, updatedReplicas: 2, replicas: 3, availableReplicas: 2 }),
      ).kind,
    ).toBe("progressing");
    expect(
      deploymentRollout(
        deployment({ observedGeneration: 2, updatedReplicas: 2, replicas: 2, availableReplicas: 1 }),
      ).kind,
    ).toBe("progressing");
    expect(
      deploymentRollout(
        deployment({ observedGeneration: 2, updatedReplicas: 2, replicas: 2, availableReplicas: 2 }),
      ),
    ).toEqual({ kind: "available" });
  });
  it("fails on an exceeded progress deadline", () => {
    const failed = deploymentRollout(
      deployment({
        observedGeneration: 2,
        conditions: [{ type: "Progressing", status: "False", reason: "ProgressDeadlineExceeded" }],
      }),
    );
    expect(failed).toEqual({ kind: "failed", reason: "deployment web exceeded its progress deadline" });
  });
});
