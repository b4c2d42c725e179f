/**
 * Environment lifetimes: `30m`, `72h`, `7d`, `2w`, or `never`.
 */

const UNIT_MS = { m: 60_000, h: 3_600_000, d: 86_400_000, w: 604_800_000 } as const;
const TTL = /^([1-9]\d{0,5})([mhdw])$/;
/** A year: longer than that is almost certainly a typo (`720d`), and Scheduler dates stay sane. */
const MAX_TTL_MS = 366 * UNIT_MS.d;

export const NEVER = "never";

/**
 * Milliseconds for a TTL, null for `never`; throws a message fit for the user otherwise.
 *
 * @example
 * parseTtl("72h"); // 259_200_000
 * parseTtl("never"); // null
 */
export function parseTtl(ttl: string): number | null {
  if (ttl === NEVER) return null;
  const match = TTL.exec(ttl);
  if (!match)
    throw new Error(`ttl ${JSON.stringify(ttl)} is not a duration like 30m, 72h, 7d, 2w or "never"`);
  const ms = Number(match[1]) * UNIT_MS[match[2] as keyof typeof UNIT_MS];
  if (ms > MAX_TTL_MS) throw new Error(`ttl ${JSON.stringify(ttl)} is longer than 366 days`);
  return ms;
}

/** When an environment deployed at `from` with `ttl` expires; null when it never does. */
export function expiryOf(ttl: string, from: Date): Date | null {
  const ms = parseTtl(ttl);
  return ms === null ? null : new Date(from.getTime() + ms);
}
