/**
 * The HTTP side: node:http, bearer-token authentication, fault injection, request counters. Every
 * failure becomes a Kubernetes Status answer; nothing a client sends can crash the server.
 */
import { createServer, type IncomingMessage, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import type { ApiContext } from "./admission.js";
import { answer } from "./api.js";
import { Controllers, failsByAnnotation } from "./controllers.js";
import { createDirectStore } from "./direct-store.js";
import { badRequestError, KubeApiError, reasonForCode } from "./errors.js";
import { FaultInjector, type FaultTarget } from "./faults.js";
import { failsByBuildAnnotation, JobController } from "./jobs.js";
import { JsonText } from "./json.js";
import {
  authorizeRequest,
  confirmNoEscalation,
  type ServiceAccountUser,
  storeRbacObjects,
  writesRbac,
} from "./rbac.js";
import { APPLY_CONTENT_TYPE, type Route, route } from "./routes.js";
import { ObjectStore } from "./store.js";
import { IssuedTokens } from "./token-request.js";
import type {
  KubeObject,
  MemoryKubernetes,
  MemoryKubernetesOptions,
  MemoryKubernetesStats,
} from "./types.js";

/** The bearer token of the kubeconfig this server hands out. */
export const MEMORY_TOKEN = "memory";
/** The API server's default request body limit. */
const MAX_BODY_BYTES = 3 * 1024 * 1024;
/** Namespaces every cluster starts with. */
const SYSTEM_NAMESPACES = ["default", "kube-system", "kube-public", "kube-node-lease"];

function createStats(): MemoryKubernetesStats {
  const stats: MemoryKubernetesStats = {
    requests: 0,
    byVerb: {},
    inFlightMax: 0,
    reset() {
      stats.requests = 0;
      stats.byVerb = {};
      stats.inFlightMax = 0;
    },
  };
  return stats;
}

function kubeconfigFor(url: string): string {
  return [
    "apiVersion: v1",
    "kind: Config",
    "clusters:",
    "  - name: kubler-memory",
    "    cluster:",
    `      server: ${url}`,
    "      insecure-skip-tls-verify: true",
    "users:",
    "  - name: kubler-memory",
    "    user:",
    `      token: ${MEMORY_TOKEN}`,
    "contexts:",
    "  - name: kubler-memory",
    "    context:",
    "      cluster: kubler-memory",
    "      user: kubler-memory",
    "current-context: kubler-memory",
    "",
  ].join("\n");
}

function send(
  response: ServerResponse,
  status: number,
  body: unknown,
  headers: Record<string, string> = {},
): void {
  if (response.destroyed || response.headersSent) return;
  const text = body instanceof JsonText ? body.text : typeof body === "string" ? body : JSON.stringify(body);
  // Encoded once: a list page is ~750 KB, and measuring it, then writing it, would encode it twice.
  const bytes = Buffer.from(text);
  response.writeHead(status, {
    "content-type": typeof body === "string" ? "text/plain; charset=utf-8" : "application/json",
    "content-length": bytes.length,
    ...headers,
  });
  response.end(bytes);
}

function sendError(response: ServerResponse, error: unknown): void {
  const failure =
    error instanceof KubeApiError
      ? error
      : new KubeApiError(
          500,
          "InternalError",
          `Internal error occurred: ${(error as Error)?.message ?? String(error)}`,
        );
  const headers: Record<string, string> = failure.code === 429 ? { "retry-after": "1" } : {};
  send(response, failure.code, failure.toStatus(), headers);
}

function readBody(request: IncomingMessage): Promise<string> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    request.on("data", (chunk: Buffer) => {
      size += chunk.length;
      if (size > MAX_BODY_BYTES) {
        reject(new KubeApiError(413, "RequestEntityTooLarge", "the request is too large"));
        request.destroy();
        return;
      }
      chunks.push(chunk);
    });
    request.on("end", () => resolve(Buffer.concat(chunks).toString("utf8")));
    request.on("error", reject);
  });
}

const JSON_CONTENT_TYPE = /^application\/([a-z-]+\+)?json$/;

function parseBody(text: string, contentType: string): unknown {
  if (text.trim() === "") return undefined;
  // Apply bodies may be YAML; the apply operation parses them.
  if (contentType === APPLY_CONTENT_TYPE) return text;
  if (contentType !== "" && !JSON_CONTENT_TYPE.test(contentType)) {
    throw new KubeApiError(
      415,
      "UnsupportedMediaType",
      `the body of the request was in an unknown format - accepted media types include: application/json, application/yaml, application/vnd.kubernetes.protobuf`,
    );
  }
  try {
    return JSON.parse(text);
  } catch (error) {
    throw badRequestError(`the body of the request was in an unknown format: ${(error as Error).message}`);
  }
}

function targetOf(found: Route | undefined, query: URLSearchParams): FaultTarget {
  if (!found) return { verb: "unknown" };
  if (found.kind === "discovery") return { verb: "discovery" };
  return {
    verb: found.verb,
    resource: found.type.plural,
    ...(found.subresource ? { subresource: found.subresource } : {}),
    ...(found.namespace !== undefined ? { namespace: found.namespace } : {}),
    ...(found.name !== undefined ? { name: found.name } : {}),
    // A Namespace is addressed by name, but rules say `namespace: x` to mean "anything in x" too.
    ...(found.type.kind === "Namespace" && found.name !== undefined ? { namespace: found.name } : {}),
    ...(found.verb === "list" && query.get("continue") ? { continued: true } : {}),
  };
}

