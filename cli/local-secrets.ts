/**
 * Webhook secrets for the local runtime when none is configured: generated once, kept in the data
 * dir (mode 0600) so restarts and `kubler send` agree on them. Never used in AWS mode.
 */
import { randomBytes } from "node:crypto";
import { existsSync, mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { fileProblem, type WebhookSecrets } from "../shared/config.js";

const FILE = "webhook-secrets.json";

export interface LocalSecrets {
  token: string;
  signingKey: string;
}

/** Reads the generated secrets, creating them on first use. */
export function ensureLocalSecrets(dataDir: string): LocalSecrets {
  const existing = readLocalSecrets(dataDir);
  if (existing) return existing;
  const secrets: LocalSecrets = {
    token: randomBytes(24).toString("base64url"),
    signingKey: `whsec_${randomBytes(32).toString("base64")}`,
  };
  mkdirSync(dataDir, { recursive: true });
  writeFileSync(join(dataDir, FILE), `${JSON.stringify(secrets, null, 2)}\n`, { mode: 0o600 });
  return secrets;
}

export function readLocalSecrets(dataDir: string): LocalSecrets | null {
  const path = join(dataDir, FILE);
  if (!existsSync(path)) return null;
  let text: string;
  try {
    text = readFileSync(path, "utf8");
  } catch (error) {
    throw new Error(`${path} ${fileProblem(error)}`);
  }
  let parsed: Partial<LocalSecrets> | null = null;
  try {
    parsed = JSON.parse(text);
  } catch {
    // A write cut short (a full disk, a killed first start): said below like any other damage.
  }
  if (typeof parsed?.token !== "string" || typeof parsed.signingKey !== "string") {
    throw new Error(`${path} is not a secrets file written by kubler; delete it to generate new secrets`);
  }
  return { token: parsed.token, signingKey: parsed.signingKey };
}

export function toWebhookSecrets(secrets: LocalSecrets): WebhookSecrets {
  return { tokens: [secrets.token], signingKeys: [secrets.signingKey] };
}
