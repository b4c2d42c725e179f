/**
 * A proxy in front of the embedded Kubernetes API that loses one answer after the server has acted on
 * the request (a dropped connection, as a timeout or a network blip leaves it): the adapter's retry
 * then meets the write it does not know went through.
 *
 * @example
 * const proxy = await answerDroppingProxy(server, (method, path) => method === "PATCH" && path.includes("/jobs/"));
 * const cluster = createKubernetesCluster({ kubeconfig: k8s.kubeconfig.replace(server, proxy.url) });
 */
import { createServer, request as httpRequest, type Server } from "node:http";
import type { AddressInfo } from "node:net";

/**
 * Forwards every request to `target`; the first one `drop` picks is served by the server, and its
 * client's connection closed instead of answered.
 */
export async function answerDroppingProxy(
  target: string,
  drop: (method: string, path: string, body: string) => boolean,
): Promise<{ url: string; dropped: () => number; close: () => Promise<void> }> {
  let dropped = 0;
  const upstream = new URL(target);
  const server: Server = createServer((incoming, outgoing) => {
    const chunks: Buffer[] = [];
    incoming.on("data", (chunk: Buffer) => chunks.push(chunk));
    incoming.on("end", () => {
      const body = Buffer.concat(chunks);
      const dropThis = dropped === 0 && drop(incoming.method ?? "", incoming.url ?? "", body.toString());
      const forwarded = httpRequest(
        {
          host: upstream.hostname,
          port: upstream.port,
          method: incoming.method,
          path: incoming.url,
          headers: incoming.headers,
        },
        (answer) => {
          if (dropThis) {
            // The server has acted on it; its answer goes nowhere.
            answer.resume();
            answer.on("end", () => {
              dropped++;
              outgoing.socket?.destroy();
            });
            return;
          }
          outgoing.writeHead(answer.statusCode ?? 502, answer.headers);
          answer.pipe(outgoing);
        },
      );
      forwarded.end(body);
    });
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}`,
    dropped: () => dropped,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}

/** The embedded API's server URL in its kubeconfig, and the kubeconfig sending to `url` instead. */
export function throughProxy(kubeconfig: string, url?: string): { server: string; kubeconfig: string } {
  const server = /server: (\S+)/.exec(kubeconfig)?.[1] as string;
  return { server, kubeconfig: url ? kubeconfig.replace(server, url) : kubeconfig };
}
