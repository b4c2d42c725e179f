/**
 * When a dedupe claim, a lease or a stop record stops holding, one rule for every store: DynamoDB's
 * TTL attribute counts whole seconds, so a hold ends at the first whole second at or after its end,
 * and the memory stores end theirs there too (test/integration/*-contract.test.ts: the two agree to
 * the instant).
 *
 * @example
 * expiresAtSeconds(Date.parse("2026-11-21T10:00:00.750Z"), 60); // 10:01:01Z in epoch seconds
 */
export function expiresAtSeconds(fromMs: number, seconds: number): number {
  return Math.ceil((fromMs + seconds * 1000) / 1000);
}
