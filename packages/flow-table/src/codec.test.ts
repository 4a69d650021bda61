import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { decodeKey, decodeValue, encodeKey, encodeValue, LastUsedBound } from './codec.js';
import { FLOW_KEY_SIZE, FLOW_VALUE_SIZE, HOST_LITTLE_ENDIAN } from './layout.js';
import { flowKey, flowValue } from './testing/arbitraries.js';
import type { FlowKey, FlowValue } from './types.js';

const key: FlowKey = { dstAddr: '192.0.2.10', srcAddr: '198.51.100.7', dstPort: 443, srcPort: 51000 };
const value: FlowValue = {
  dstAddr: '10.0.0.2',
  srcAddr: '192.0.2.10',
  dstPort: 8443,
  srcPort: 20001,
  flags: 1,
  lastUsed: 0x0102030405060708n,
};

describe('key codec', () => {
  it('writes addresses and ports in network byte order and zeroes pad', () => {
    expect(encodeKey(key).toString('hex')).toBe('c000020a' + 'c6336407' + '01bb' + 'c738' + '00000000');
    expect(encodeKey(key)).toHaveLength(FLOW_KEY_SIZE);
  });

  it('round-trips any key', () => {
    fc.assert(
      fc.property(flowKey, (k) => {
        expect(decodeKey(encodeKey(k))).toEqual(k);
      }),
    );
  });

  it('writes into a given buffer at an offset and leaves the rest alone', () => {
    fc.assert(
      fc.property(flowKey, fc.nat(32), (k, offset) => {
        const out = new Uint8Array(offset + FLOW_KEY_SIZE + 3).fill(0xee);
        expect(encodeKey(k, out, offset)).toBe(out);
        expect(out.subarray(0, offset).every((b) => b === 0xee)).toBe(true);
        expect(out.subarray(offset + FLOW_KEY_SIZE).every((b) => b === 0xee)).toBe(true);
        expect(decodeKey(out, offset)).toEqual(k);
      }),
    );
  });

  it('ignores pad when reading', () => {
    const bytes = encodeKey(key);
    bytes.writeUInt32BE(0xdeadbeef, 12);
    expect(decodeKey(bytes)).toEqual(key);
  });

  it('rejects invalid fields without writing anything', () => {
    const out = new Uint8Array(FLOW_KEY_SIZE).fill(7);
    expect(() => encodeKey({ ...key, srcPort: 70000 }, out)).toThrow(/srcPort: 70000 is not a port/);
    expect(() => encodeKey({ ...key, dstAddr: '10.0.0.256' }, out)).toThrow(/dstAddr: .*invalid octet "256"/);
    expect(() => encodeKey({ ...key, srcAddr: '2001:db8::1' }, out)).toThrow(/srcAddr: .*IPv4 only/);
    expect(out.every((b) => b === 7)).toBe(true);
  });

  it('rejects buffers that are too short', () => {
    expect(() => encodeKey(key, new Uint8Array(15))).toThrow(/needs 16 bytes at offset 0, the buffer has 15/);
    expect(() => decodeKey(new Uint8Array(20), 5)).toThrow(/needs 16 bytes at offset 5/);
    expect(() => decodeKey(new Uint8Array(16), -1)).toThrow(RangeError);
  });
});

