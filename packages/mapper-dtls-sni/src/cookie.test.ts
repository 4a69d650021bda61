import { createHmac } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { COOKIE_INPUT_LENGTH, COOKIE_LENGTH, encodeCookieInput, HelloCookies, type CookieInput } from './cookie.js';
import { sipHash24 } from './siphash.js';

const SECRET = 'a shared secret of enough bytes';
const ROTATION = 60_000;

const base: CookieInput = {
  address: '192.0.2.7',
  port: 50123,
  clientVersion: 0xfefd,
  random: new Uint8Array(Array.from({ length: 32 }, (_, i) => i)),
  sessionId: new Uint8Array([]),
};

/** A clock the tests move by hand; it starts 1234 ms into period 10. */
function clock(start = 10 * ROTATION + 1234) {
  let t = start;
  return { now: () => t, advance: (ms: number) => void (t += ms), set: (ms: number) => void (t = ms) };
}

function jar(now: () => number, secret: string | Uint8Array = SECRET) {
  return new HelloCookies({ secret, rotationMs: ROTATION, now });
}

const hex = (bytes: Uint8Array) => Buffer.from(bytes).toString('hex');

describe('HelloCookies', () => {
  it('accepts the cookie it issued, for the same client and hello', () => {
    const c = clock();
    const cookies = jar(c.now);
    const cookie = cookies.issue(base);
    expect(cookie).toHaveLength(COOKIE_LENGTH);
    expect(COOKIE_LENGTH).toBe(8);
    expect(cookies.verify(base, cookie)).toBe(true);
    // A copy of the hello's fields, as a retry parses into, is the same input.
    expect(cookies.verify({ ...base, random: base.random.slice(), sessionId: base.sessionId.slice() }, cookie)).toBe(true);
  });

  it('gives the cookie computed independently for a known secret, time and hello', () => {
    // HMAC-SHA256(secret, label || period 10)[0..15] is 7d63329e046ac1cd7c68931b1e301923; the input is the one
    // 'lays the fields out' spells out below.
    const cookies = jar(clock().now);
    const input = { ...base, sessionId: new Uint8Array([9, 9]) };
    expect(hex(cookies.periodKeys().current)).toBe('7d63329e046ac1cd7c68931b1e301923');
    expect(hex(cookies.issue(input))).toBe('48c2d8ae4df30db1');
  });

  it.each<[string, Partial<CookieInput>]>([
    ['another address', { address: '192.0.2.8' }],
    ['an address that differs in its first byte', { address: '193.0.2.7' }],
    ['another port', { port: 50124 }],
    ['another client_version', { clientVersion: 0xfeff }],
    ['another last byte of random', { random: base.random.map((b, i) => (i === 31 ? b ^ 1 : b)) }],
    ['another first byte of random', { random: base.random.map((b, i) => (i === 0 ? b ^ 0x80 : b)) }],
    ['a session_id', { sessionId: new Uint8Array([1]) }],
    ['a session_id of one zero byte', { sessionId: new Uint8Array([0]) }],
    ['a session_id of 32 bytes', { sessionId: new Uint8Array(32).fill(0xab) }],
  ])('binds the cookie to the client and hello: refuses it with %s', (_what, change) => {
    const cookies = jar(clock().now);
    const cookie = cookies.issue(base);
    expect(cookies.verify({ ...base, ...change }, cookie)).toBe(false);
    expect(cookies.issue({ ...base, ...change })).not.toEqual(cookie);
  });

  it('tells a session_id from the same one with a zero byte more', () => {
    const cookies = jar(clock().now);
    const withSession = { ...base, sessionId: new Uint8Array([7, 7]) };
    const cookie = cookies.issue(withSession);
    expect(cookies.verify({ ...base, sessionId: new Uint8Array([7, 7, 0]) }, cookie)).toBe(false);
    expect(cookies.verify(withSession, cookie)).toBe(true);
  });

  it('leaves nothing of one hello in the next: a long session_id then a short one', () => {
    const cookies = jar(clock().now);
    const key = cookies.periodKeys().current;
    cookies.issue({ ...base, sessionId: new Uint8Array(32).fill(0xff) });
    expect(cookies.issue(base)).toEqual(sipHash24(key, encodeCookieInput(base)));
    cookies.verify({ ...base, sessionId: new Uint8Array(32).fill(0xff) }, new Uint8Array(COOKIE_LENGTH));
    expect(cookies.verify(base, sipHash24(key, encodeCookieInput(base)))).toBe(true);
  });

  it('hands out a new array for every cookie issued', () => {
    const cookies = jar(clock().now);
    const first = cookies.issue(base);
    const second = cookies.issue(base);
    expect(second).not.toBe(first);
    expect(second).toEqual(first);
  });

  it.each([
    ['the same period', 0, true],
    ['the end of the same period', ROTATION - 1235, true],
    ['the next period (the previous key)', ROTATION, true],
    ['almost two periods later', 2 * ROTATION - 1235, true],
    ['two periods later', 2 * ROTATION, false],
    ['much later', 50 * ROTATION, false],
  ])('rotation: a cookie checked in %s is accepted: %s', (_when, later, accepted) => {
    const c = clock();
    const cookies = jar(c.now);
    const cookie = cookies.issue(base);
    c.advance(later);
    expect(cookies.verify(base, cookie)).toBe(accepted);
  });

  it('issues a different cookie after each rotation, and the new one is accepted', () => {
    const c = clock();
    const cookies = jar(c.now);
    const first = cookies.issue(base);
    c.advance(ROTATION);
    const second = cookies.issue(base);
    expect(second).not.toEqual(first);
    c.advance(ROTATION);
    expect(cookies.verify(base, first)).toBe(false);
    expect(cookies.verify(base, second)).toBe(true);
  });

  it('refuses a tampered cookie, whatever the byte and bit', () => {
    const cookies = jar(clock().now);
    const cookie = cookies.issue(base);
    for (let i = 0; i < cookie.length; i++) {
      for (let bit = 0; bit < 8; bit++) {
        const tampered = cookie.slice();
        tampered[i]! ^= 1 << bit;
        expect(cookies.verify(base, tampered)).toBe(false);
      }
    }
  });

  it.each([
    ['empty', 0],
    ['one byte short', COOKIE_LENGTH - 1],
    ['one byte long', COOKIE_LENGTH + 1],
    ['16 bytes (the former length)', 16],
    ['the size of an OpenSSL cookie', 20],
    ['as long as a cookie can be', 255],
  ])('refuses a cookie that is %s', (_what, length) => {
    const cookies = jar(clock().now);
    const cookie = cookies.issue(base);
    const other = new Uint8Array(length);
    other.set(cookie.subarray(0, Math.min(length, cookie.length)));
    expect(cookies.verify(base, other)).toBe(false);
  });

  it('accepts cookies across instances that share the secret, and only those', () => {
    const c = clock();
    const issuer = jar(c.now);
    const cookie = issuer.issue(base);
    expect(jar(c.now).verify(base, cookie)).toBe(true);
    expect(jar(c.now, new TextEncoder().encode(SECRET)).verify(base, cookie)).toBe(true);
    expect(jar(c.now, `${SECRET}!`).verify(base, cookie)).toBe(false);
    expect(new HelloCookies({ rotationMs: ROTATION, now: c.now }).verify(base, cookie)).toBe(false);
  });

  it('draws a random secret of its own when none is given', () => {
    const c = clock();
    const a = new HelloCookies({ now: c.now });
    const b = new HelloCookies({ now: c.now });
    expect(a.rotationMs).toBe(60_000);
    expect(a.verify(base, a.issue(base))).toBe(true);
    expect(b.verify(base, a.issue(base))).toBe(false);
  });

  it('refuses a short secret and a rotation that is not a positive integer', () => {
    expect(() => new HelloCookies({ secret: 'short' })).toThrow(/at least 16 bytes/);
    expect(() => new HelloCookies({ secret: new Uint8Array(15) })).toThrow(RangeError);
    for (const rotationMs of [0, -1, 1.5, Number.NaN, Number.POSITIVE_INFINITY]) {
      expect(() => new HelloCookies({ rotationMs })).toThrow(/cookieRotationMs/);
    }
  });

  it('refuses, rather than binds, an input the encoding cannot hold', () => {
    const cookies = jar(clock().now);
    expect(() => cookies.issue({ ...base, address: '2001:db8::7' })).toThrow(RangeError);
    expect(() => cookies.verify({ ...base, random: new Uint8Array(31) }, new Uint8Array(COOKIE_LENGTH))).toThrow(RangeError);
  });
});

