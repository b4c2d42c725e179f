/**
 * Admission validation: the checks the real API server makes on the kinds served here, returning
 * 422 causes in its wording. Only the checks a Kubler manifest or a test is likely to trip; the
 * point is that what this server accepts, a real one accepts too.
 */
import type { StatusCause } from "./errors.js";
import { deepEqual, isPlainObject, stringMap, valueAt } from "./json.js";
import { matchesSelector, type Requirement } from "./selectors.js";
import type { KubeObject } from "./types.js";
import {
  configKeyProblem,
  dns1035LabelProblem,
  dns1123LabelProblem,
  dns1123SubdomainProblem,
  labelKeyProblem,
  labelValueProblem,
  pathSegmentProblem,
} from "./validation-rules.js";

const MAX_ANNOTATIONS_BYTES = 256 * 1024;

const show = (value: unknown) => JSON.stringify(value) ?? "null";

const invalid = (field: string, value: unknown, detail: string): StatusCause => ({
  reason: "FieldValueInvalid",
  message: `Invalid value: ${show(value)}: ${detail}`,
  field,
});

const required = (field: string, detail = ""): StatusCause => ({
  reason: "FieldValueRequired",
  message: detail ? `Required value: ${detail}` : "Required value",
  field,
});

const unsupported = (field: string, value: unknown, supported: readonly string[]): StatusCause => ({
  reason: "FieldValueNotSupported",
  message: `Unsupported value: ${show(value)}: supported values: ${supported.map(show).join(", ")}`,
  field,
});

function nameProblem(kind: string, name: string): string | undefined {
  switch (kind) {
    case "Namespace":
      return dns1123LabelProblem(name);
    case "Service":
      return dns1035LabelProblem(name);
    case "Role":
    case "RoleBinding":
    case "ClusterRole":
    case "ClusterRoleBinding":
      return pathSegmentProblem(name);
    case "Job":
      // The Job controller copies the name into a label value on its pods.
      return labelValueProblem(name) ?? dns1123SubdomainProblem(name);
    default:
      return dns1123SubdomainProblem(name);
  }
}

export function validateLabels(labels: unknown, field: string): StatusCause[] {
  const causes: StatusCause[] = [];
  for (const [key, value] of Object.entries(isPlainObject(labels) ? labels : {})) {
    const keyProblem = labelKeyProblem(key);
    if (keyProblem) causes.push(invalid(field, key, keyProblem));
    if (typeof value !== "string") causes.push(invalid(field, value, "must be a string"));
    else {
      const valueProblem = labelValueProblem(value);
      if (valueProblem) causes.push(invalid(field, value, valueProblem));
    }
  }
  return causes;
}

function validateMetadata(object: KubeObject): StatusCause[] {
  const { name, labels, annotations } = object.metadata;
  const causes: StatusCause[] = [];
  if (!name) causes.push(required("metadata.name", "name or generateName is required"));
  else {
    const problem = nameProblem(object.kind, name);
    if (problem) causes.push(invalid("metadata.name", name, problem));
  }
  causes.push(...validateLabels(labels, "metadata.labels"));
  let annotationBytes = 0;
  for (const [key, value] of Object.entries(isPlainObject(annotations) ? annotations : {})) {
    const problem = labelKeyProblem(key.toLowerCase());
    if (problem) causes.push(invalid("metadata.annotations", key, problem));
    annotationBytes += Buffer.byteLength(key) + Buffer.byteLength(String(value));
  }
  if (annotationBytes > MAX_ANNOTATIONS_BYTES) {
    causes.push({
      reason: "FieldValueTooLong",
      message: `Too long: may not be more than ${MAX_ANNOTATIONS_BYTES} bytes`,
      field: "metadata.annotations",
    });
  }
  return causes;
}

/** A LabelSelector (matchLabels + matchExpressions) as selector requirements. */
export function labelSelectorRequirements(selector: unknown): Requirement[] {
  const requirements: Requirement[] = Object.entries(stringMap(valueAt(selector, "matchLabels"))).map(
    ([key, value]) => ({ key, operator: "=" as const, values: [value] }),
  );
  const expressions = valueAt(selector, "matchExpressions");
  for (const expression of Array.isArray(expressions) ? expressions : []) {
    if (!isPlainObject(expression) || typeof expression.key !== "string") continue;
    const values = Array.isArray(expression.values) ? expression.values.map(String) : [];
    const operators = { In: "in", NotIn: "notin", Exists: "exists", DoesNotExist: "!exists" } as const;
    const operator = operators[expression.operator as keyof typeof operators];
    if (operator) requirements.push({ key: expression.key, operator, values });
  }
  return requirements;
}

