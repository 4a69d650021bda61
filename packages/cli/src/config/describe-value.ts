/** A value as a message shows it: strings quoted, structures named rather than dumped. */
export function describeValue(v: unknown): string {
  if (v === undefined) return 'nothing';
  if (v === null) return 'nothing (null)';
  if (typeof v === 'string') return JSON.stringify(v);
  if (Array.isArray(v)) return 'a list';
  if (typeof v === 'object') return 'a mapping';
  return String(v);
}

/** Levenshtein distance, for "did you mean" on unknown keys. */
export function editDistance(a: string, b: string): number {
  const prev = Array.from({ length: b.length + 1 }, (_, i) => i);
  for (let i = 1; i <= a.length; i++) {
    let diag = prev[0]!;
    prev[0] = i;
    for (let j = 1; j <= b.length; j++) {
      const up = prev[j]!;
      prev[j] = Math.min(up + 1, prev[j - 1]! + 1, diag + (a[i - 1] === b[j - 1] ? 0 : 1));
      diag = up;
    }
  }
  return prev[b.length]!;
}

/** The words of a key, whichever way it is spelt: `conn_ttl_sec`, `conn-ttl-sec` and `connTtlSec` all give conn, ttl, sec. */
function words(key: string): string[] {
  return key
    .replace(/([a-z0-9])([A-Z])/g, '$1_$2')
    .toLowerCase()
    .split(/[-_\s.]+/)
    .filter((w) => w.length > 0);
}

/** Equal, or one word shortens the other (`sec` for `seconds`, `addr` for `address`); too short a stem would match anything. */
function sameWord(a: string, b: string): boolean {
  if (a === b) return true;
  const [short, long] = a.length < b.length ? [a, b] : [b, a];
  return short.length >= 3 && long.startsWith(short);
}

/** Whether every word of `part`, in order, is among the words of `whole`. */
function wordsWithin(part: readonly string[], whole: readonly string[]): boolean {
  let i = 0;
  for (const w of whole) if (i < part.length && sameWord(part[i]!, w)) i++;
  return i === part.length;
}

/** Whether the words of `part` are the first words of `whole`, as a key cut short is. */
function leadingWords(part: readonly string[], whole: readonly string[]): boolean {
  return part.length <= whole.length && part.every((w, i) => sameWord(w, whole[i]!));
}

/**
 * The key that holds the unknown one's words or is held by them: `conn_ttl` and `ttl` → `conn_ttl_sec`,
 * `timeout` → `timeout_ms`, `snat_address` → `snat_addr`. More words in common come first, then a key that begins
 * with what was typed (as a completion would), then the fewest words added or left over; a tie between two keys
 * (`snat` begins four) suggests nothing.
 */
function closestByWords(unknown: string, known: readonly string[]): string | undefined {
  const mine = words(unknown);
  if (mine.length === 0) return undefined;
  let best: string | undefined;
  let bestScore = -Infinity;
  let tie = false;
  for (const k of known) {
    const theirs = words(k);
    if (!wordsWithin(mine, theirs) && !wordsWithin(theirs, mine)) continue;
    const score =
      Math.min(mine.length, theirs.length) * 100 + (leadingWords(mine, theirs) ? 10 : 0) - Math.abs(mine.length - theirs.length);
    if (score > bestScore) {
      best = k;
      bestScore = score;
      tie = false;
    } else if (score === bestScore) {
      tie = true;
    }
  }
  return tie ? undefined : best;
}

/** The known key a typo or a shortened name most likely meant: `connTtlSec` and `conn_ttl` → `conn_ttl_sec`, `prot` → `port`. */
export function closestKey(unknown: string, known: readonly string[]): string | undefined {
  const squash = (s: string): string => s.toLowerCase().replace(/[-_]/g, '');
  const exact = known.find((k) => squash(k) === squash(unknown));
  if (exact) return exact;
  let best: string | undefined;
  let bestDistance = Infinity;
  for (const k of known) {
    const d = editDistance(unknown.toLowerCase(), k);
    if (d < bestDistance) {
      best = k;
      bestDistance = d;
    }
  }
  if (bestDistance <= Math.max(unknown.length >= 4 ? 2 : 1, Math.floor(unknown.length / 4))) return best;
  return closestByWords(unknown, known);
}
