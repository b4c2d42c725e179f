/**
 * Defaulting, as the API server does it before validation and storage, limited to the fields readers
 * of these kinds look at. Runs on every write, so a re-applied manifest that omits a defaulted field
 * compares equal to what is stored.
 */
import { randomInt } from "node:crypto";
import { isPlainObject, type JsonObject, objectAt, stringMap } from "./json.js";
import type { KubeObject } from "./types.js";

/** The label the API server puts on every namespace, so selectors can name namespaces. */
export const NAMESPACE_NAME_LABEL = "kubernetes.io/metadata.name";

/** Fills defaults in place; `previous` is the stored object on updates (server-allocated fields persist). */
export function applyDefaults(object: KubeObject, previous: KubeObject | undefined): void {
  const byKind: Record<string, (object: KubeObject, previous: KubeObject | undefined) => void> = {
    Namespace: defaultNamespace,
    Secret: defaultSecret,
    Service: defaultService,
    Deployment: defaultDeployment,
    StatefulSet: defaultStatefulSet,
    DaemonSet: defaultDaemonSet,
    Job: defaultJob,
  };
  byKind[object.kind]?.(object, previous);
}

function defaultNamespace(namespace: KubeObject): void {
  namespace.metadata.labels = {
    ...namespace.metadata.labels,
    [NAMESPACE_NAME_LABEL]: namespace.metadata.name,
  };
  const spec = objectAt(namespace, "spec");
  spec.finalizers ??= ["kubernetes"];
}

function defaultSecret(secret: KubeObject): void {
  secret.type ??= "Opaque";
  // stringData is write-only: the API server folds it into data (base64) and never stores it.
  if (isPlainObject(secret.stringData)) {
    const data = objectAt(secret, "data");
    for (const [key, value] of Object.entries(stringMap(secret.stringData))) {
      data[key] = Buffer.from(value, "utf8").toString("base64");
    }
  }
  delete secret.stringData;
}

function defaultService(service: KubeObject, previous: KubeObject | undefined): void {
  const spec = objectAt(service, "spec");
  spec.type ??= "ClusterIP";
  spec.sessionAffinity ??= "None";
  if (spec.type !== "ExternalName") {
    const allocated = isPlainObject(previous?.spec) ? previous.spec.clusterIP : undefined;
    spec.clusterIP ??= allocated ?? `10.96.${randomInt(0, 256)}.${randomInt(1, 255)}`;
    spec.clusterIPs ??= [spec.clusterIP];
    spec.ipFamilies ??= ["IPv4"];
    spec.ipFamilyPolicy ??= "SingleStack";
    spec.internalTrafficPolicy ??= "Cluster";
  }
  if (Array.isArray(spec.ports)) {
    for (const port of spec.ports) {
      if (!isPlainObject(port)) continue;
      port.protocol ??= "TCP";
      port.targetPort ??= port.port;
    }
  }
}

function defaultDeployment(deployment: KubeObject): void {
  const spec = objectAt(deployment, "spec");
  spec.replicas ??= 1;
  spec.revisionHistoryLimit ??= 10;
  spec.progressDeadlineSeconds ??= 600;
  const strategy = objectAt(spec, "strategy");
  strategy.type ??= "RollingUpdate";
  if (strategy.type === "RollingUpdate") {
    const rollingUpdate = objectAt(strategy, "rollingUpdate");
    rollingUpdate.maxUnavailable ??= "25%";
    rollingUpdate.maxSurge ??= "25%";
  }
}

function defaultStatefulSet(statefulSet: KubeObject): void {
  const spec = objectAt(statefulSet, "spec");
  spec.replicas ??= 1;
  spec.podManagementPolicy ??= "OrderedReady";
  spec.revisionHistoryLimit ??= 10;
  const strategy = objectAt(spec, "updateStrategy");
  strategy.type ??= "RollingUpdate";
  if (strategy.type === "RollingUpdate") objectAt(strategy, "rollingUpdate").partition ??= 0;
  const retention = objectAt(spec, "persistentVolumeClaimRetentionPolicy");
  retention.whenDeleted ??= "Retain";
  retention.whenScaled ??= "Retain";
}

function defaultDaemonSet(daemonSet: KubeObject): void {
  const spec = objectAt(daemonSet, "spec");
  spec.revisionHistoryLimit ??= 10;
  const strategy = objectAt(spec, "updateStrategy");
  strategy.type ??= "RollingUpdate";
  if (strategy.type === "RollingUpdate") {
    const rollingUpdate = objectAt(strategy, "rollingUpdate");
    rollingUpdate.maxUnavailable ??= 1;
    rollingUpdate.maxSurge ??= 0;
  }
}

/** The labels the Job controller's pods carry, and its generated selector on them. */
function defaultJob(job: KubeObject): void {
  const spec = objectAt(job, "spec");
  spec.parallelism ??= 1;
  spec.completions ??= 1;
  spec.backoffLimit ??= 6;
  spec.completionMode ??= "NonIndexed";
  spec.suspend ??= false;
  if (spec.manualSelector === true || !job.metadata.uid) return;
  const generated = {
    "batch.kubernetes.io/controller-uid": job.metadata.uid,
    "batch.kubernetes.io/job-name": job.metadata.name,
    "controller-uid": job.metadata.uid,
    "job-name": job.metadata.name,
  };
  const template = objectAt(spec, "template");
  const templateMetadata: JsonObject = objectAt(template, "metadata");
  templateMetadata.labels = { ...stringMap(templateMetadata.labels), ...generated };
  spec.selector ??= { matchLabels: { "batch.kubernetes.io/controller-uid": job.metadata.uid } };
}
