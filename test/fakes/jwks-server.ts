/** A GitLab-like JWKS endpoint over node:http for tests and benchmarks. */
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import type { LocalOidcIssuer } from "../../shared/local/local-oidc-issuer.js";

/** A JWKS endpoint that counts its requests; the keys it publishes can change (rotation). */
export async function startJwksServer(initial: LocalOidcIssuer[]) {
  let published = initial;
  let requests = 0;
  const server: Server = createServer((request, response) => {
    requests++;
    if (request.url !== "/oauth/discovery/keys") {
      response.writeHead(404).end();
      return;
    }
    response.writeHead(200, { "content-type": "application/json" });
    response.end(JSON.stringify({ keys: published.flatMap((issuer) => issuer.jwks().keys) }));
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  return {
    url,
    get requests() {
      return requests;
    },
    publish(issuers: LocalOidcIssuer[]) {
      published = issuers;
    },
    close: () => new Promise<void>((resolve) => server.close(() => resolve())),
  };
}
