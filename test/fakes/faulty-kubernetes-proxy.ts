/**
 * A real HTTP server in front of the in-memory Kubernetes API that decides, request by request, to
 * pass it on or to fail it in ways the API's own fault injection cannot: a reset connection, any
 * status with any `Retry-After`. For tests of what a client does about blips.
 */
import { createServer, request as httpRequest } from "node:http";
import type { AddressInfo } from "node:net";

/** What the proxy does with one request. */
export type ProxyAction =
  | "pass"
  /** Closes the connection without an answer (the client sees ECONNRESET). */
  | "reset"
  /** Never answers (until the client gives up or the proxy closes). */
  | "hang"
  | { status: number; retryAfter?: string; message?: string };

export interface ProxiedRequest {
  method: string;
  path: string;
}

/** A TokenRequest: `POST /api/v1/namespaces/<ns>/serviceaccounts/<name>/token`. */
export function isTokenRequest(request: ProxiedRequest): boolean {
  return (
    request.method === "POST" &&
    /^\/api\/v1\/namespaces\/[^/]+\/serviceaccounts\/[^/]+\/token/.test(request.path)
  );
}

/** `action` for the first `n` requests it is asked about, then "pass". */
export function firstN(n: number, action: ProxyAction): () => ProxyAction {
  let left = n;
  return () => (left-- > 0 ? action : "pass");
}

/**
 * @example
 * const proxy = await startFaultyKubernetesProxy(k8s, (r) => (isTokenRequest(r) ? "reset" : "pass"));
 * const cluster = createKubernetesCluster({ kubeconfig: proxy.kubeconfig });
 */
export async function startFaultyKubernetesProxy(
  upstream: { url: string; kubeconfig: string },
  decide: (request: ProxiedRequest) => ProxyAction,
) {
  const requests: ProxiedRequest[] = [];
  const server = createServer((request, response) => {
    const seen = { method: request.method ?? "GET", path: request.url ?? "/" };
    requests.push(seen);
    const action = decide(seen);
    if (action === "reset") {
      request.socket.destroy();
      return;
    }
    if (action === "hang") return;
    if (action !== "pass") {
      request.resume();
      const { status, retryAfter, message = "injected by the proxy" } = action;
      response.writeHead(status, {
        "content-type": "application/json",
        ...(retryAfter === undefined ? {} : { "retry-after": retryAfter }),
      });
      response.end(
        JSON.stringify({ kind: "Status", apiVersion: "v1", status: "Failure", message, code: status }),
      );
      return;
    }
    const forwarded = httpRequest(
      new URL(seen.path, upstream.url),
      { method: seen.method, headers: request.headers },
      (answer) => {
        response.writeHead(answer.statusCode ?? 502, answer.headers);
        answer.pipe(response);
      },
    );
    forwarded.on("error", () => response.destroy());
    request.pipe(forwarded);
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  return {
    url,
    kubeconfig: upstream.kubeconfig.replace(upstream.url, url),
    /** Every request the proxy took, in order, passed on or not. */
    requests,
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  };
}
