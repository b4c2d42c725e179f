/**
 * The deploy's cluster with hooks around each of its writes and reads, for tests that hold one
 * deploy's request in flight while another runs (two deploys of one environment at once).
 *
 * @example
 * const newerWrote = latch();
 * const older = { ...deps, cluster: hooked(deps.cluster, { before: () => newerWrote.wait }) };
 */
import type { KubeObject } from "../../shared/domain/kube-object.js";
import type { DeployCluster } from "../../shared/services/deploy-environment.js";

export interface ClusterHooks {
  /** Before a write (apply, create) of the deploy using the cluster is sent. */
  before?: (object: KubeObject) => Promise<void>;
  /** After a write landed. */
  after?: (object: KubeObject) => void;
  /** After a read came back. */
  read?: (ref: { kind: string; name: string }, found: KubeObject | null) => void;
}

/** The adapter, with `hooks` run around each write and read; every write that landed is pushed to `writes`. */
export function hooked(
  cluster: DeployCluster,
  hooks: ClusterHooks,
  writes: KubeObject[] = [],
): DeployCluster {
  const write = async (object: KubeObject, send: () => Promise<KubeObject>) => {
    await hooks.before?.(object);
    const stored = await send();
    writes.push(object);
    hooks.after?.(object);
    return stored;
  };
  return {
    get: async (ref) => {
      const found = await cluster.get(ref);
      hooks.read?.(ref, found);
      return found;
    },
    list: (...args) => cluster.list(...args),
    delete: (...args) => cluster.delete(...args),
    createToken: (...args) => cluster.createToken(...args),
    removeFinalizers: (...args) => cluster.removeFinalizers(...args),
    apply: (object) => write(object, () => cluster.apply(object)),
    create: (object) => write(object, () => cluster.create(object)),
    createApplied: (object) => write(object, () => cluster.createApplied(object)),
  };
}

/** A gate one side waits on until the other opens it. */
export function latch(): { wait: Promise<void>; open: () => void } {
  let open!: () => void;
  const wait = new Promise<void>((resolve) => {
    open = resolve;
  });
  return { wait, open };
}
