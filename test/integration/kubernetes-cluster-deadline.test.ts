/**
 * KubernetesCluster.withDeadline over HTTP: the in-memory API behind a proxy that fails chosen
 * requests. Time is a fake clock the backoff sleeps (and the proxy, for a slow answer) move on, so
 * what is asserted is which attempts were made, never how long anything took.
 */
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { createKubernetesCluster, type KubernetesCluster } from "../../shared/adapters/kubernetes-cluster.js";
import { KubernetesForbiddenError, KubernetesUnavailableError } from "../../shared/errors.js";
import { type MemoryKubernetes, startMemoryKubernetes } from "../../shared/local/memory-kubernetes/index.js";
import {
  firstN,
  type ProxiedRequest,
  type ProxyAction,
  startFaultyKubernetesProxy,
} from "../fakes/faulty-kubernetes-proxy.js";

const DEFAULT = { apiVersion: "v1", kind: "Namespace", name: "default" };
const isGet = (request: ProxiedRequest) => request.path === "/api/v1/namespaces/default";

let k8s: MemoryKubernetes;
let proxy: Awaited<ReturnType<typeof startFaultyKubernetesProxy>>;
let cluster: KubernetesCluster;
/** The fake clock: moved by the backoff sleeps and by `answer` (a slow answer). */
let now: number;
let sleeps: number[];
/** What the proxy does with each GET of the default namespace (discovery always passes). */
let answer: () => ProxyAction;

beforeAll(async () => {
  k8s = await startMemoryKubernetes();
});
afterAll(() => k8s.close());

async function connect(options: { maxAttempts?: number; timeoutMs?: number } = {}) {
  now = 1_000_000;
  sleeps = [];
  answer = () => "pass";
  proxy = await startFaultyKubernetesProxy(k8s, (request) => (isGet(request) ? answer() : "pass"));
  cluster = createKubernetesCluster({
    kubeconfig: proxy.kubeconfig,
    maxAttempts: options.maxAttempts ?? 10,
    timeoutMs: options.timeoutMs ?? 1_200,
    baseDelayMs: 100,
    random: () => 0.5,
    now: () => now,
    sleep: async (ms) => {
      sleeps.push(ms);
      now += ms;
    },
  });
}
afterEach(async () => {
  cluster.close();
  await proxy.close();
});

/** Each answer a 503 that took `ms` of the fake clock. */
function slow503(ms: number): () => ProxyAction {
  return () => {
    now += ms;
    return { status: 503, message: "etcd leader changed" };
  };
}

const gets = () => proxy.requests.filter(isGet).length;