describe('HelloCookies.periodKeys', () => {
  it('gives the keys issue and verify use, for the current and the previous period', () => {
    const c = clock();
    const cookies = jar(c.now);
    const before = cookies.periodKeys();
    expect(before.period).toBe(10);
    expect(before.current).toHaveLength(16);
    expect(before.previous).toHaveLength(16);
    expect(before.current).not.toEqual(before.previous);
    const cookie = cookies.issue(base);
    expect(cookie).toEqual(sipHash24(before.current, encodeCookieInput(base)));

    c.advance(ROTATION);
    const after = cookies.periodKeys();
    expect(after.period).toBe(11);
    expect(after.previous).toEqual(before.current);
    // The cookie of period 10 is accepted in period 11 because it is the previous key's.
    expect(sipHash24(after.previous, encodeCookieInput(base))).toEqual(cookie);
    expect(cookies.verify(base, cookie)).toBe(true);
    expect(cookies.issue(base)).toEqual(sipHash24(after.current, encodeCookieInput(base)));
  });

  it('derives each key as the first 16 bytes of HMAC-SHA256(secret, label || period as a big-endian int64)', () => {
    const c = clock();
    const cookies = jar(c.now);
    const derive = (period: number) => {
      const counter = Buffer.alloc(8);
      counter.writeBigInt64BE(BigInt(period));
      return new Uint8Array(
        createHmac('sha256', SECRET).update('flowlb dtls hello-verify cookie key\0', 'latin1').update(counter).digest().subarray(0, 16),
      );
    };
    expect(cookies.periodKeys()).toEqual({ period: 10, current: derive(10), previous: derive(9) });
    c.set(0);
    expect(cookies.periodKeys()).toEqual({ period: 0, current: derive(0), previous: derive(-1) });
  });

  it('hands out copies: changing them changes no cookie', () => {
    const cookies = jar(clock().now);
    const cookie = cookies.issue(base);
    const keys = cookies.periodKeys();
    keys.current.fill(0);
    keys.previous.fill(0);
    expect(cookies.issue(base)).toEqual(cookie);
    expect(cookies.periodKeys().current).not.toEqual(keys.current);
  });
});