function validatePodTemplate(template: unknown, field: string): StatusCause[] {
  const causes = validateLabels(valueAt(template, "metadata", "labels"), `${field}.metadata.labels`);
  const containers = valueAt(template, "spec", "containers");
  if (!Array.isArray(containers) || containers.length === 0) {
    causes.push(required(`${field}.spec.containers`));
    return causes;
  }
  containers.forEach((container, index) => {
    const at = `${field}.spec.containers[${index}]`;
    const name = valueAt(container, "name");
    if (typeof name !== "string" || name === "") causes.push(required(`${at}.name`));
    else {
      const problem = dns1123LabelProblem(name);
      if (problem) causes.push(invalid(`${at}.name`, name, problem));
    }
    const image = valueAt(container, "image");
    if (typeof image !== "string" || image.trim() === "") causes.push(required(`${at}.image`));
  });
  return causes;
}

/** A Deployment, StatefulSet or DaemonSet (which has no replicas): a selector its pod template matches. */
function validateWorkload(workload: KubeObject): StatusCause[] {
  const spec = workload.spec;
  const causes: StatusCause[] = [];
  const replicas = valueAt(spec, "replicas");
  if (
    workload.kind !== "DaemonSet" &&
    (typeof replicas !== "number" || !Number.isInteger(replicas) || replicas < 0)
  ) {
    causes.push(invalid("spec.replicas", replicas, "must be greater than or equal to 0"));
  }
  const selector = valueAt(spec, "selector");
  const requirements = labelSelectorRequirements(selector);
  if (selector === undefined || selector === null) causes.push(required("spec.selector"));
  else if (requirements.length === 0) {
    const kind = { Deployment: "deployment", StatefulSet: "statefulset", DaemonSet: "daemonset" }[
      workload.kind
    ];
    causes.push(invalid("spec.selector", selector, `empty selector is invalid for ${kind}`));
  }
  const template = valueAt(spec, "template");
  const templateLabels = stringMap(valueAt(template, "metadata", "labels"));
  if (requirements.length > 0 && !matchesSelector(requirements, templateLabels)) {
    causes.push(
      invalid("spec.template.metadata.labels", templateLabels, "`selector` does not match template `labels`"),
    );
  }
  causes.push(...validatePodTemplate(template, "spec.template"));
  return causes;
}

function validateJob(job: KubeObject): StatusCause[] {
  const template = valueAt(job.spec, "template");
  const causes = validatePodTemplate(template, "spec.template");
  const restartPolicy = valueAt(template, "spec", "restartPolicy");
  const allowed = ["OnFailure", "Never"];
  const podFailurePolicy = valueAt(job.spec, "podFailurePolicy");
  if (restartPolicy === undefined) {
    causes.push(required("spec.template.spec.restartPolicy", `valid values: "OnFailure", "Never"`));
  } else if (!allowed.includes(String(restartPolicy))) {
    causes.push(unsupported("spec.template.spec.restartPolicy", restartPolicy, allowed));
  } else if (podFailurePolicy !== undefined && podFailurePolicy !== null && restartPolicy !== "Never") {
    causes.push(
      invalid(
        "spec.template.spec.restartPolicy",
        restartPolicy,
        `only "Never" is supported when podFailurePolicy is specified`,
      ),
    );
  }
  if (podFailurePolicy !== undefined && podFailurePolicy !== null) {
    causes.push(...validatePodFailurePolicy(job, template));
  }
  return causes;
}

const MAX_POD_FAILURE_POLICY_RULES = 20;

