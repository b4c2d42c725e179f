/**
 * Which namespace holds an environment, by who the environment is rather than what its project is
 * called today. A namespace is named from the project path (`namespaceFor`) when it is created, and
 * keeps that name: after a project is renamed or moved to another group the name computed from the
 * new path is not the environment's. The stable identity is the GitLab instance, the project id and
 * the environment's full name, which the namespace records in its labels and annotations.
 */
import {
  ANNOTATION,
  environmentSlug,
  heldByAnother,
  LABEL,
  MANAGED_BY_KUBLER,
  MANAGED_SELECTOR,
  recordedEnvironment,
} from "./environment.js";
import { normalizeInstance } from "./gitlab-event.js";
import type { KubeObject } from "./kube-object.js";

/**
 * An environment as GitLab keys it. `projectPath` is the project's path now: the name it gives
 * (`namespaceFor`) is looked at first. A null `instance` or `projectId` is one the caller does not
 * know (`kubler stop` without `--project-id`): then only that name is looked at.
 */
export interface EnvironmentIdentity {
  instance: string | null;
  projectId: number | null;
  projectPath: string;
  environment: string;
}

/** An identity whose instance and project id are known: one a namespace can be found by. */
export type KnownEnvironmentIdentity = EnvironmentIdentity & { instance: string; projectId: number };

/** Whether the namespace can be looked for by its labels (instance and project id known). */
export function isKnownIdentity(identity: EnvironmentIdentity): identity is KnownEnvironmentIdentity {
  return identity.instance !== null && identity.projectId !== null;
}

/**
 * The label selector of the namespaces that may hold the environment: managed by Kubler, the
 * project's id, the environment's slug. Slugs can collide (`review/a-b` and `review/a/b`), so what it
 * lists is only a shortlist for `recordsIdentity`.
 *
 * @example
 * identitySelector({ instance, projectId: 2, projectPath: "group/app", environment: "review/x" });
 * // "app.kubernetes.io/managed-by=kubler,kubler.dev/project-id=2,kubler.dev/environment=review-x"
 */
export function identitySelector(identity: KnownEnvironmentIdentity): string {
  return `${MANAGED_SELECTOR},${LABEL.PROJECT_ID}=${identity.projectId},${LABEL.ENVIRONMENT}=${environmentSlug(identity.environment)}`;
}

/**
 * Why the namespace at the name the current path gives is not the environment's, or null when it
 * is, checked as deploy and stop always checked that name: managed by Kubler, the project's id, the
 * environment (a namespace from before the name annotation records its slug) and, when both say
 * one, the same GitLab instance.
 *
 * @example
 * notHeldAtName(object, identity); // "namespace group-app-production-1a2b3c4d belongs to project 7, not 2"
 */
export function notHeldAtName(object: KubeObject, identity: EnvironmentIdentity): string | null {
  const { name, labels = {}, annotations = {} } = object.metadata;
  if (labels[LABEL.MANAGED_BY] !== MANAGED_BY_KUBLER) return `namespace ${name} is not managed by Kubler`;
  if (identity.projectId !== null && labels[LABEL.PROJECT_ID] !== String(identity.projectId)) {
    return `namespace ${name} belongs to project ${labels[LABEL.PROJECT_ID] ?? "(none)"}, not ${identity.projectId}`;
  }
  const holder = recordedEnvironment(object);
  if (!holder) return `namespace ${name} records no environment`;
  const other = heldByAnother(name, holder, identity.environment);
  if (other) return other;
  const instance = normalizeInstance(annotations[ANNOTATION.INSTANCE] ?? null);
  const wanted = normalizeInstance(identity.instance);
  if (instance !== null && wanted !== null && instance !== wanted) {
    return `namespace ${name} is from GitLab instance ${instance}, not ${wanted}`;
  }
  return null;
}

/**
 * Whether a namespace under another name is the environment's: managed by Kubler, the project's id,
 * and the environment's full name and GitLab instance in its annotations, exactly. Never the slug
 * alone: a namespace from before those annotations is found only at its computed name.
 *
 * @example
 * recordsIdentity(listed, identity); // true for the namespace "old-group-app-production-5e6f7a8b"
 */
export function recordsIdentity(object: KubeObject, identity: KnownEnvironmentIdentity): boolean {
  const { labels = {}, annotations = {} } = object.metadata;
  return (
    labels[LABEL.MANAGED_BY] === MANAGED_BY_KUBLER &&
    labels[LABEL.PROJECT_ID] === String(identity.projectId) &&
    annotations[ANNOTATION.ENVIRONMENT_NAME] === identity.environment &&
    normalizeInstance(annotations[ANNOTATION.INSTANCE] ?? null) === normalizeInstance(identity.instance)
  );
}

/**
 * The namespaces that record one identity, the one to act on first: alive before terminating (a
 * stop in progress), then the oldest (where the environment's data has lived longest), then by
 * name. More than one exists only where a deploy after a rename created a second namespace before
 * Kubler looked for the first.
 *
 * @example
 * const [held, ...others] = byPreference(found);
 */
export function byPreference(objects: readonly KubeObject[]): KubeObject[] {
  const terminating = (o: KubeObject) =>
    o.metadata.deletionTimestamp !== undefined ||
    (o.status as { phase?: string } | undefined)?.phase === "Terminating";
  return [...objects].sort(
    (a, b) =>
      Number(terminating(a)) - Number(terminating(b)) ||
      (a.metadata.creationTimestamp ?? "").localeCompare(b.metadata.creationTimestamp ?? "") ||
      a.metadata.name.localeCompare(b.metadata.name),
  );
}
