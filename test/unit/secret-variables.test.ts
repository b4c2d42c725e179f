import { describe, expect, it } from "vitest";
import { withSecretVariables } from "../../shared/adapters/secret-variables.js";
import { ConfigError } from "../../shared/errors.js";

const ARN = "arn:aws:secretsmanager:eu-west-1:123456789012:secret:kubler/webhook-AbCdEf";
const ALLOWED = ["KUBLER_WEBHOOK_SECRET", "KUBLER_WEBHOOK_SIGNING_KEY"];
const SECRET_VALUE = "s3cr3t-token-value";

function reader(text: string) {
  const reads: string[] = [];
  return {
    reads,
    read: async (id: string) => {
      reads.push(id);
      return text;
    },
  };
}

async function failure(text: string): Promise<string> {
  const env = { KUBLER_WEBHOOK_CREDENTIALS_SECRET: ARN };
  const error = await withSecretVariables(
    env,
    "KUBLER_WEBHOOK_CREDENTIALS_SECRET",
    ALLOWED,
    reader(text).read,
  ).then(
    () => null,
    (e: unknown) => e,
  );
  expect(error).toBeInstanceOf(ConfigError);
  const message = (error as Error).message;
  expect(message).not.toContain(SECRET_VALUE);
  return message;
}

describe("withSecretVariables", () => {
  it("adds the secret's variables over the environment's", async () => {
    const { read, reads } = reader(
      JSON.stringify({ KUBLER_WEBHOOK_SECRET: "a,b", KUBLER_WEBHOOK_SIGNING_KEY: "" }),
    );
    const env = await withSecretVariables(
      { KUBLER_WEBHOOK_CREDENTIALS_SECRET: ARN, KUBLER_WEBHOOK_SECRET: "old", OTHER: "kept" },
      "KUBLER_WEBHOOK_CREDENTIALS_SECRET",
      ALLOWED,
      read,
    );
    expect(reads).toEqual([ARN]);
    expect(env).toMatchObject({
      KUBLER_WEBHOOK_SECRET: "a,b",
      KUBLER_WEBHOOK_SIGNING_KEY: "",
      OTHER: "kept",
    });
  });

  it("leaves the environment alone, reading nothing, when no secret is named (local mode)", async () => {
    const { read, reads } = reader("{}");
    const env = { KUBLER_WEBHOOK_SECRET: "local" };
    expect(await withSecretVariables(env, "KUBLER_WEBHOOK_CREDENTIALS_SECRET", ALLOWED, read)).toBe(env);
    expect(reads).toEqual([]);
  });

  it("names the variable and the secret, never the value, when the secret is not what it should be", async () => {
    expect(await failure(`not json ${SECRET_VALUE}`)).toBe(
      `KUBLER_WEBHOOK_CREDENTIALS_SECRET: secret ${ARN} is not a JSON object of KUBLER_WEBHOOK_SECRET, KUBLER_WEBHOOK_SIGNING_KEY`,
    );
    expect(await failure(JSON.stringify([SECRET_VALUE]))).toContain("is not a JSON object of");
    expect(
      await failure(JSON.stringify({ KUBLER_WEBHOOK_SECRET: SECRET_VALUE, AWS_SECRET_ACCESS_KEY: "x" })),
    ).toBe(
      `KUBLER_WEBHOOK_CREDENTIALS_SECRET: secret ${ARN} holds AWS_SECRET_ACCESS_KEY; only KUBLER_WEBHOOK_SECRET, KUBLER_WEBHOOK_SIGNING_KEY may be kept there`,
    );
    expect(await failure(JSON.stringify({ KUBLER_WEBHOOK_SECRET: 42 }))).toBe(
      `KUBLER_WEBHOOK_CREDENTIALS_SECRET: secret ${ARN} must hold strings, not for KUBLER_WEBHOOK_SECRET`,
    );
  });
});
