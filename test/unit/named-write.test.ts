/**
 * writeNamed: a write whose answer was lost is known for the caller's own by the id it carries, and
 * nothing else is. (End to end: reconcile-builds-lost-answer, deploy-environment-lost-answer.)
 */
import { describe, expect, it } from "vitest";
import type { KubeObject, ObjectRef } from "../../shared/domain/kube-object.js";
import {
  KubernetesConflictError,
  KubernetesInvalidError,
  KubernetesUnavailableError,
} from "../../shared/errors.js";
import { writeNamed } from "../../shared/services/named-write.js";

const ANNOTATION = "kubler.dev/test-write";
const REF: ObjectRef = { apiVersion: "v1", kind: "Namespace", name: "env" };
const target = { ref: REF, uid: "uid-1", annotation: ANNOTATION };

const namespace = (uid: string, id?: string): KubeObject => ({
  apiVersion: "v1",
  kind: "Namespace",
  metadata: { name: "env", uid, resourceVersion: "7", ...(id ? { annotations: { [ANNOTATION]: id } } : {}) },
});

/** A cluster whose write lands (`stored` gets the id) and then answers with `error`. */
function landedThenFailed(error: Error, stored: (id: string) => KubeObject | null) {
  let current: KubeObject | null = null;
  const reads: ObjectRef[] = [];
  return {
    reads,
    cluster: {
      get: async (ref: ObjectRef) => {
        reads.push(ref);
        return current;
      },
    },
    write: async (id: string): Promise<KubeObject> => {
      current = stored(id);
      throw error;
    },
  };
}

describe("writeNamed", () => {
  it.each([
    ["a 409 (the retry met it)", new KubernetesConflictError("conflict", 409)],
    ["an unavailable answer", new KubernetesUnavailableError("gave up", 0)],
  ])("takes the write for its own after %s when the object carries its id", async (_, error) => {
    const bed = landedThenFailed(error, (id) => namespace("uid-1", id));
    const written = await writeNamed(bed.cluster, target, bed.write);
    expect(written.metadata.annotations?.[ANNOTATION]).toMatch(/^[0-9a-f-]{36}$/);
    expect(bed.reads).toEqual([REF]);
  });

  it("lets the 409 stand when another write is there (another id, none, another object of the name, none at all)", async () => {
    for (const stored of [
      () => namespace("uid-1", "someone-else"),
      () => namespace("uid-1"),
      (id: string) => namespace("uid-2", id),
      () => null,
    ]) {
      const conflict = new KubernetesConflictError("conflict", 409);
      const bed = landedThenFailed(conflict, stored);
      await expect(writeNamed(bed.cluster, target, bed.write)).rejects.toBe(conflict);
    }
  });

  it("reads nothing after a refusal, which wrote nothing", async () => {
    const refused = new KubernetesInvalidError("invalid", 422);
    const bed = landedThenFailed(refused, (id) => namespace("uid-1", id));
    await expect(writeNamed(bed.cluster, target, bed.write)).rejects.toBe(refused);
    expect(bed.reads).toEqual([]);
  });

  it("lets the write's error stand when the read again fails too", async () => {
    const unavailable = new KubernetesUnavailableError("gave up", 0);
    const cluster = { get: async () => Promise.reject(new KubernetesUnavailableError("read failed", 0)) };
    await expect(
      writeNamed(cluster, target, async () => {
        throw unavailable;
      }),
    ).rejects.toBe(unavailable);
  });

  it("gives each write its own id", async () => {
    const ids: string[] = [];
    const write = async (id: string) => {
      ids.push(id);
      return namespace("uid-1", id);
    };
    const cluster = { get: async () => null };
    await writeNamed(cluster, target, write);
    await writeNamed(cluster, target, write);
    expect(new Set(ids).size).toBe(2);
  });
});
