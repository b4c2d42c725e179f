import { describe, expect, it } from "vitest";
import {
  checkStoredObjects,
  DEPLOYER_NAME,
  DEPLOYER_SECRET_VERBS,
  DEPLOYER_VERBS,
  isReservedName,
  JOB_ACCOUNT_PREFIX,
  LAST_GOOD_CONFIGMAP,
  ManifestFilesError,
  PULL_SECRET_NAME,
  parseManifestFiles,
  renderManifests,
  repositoryOf,
  roleRulesFor,
  STOP_HOLD_NAME,
  utf8Text,
} from "../../shared/domain/deploy-manifests.js";
import { deploymentRollout } from "../../shared/domain/rollout.js";
import { allows } from "../fakes/rbac.js";

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

  it("refuses a repeated key, naming the file, document, line and column, also after anchors", () => {
    const repeated = new Map([
      [
        "deploy/x.yaml",
        "apiVersion: v1\nkind: Service\nmetadata: { name: s }\n---\napiVersion: v1\nkind: ConfigMap\nmetadata: { name: a, name: b }\n",
      ],
    ]);
    expect(() => parseManifestFiles(repeated)).toThrow(
      new ManifestFilesError(
        "deploy/x.yaml (document 2): not valid YAML: Map keys must be unique at line 7, column 22:",
      ),
    );
    const anchored = new Map([["deploy/x.yaml", "a: 1\n&x b: 1\n&y b: 2\n"]]);
    expect(() => parseManifestFiles(anchored)).toThrow(
      new ManifestFilesError(
        "deploy/x.yaml (document 1): not valid YAML: Map keys must be unique at line 3, column 4:",
      ),
    );
  });

  // yaml's own check of repeated keys compares each key with every earlier one: a 1 MiB file of
  // short keys held a deploy for about a minute. How long such a file takes is a figure of
  // `npm run bench` (test/bench/manifest-parse.ts), not a timeout here.
  it("reads a file of the largest size with a key on every line", () => {
    const keys = Array.from({ length: 85_000 }, (_, i) => `  k${i}: v\n`).join("");
    const text = `apiVersion: v1\nkind: ConfigMap\nmetadata: { name: big }\ndata:\n${keys}`;
    expect(text.length).toBeLessThan(1024 * 1024);
    const [object] = parseManifestFiles(new Map([["deploy/big.yaml", text]]));
    expect(Object.keys(object?.data as object)).toHaveLength(85_000);
  });

  // yaml's pretty errors copy the error's whole line into each message: a line of 256 Ki "]" is as many
  // errors, each copying the line (over a minute; 160 KB took 23 s, 1 MiB ~15 min). Only the first is
  // reported. How long such a file takes is a figure for `npm run bench`, not a timeout here.
  it("refuses one long line of YAML errors, naming the first", () => {
    const text = "]".repeat(256 * 1024);
    expect(() => parseManifestFiles(new Map([["deploy/x.yaml", text]]))).toThrow(
      new ManifestFilesError(
        'deploy/x.yaml (document 1): not valid YAML: Unexpected flow-seq-end token in YAML document: "]" at line 1, column 1:',
      ),
    );
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

  it.each([
    ["ConfigMap", "v1", LAST_GOOD_CONFIGMAP],
    ["ConfigMap", "v1", STOP_HOLD_NAME],
    ["Secret", "v1", PULL_SECRET_NAME],
    ["ServiceAccount", "v1", DEPLOYER_NAME],
    ["ServiceAccount", "v1", `${JOB_ACCOUNT_PREFIX}kubler-deployer`],
    ["Deployment", "apps/v1", DEPLOYER_NAME],
  ])(
    "refuses a %s (%s) named %s: Kubler's own objects are not the project's to write",
    (kind, apiVersion, name) => {
      const bad = new Map([
        ["deploy/ok.yaml", "apiVersion: v1\nkind: ConfigMap\nmetadata: { name: ok }\n"],
        ["deploy/x.yaml", `apiVersion: ${apiVersion}\nkind: ${kind}\nmetadata: { name: ${name} }\n`],
      ]);
      expect(() => parseManifestFiles(bad)).toThrow(ManifestFilesError);
      expect(() => parseManifestFiles(bad)).toThrow(
        `deploy/x.yaml (document 1): ${kind} ${name}: the name is Kubler's own in every environment`,
      );
    },
  );

  it.each([DEPLOYER_NAME, `${JOB_ACCOUNT_PREFIX}kubler-deployer`])(
    "refuses a ServiceAccount token Secret for Kubler's %s: its tokens are minted short-lived, never kept",
    (account) => {
      const token = (name: string) =>
        new Map([
          [
            "deploy/token.yaml",
            `apiVersion: v1\nkind: Secret\nmetadata:\n  name: ci-token\n  annotations: { kubernetes.io/service-account.name: ${name} }\ntype: kubernetes.io/service-account-token\n`,
          ],
        ]);
      expect(() => parseManifestFiles(token(account))).toThrow(
        new ManifestFilesError(
          `deploy/token.yaml (document 1): Secret ci-token: a token Secret for Kubler's ServiceAccount ${account}, which would never expire; job-credentials mints its tokens for minutes`,
        ),
      );
      // The project's own ServiceAccounts are its own to give tokens.
      expect(parseManifestFiles(token("worker"))).toHaveLength(1);
    },
  );

  it.each([
    ["containers: [null]", "spec.template.spec.containers[0]: expected a mapping, found null"],
    ["containers: 5", "spec.template.spec.containers: expected a list, found 5"],
    [
      "containers: { name: web, image: app }",
      "spec.template.spec.containers: expected a list, found a mapping",
    ],
    ['containers: ["web"]', 'spec.template.spec.containers[0]: expected a mapping, found "web"'],
    [
      "containers: [{ name: web, image: [app] }]",
      "spec.template.spec.containers[0].image: expected an image reference (a string), found a list",
    ],
    ["initContainers: [[]]", "spec.template.spec.initContainers[0]: expected a mapping, found a list"],
    ["initContainers: true", "spec.template.spec.initContainers: expected a list, found true"],
    ["imagePullSecrets: [null]", "spec.template.spec.imagePullSecrets[0]: expected a mapping, found null"],
    ["imagePullSecrets: regcred", 'spec.template.spec.imagePullSecrets: expected a list, found "regcred"'],
  ])("refuses a pod spec with %s, naming the file and the path", (field, message) => {
    const deployment = `apiVersion: apps/v1\nkind: Deployment\nmetadata: { name: web }\nspec:\n  template:\n    spec:\n      ${field}\n`;
    const bad = new Map([["deploy/web.yaml", deployment]]);
    expect(() => parseManifestFiles(bad)).toThrow(ManifestFilesError);
    expect(() => parseManifestFiles(bad)).toThrow(`deploy/web.yaml (document 1): Deployment web: ${message}`);
  });

  it("refuses a pod template or spec that is not a mapping, for every workload kind", () => {
    const refuse = (text: string, message: string) =>
      expect(() => parseManifestFiles(new Map([["deploy/w.yaml", text]]))).toThrow(message);
    refuse(
      "apiVersion: apps/v1\nkind: StatefulSet\nmetadata: { name: db }\nspec: { template: 5 }",
      "deploy/w.yaml (document 1): StatefulSet db: spec.template: expected a mapping, found 5",
    );
    refuse(
      "apiVersion: batch/v1\nkind: CronJob\nmetadata: { name: c }\nspec: { jobTemplate: { spec: { template: { spec: [] } } } }",
      "CronJob c: spec.jobTemplate.spec.template.spec: expected a mapping, found a list",
    );
    refuse(
      "apiVersion: batch/v1\nkind: Job\nmetadata: { name: j }\nspec: { template: { spec: { containers: [~] } } }",
      "Job j: spec.template.spec.containers[0]: expected a mapping, found null",
    );
    // Absent parts are the API server's to judge, not a crash of rendering.
    expect(
      parseManifestFiles(
        new Map([["d.yaml", "apiVersion: apps/v1\nkind: DaemonSet\nmetadata: { name: d }\n"]]),
      ),
    ).toHaveLength(1);
  });

  // kubectl reads manifests as YAML 1.1 (sigs.k8s.io/yaml): `defaultMode: 0440` is octal, 288. Read as
  // YAML 1.2's decimal 440 (0o670), a Secret volume became group-writable and world-readable, unsaid.
  it("reads a leading-zero number as octal, as kubectl does: a volume's defaultMode: 0440 is 0o440", () => {
    const text = `apiVersion: apps/v1
kind: Deployment
metadata: { name: web }
spec:
  template:
    spec:
      containers: [{ name: web, image: app }]
      volumes:
        - { name: a, secret: { secretName: a, defaultMode: 0440 } }
        - { name: b, configMap: { name: b, defaultMode: 0o644, items: [{ key: k, path: k, mode: -0400 }] } }
        - { name: c, configMap: { name: c, defaultMode: 420 } }
        - { name: d, emptyDir: { sizeLimit: "0440" } }
        - { name: e, configMap: { name: e, defaultMode: 0 } }
`;
    const [deployment] = parseManifestFiles(new Map([["deploy/web.yaml", text]]));
    const volumes = (deployment as unknown as { spec: { template: { spec: { volumes: unknown[] } } } }).spec
      .template.spec.volumes;
    expect(volumes).toEqual([
      { name: "a", secret: { secretName: "a", defaultMode: 0o440 } },
      {
        name: "b",
        configMap: { name: "b", defaultMode: 0o644, items: [{ key: "k", path: "k", mode: -0o400 }] },
      },
      { name: "c", configMap: { name: "c", defaultMode: 420 } },
      { name: "d", emptyDir: { sizeLimit: "0440" } },
      { name: "e", configMap: { name: "e", defaultMode: 0 } },
    ]);
  });

  // kubectl merges YAML 1.1's `<<` keys. Read as a key named "<<", labels held a mapping (refused by
  // the API server) and a container's shared settings became an unknown field, dropped.
  it("merges << keys as kubectl does, the mapping's own keys winning", () => {
    const text = `apiVersion: apps/v1
kind: Deployment
metadata: { name: web, labels: &labels { app: web } }
spec:
  selector: { matchLabels: { <<: *labels } }
  template:
    metadata: { labels: { <<: *labels, tier: front } }
    spec:
      containers:
        - &defaults { name: web, image: app, resources: { limits: { memory: 128Mi } } }
        - { <<: [*defaults, { imagePullPolicy: Always }], name: worker }
`;
    const [deployment] = parseManifestFiles(new Map([["deploy/web.yaml", text]]));
    expect(deployment?.spec).toEqual({
      selector: { matchLabels: { app: "web" } },
      template: {
        metadata: { labels: { app: "web", tier: "front" } },
        spec: {
          containers: [
            { name: "web", image: "app", resources: { limits: { memory: "128Mi" } } },
            {
              name: "worker",
              image: "app",
              resources: { limits: { memory: "128Mi" } },
              imagePullPolicy: "Always",
            },
          ],
        },
      },
    });
  });

  // A pod run as Kubler's deployer or a job's kubler-ci-* account holds that account's Role for as long
  // as it runs, with no job-credentials policy asked: the standing credential checkAccountToken refuses.
  it("refuses a pod template run as one of Kubler's ServiceAccounts, for every workload kind", () => {
    const refuse = (text: string, message: string) => {
      const bad = new Map([["deploy/w.yaml", text]]);
      expect(() => parseManifestFiles(bad)).toThrow(ManifestFilesError);
      expect(() => parseManifestFiles(bad)).toThrow(message);
    };
    refuse(
      "apiVersion: apps/v1\nkind: Deployment\nmetadata: { name: web }\nspec: { template: { spec: { serviceAccountName: kubler-deployer, containers: [{ name: c, image: app }] } } }",
      "deploy/w.yaml (document 1): Deployment web: spec.template.spec.serviceAccountName: kubler-deployer is Kubler's own ServiceAccount",
    );
    refuse(
      "apiVersion: batch/v1\nkind: CronJob\nmetadata: { name: c }\nspec: { jobTemplate: { spec: { template: { spec: { serviceAccount: kubler-ci-kubler-deployer } } } } }",
      "CronJob c: spec.jobTemplate.spec.template.spec.serviceAccount: kubler-ci-kubler-deployer is Kubler's own ServiceAccount",
    );
    const own =
      "apiVersion: apps/v1\nkind: StatefulSet\nmetadata: { name: db }\nspec: { template: { spec: { serviceAccountName: db } } }";
    expect(parseManifestFiles(new Map([["deploy/w.yaml", own]]))).toHaveLength(1);
    expect(() =>
      checkStoredObjects(
        [
          {
            apiVersion: "batch/v1",
            kind: "Job",
            metadata: { name: "j" },
            spec: { template: { spec: { serviceAccountName: "kubler-deployer" } } },
          },
        ],
        "ConfigMap kubler-last-good",
      ),
    ).toThrow(
      "ConfigMap kubler-last-good (object 1): Job j: spec.template.spec.serviceAccountName: kubler-deployer is Kubler's own ServiceAccount",
    );
  });

  // `kubectl get -o yaml` writes a List, and kubectl apply takes one, item by item. It was refused as
  // "List has no metadata.name", then, named, as a kind that cannot be deployed.
  it("reads a List's items as objects, as kubectl apply does, naming an item in errors", () => {
    const list = `apiVersion: v1
kind: List
metadata: { resourceVersion: "" }
items:
  - { apiVersion: v1, kind: ConfigMap, metadata: { name: settings } }
  - { apiVersion: v1, kind: Service, metadata: { name: web } }
`;
    expect(
      parseManifestFiles(new Map([["deploy/all.yaml", list]])).map((o) => `${o.kind}/${o.metadata.name}`),
    ).toEqual(["ConfigMap/settings", "Service/web"]);
    const bad = new Map([
      ["deploy/all.yaml", `${list}  - { apiVersion: v1, kind: Namespace, metadata: { name: x } }\n`],
    ]);
    expect(() => parseManifestFiles(bad)).toThrow(ManifestFilesError);
    expect(() => parseManifestFiles(bad)).toThrow(
      "deploy/all.yaml (document 1, item 3): kind Namespace cannot be deployed",
    );
    const twice = new Map([["deploy/all.yaml", `${list}---\n${SERVICE_AND_CONFIG}`]]);
    expect(() => parseManifestFiles(twice)).toThrow("Service/web is defined twice");
  });

  // Rendering spreads the contract labels into metadata.labels: a string there became one label per
  // character ({ "0": "a", "1": "p", … }), which the API server takes, and a list one per item.
  it("refuses metadata.labels that is not a mapping, rather than spreading it into labels", () => {
    const refuse = (labels: string, found: string) => {
      const bad = new Map([
        ["deploy/s.yaml", `apiVersion: v1\nkind: Service\nmetadata: { name: web, labels: ${labels} }\n`],
      ]);
      expect(() => parseManifestFiles(bad)).toThrow(ManifestFilesError);
      expect(() => parseManifestFiles(bad)).toThrow(
        `deploy/s.yaml (document 1): Service web: metadata.labels: expected a mapping, found ${found}`,
      );
    };
    refuse("app=web", '"app=web"');
    refuse("[app]", "a list");
    const [service] = parseManifestFiles(
      new Map([["deploy/s.yaml", "apiVersion: v1\nkind: Service\nmetadata: { name: web, labels: }\n"]]),
    );
    expect(service?.metadata.name).toBe("web");
  });

  // A migration Job is often written with generateName for kubectl create; apply needs a name, and the
  // message said only that there was none.
  it("refuses generateName saying what to write instead", () => {
    const bad = new Map([
      ["deploy/j.yaml", "apiVersion: batch/v1\nkind: Job\nmetadata: { generateName: migrate- }\nspec: {}\n"],
    ]);
    expect(() => parseManifestFiles(bad)).toThrow(ManifestFilesError);
    expect(() => parseManifestFiles(bad)).toThrow(
      "deploy/j.yaml (document 1): Job has metadata.generateName but no metadata.name: server-side apply needs a name; write metadata.name (a Job whose template changes is deleted and created again by the deploy)",
    );
  });

  // A chart's templates/ committed as the manifests: YAML reads `{{ .Values.name }}` as a mapping, so the
  // message named a missing name or a YAML error, never the template.
  it("says a refused file holds Helm or Go template syntax, to be rendered first", () => {
    const hint =
      "holds template syntax ({{ … }}), which Kubler does not render: commit the rendered YAML (helm template)";
    const refuse = (text: string, message: string) => {
      const bad = new Map([["deploy/t.yaml", text]]);
      expect(() => parseManifestFiles(bad)).toThrow(ManifestFilesError);
      expect(() => parseManifestFiles(bad)).toThrow(`${message}; deploy/t.yaml ${hint}`);
    };
    refuse(
      "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: {{ .Values.name }}\n",
      "deploy/t.yaml (document 1): ConfigMap has no metadata.name",
    );
    refuse(
      "apiVersion: v1\nkind: ConfigMap\nmetadata: { name: a }\ndata:\n{{- if .Values.x }}\n  x: y\n{{- end }}\n",
      "deploy/t.yaml (document 1): not valid YAML: Implicit keys need to be on a single line at line 5, column 1:",
    );
    // Quoted or in a block scalar, braces are a value's, and a file that is fine says nothing.
    const fine =
      'apiVersion: v1\nkind: ConfigMap\nmetadata: { name: a }\ndata:\n  x: "{{ .Labels.instance }}"\n';
    expect(parseManifestFiles(new Map([["deploy/t.yaml", fine]]))).toHaveLength(1);
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

describe("utf8Text", () => {
  it("reads UTF-8, a byte-order mark dropped, and names the first line that is not", () => {
    expect(utf8Text(Buffer.from("\uFEFFa: café\n"))).toEqual({ text: "a: café\n" });
    // A U+FFFD the file spells in UTF-8 is text; the Latin-1 é two lines on is not.
    const mixed = Buffer.concat([Buffer.from("a: \uFFFD\nb: 1\n"), Buffer.from("c: café\n", "latin1")]);
    expect(utf8Text(mixed)).toEqual({ line: 3 });
    expect(utf8Text(Buffer.from([0xff, 0xfe, 0x61, 0x00]))).toEqual({ line: 1 });
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

describe("checkStoredObjects", () => {
  const where = "ConfigMap kubler-last-good";
  const stored = (objects: unknown) => () => checkStoredObjects(objects, where);

  it("accepts what Kubler stores: rendered manifests, as JSON", () => {
    const rendered = renderManifests(parseManifestFiles(files), {
      namespace: "ns-1",
      labels: {},
      sha: SHA,
      image: null,
      pullSecret: "kubler-registry",
    }).objects;
    expect(checkStoredObjects(JSON.parse(JSON.stringify(rendered)), where)).toEqual(rendered);
  });

  it("holds a record to the checks of fresh manifests: kinds, reserved names, pod specs, shape", () => {
    const configMap = {
      apiVersion: "v1",
      kind: "ConfigMap",
      metadata: { name: "x", namespace: "kube-system" },
    };
    const binding = {
      apiVersion: "rbac.authorization.k8s.io/v1",
      kind: "RoleBinding",
      metadata: { name: "own", namespace: "kube-system" },
      roleRef: { apiGroup: "rbac.authorization.k8s.io", kind: "ClusterRole", name: "cluster-admin" },
    };
    expect(stored([configMap, binding])).toThrow(`${where} (object 2): kind RoleBinding cannot be deployed`);
    expect(stored([{ ...configMap, metadata: { name: LAST_GOOD_CONFIGMAP } }])).toThrow("Kubler's own");
    expect(
      stored([
        {
          apiVersion: "apps/v1",
          kind: "Deployment",
          metadata: { name: "w" },
          spec: { template: { spec: { containers: 5 } } },
        },
      ]),
    ).toThrow(`${where} (object 1): Deployment w: spec.template.spec.containers: expected a list, found 5`);
    expect(stored([null])).toThrow(`${where} (object 1): expected a Kubernetes object, found null`);
    expect(stored({ items: [] })).toThrow(`${where}: expected a list of Kubernetes objects, found a mapping`);
    expect(stored([])).toThrow(`${where}: holds no Kubernetes objects`);
    expect(stored([configMap, configMap])).toThrow(`${where}: ConfigMap/x is defined twice`);
  });
});

describe("isReservedName", () => {
  it("covers every name Kubler writes into an environment, job credentials' accounts included", async () => {
    for (const name of [LAST_GOOD_CONFIGMAP, PULL_SECRET_NAME, DEPLOYER_NAME])
      expect(isReservedName(name)).toBe(true);
    expect(isReservedName("web")).toBe(false);
    expect(isReservedName("kubler")).toBe(false);
    // Imported here, not at the top: the domain may not import the service, so the test keeps them in step.
    const { jobServiceAccount } = await import("../../shared/services/mint-job-credentials.js");
    for (const role of ["kubler-deployer", "app:deployer", "x".repeat(300)]) {
      expect(isReservedName(jobServiceAccount(role))).toBe(true);
    }
  });
});

describe("roleRulesFor", () => {
  const withSecret = new Map([
    ...files,
    [
      "deploy/secret.yaml",
      "apiVersion: v1\nkind: Secret\nmetadata: { name: api-key }\nstringData: { KEY: x }\n",
    ],
  ]);

  it("grants the deployer verbs on the manifests' kinds, and on Secrets only by name", () => {
    expect(roleRulesFor(parseManifestFiles(withSecret))).toEqual([
      { apiGroups: [""], resources: ["configmaps", "services"], verbs: [...DEPLOYER_VERBS] },
      { apiGroups: [""], resources: ["secrets"], resourceNames: ["api-key"], verbs: ["get", "patch"] },
      { apiGroups: [""], resources: ["secrets"], verbs: ["create"] },
      { apiGroups: ["apps"], resources: ["deployments"], verbs: [...DEPLOYER_VERBS] },
    ]);
    expect(DEPLOYER_VERBS).toEqual(["get", "list", "watch", "create", "patch"]);
    expect(DEPLOYER_SECRET_VERBS).toEqual(["get", "patch"]);
  });

  it("lets a CI job server-side apply and follow objects the deployed revision does not name", () => {
    const rules = roleRulesFor([
      ...parseManifestFiles(withSecret),
      { apiVersion: "batch/v1", kind: "Job", metadata: { name: "migrate" } },
    ]);
    // The Role is the deployed revision's, and the pipeline runs before Kubler deploys its commit. Server-side
    // apply is a PATCH to the object's URL, authorized by that name (kubernetes/kubernetes#80295).
    for (const [group, resource, name] of [
      ["apps", "deployments", "web-canary"],
      ["batch", "jobs", `migrate-${"a".repeat(40)}`],
      ["", "configmaps", "settings-v2"],
    ] as const) {
      for (const verb of ["patch", "create", "get", "watch", "list"])
        expect(allows(rules, verb, group, resource, name)).toBe(true);
    }
    // kubectl rollout status and kubectl wait list and watch the kind.
    for (const verb of ["list", "watch"]) expect(allows(rules, verb, "apps", "deployments")).toBe(true);
  });

  it("keeps Secrets to the manifests' names, never listed, and grants no delete nor other kinds", () => {
    const rules = roleRulesFor(parseManifestFiles(withSecret));
    for (const verb of ["get", "patch"]) {
      expect(allows(rules, verb, "", "secrets", "api-key")).toBe(true);
      expect(allows(rules, verb, "", "secrets", PULL_SECRET_NAME)).toBe(false);
      expect(allows(rules, verb, "", "secrets", "api-key-v2")).toBe(false);
    }
    // A new Secret can be created (a POST carries no name RBAC can check), not read back.
    expect(allows(rules, "create", "", "secrets")).toBe(true);
    for (const verb of ["list", "watch"]) {
      expect(allows(rules, verb, "", "secrets", "api-key")).toBe(false);
      expect(allows(rules, verb, "", "secrets")).toBe(false);
    }
    for (const rule of rules) {
      expect(rule.verbs).not.toContain("delete");
      expect(rule.verbs).not.toContain("deletecollection");
      expect(rule.verbs).not.toContain("*");
      expect(rule.resources).not.toContain("*");
    }
    for (const [group, resource] of [
      ["batch", "jobs"],
      ["", "serviceaccounts"],
      ["", "pods"],
      ["rbac.authorization.k8s.io", "roles"],
      ["rbac.authorization.k8s.io", "rolebindings"],
    ] as const) {
      for (const verb of ["get", "create", "patch"])
        expect(allows(rules, verb, group, resource, "x")).toBe(false);
    }
    for (const verb of ["get", "patch", "list", "watch", "delete"])
      expect(allows(rules, verb, "", "serviceaccounts", DEPLOYER_NAME)).toBe(false);
  });

  it("reaches the last-good record only when the project ships ConfigMaps, and never deletes it", () => {
    const withoutConfigMaps = roleRulesFor(
      parseManifestFiles(withSecret).filter((object) => object.kind !== "ConfigMap"),
    );
    for (const verb of ["get", "patch", "list", "watch"])
      expect(allows(withoutConfigMaps, verb, "", "configmaps", LAST_GOOD_CONFIGMAP)).toBe(false);
    // With ConfigMaps, the record is reachable: a restored one is checked and rendered first (checkStoredObjects).
    const rules = roleRulesFor(parseManifestFiles(withSecret));
    expect(allows(rules, "patch", "", "configmaps", LAST_GOOD_CONFIGMAP)).toBe(true);
    expect(allows(rules, "delete", "", "configmaps", LAST_GOOD_CONFIGMAP)).toBe(false);
  });

  it("never names a reserved object, even when handed one", () => {
    const rules = roleRulesFor([
      { apiVersion: "v1", kind: "Secret", metadata: { name: PULL_SECRET_NAME } },
      { apiVersion: "v1", kind: "Secret", metadata: { name: "api-key" } },
    ]);
    expect(rules.flatMap((rule) => rule.resourceNames ?? [])).toEqual(["api-key"]);
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
