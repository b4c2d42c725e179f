/**
 * Lambda entry point (Function URL). Config and clients are built once per container, on cold start.
 */
import { handle } from "hono/aws-lambda";
import { createJobCredentialsApp } from "./app.js";

const app = createJobCredentialsApp({});

export const handler = handle(app);
