/**
 * The one way from (project, environment) to the environment's namespace, for every step that acts
 * on one: deploy, stop, job credentials, `kubler stop`. A namespace keeps the name it was created
 * with (from the project's path then), so a renamed or moved project's environments are found by
 * their identity (instance, project id, environment) when the name from the new path is not theirs.
 */

import { namespaceFor } from "../domain/environment.js";
import {
  byPreference,
  type EnvironmentIdentity,
  identitySelector,
  isKnownIdentity,
  notHeldAtName,
  recordsIdentity,
} from "../domain/environment-identity.js";
import type { KubeObject } from "../domain/kube-object.js";
import type { EnvironmentCluster } from "../ports.js";
import { eachListed } from "./list-pages.js";

export interface ResolvedNamespace {
  /** The namespace to act on: the environment's, or the name a first deploy creates. */
  namespace: string;
  /**
   * The namespace as read; null when none exists by that name. At the computed name it may be one
   * that is not the environment's (another project's): callers refuse it, as before.
   */
  object: KubeObject | null;
  /** `path`: the name from the project's current path; `identity`: found by labels under another name. */
  via: "path" | "identity";
  /** Why this namespace, for the audit line (set when found by identity). */
  reason: string | null;
  /** Other namespaces recording the same identity (a second one made before this lookup existed): left alone. */
  others: string[];
}

/** Enough for one identity's namespaces: they are one, or two after a deploy that predates the lookup. */
const PAGE = 50;

/**
 * The environment's namespace. Fast path: one GET of the name the project's current path gives,
 * kept when it holds the environment. Otherwise one label-selected list (managed-by, project id,
 * environment slug; every page followed) whose items must record the full environment name and
 * instance too: never a namespace Kubler does not manage, never a slug match alone. Nothing found:
 * the computed name, with what stands there (if anything) for the caller's own refusal.
 *
 * @example
 * const { namespace, object, via } = await resolveEnvironmentNamespace(cluster, {
 *   instance: "https://gitlab.example.com", projectId: 2, projectPath: "new-group/app", environment: "production",
 * }); // { namespace: "old-group-app-production-5e6f7a8b", via: "identity", … } after a move
 */
export async function resolveEnvironmentNamespace(
  cluster: Pick<EnvironmentCluster, "get" | "list">,
  identity: EnvironmentIdentity,
): Promise<ResolvedNamespace> {
  const named = namespaceFor(identity.projectPath, identity.environment);
  const object = await cluster.get({ apiVersion: "v1", kind: "Namespace", name: named });
  const atName = { namespace: named, object, via: "path" as const, reason: null, others: [] };
  const notHeld = object ? notHeldAtName(object, identity) : `no namespace ${named}`;
  if (notHeld === null || !isKnownIdentity(identity)) return atName;
  const found: KubeObject[] = [];
  const pages = eachListed((token) =>
    cluster.list("v1", "Namespace", {
      labelSelector: identitySelector(identity),
      limit: PAGE,
      ...(token ? { continue: token } : {}),
    }),
  );
  for await (const listed of pages) {
    if (listed.metadata.name !== named && recordsIdentity(listed, identity)) found.push(listed);
  }
  const [held, ...others] = byPreference(found);
  if (!held) return atName;
  const name = held.metadata.name;
  const also =
    others.length > 0
      ? `; also recorded by ${others.map((o) => o.metadata.name).join(", ")}, left alone`
      : "";
  return {
    namespace: name,
    object: held,
    via: "identity",
    reason: `found by identity (project ${identity.projectId} at ${identity.instance}, environment ${identity.environment}): ${notHeld} for the project's path ${identity.projectPath}; ${name} was named from its earlier path (renamed or moved) and keeps that name${also}`,
    others: others.map((o) => o.metadata.name),
  };
}
