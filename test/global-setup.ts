/**
 * Every test's temporary files (data dirs, copied projects, kubeconfigs) go under one directory made
 * for the run and removed after it: `os.tmpdir()` reads TMPDIR, which the workers and the processes
 * tests start inherit. Without it, each run left hundreds of directories in the system's temp dir.
 */
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";

export default function setup(): () => void {
  const previous = process.env.TMPDIR;
  const dir = mkdtempSync(join(tmpdir(), "kubler-test-run-"));
  process.env.TMPDIR = dir;
  return () => {
    if (previous === undefined) delete process.env.TMPDIR;
    else process.env.TMPDIR = previous;
    rmSync(dir, { recursive: true, force: true });
  };
}
