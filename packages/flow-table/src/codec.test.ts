import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { decodeKey, decodeValue, encodeKey, encodeValue } from './codec.js';
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
