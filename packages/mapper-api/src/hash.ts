const FNV_OFFSET_BASIS = 0x811c9dc5;
const FNV_PRIME = 0x01000193;

const utf8 = new TextEncoder();

/** Continues an FNV-1a (32-bit) hash over the UTF-8 bytes of `text`; start with `FNV_OFFSET_BASIS`. */
export function fnv1a32(text: string, state: number = FNV_OFFSET_BASIS): number {
  let h = state;
  for (const byte of utf8.encode(text)) {
    h ^= byte;
    h = Math.imul(h, FNV_PRIME);
  }
  return h >>> 0;
}

/**
 * MurmurHash3's finaliser. FNV-1a alone lets the last input bytes reach only some output bits, and rendezvous
 * hashing compares whole scores, so every bit has to depend on every input byte.
 */
export function fmix32(value: number): number {
  let h = value;
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b);
  h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2ae35);
  h ^= h >>> 16;
  return h >>> 0;
}
