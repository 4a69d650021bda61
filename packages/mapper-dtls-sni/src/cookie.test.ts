import { describe, expect, it } from 'vitest';
import { COOKIE_LENGTH, encodeCookieInput, HelloCookies, type CookieInput } from './cookie.js';

const SECRET = 'a shared secret of enough bytes';
const ROTATION = 60_000;

const base: CookieInput = {
  address: '192.0.2.7',
  port: 50123,
  clientVersion: 0xfefd,
  random: new Uint8Array(Array.from({ length: 32 }, (_, i) => i)),
  sessionId: new Uint8Array([]),
  cipherSuites: [0xc02b, 0xc02f, 0x00ff],
  compressionMethods: new Uint8Array([0]),
};

/** A clock the tests move by hand. */
function clock(start = 10 * ROTATION + 1234) {
  let t = start;
  return { now: () => t, advance: (ms: number) => void (t += ms) };
}

function jar(now: () => number, secret: string | Uint8Array = SECRET) {
  return new HelloCookies({ secret, rotationMs: ROTATION, now });
}

describe('HelloCookies', () => {
  it('accepts the cookie it issued, for the same client and hello', () => {
    const c = clock();
    const cookies = jar(c.now);
    const cookie = cookies.issue(base);
    expect(cookie).toHaveLength(COOKIE_LENGTH);
    expect(cookies.verify(base, cookie)).toBe(true);
    // A copy of the hello's fields, as a retry parses into, is the same input.
    expect(cookies.verify({ ...base, random: base.random.slice(), cipherSuites: [...base.cipherSuites] }, cookie)).toBe(true);
  });

  it.each<[string, Partial<CookieInput>]>([
    ['another address', { address: '192.0.2.8' }],
    ['an IPv6 address', { address: '2001:db8::7' }],
    ['another port', { port: 50124 }],
    ['another client_version', { clientVersion: 0xfeff }],
    ['another random', { random: base.random.map((b, i) => (i === 31 ? b ^ 1 : b)) }],
    ['a session_id', { sessionId: new Uint8Array([1]) }],
    ['another session_id', { sessionId: new Uint8Array([0]) }],
    ['other cipher suites', { cipherSuites: [0xc02b, 0xc02f] }],
    ['cipher suites in another order', { cipherSuites: [0xc02f, 0xc02b, 0x00ff] }],
    ['other compression methods', { compressionMethods: new Uint8Array([0, 1]) }],
  ])('binds the cookie to the client and hello: refuses it with %s', (_what, change) => {
    const cookies = jar(clock().now);
    const cookie = cookies.issue(base);
    expect(cookies.verify({ ...base, ...change }, cookie)).toBe(false);
    expect(cookies.issue({ ...base, ...change })).not.toEqual(cookie);
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
});

describe('encodeCookieInput', () => {
  it('encodes every field with its length, so that moving bytes between fields changes the encoding', () => {
    const moved: CookieInput = {
      ...base,
      random: base.random.subarray(0, 31),
      sessionId: base.random.subarray(31),
    };
    expect(encodeCookieInput(moved)).not.toEqual(encodeCookieInput(base));
    const suitesIntoCompression: CookieInput = { ...base, cipherSuites: [0xc02b, 0xc02f], compressionMethods: new Uint8Array([0x00, 0xff, 0]) };
    expect(encodeCookieInput(suitesIntoCompression)).not.toEqual(encodeCookieInput(base));
  });

  it('lays the fields out in order', () => {
    const bytes = encodeCookieInput({ ...base, address: '10.1.2.3', sessionId: new Uint8Array([9, 9]) });
    expect([...bytes]).toEqual([
      0, 8, ...Buffer.from('10.1.2.3'),
      0xc3, 0xcb, // port 50123
      0xfe, 0xfd,
      32, ...base.random,
      2, 9, 9,
      0, 6, 0xc0, 0x2b, 0xc0, 0x2f, 0x00, 0xff,
      1, 0,
    ]);
  });
});
