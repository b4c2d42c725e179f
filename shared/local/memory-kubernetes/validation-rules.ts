/**
 * The API server's string rules (k8s.io/apimachinery/pkg/util/validation), with its messages word for
 * word: callers and people compare them with what a real cluster says. Each returns the problem, or
 * undefined when the value is fine.
 */

const DNS1123_LABEL = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/;
const DNS1123_SUBDOMAIN = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$/;
const DNS1035_LABEL = /^[a-z]([-a-z0-9]*[a-z0-9])?$/;
const QUALIFIED_NAME = /^([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]$/;
const LABEL_VALUE = /^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$/;
const CONFIG_KEY = /^[-._a-zA-Z0-9]+$/;

const tooLong = (max: number) => `must be no more than ${max} characters`;

/** Namespaces (and Services through `dns1035LabelProblem`). */
export function dns1123LabelProblem(value: string): string | undefined {
  if (value.length > 63) return tooLong(63);
  if (!DNS1123_LABEL.test(value)) {
    return "a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', and must start and end with an alphanumeric character (e.g. 'my-name',  or '123-abc', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?')";
  }
  return undefined;
}

/** Most object names: ConfigMaps, Secrets, ServiceAccounts, Deployments, Jobs. */
export function dns1123SubdomainProblem(value: string): string | undefined {
  if (value.length > 253) return tooLong(253);
  if (!DNS1123_SUBDOMAIN.test(value)) {
    return "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character (e.g. 'example.com', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')";
  }
  return undefined;
}

/** Service names: they become DNS labels, so they must start with a letter. */
export function dns1035LabelProblem(value: string): string | undefined {
  if (value.length > 63) return tooLong(63);
  if (!DNS1035_LABEL.test(value)) {
    return "a DNS-1035 label must consist of lower case alphanumeric characters or '-', start with an alphabetic character, and end with an alphanumeric character (e.g. 'my-name',  or 'abc-123', regex used for validation is '[a-z]([-a-z0-9]*[a-z0-9])?')";
  }
  return undefined;
}

/** RBAC object names only have to be usable as one URL path segment. */
export function pathSegmentProblem(value: string): string | undefined {
  if (value === "." || value === "..") return `may not be '${value}'`;
  if (value.includes("/")) return "may not contain '/'";
  if (value.includes("%")) return "may not contain '%'";
  return undefined;
}

/** Label and annotation keys: an optional DNS subdomain prefix and a name of at most 63 characters. */
export function labelKeyProblem(key: string): string | undefined {
  const parts = key.split("/");
  if (parts.length > 2) {
    return "a qualified name must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character (e.g. 'MyName',  or 'my.name',  or '123-abc', regex used for validation is '([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]') with an optional DNS subdomain prefix and '/' (e.g. 'example.com/MyName')";
  }
  const name = parts.length === 2 ? (parts[1] ?? "") : key;
  const prefix = parts.length === 2 ? parts[0] : undefined;
  if (prefix !== undefined) {
    if (prefix.length === 0) return "prefix part must be non-empty";
    const problem = dns1123SubdomainProblem(prefix);
    if (problem) return `prefix part ${problem}`;
  }
  if (name.length === 0) return "name part must be non-empty";
  if (name.length > 63) return `name part ${tooLong(63)}`;
  if (!QUALIFIED_NAME.test(name)) {
    return "name part must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character (e.g. 'MyName',  or 'my.name',  or '123-abc', regex used for validation is '([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]')";
  }
  return undefined;
}

export function labelValueProblem(value: string): string | undefined {
  if (value.length > 63) return tooLong(63);
  if (!LABEL_VALUE.test(value)) {
    return "a valid label must be an empty string or consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character (e.g. 'MyValue',  or 'my_value',  or '12345', regex used for validation is '(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?')";
  }
  return undefined;
}

/** Keys of ConfigMap and Secret data. */
export function configKeyProblem(key: string): string | undefined {
  if (key.length > 253) return tooLong(253);
  if (!CONFIG_KEY.test(key)) {
    return "a valid config key must consist of alphanumeric characters, '-', '_' or '.' (e.g. 'key.name',  or 'KEY_NAME',  or 'key-name', regex used for validation is '[-._a-zA-Z0-9]+')";
  }
  return undefined;
}
