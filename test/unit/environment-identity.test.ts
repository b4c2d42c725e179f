import { describe, expect, it } from "vitest";
import { ANNOTATION, environmentNamespace, LABEL } from "../../shared/domain/environment.js";
import {
  byPreference,
  identitySelector,
  notHeldAtName,
  recordsIdentity,
} from "../../shared/domain/environment-identity.js";
import type { KubeObject } from "../../shared/domain/kube-object.js";
import { environmentState } from "../fakes/managed-environment.js";

const INSTANCE = "https://gitlab.example.com";
const identity = {
  instance: INSTANCE,
  projectId: 2,
  projectPath: "new-group/app",
  environment: "review/a-b",
};

/** A namespace as Kubler writes it for `environment` of project 2, deployed under `old-group/app`. */
function namespace(name: string, environment = identity.environment, instance = INSTANCE): KubeObject {
  return environmentNamespace(
    environmentState({
      namespace: name,
      gitlab: { instance, projectId: 2, projectPath: "old-group/app" },
      environment,
    }),
  );
}

function without(object: KubeObject, where: "labels" | "annotations", key: string): KubeObject {
  const copy = structuredClone(object);
  delete copy.metadata[where]?.[key];
  return copy;
}

describe("identitySelector", () => {
  it("selects managed namespaces of the project id and the environment's slug", () => {
    expect(identitySelector(identity)).toBe(
      "app.kubernetes.io/managed-by=kubler,kubler.dev/project-id=2,kubler.dev/environment=review-a-b",
    );
  });
});

describe("recordsIdentity", () => {
  it("takes the project id, the full environment name and the instance, a trailing slash aside", () => {
    expect(recordsIdentity(namespace("old"), identity)).toBe(true);
    expect(recordsIdentity(namespace("old", identity.environment, `${INSTANCE}/`), identity)).toBe(true);
  });

  it("never the slug alone, another instance, another project or an unmanaged namespace", () => {
    // review/a/b has the same slug as review/a-b.
    expect(recordsIdentity(namespace("old", "review/a/b"), identity)).toBe(false);
    expect(
      recordsIdentity(without(namespace("old"), "annotations", ANNOTATION.ENVIRONMENT_NAME), identity),
    ).toBe(false);
    expect(recordsIdentity(without(namespace("old"), "annotations", ANNOTATION.INSTANCE), identity)).toBe(
      false,
    );
    expect(
      recordsIdentity(namespace("old", identity.environment, "https://gitlab.other.example"), identity),
    ).toBe(false);
    expect(recordsIdentity(namespace("old"), { ...identity, projectId: 3 })).toBe(false);
    expect(recordsIdentity(without(namespace("old"), "labels", LABEL.MANAGED_BY), identity)).toBe(false);
  });
});

describe("notHeldAtName", () => {
  it("keeps the checks deploy and stop made at the computed name, a slug-only namespace included", () => {
    expect(notHeldAtName(namespace("n"), identity)).toBeNull();
    expect(
      notHeldAtName(without(namespace("n"), "annotations", ANNOTATION.ENVIRONMENT_NAME), identity),
    ).toBeNull();
    expect(notHeldAtName(without(namespace("n"), "annotations", ANNOTATION.INSTANCE), identity)).toBeNull();
    expect(notHeldAtName(namespace("n"), { ...identity, projectId: null, instance: null })).toBeNull();
  });

  it("says why a namespace there is another's", () => {
    expect(notHeldAtName(without(namespace("n"), "labels", LABEL.MANAGED_BY), identity)).toBe(
      "namespace n is not managed by Kubler",
    );
    expect(notHeldAtName(namespace("n"), { ...identity, projectId: 7 })).toBe(
      "namespace n belongs to project 2, not 7",
    );
    expect(notHeldAtName(namespace("n", "production"), identity)).toBe(
      "namespace n belongs to environment production, not review/a-b",
    );
    expect(
      notHeldAtName(namespace("n", identity.environment, "https://gitlab.other.example"), identity),
    ).toBe(
      "namespace n is from GitLab instance https://gitlab.other.example, not https://gitlab.example.com",
    );
  });
});

describe("byPreference", () => {
  it("puts alive before terminating, then the oldest, then by name", () => {
    const at = (name: string, created: string, terminating = false): KubeObject => {
      const object = namespace(name);
      object.metadata.creationTimestamp = created;
      if (terminating) object.metadata.deletionTimestamp = "2026-11-21T11:00:00Z";
      return object;
    };
    const sorted = byPreference([
      at("b", "2026-01-02T00:00:00Z"),
      at("gone", "2025-01-01T00:00:00Z", true),
      at("c", "2026-01-01T00:00:00Z"),
      at("a", "2026-01-02T00:00:00Z"),
    ]);
    expect(sorted.map((o) => o.metadata.name)).toEqual(["c", "a", "b", "gone"]);
  });
});