describe('value codec', () => {
  it('writes flags and last_used in host byte order after the network-order rewrite', () => {
    const bytes = encodeValue(value);
    expect(bytes).toHaveLength(FLOW_VALUE_SIZE);
    expect(bytes.subarray(0, 12).toString('hex')).toBe('0a000002' + 'c000020a' + '20fb' + '4e21');
    const flags = HOST_LITTLE_ENDIAN ? '01000000' : '00000001';
    const lastUsed = HOST_LITTLE_ENDIAN ? '0807060504030201' : '0102030405060708';
    expect(bytes.subarray(12).toString('hex')).toBe(flags + lastUsed);
  });

  it('agrees with the host order that this machine uses for numbers', () => {
    const bytes = encodeValue({ ...value, flags: 0x11223344, lastUsed: 0x1122334455667788n });
    expect(new Uint32Array(bytes.buffer.slice(bytes.byteOffset + 12, bytes.byteOffset + 16))[0]).toBe(0x11223344);
    expect(new BigUint64Array(bytes.buffer.slice(bytes.byteOffset + 16, bytes.byteOffset + 24))[0]).toBe(
      0x1122334455667788n,
    );
  });

  it('round-trips any value, into fresh and given buffers', () => {
    fc.assert(
      fc.property(flowValue, fc.nat(16), (v, offset) => {
        expect(decodeValue(encodeValue(v))).toEqual(v);
        const out = Buffer.alloc(offset + FLOW_VALUE_SIZE);
        encodeValue(v, out, offset);
        expect(decodeValue(out, offset)).toEqual(v);
      }),
    );
  });

  it('decodes any 24 bytes and re-encodes them unchanged', () => {
    fc.assert(
      fc.property(fc.uint8Array({ minLength: FLOW_VALUE_SIZE, maxLength: FLOW_VALUE_SIZE }), (raw) => {
        expect(Buffer.from(encodeValue(decodeValue(raw))).equals(Buffer.from(raw))).toBe(true);
      }),
    );
  });

  it('rejects flags and timestamps out of range', () => {
    expect(() => encodeValue({ ...value, flags: -1 })).toThrow(/flags: -1 is not a 32-bit unsigned integer/);
    expect(() => encodeValue({ ...value, flags: 2 ** 32 })).toThrow(/flags/);
    expect(() => encodeValue({ ...value, lastUsed: -1n })).toThrow(/lastUsed: -1 is not a 64-bit unsigned bigint/);
    expect(() => encodeValue({ ...value, lastUsed: 1n << 64n })).toThrow(/lastUsed/);
    expect(() => encodeValue({ ...value, lastUsed: 5 as unknown as bigint })).toThrow(/lastUsed/);
    expect(() => encodeValue({ ...value, dstPort: -5 })).toThrow(/dstPort/);
  });
});

describe('LastUsedBound', () => {
  const U64_MAX = (1n << 64n) - 1n;
  const u64 = fc.oneof(
    fc.bigInt({ min: 0n, max: U64_MAX }),
    // Words that agree in one half, where the other half decides.
    fc.tuple(fc.nat(0xffffffff), fc.nat(0xffffffff)).map(([hi, lo]) => (BigInt(hi) << 32n) | BigInt(lo)),
    fc.constantFrom(0n, 1n, 0xffffffffn, 1n << 32n, (1n << 32n) + 1n, U64_MAX - 1n, U64_MAX),
  );
  const bound = fc.oneof(u64, fc.bigInt({ min: -(1n << 70n), max: 1n << 70n }));

  it('agrees with decoding, for any last_used and any bound', () => {
    fc.assert(
      fc.property(flowValue, u64, bound, fc.nat(40), (v, lastUsed, b, offset) => {
        const out = Buffer.alloc(offset + FLOW_VALUE_SIZE + 5, 0xa5);
        encodeValue({ ...v, lastUsed }, out, offset);
        expect(new LastUsedBound(b).isBefore(out, offset)).toBe(decodeValue(out, offset).lastUsed < b);
      }),
      { numRuns: 2000 },
    );
  });

  it('reads last_used in host byte order, as the XDP program writes it', () => {
    const bytes = Buffer.alloc(FLOW_VALUE_SIZE);
    const stamp = 0x0000000100000002n;
    if (HOST_LITTLE_ENDIAN) bytes.writeBigUInt64LE(stamp, 16);
    else bytes.writeBigUInt64BE(stamp, 16);
    expect(new LastUsedBound(stamp).isBefore(bytes, 0)).toBe(false);
    expect(new LastUsedBound(stamp + 1n).isBefore(bytes, 0)).toBe(true);
    // Read in the other byte order the stamp would be 0x0200000001000000, far beyond these bounds.
    expect(new LastUsedBound(0x0000000200000000n).isBefore(bytes, 0)).toBe(true);
    expect(new LastUsedBound(0x0000000100000000n).isBefore(bytes, 0)).toBe(false);
  });

  it('admits nothing below 0 and everything above the largest u64', () => {
    const zero = encodeValue({ ...value, lastUsed: 0n });
    const max = encodeValue({ ...value, lastUsed: U64_MAX });
    for (const b of [-5n, 0n]) expect(new LastUsedBound(b).isBefore(zero, 0)).toBe(false);
    expect(new LastUsedBound(1n).isBefore(zero, 0)).toBe(true);
    expect(new LastUsedBound(U64_MAX).isBefore(max, 0)).toBe(false);
    expect(new LastUsedBound(U64_MAX + 1n).isBefore(max, 0)).toBe(true);
    expect(new LastUsedBound(1n << 80n).isBefore(max, 0)).toBe(true);
  });

  it('takes only a bigint', () => {
    expect(() => new LastUsedBound(5 as unknown as bigint)).toThrow(/not a bigint/);
  });
});
