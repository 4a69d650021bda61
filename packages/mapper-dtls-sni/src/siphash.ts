/**
 * SipHash-2-4 with a 64-bit output (Aumasson and Bernstein, "SipHash: a fast short-input PRF"), byte for byte as
 * the reference `siphash.c`: the key is read as two little-endian 64-bit words, the result is written little-endian.
 *
 * Each 64-bit word is held as two 32-bit halves in local variables: BigInt arithmetic would allocate on every
 * operation, and the cookie check runs for every forged hello.
 */

/** Bytes of a SipHash key. */
export const SIPHASH_KEY_LENGTH = 16;

/** Bytes of a SipHash-2-4 output. */
export const SIPHASH_OUTPUT_LENGTH = 8;

/** The 8-byte SipHash-2-4 of `message` under the 16-byte `key`. Throws a RangeError for a key of another length. */
export function sipHash24(key: Uint8Array, message: Uint8Array): Uint8Array {
  return sipHash24Into(key, message, new Uint8Array(SIPHASH_OUTPUT_LENGTH));
}

/**
 * {@link sipHash24} written into the first 8 bytes of `out`, which it returns, so that a caller can reuse one
 * buffer. Throws a RangeError for a key that is not 16 bytes or an `out` shorter than 8.
 */
export function sipHash24Into(key: Uint8Array, message: Uint8Array, out: Uint8Array): Uint8Array {
  if (key.length !== SIPHASH_KEY_LENGTH) {
    throw new RangeError(`a SipHash key has ${SIPHASH_KEY_LENGTH} bytes, got ${key.length}`);
  }
  if (out.length < SIPHASH_OUTPUT_LENGTH) {
    throw new RangeError(`a SipHash output needs ${SIPHASH_OUTPUT_LENGTH} bytes, got room for ${out.length}`);
  }
  const k0l = le32(key, 0);
  const k0h = le32(key, 4);
  const k1l = le32(key, 8);
  const k1h = le32(key, 12);
  // The initial state is the key xored with "somepseudorandomlygeneratedbytes", as the reference has it.
  let v0h = k0h ^ 0x736f6d65;
  let v0l = k0l ^ 0x70736575;
  let v1h = k1h ^ 0x646f7261;
  let v1l = k1l ^ 0x6e646f6d;
  let v2h = k0h ^ 0x6c796765;
  let v2l = k0l ^ 0x6e657261;
  let v3h = k1h ^ 0x74656462;
  let v3l = k1l ^ 0x79746573;

  const length = message.length;
  const whole = length - (length & 7);
  // One pass per 8-byte word, then one for the last word (the tail, with the length in its top byte), then the
  // finalization: written as one loop so that the round exists once.
  let pos = 0;
  let mh = 0;
  let ml = 0;
  for (;;) {
    let rounds: number;
    if (pos < whole) {
      ml = le32(message, pos);
      mh = le32(message, pos + 4);
      pos += 8;
      rounds = 2;
    } else if (pos === whole) {
      ml = 0;
      mh = (length & 0xff) << 24;
      for (let i = whole; i < length; i++) {
        const shift = (i - whole) * 8;
        if (shift < 32) ml |= message[i]! << shift;
        else mh |= message[i]! << (shift - 32);
      }
      pos = whole + 8;
      rounds = 2;
    } else {
      mh = 0;
      ml = 0;
      v2l ^= 0xff;
      rounds = 4;
    }
    v3h ^= mh;
    v3l ^= ml;
    for (let r = 0; r < rounds; r++) {
      let s: number;
      let t: number;
      // v0 += v1; v1 <<<= 13; v1 ^= v0; v0 <<<= 32
      s = (v0l >>> 0) + (v1l >>> 0);
      v0h = (v0h + v1h + (s > 0xffffffff ? 1 : 0)) | 0;
      v0l = s | 0;
      t = (v1h << 13) | (v1l >>> 19);
      v1l = ((v1l << 13) | (v1h >>> 19)) ^ v0l;
      v1h = t ^ v0h;
      t = v0h;
      v0h = v0l;
      v0l = t;
      // v2 += v3; v3 <<<= 16; v3 ^= v2
      s = (v2l >>> 0) + (v3l >>> 0);
      v2h = (v2h + v3h + (s > 0xffffffff ? 1 : 0)) | 0;
      v2l = s | 0;
      t = (v3h << 16) | (v3l >>> 16);
      v3l = ((v3l << 16) | (v3h >>> 16)) ^ v2l;
      v3h = t ^ v2h;
      // v0 += v3; v3 <<<= 21; v3 ^= v0
      s = (v0l >>> 0) + (v3l >>> 0);
      v0h = (v0h + v3h + (s > 0xffffffff ? 1 : 0)) | 0;
      v0l = s | 0;
      t = (v3h << 21) | (v3l >>> 11);
      v3l = ((v3l << 21) | (v3h >>> 11)) ^ v0l;
      v3h = t ^ v0h;
      // v2 += v1; v1 <<<= 17; v1 ^= v2; v2 <<<= 32
      s = (v2l >>> 0) + (v1l >>> 0);
      v2h = (v2h + v1h + (s > 0xffffffff ? 1 : 0)) | 0;
      v2l = s | 0;
      t = (v1h << 17) | (v1l >>> 15);
      v1l = ((v1l << 17) | (v1h >>> 15)) ^ v2l;
      v1h = t ^ v2h;
      t = v2h;
      v2h = v2l;
      v2l = t;
    }
    if (rounds === 4) break;
    v0h ^= mh;
    v0l ^= ml;
  }

  const lo = v0l ^ v1l ^ v2l ^ v3l;
  const hi = v0h ^ v1h ^ v2h ^ v3h;
  out[0] = lo;
  out[1] = lo >>> 8;
  out[2] = lo >>> 16;
  out[3] = lo >>> 24;
  out[4] = hi;
  out[5] = hi >>> 8;
  out[6] = hi >>> 16;
  out[7] = hi >>> 24;
  return out;
}

function le32(bytes: Uint8Array, pos: number): number {
  return bytes[pos]! | (bytes[pos + 1]! << 8) | (bytes[pos + 2]! << 16) | (bytes[pos + 3]! << 24);
}