/** k8s pkg/apis/batch/validation validatePodFailurePolicy, in its wording. */
function validatePodFailurePolicy(job: KubeObject, template: unknown): StatusCause[] {
  const causes: StatusCause[] = [];
  const rules = valueAt(job.spec, "podFailurePolicy", "rules");
  const list = Array.isArray(rules) ? rules : [];
  if (list.length > MAX_POD_FAILURE_POLICY_RULES) {
    causes.push({
      reason: "FieldValueTooMany",
      message: `Too many: ${list.length}: must have at most ${MAX_POD_FAILURE_POLICY_RULES} items`,
      field: "spec.podFailurePolicy.rules",
    });
  }
  const names = new Set<string>();
  for (const key of ["containers", "initContainers"]) {
    const containers = valueAt(template, "spec", key);
    for (const container of Array.isArray(containers) ? containers : []) {
      const name = valueAt(container, "name");
      if (typeof name === "string") names.add(name);
    }
  }
  const actions = ["Count", "FailJob", "Ignore"];
  list.forEach((rule, index) => {
    const at = `spec.podFailurePolicy.rules[${index}]`;
    const action = valueAt(rule, "action");
    if (action === undefined || action === "") {
      causes.push(required(`${at}.action`, `valid values: ["Count" "FailIndex" "FailJob" "Ignore"]`));
    } else if (action === "FailIndex") {
      if (valueAt(job.spec, "backoffLimitPerIndex") === undefined) {
        causes.push(invalid(`${at}.action`, action, "requires the backoffLimitPerIndex to be set"));
      }
    } else if (!actions.includes(String(action))) {
      causes.push(unsupported(`${at}.action`, action, actions));
    }
    const onExitCodes = valueAt(rule, "onExitCodes");
    const onPodConditions = valueAt(rule, "onPodConditions");
    const hasExitCodes = onExitCodes !== undefined && onExitCodes !== null;
    const conditions = Array.isArray(onPodConditions) ? onPodConditions : [];
    if (hasExitCodes) causes.push(...validateOnExitCodes(onExitCodes, `${at}.onExitCodes`, names));
    conditions.forEach((pattern, j) => {
      const status = valueAt(pattern, "status");
      const statusAt = `${at}.onPodConditions[${j}].status`;
      if (status === undefined || status === "") {
        causes.push(required(statusAt, `valid values: ["False" "True" "Unknown"]`));
      } else if (!["False", "True", "Unknown"].includes(String(status))) {
        causes.push(unsupported(statusAt, status, ["False", "True", "Unknown"]));
      }
    });
    if (hasExitCodes && conditions.length > 0) {
      causes.push({
        reason: "FieldValueInvalid",
        message: "Invalid value: specifying both OnExitCodes and OnPodConditions is not supported",
        field: at,
      });
    }
    if (!hasExitCodes && conditions.length === 0) {
      causes.push({
        reason: "FieldValueInvalid",
        message: "Invalid value: specifying one of OnExitCodes and OnPodConditions is required",
        field: at,
      });
    }
  });
  return causes;
}

function validateOnExitCodes(requirement: unknown, at: string, containers: Set<string>): StatusCause[] {
  const causes: StatusCause[] = [];
  const operator = valueAt(requirement, "operator");
  if (operator === undefined || operator === "") {
    causes.push(required(`${at}.operator`, `valid values: ["In" "NotIn"]`));
  } else if (!["In", "NotIn"].includes(String(operator))) {
    causes.push(unsupported(`${at}.operator`, operator, ["In", "NotIn"]));
  }
  const containerName = valueAt(requirement, "containerName");
  if (typeof containerName === "string" && !containers.has(containerName)) {
    causes.push(
      invalid(
        `${at}.containerName`,
        containerName,
        "must be one of the container or initContainer names in the pod template",
      ),
    );
  }
  const raw = valueAt(requirement, "values");
  const values = Array.isArray(raw) ? raw : [];
  if (values.length === 0) causes.push(invalid(`${at}.values`, values, "at least one value is required"));
  const seen = new Set<unknown>();
  values.forEach((value, j) => {
    if (operator === "In" && value === 0) {
      causes.push(invalid(`${at}.values[${j}]`, value, "must not be 0 for the In operator"));
    }
    if (seen.has(value)) {
      causes.push({
        reason: "FieldValueDuplicate",
        message: `Duplicate value: ${show(value)}`,
        field: `${at}.values[${j}]`,
      });
    }
    seen.add(value);
  });
  if (values.some((value, j) => j > 0 && Number(values[j - 1]) > Number(value))) {
    causes.push(invalid(`${at}.values`, values, "must be ordered"));
  }
  return causes;
}

