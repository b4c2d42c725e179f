#!/usr/bin/env node
// The installed `kubler` command: runs the TypeScript CLI through tsx, so `npx kubler` needs no build.
import { register } from "tsx/esm/api";

register();
await import("../cli/kubler.ts");
