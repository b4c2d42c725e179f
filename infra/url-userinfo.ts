/**
 * Whether a URL carries credentials (`user:password@`, or a bare `token@`) before its host, parsed
 * or not: such a value must fail the synth without being quoted. The functions refuse the same at
 * cold start (shared/credentials-config.ts, shared/adapters/gitlab-api.ts).
 *
 * @example
 * hasUserinfo("https://kubler:glpat-…@gitlab.example.com"); // true
 */
export function hasUserinfo(url: string): boolean {
  if (URL.canParse(url)) {
    const parsed = new URL(url);
    if (parsed.username || parsed.password) return true;
  }
  return /^[a-z][a-z0-9+.-]*:(?:[/\\]{2})?[^/\\?#]*@/i.test(url);
}
