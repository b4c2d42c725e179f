/** dynalite ships no types: the one call the tests make (test/fakes/dynamodb-emulator.ts). */
declare module "dynalite" {
  import type { Server } from "node:http";

  interface DynaliteOptions {
    /** How long a table stays CREATING, DELETING or UPDATING (default 500 ms). */
    createTableMs?: number;
    deleteTableMs?: number;
    updateTableMs?: number;
  }

  /** An HTTP server answering the DynamoDB API from an in-memory LevelDB; call `listen` to start it. */
  export default function dynalite(options?: DynaliteOptions): Server;
}
