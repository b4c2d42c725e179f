/**
 * TokenRequest (`POST .../serviceaccounts/{name}/token`): a bound token for a ServiceAccount. The
 * token is an opaque random string, valid as a bearer token against this server until it expires or
 * its ServiceAccount is deleted; it carries no claims.
 */
import { randomBytes } from "node:crypto";
import type { ApiContext } from "./admission.js";
import { badRequestError, invalidError, notFoundError } from "./errors.js";
import { isPlainObject, valueAt } from "./json.js";
import type { ServiceAccountUser } from "./rbac.js";
import { typeOfKind } from "./resources.js";
import { isDryRun, type ResourceRoute } from "./routes.js";
import type { ObjectStore } from "./store.js";
import { rfc3339 } from "./timestamps.js";
import type { ApiAnswer } from "./writes.js";

/** The API server refuses shorter lifetimes. */
const MIN_EXPIRATION_SECONDS = 600;
const MAX_EXPIRATION_SECONDS = 2 ** 32;
const DEFAULT_EXPIRATION_SECONDS = 3600;
const DEFAULT_AUDIENCES = ["https://kubernetes.default.svc.cluster.local"];
const TOKEN_KIND = { group: "authentication.k8s.io", kind: "TokenRequest" };

interface IssuedToken {
  expiresAt: number;
  namespace: string;
  serviceAccount: string;
  uid: string;
}

/** Tokens this server issued, so it can accept them as credentials. */
export class IssuedTokens {
  readonly #tokens = new Map<string, IssuedToken>();

  add(token: string, issued: IssuedToken): void {
    const now = Date.now();
    for (const [key, value] of this.#tokens) if (value.expiresAt <= now) this.#tokens.delete(key);
    this.#tokens.set(token, issued);
  }

  /**
   * The ServiceAccount a live token stands for (what RBAC decides on): issued here, not expired, its
   * ServiceAccount still the same one; undefined otherwise.
   */
  identify(store: ObjectStore, token: string): ServiceAccountUser | undefined {
    const issued = this.#tokens.get(token);
    if (!issued || issued.expiresAt <= Date.now()) return undefined;
    const account = store
      .find(typeOfKind("ServiceAccount"), issued.namespace, issued.serviceAccount)
      ?.parse();
    if (account?.metadata.uid !== issued.uid) return undefined;
    return { namespace: issued.namespace, name: issued.serviceAccount };
  }
}

export function createToken(
  context: ApiContext,
  tokens: IssuedTokens,
  route: ResourceRoute,
  query: URLSearchParams,
  body: unknown,
): ApiAnswer {
  const name = route.name as string;
  const namespace = route.namespace as string;
  if (body !== undefined && !isPlainObject(body))
    throw badRequestError("the body of the request was in an unknown format");
  if (isPlainObject(body) && body.kind !== undefined && body.kind !== "TokenRequest") {
    throw badRequestError(
      `the kind in the data (${String(body.kind)}) does not match the expected kind (TokenRequest)`,
    );
  }
  const requested = valueAt(body, "spec", "expirationSeconds");
  const expirationSeconds =
    requested === undefined || requested === null ? DEFAULT_EXPIRATION_SECONDS : Number(requested);
  if (!Number.isInteger(expirationSeconds) || expirationSeconds < MIN_EXPIRATION_SECONDS) {
    throw invalidError(TOKEN_KIND, name, [
      {
        reason: "FieldValueInvalid",
        message: `Invalid value: ${JSON.stringify(requested)}: may not specify a duration less than 10 minutes`,
        field: "spec.expirationSeconds",
      },
    ]);
  }
  if (expirationSeconds > MAX_EXPIRATION_SECONDS) {
    throw invalidError(TOKEN_KIND, name, [
      {
        reason: "FieldValueInvalid",
        message: `Invalid value: ${expirationSeconds}: may not specify a duration larger than 2^32 seconds`,
        field: "spec.expirationSeconds",
      },
    ]);
  }
  const account = context.store.read(route.type, namespace, name)?.object;
  if (!account) throw notFoundError(route.type, name);
  const audiences = valueAt(body, "spec", "audiences");
  const token = randomBytes(32).toString("base64url");
  const expiresAt = Date.now() + expirationSeconds * 1000;
  if (!isDryRun(query)) {
    tokens.add(token, { expiresAt, namespace, serviceAccount: name, uid: account.metadata.uid as string });
  }
  return {
    status: 201,
    body: {
      kind: "TokenRequest",
      apiVersion: "authentication.k8s.io/v1",
      metadata: { name, namespace, creationTimestamp: rfc3339() },
      spec: {
        audiences: Array.isArray(audiences) && audiences.length > 0 ? audiences : DEFAULT_AUDIENCES,
        expirationSeconds,
        boundObjectRef: valueAt(body, "spec", "boundObjectRef") ?? null,
      },
      status: { token, expirationTimestamp: rfc3339(new Date(expiresAt)) },
    },
  };
}
