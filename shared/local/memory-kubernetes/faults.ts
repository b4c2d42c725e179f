/**
 * Error injection for tests and benchmarks: make chosen requests slow, fail with a status, or never
 * answer, to exercise retries, timeouts and per-item error isolation against a real HTTP client;
 * and have the node evict a Job's pods, to exercise what the Job and its reader make of it.
 */

/** What a request is, as fault rules match it. */
export interface FaultTarget {
  /** get, list, create, update, patch, apply, delete, deletecollection, or discovery. */
  verb: string;
  /** The resource plural ("namespaces"); undefined for discovery. */
  resource?: string;
  /** "status", "token"; undefined for the main resource. */
  subresource?: string;
  namespace?: string;
  name?: string;
  /** A list that carries a `continue` token (a page after the first). */
  continued?: boolean;
}

export interface FaultRule {
  /** Each field that is set must equal the request's; an empty rule matches every request. */
  verb?: string;
  resource?: string;
  /** Unset: the main resource and its subresources alike. */
  subresource?: string;
  namespace?: string;
  name?: string;
  /** true: only lists past their first page (410 for an expired continue token); false: only others. */
  continued?: boolean;
  /** Answer this status (a Kubernetes Status body; 429 carries `Retry-After: 1`). */
  status?: number;
  /** Message of the Status body (default "injected fault"). */
  message?: string;
  /** Wait this long first (then answer `status`, or serve the request normally). */
  latencyMs?: number;
  /** Never answer: the request stays open until the client gives up or the server closes. */
  hang?: boolean;
  /** How many requests the rule applies to (default: all). */
  times?: number;
}

export interface FaultHandle {
  /** How many requests the rule has applied to. */
  readonly hits: number;
  remove(): void;
}

interface ActiveRule<Rule = FaultRule> {
  rule: Rule;
  remaining: number;
  hits: number;
}

/**
 * The kubelet evicts a Job's pod (node short of ephemeral-storage) when it would have ended: the pod
 * fails with reason Evicted and condition DisruptionTarget, its running step killed (exit 137).
 */
export interface PodEvictionRule {
  /** Each field that is set must equal the pod's. */
  namespace?: string;
  /** The Job whose pods are evicted. */
  job?: string;
  /** The pod's status message (default: the kubelet's for a node short of ephemeral-storage). */
  message?: string;
  /** How many pods are evicted (default: all). */
  times?: number;
}

/**
 * @example
 * const rule = server.faults.add({ verb: "delete", resource: "namespaces", status: 503, times: 2 });
 * server.faults.latencyMs = 5; // every request, like a remote API server
 * rule.remove();
 */
export class FaultInjector {
  /** Added to every request before anything else happens. */
  latencyMs = 0;
  readonly #rules: ActiveRule[] = [];
  readonly #evictions: ActiveRule<PodEvictionRule>[] = [];

  add(rule: FaultRule): FaultHandle {
    return handle(this.#rules, rule);
  }

  /**
   * @example
   * const eviction = server.faults.evictPods({ namespace: "kubler-builds", job: name, times: 1 });
   * // the Job's first pod is evicted; with a pod failure policy ignoring DisruptionTarget, a second one runs
   */
  evictPods(rule: PodEvictionRule): FaultHandle {
    return handle(this.#evictions, rule);
  }

  /** Removes every rule and sets `latencyMs` back to 0: no faults at all. */
  clear(): void {
    this.#rules.length = 0;
    this.#evictions.length = 0;
    this.latencyMs = 0;
  }

  /** The first eviction rule with uses left that matches the Job's pod, counted as used. */
  takeEviction(pod: { namespace: string; job: string }): PodEvictionRule | undefined {
    const active = this.#evictions.find(
      ({ rule, remaining }) =>
        remaining > 0 &&
        (rule.namespace === undefined || rule.namespace === pod.namespace) &&
        (rule.job === undefined || rule.job === pod.job),
    );
    if (!active) return undefined;
    active.remaining--;
    active.hits++;
    return active.rule;
  }

  /** The first rule with uses left that matches, counted as used; rules apply in the order added. */
  take(target: FaultTarget): FaultRule | undefined {
    const active = this.#rules.find(({ rule, remaining }) => remaining > 0 && matches(rule, target));
    if (!active) return undefined;
    active.remaining--;
    active.hits++;
    return active.rule;
  }
}

function handle<Rule extends { times?: number }>(rules: ActiveRule<Rule>[], rule: Rule): FaultHandle {
  const active: ActiveRule<Rule> = {
    rule: { ...rule },
    remaining: rule.times ?? Number.POSITIVE_INFINITY,
    hits: 0,
  };
  rules.push(active);
  return {
    get hits() {
      return active.hits;
    },
    remove: () => {
      const index = rules.indexOf(active);
      if (index >= 0) rules.splice(index, 1);
    },
  };
}

function matches(rule: FaultRule, target: FaultTarget): boolean {
  return (
    (rule.verb === undefined || rule.verb === target.verb) &&
    (rule.resource === undefined || rule.resource === target.resource) &&
    (rule.subresource === undefined || rule.subresource === target.subresource) &&
    (rule.namespace === undefined || rule.namespace === target.namespace) &&
    (rule.name === undefined || rule.name === target.name) &&
    (rule.continued === undefined || rule.continued === (target.continued === true))
  );
}
