/**
 * For tests that drive the embedded Kubernetes API with the raw client: what a refused call answered.
 */
import * as k8s from "@kubernetes/client-node";

/** A Kubernetes `Status` body, with the fields tests assert on. */
export interface StatusBody {
  kind: string;
  status: string;
  reason: string;
  message: string;
  code: number;
  details: {
    name?: string;
    kind?: string;
    group?: string;
    causes: { reason: string; message: string; field: string }[];
  };
}

/**
 * The HTTP code, headers and Status body of a call that must fail; throws when it succeeds.
 *
 * @example
 * const { code, status } = await failure(core.readNamespace({ name: "missing" }));
 */
export async function failure(
  call: Promise<unknown>,
): Promise<{ code: number; headers: Record<string, string>; status: StatusBody }> {
  try {
    await call;
  } catch (error) {
    if (error instanceof k8s.ApiException)
      return { code: error.code, headers: error.headers, status: JSON.parse(error.body as string) };
    throw error;
  }
  throw new Error("expected the call to fail");
}
