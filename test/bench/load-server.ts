/**
 * The local runtime for the load benchmark, as its own process (pinned to its own core by the
 * bench): data in `KUBLER_DATA_DIR`, secrets from the environment. Prints its URL; on SIGTERM closes
 * the runtime, so events.jsonl and audit.jsonl are complete, then exits.
 */
import { startLocalRuntime } from "../../cli/local-runtime.js";
import { loadLocalConfig } from "../../shared/config.js";

const runtime = await startLocalRuntime(loadLocalConfig({ ...process.env, PORT: "0" }));
console.log(runtime.url);
process.on("SIGTERM", () => {
  runtime.close().then(() => process.exit(0));
});
