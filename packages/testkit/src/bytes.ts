/** What the byte builders take: bytes, or numbers of one byte each. */
export type Bytes = Uint8Array | readonly number[];

/** Byte builders for crafted packets in tests: big-endian integers, strings and hex, joined. */
export function concat(...parts: Bytes[]): Uint8Array {
  const total = parts.reduce((n, p) => n + p.length, 0);
  const out = new Uint8Array(total);
  let pos = 0;
  for (const p of parts) {
    out.set(p, pos);
    pos += p.length;
  }
  return out;
}

export const u8 = (n: number): number[] => [n & 0xff];
export const u16 = (n: number): number[] => [(n >>> 8) & 0xff, n & 0xff];
export const u24 = (n: number): number[] => [(n >>> 16) & 0xff, (n >>> 8) & 0xff, n & 0xff];
/** One byte per character (latin1). */
export const ascii = (s: string): Uint8Array => new Uint8Array(Buffer.from(s, 'latin1'));
/** Hex digits, whitespace allowed between them. */
export const hex = (s: string): Uint8Array => new Uint8Array(Buffer.from(s.replace(/\s+/g, ''), 'hex'));