describe("KubernetesCluster.withDeadline", () => {
  it("retries while a wait and a whole attempt fit before the deadline, then gives up inside it", async () => {
    await connect();
    answer = slow503(900);
    const started = now;
    const failure = await cluster.withDeadline(5_000, () => cluster.get(DEFAULT)).catch((e) => e);

    expect(failure).toBeInstanceOf(KubernetesUnavailableError);
    expect(failure.message).toBe(
      "get Namespace default failed after 4 attempt(s), with no time for another within the 5000 ms deadline; last problem: HTTP 503: etcd leader changed",
    );
    // 900 + 50 + 900 + 100 + 900 + 200 + 900 = 3950: a fifth attempt (400 + 1200 more) would end past 5000.
    expect(gets()).toBe(4);
    expect(sleeps).toEqual([50, 100, 200]);
    expect(now - started).toBeLessThanOrEqual(5_000);
  });

  it("a Retry-After the deadline cannot wait out means no retry; one it can is honoured", async () => {
    await connect();
    answer = () => ({ status: 429, retryAfter: "6", message: "too many requests" });
    const failure = await cluster.withDeadline(5_000, () => cluster.get(DEFAULT)).catch((e) => e);
    expect(failure).toBeInstanceOf(KubernetesUnavailableError);
    expect(failure.message).toContain("failed after 1 attempt(s), with no time for another");
    expect(failure.message).toContain("(Retry-After: 6 s)");
    expect(gets()).toBe(1);
    expect(sleeps).toEqual([]);

    answer = firstN(1, { status: 429, retryAfter: "2" });
    const found = await cluster.withDeadline(5_000, () => cluster.get(DEFAULT));
    expect(found?.metadata.name).toBe("default");
    expect(gets()).toBe(3);
    expect(sleeps).toEqual([2_000]);
  });

  it("a Retry-After longer than the capped wait is what must fit: no retry, though the capped wait would", async () => {
    await connect();
    // The wait is capped at 5 s, and 5 s + a 1.2 s attempt fit in 10 s; the server's 9 s does not.
    answer = () => ({ status: 429, retryAfter: "9", message: "too many requests" });
    const failure = await cluster.withDeadline(10_000, () => cluster.get(DEFAULT)).catch((e) => e);
    expect(failure).toBeInstanceOf(KubernetesUnavailableError);
    expect(failure.message).toContain("failed after 1 attempt(s), with no time for another");
    expect(failure.message).toContain("(Retry-After: 9 s)");
    expect(gets()).toBe(1);
    expect(sleeps).toEqual([]);
  });

  it("never retries a 403, deadline or not", async () => {
    await connect();
    answer = () => ({ status: 403, message: "forbidden: kubler cannot get namespaces" });
    const failure = await cluster.withDeadline(5_000, () => cluster.get(DEFAULT)).catch((e) => e);
    expect(failure).toBeInstanceOf(KubernetesForbiddenError);
    expect(gets()).toBe(1);
    expect(sleeps).toEqual([]);
  });

  it("one deadline for every call of a scope, from its first call; a call past it is not sent; each scope has its own", async () => {
    await connect();
    const failure = await cluster
      .withDeadline(1_000, async () => {
        answer = () => {
          now += 1_000;
          return "pass";
        };
        await cluster.get(DEFAULT);
        answer = () => "pass";
        return cluster.get(DEFAULT);
      })
      .catch((e) => e);
    expect(failure).toBeInstanceOf(KubernetesUnavailableError);
    expect(failure.message).toBe(
      "get Namespace default: the 1000 ms deadline for this request's Kubernetes calls has passed",
    );
    expect(gets()).toBe(1);

    // Time passed before a scope's first call does not count against it.
    now += 60_000;
    expect(await cluster.withDeadline(1_000, () => cluster.get(DEFAULT))).not.toBeNull();
    expect(gets()).toBe(2);
  });

  it("scopes running at the same time keep their own deadlines, and a call outside any has none", async () => {
    await connect();
    let firstDone!: () => void;
    const first = new Promise<void>((resolve) => {
      firstDone = resolve;
    });
    let release!: () => void;
    const gate = new Promise<void>((resolve) => {
      release = resolve;
    });
    const spent = cluster.withDeadline(1_000, async () => {
      await cluster.get(DEFAULT);
      firstDone();
      await gate;
      return cluster.get(DEFAULT);
    });
    await first;
    now += 1_000;
    // While the first scope waits past its deadline, another scope and a call in none are sent.
    await expect(cluster.withDeadline(1_000, () => cluster.get(DEFAULT))).resolves.not.toBeNull();
    await expect(cluster.get(DEFAULT)).resolves.not.toBeNull();
    release();
    await expect(spent).rejects.toThrow(
      "the 1000 ms deadline for this request's Kubernetes calls has passed",
    );
    expect(gets()).toBe(3);
  });

  it("cuts an attempt to the time the deadline has left", async () => {
    await connect({ timeoutMs: 10_000 });
    const failure = await cluster
      .withDeadline(5_000, async () => {
        await cluster.get(DEFAULT);
        now += 4_900;
        answer = () => "hang";
        return cluster.get(DEFAULT);
      })
      .catch((e) => e);
    expect(failure).toBeInstanceOf(KubernetesUnavailableError);
    expect(failure.message).toBe(
      "get Namespace default failed after 1 attempt(s), with no time for another within the 5000 ms deadline; last problem: no answer within 100 ms",
    );
    expect(gets()).toBe(2);
  });

  it("outside withDeadline, retries are as before: maxAttempts, whatever the clock says", async () => {
    await connect({ maxAttempts: 3 });
    answer = slow503(60_000);
    const failure = await cluster.get(DEFAULT).catch((e) => e);
    expect(failure.message).toContain("failed after 3 attempt(s); last problem");
    expect(gets()).toBe(3);
    expect(sleeps).toEqual([50, 100]);
  });
});