/** A ClusterRole may also grant non-resource URLs. */
function validateRole(role: KubeObject, { clusterScoped = false } = {}): StatusCause[] {
  const causes: StatusCause[] = [];
  const rules = Array.isArray(role.rules) ? role.rules : [];
  rules.forEach((rule, index) => {
    const at = `rules[${index}]`;
    const list = (key: string) => {
      const value = valueAt(rule, key);
      return Array.isArray(value) ? value : [];
    };
    if (list("verbs").length === 0)
      causes.push(required(`${at}.verbs`, "verbs must contain at least one value"));
    if (list("nonResourceURLs").length > 0 && clusterScoped) {
      if (list("apiGroups").length > 0 || list("resources").length > 0) {
        causes.push({
          reason: "FieldValueInvalid",
          message: `Invalid value: ${show(list("nonResourceURLs"))}: rules cannot apply to both regular resources and non-resource URLs`,
          field: `${at}.nonResourceURLs`,
        });
      }
    } else if (list("nonResourceURLs").length > 0) {
      causes.push({
        reason: "FieldValueInvalid",
        message: `Invalid value: ${show(list("nonResourceURLs"))}: namespaced rules cannot apply to non-resource URLs`,
        field: `${at}.nonResourceURLs`,
      });
    } else {
      if (list("apiGroups").length === 0) {
        causes.push(required(`${at}.apiGroups`, "resource rules must supply at least one api group"));
      }
      if (list("resources").length === 0) {
        causes.push(required(`${at}.resources`, "resource rules must supply at least one resource"));
      }
    }
  });
  return causes;
}

/** A ClusterRoleBinding refers to a ClusterRole, and names its ServiceAccounts' namespaces. */
function validateRoleBinding(binding: KubeObject, { clusterScoped = false } = {}): StatusCause[] {
  const causes: StatusCause[] = [];
  const roleRef = binding.roleRef;
  const kind = valueAt(roleRef, "kind");
  const kinds = clusterScoped ? ["ClusterRole"] : ["Role", "ClusterRole"];
  if (!kinds.includes(String(kind))) causes.push(unsupported("roleRef.kind", kind ?? "", kinds));
  if (valueAt(roleRef, "apiGroup") !== "rbac.authorization.k8s.io") {
    causes.push(
      unsupported("roleRef.apiGroup", valueAt(roleRef, "apiGroup") ?? "", ["rbac.authorization.k8s.io"]),
    );
  }
  if (!valueAt(roleRef, "name")) causes.push(required("roleRef.name"));
  const subjects = Array.isArray(binding.subjects) ? binding.subjects : [];
  subjects.forEach((subject, index) => {
    const at = `subjects[${index}]`;
    const subjectKind = valueAt(subject, "kind");
    if (!["ServiceAccount", "User", "Group"].includes(String(subjectKind))) {
      causes.push(unsupported(`${at}.kind`, subjectKind ?? "", ["ServiceAccount", "User", "Group"]));
    }
    if (!valueAt(subject, "name")) causes.push(required(`${at}.name`));
    if (clusterScoped && subjectKind === "ServiceAccount" && !valueAt(subject, "namespace")) {
      causes.push(required(`${at}.namespace`));
    }
    if (subjectKind === "ServiceAccount" && (valueAt(subject, "apiGroup") ?? "") !== "") {
      causes.push(unsupported(`${at}.apiGroup`, valueAt(subject, "apiGroup"), [""]));
    }
  });
  return causes;
}

function validateService(service: KubeObject): StatusCause[] {
  const spec = isPlainObject(service.spec) ? service.spec : {};
  const causes: StatusCause[] = [];
  const ports = Array.isArray(spec.ports) ? spec.ports : [];
  const headless = spec.clusterIP === "None" || spec.type === "ExternalName";
  if (ports.length === 0 && !headless) causes.push(required("spec.ports"));
  ports.forEach((port, index) => {
    const number = valueAt(port, "port");
    if (typeof number !== "number" || !Number.isInteger(number) || number < 1 || number > 65535) {
      causes.push(invalid(`spec.ports[${index}].port`, number, "must be between 1 and 65535, inclusive"));
    }
    if (ports.length > 1 && !valueAt(port, "name")) causes.push(required(`spec.ports[${index}].name`));
  });
  return causes;
}

/** What a ConfigMap's or a Secret's values may hold together (`core.MaxSecretSize`). */
const MAX_DATA_BYTES = 1024 * 1024;

/**
 * Keys, and the size of the values together: `data` of a ConfigMap as text, `binaryData` and a
 * Secret's `data` decoded from base64 (stringData is folded into data by then).
 */
function validateDataKeys(object: KubeObject, fields: readonly string[]): StatusCause[] {
  const causes: StatusCause[] = [];
  let bytes = 0;
  for (const field of fields) {
    const data = object[field];
    const decoded = field === "binaryData" || object.kind === "Secret";
    for (const [key, value] of Object.entries(isPlainObject(data) ? data : {})) {
      const problem = configKeyProblem(key);
      if (problem) causes.push(invalid(`${field}[${key}]`, key, problem));
      const text = typeof value === "string" ? value : "";
      bytes += decoded ? Buffer.from(text, "base64").length : Buffer.byteLength(text);
    }
  }
  if (bytes > MAX_DATA_BYTES) {
    causes.push({
      reason: "FieldValueTooLong",
      message: `Too long: may not be more than ${MAX_DATA_BYTES} bytes`,
      field: object.kind === "Secret" ? "data" : "",
    });
  }
  return causes;
}