describe('HelloCookies.msUntilRotation', () => {
  it.each([
    ['1234 ms into a period', 10 * ROTATION + 1234, ROTATION - 1234],
    ['at the start of a period', 10 * ROTATION, ROTATION],
    ['in its last millisecond', 11 * ROTATION - 1, 1],
    ['at time 0', 0, ROTATION],
    ['with a clock that has fractions, close to the end', 11 * ROTATION - 0.25, 1],
    ['with a clock that has fractions', 10 * ROTATION + 0.5, ROTATION],
  ])('counts the milliseconds until the keys change: %s', (_when, now, expected) => {
    const cookies = jar(() => now);
    expect(cookies.msUntilRotation()).toBe(expected);
  });

  it('ends where periodKeys starts a new period', () => {
    const c = clock();
    const cookies = jar(c.now);
    const { period, current } = cookies.periodKeys();
    const wait = cookies.msUntilRotation();
    c.advance(wait - 1);
    expect(cookies.periodKeys().period).toBe(period);
    c.advance(1);
    expect(cookies.periodKeys()).toMatchObject({ period: period + 1, previous: current });
  });
});

describe('encodeCookieInput', () => {
  it('lays the fields out at fixed offsets, 80 bytes', () => {
    const bytes = encodeCookieInput({ ...base, sessionId: new Uint8Array([9, 9]) });
    expect(bytes).toBeInstanceOf(Uint8Array);
    expect(bytes).toHaveLength(COOKIE_INPUT_LENGTH);
    expect([...bytes]).toEqual([
      192, 0, 2, 7, // 0..3: address
      0xc3, 0xcb, // 4..5: port 50123
      0xfe, 0xfd, // 6..7: client_version
      ...base.random, // 8..39
      2, // 40: session_id length
      9, 9, ...new Array<number>(30).fill(0), // 41..72: session_id, zero-padded
      ...new Array<number>(7).fill(0), // 73..79
    ]);
    expect(hex(bytes)).toBe(
      'c0000207c3cbfefd000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f02090900000000000000000000000000000000000000000000000000000000000000000000000000',
    );
  });

  it('puts a full session_id at 41..72 and still zeros 73..79', () => {
    const sessionId = Uint8Array.from({ length: 32 }, (_, i) => 0xa0 + i);
    const bytes = encodeCookieInput({ ...base, address: '255.255.255.255', port: 0xffff, clientVersion: 0, sessionId });
    expect([...bytes.subarray(0, 8)]).toEqual([255, 255, 255, 255, 0xff, 0xff, 0, 0]);
    expect(bytes[40]).toBe(32);
    expect([...bytes.subarray(41, 73)]).toEqual([...sessionId]);
    expect([...bytes.subarray(73)]).toEqual([0, 0, 0, 0, 0, 0, 0]);
  });

  it('reads the views it is given, wherever they sit in their buffers', () => {
    const backing = Uint8Array.from({ length: 100 }, (_, i) => i);
    const bytes = encodeCookieInput({ ...base, random: backing.subarray(50, 82), sessionId: backing.subarray(90, 93) });
    expect([...bytes.subarray(8, 40)]).toEqual([...backing.subarray(50, 82)]);
    expect([...bytes.subarray(40, 45)]).toEqual([3, 90, 91, 92, 0]);
  });

  it('returns a new array each time', () => {
    expect(encodeCookieInput(base)).not.toBe(encodeCookieInput(base));
  });

  it.each(['0.0.0.0', '10.1.2.3', '1.22.255.0'])('takes the dotted quad %s', (address) => {
    const parts = address.split('.').map(Number);
    expect([...encodeCookieInput({ ...base, address }).subarray(0, 4)]).toEqual(parts);
  });

  it.each([
    '',
    '2001:db8::7',
    '::ffff:192.0.2.7',
    '192.0.2',
    '192.0.2.7.1',
    '192.0.2.',
    '.192.0.2',
    '192..2.7',
    '256.0.2.7',
    '192.0.2.1000',
    '01.2.3.4',
    '1.2.3.00',
    ' 1.2.3.4',
    '1.2.3.4 ',
    '1.2.3.-4',
    '1.2.3.4/32',
    'localhost',
  ])('refuses the address %j', (address) => {
    expect(() => encodeCookieInput({ ...base, address })).toThrow(RangeError);
  });

  it.each<[string, Partial<CookieInput>]>([
    ['a random of 31 bytes', { random: new Uint8Array(31) }],
    ['a random of 33 bytes', { random: new Uint8Array(33) }],
    ['a session_id of 33 bytes', { sessionId: new Uint8Array(33) }],
    ['a negative port', { port: -1 }],
    ['a port above 65535', { port: 65536 }],
    ['a port with a fraction', { port: 1.5 }],
    ['a client_version above 65535', { clientVersion: 0x1fefd }],
  ])('refuses %s', (_what, change) => {
    expect(() => encodeCookieInput({ ...base, ...change })).toThrow(RangeError);
  });
});
