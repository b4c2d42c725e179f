import { randomUUID } from "node:crypto";
import type { Clock, IdGenerator } from "./ports.js";

/** The real time; the only `Clock` outside tests. */
export const systemClock: Clock = { now: () => new Date() };

/** Random UUIDs, like EventBridge event ids. */
export const randomId: IdGenerator = () => randomUUID();