/** Every problem with a new or updated object; empty when it may be stored. */
export function validateObject(object: KubeObject): StatusCause[] {
  const causes = validateMetadata(object);
  switch (object.kind) {
    case "Deployment":
    case "StatefulSet":
    case "DaemonSet":
      return [...causes, ...validateWorkload(object)];
    case "Job":
      return [...causes, ...validateJob(object)];
    case "Role":
      return [...causes, ...validateRole(object)];
    case "ClusterRole":
      return [...causes, ...validateRole(object, { clusterScoped: true })];
    case "RoleBinding":
      return [...causes, ...validateRoleBinding(object)];
    case "ClusterRoleBinding":
      return [...causes, ...validateRoleBinding(object, { clusterScoped: true })];
    case "Service":
      return [...causes, ...validateService(object)];
    case "ConfigMap":
      return [...causes, ...validateDataKeys(object, ["data", "binaryData"])];
    case "Secret":
      return [...causes, ...validateDataKeys(object, ["data"])];
    default:
      return causes;
  }
}

/** Fields that may not change once set, as the real API server enforces them. */
export function validateUpdate(previous: KubeObject, next: KubeObject): StatusCause[] {
  const immutable = (field: string, before: unknown, after: unknown, detail = "field is immutable") =>
    deepEqual(before, after) ? [] : [invalid(field, after, detail)];
  switch (next.kind) {
    case "Deployment":
    case "DaemonSet":
      return immutable("spec.selector", valueAt(previous.spec, "selector"), valueAt(next.spec, "selector"));
    case "StatefulSet":
      return statefulSetSpecFrozen(previous, next);
    case "Job":
      return [
        ...immutable("spec.selector", valueAt(previous.spec, "selector"), valueAt(next.spec, "selector")),
        ...immutable("spec.template", valueAt(previous.spec, "template"), valueAt(next.spec, "template")),
      ];
    case "RoleBinding":
    case "ClusterRoleBinding":
      return immutable("roleRef", previous.roleRef, next.roleRef, "cannot change roleRef");
    case "ConfigMap":
      return frozenValues(previous, next, ["data", "binaryData"]);
    case "Secret":
      return [...immutable("type", previous.type, next.type), ...frozenValues(previous, next, ["data"])];
    case "Service": {
      const before = valueAt(previous.spec, "clusterIP");
      const after = valueAt(next.spec, "clusterIP");
      return before && after !== before
        ? [invalid("spec.clusterIPs[0]", after ?? "", "may not change once set")]
        : [];
    }
    default:
      return [];
  }
}

/** What of a StatefulSet's spec may change (ValidateStatefulSetUpdate): the rest is one refusal. */
const STATEFULSET_MUTABLE = [
  "replicas",
  "ordinals",
  "template",
  "updateStrategy",
  "persistentVolumeClaimRetentionPolicy",
  "minReadySeconds",
];

function statefulSetSpecFrozen(previous: KubeObject, next: KubeObject): StatusCause[] {
  const frozen = (spec: unknown) =>
    Object.fromEntries(
      Object.entries(isPlainObject(spec) ? spec : {}).filter(([key]) => !STATEFULSET_MUTABLE.includes(key)),
    );
  if (deepEqual(frozen(previous.spec), frozen(next.spec))) return [];
  return [
    {
      reason: "FieldValueForbidden",
      message:
        "Forbidden: updates to statefulset spec for fields other than 'replicas', 'ordinals', 'template', 'updateStrategy', 'persistentVolumeClaimRetentionPolicy' and 'minReadySeconds' are forbidden",
      field: "spec",
    },
  ];
}

/**
 * A ConfigMap or Secret written with `immutable: true` keeps its values and the flag itself until it
 * is deleted (ValidateConfigMapUpdate, ValidateSecretUpdate): only its metadata may change.
 */
function frozenValues(previous: KubeObject, next: KubeObject, fields: readonly string[]): StatusCause[] {
  if (previous.immutable !== true) return [];
  const forbidden = (field: string): StatusCause => ({
    reason: "FieldValueForbidden",
    message: "Forbidden: field is immutable when `immutable` is set",
    field,
  });
  return [
    ...(next.immutable === true ? [] : [forbidden("immutable")]),
    ...fields.filter((field) => !deepEqual(previous[field], next[field])).map(forbidden),
  ];
}