/**
 * Starts the in-memory Kubernetes API on `host:port` (default 127.0.0.1 and an ephemeral port).
 *
 * @example
 * const cluster = await startMemoryKubernetes({ rolloutDelayMs: 20 });
 * const kc = new k8s.KubeConfig();
 * kc.loadFromString(cluster.kubeconfig);
 * await kc.makeApiClient(k8s.CoreV1Api).createNamespace({ body: { metadata: { name: "review-x" } } });
 * await cluster.close();
 */
export async function startMemoryKubernetes(
  options: MemoryKubernetesOptions = {},
): Promise<MemoryKubernetes> {
  const store = new ObjectStore();
  const controllers = new Controllers(store, {
    rolloutDelayMs: options.rolloutDelayMs ?? 200,
    namespaceFinalizeMs: options.namespaceFinalizeMs ?? 50,
    failRollout: options.failRollout ?? failsByAnnotation,
  });
  const faults = new FaultInjector();
  const jobs = new JobController(store, {
    jobDelayMs: options.jobDelayMs ?? 20,
    failJob: options.failJob ?? failsByBuildAnnotation,
    evictions: faults,
  });
  const context: ApiContext = { store, controllers, jobs };
  const tokens = new IssuedTokens();
  const stats = createStats();
  const waits = new Set<NodeJS.Timeout>();
  let inFlight = 0;
  let serverAddress = "";

  for (const name of SYSTEM_NAMESPACES) {
    answer(context, tokens, serverAddress, {
      route: route("POST", "/api/v1/namespaces", "application/json"),
      query: new URLSearchParams(),
      body: { apiVersion: "v1", kind: "Namespace", metadata: { name } },
      contentType: "application/json",
    });
  }

  const wait = (ms: number) =>
    new Promise<void>((resolve) => {
      const timer = setTimeout(() => {
        waits.delete(timer);
        resolve();
      }, ms);
      waits.add(timer);
    });

  /** The admin kubeconfig's token, a live issued token's ServiceAccount, or undefined (401). */
  const authenticate = (request: IncomingMessage): "admin" | ServiceAccountUser | undefined => {
    const match = /^Bearer (.+)$/i.exec(request.headers.authorization ?? "");
    const token = match?.[1];
    if (token === MEMORY_TOKEN) return "admin";
    return token === undefined ? undefined : tokens.identify(store, token);
  };

  async function handle(request: IncomingMessage, response: ServerResponse): Promise<void> {
    const url = new URL(request.url ?? "/", "http://memory");
    const contentType = (request.headers["content-type"] ?? "").split(";")[0]?.trim().toLowerCase() ?? "";
    let found: Route | undefined;
    let routeError: unknown;
    try {
      found = route(request.method ?? "GET", url.pathname, contentType);
    } catch (error) {
      routeError = error;
    }
    const target = targetOf(found, url.searchParams);
    stats.byVerb[target.verb] = (stats.byVerb[target.verb] ?? 0) + 1;
    const text = await readBody(request);
    if (faults.latencyMs > 0) await wait(faults.latencyMs);
    const fault = faults.take(target);
    if (fault?.latencyMs) await wait(fault.latencyMs);
    if (fault?.hang) return;
    if (fault?.status) {
      const code = fault.status;
      throw new KubeApiError(code, reasonForCode(code), fault.message ?? "injected fault", {
        ...(code === 429 ? { retryAfterSeconds: 1 } : {}),
      });
    }
    if (routeError) throw routeError;
    const publicDocument =
      found?.kind === "discovery" && (found.document === "version" || found.document === "health");
    const user = authenticate(request);
    if (!publicDocument && !user) throw new KubeApiError(401, "Unauthorized", "Unauthorized");
    // Discovery is every authenticated user's (Kubernetes' system:discovery); the admin token is unrestricted.
    if (user && user !== "admin" && found?.kind === "resource") {
      authorizeRequest(store, user, found, url.searchParams);
    }
    const call = {
      route: found as Route,
      query: url.searchParams,
      body: parseBody(text, contentType),
      contentType,
    };
    if (user && user !== "admin" && found?.kind === "resource" && writesRbac(found)) {
      // The escalation check judges the role or binding as the write would leave it: a dry run of it.
      const query = new URLSearchParams(url.searchParams);
      query.set("dryRun", "All");
      const next = answer(context, tokens, serverAddress, { ...call, query }).body as KubeObject;
      const previous = store.find(found.type, found.namespace, found.name ?? next.metadata.name)?.parse();
      confirmNoEscalation(storeRbacObjects(store), user, found, next, previous);
    }
    const result = answer(context, tokens, serverAddress, call);
    send(response, result.status, result.body);
  }

  const server = createServer((request, response) => {
    stats.requests++;
    inFlight++;
    stats.inFlightMax = Math.max(stats.inFlightMax, inFlight);
    response.on("close", () => inFlight--);
    handle(request, response).catch((error: unknown) => sendError(response, error));
  });
  server.on("clientError", (_error, socket) => socket.destroy());

  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(options.port ?? 0, options.host ?? "127.0.0.1", () => resolve());
  });
  const address = server.address() as AddressInfo;
  const host = address.family === "IPv6" ? `[${address.address}]` : address.address;
  serverAddress = `${host}:${address.port}`;
  const url = `http://${serverAddress}`;

  return {
    url,
    kubeconfig: kubeconfigFor(url),
    faults,
    stats,
    store: createDirectStore(store),
    async close() {
      controllers.close();
      jobs.close();
      for (const timer of waits) clearTimeout(timer);
      waits.clear();
      await new Promise<void>((resolve) => {
        server.close(() => resolve());
        // Keep-alive sockets and hung requests would otherwise hold close() open.
        server.closeAllConnections();
      });
    },
  };
}
