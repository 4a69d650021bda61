import { createHmac, randomBytes, timingSafeEqual } from 'node:crypto';
import { SIPHASH_KEY_LENGTH, SIPHASH_OUTPUT_LENGTH, sipHash24Into } from './siphash.js';

/**
 * Bytes of a cookie: one SipHash-2-4 output, 64 bits. With two keys accepted a forged cookie passes with a chance of
 * 2^-63 per datagram, far too little to matter within a key's life of at most two periods; and the HelloVerifyRequest
 * that carries it stays at 36 bytes, far below any ClientHello.
 */
export const COOKIE_LENGTH = SIPHASH_OUTPUT_LENGTH;

/** How long a key is the current one, unless configured otherwise. */
export const DEFAULT_COOKIE_ROTATION_MS = 60_000;

/** A shared secret shorter than this is a configuration mistake, not a secret. */
export const MIN_COOKIE_SECRET_LENGTH = 16;

/** Bytes of {@link encodeCookieInput}'s output. */
export const COOKIE_INPUT_LENGTH = 80;

/** DTLS 1.0 and 1.2 fix these (RFC 6347 §4.2.1 keeps TLS's ClientHello fields). */
const RANDOM_LENGTH = 32;
const MAX_SESSION_ID_LENGTH = 32;

/**
 * What a cookie is bound to: the client's address and the ClientHello fields that come before the cookie.
 *
 * RFC 6347 §4.2.1 says a server SHOULD also bind cipher_suites and compression_methods. They are left out on
 * purpose: they come after the cookie, so a program that sees only the hello's first fragment (an XDP program
 * answering at the driver) could not compute the cookie. The client's 32-byte random already makes each cookie
 * specific to one hello. Extensions are left out too: clients may change them in the retry.
 */
export interface CookieInput {
  /** The client's IPv4 address, as a dotted quad. */
  address: string;
  port: number;
  clientVersion: number;
  /** 32 bytes. */
  random: Uint8Array;
  /** At most 32 bytes. */
  sessionId: Uint8Array;
}

/** The keys of the current and the previous period, as `issue` and `verify` use them. */
export interface CookiePeriodKeys {
  /** The number of the current period: floor(now / rotationMs). */
  period: number;
  /** The 16-byte SipHash key of `period`, the one cookies are issued with. */
  current: Uint8Array;
  /** The 16-byte SipHash key of `period - 1`, still accepted. */
  previous: Uint8Array;
}

export interface HelloCookiesOptions {
  /**
   * The secret cookies are derived from. Processes given the same one (and clocks that agree to within a rotation)
   * accept each other's cookies. Default: 32 random bytes, private to this process.
   */
  secret?: string | Uint8Array;
  /** How often the key in use changes, in milliseconds (default 60 s). A cookie is accepted for 1 to 2 of these. */
  rotationMs?: number;
  /** The clock, in milliseconds; for tests. Default `Date.now`. */
  now?: () => number;
}

const KEY_LABEL = Buffer.from('flowlb dtls hello-verify cookie key\0', 'latin1');

/**
 * Issues and checks stateless DTLS cookies: SipHash-2-4 of {@link encodeCookieInput} under a key that changes every
 * `rotationMs`. SipHash rather than an HMAC so that an XDP program can compute the same cookie. The key of a period
 * is the first 16 bytes of HMAC-SHA256(secret, label || period as a big-endian int64), so that processes sharing the
 * secret derive the same keys without talking to each other, and a key copied out (see {@link periodKeys}) reveals
 * neither the secret nor any other period's key. A cookie made with the current or the previous period's key is
 * accepted; an older one is not.
 */
export class HelloCookies {
  readonly rotationMs: number;
  readonly #secret: Buffer;
  readonly #now: () => number;
  /** The two keys in use, by period; recomputed only when the period changes. */
  #keys = new Map<number, Uint8Array>();
  /** Reused for every hello: encoding and checking must not allocate per forged datagram. */
  readonly #input = new Uint8Array(COOKIE_INPUT_LENGTH);
  readonly #current = new Uint8Array(COOKIE_LENGTH);
  readonly #previous = new Uint8Array(COOKIE_LENGTH);

  /** Throws a RangeError for a secret that is too short or a rotation that is not a positive integer. */
  constructor(options: HelloCookiesOptions = {}) {
    const rotationMs = options.rotationMs ?? DEFAULT_COOKIE_ROTATION_MS;
    if (!(Number.isSafeInteger(rotationMs) && rotationMs > 0)) {
      throw new RangeError(`cookieRotationMs must be a positive integer, got ${String(rotationMs)}`);
    }
    this.rotationMs = rotationMs;
    if (options.secret === undefined) {
      this.#secret = randomBytes(32);
    } else {
      const secret = typeof options.secret === 'string' ? Buffer.from(options.secret, 'utf8') : Buffer.from(options.secret);
      if (secret.length < MIN_COOKIE_SECRET_LENGTH) {
        throw new RangeError(`cookieSecret must have at least ${MIN_COOKIE_SECRET_LENGTH} bytes, got ${secret.length}`);
      }
      this.#secret = secret;
    }
    this.#now = options.now ?? Date.now;
  }

  /** The cookie for this client and hello, made with the current key. Throws a RangeError as {@link encodeCookieInput}. */
  issue(input: CookieInput): Uint8Array {
    encodeCookieInputInto(input, this.#input);
    return sipHash24Into(this.#key(this.#period()), this.#input, new Uint8Array(COOKIE_LENGTH));
  }

  /**
   * Whether `cookie` was issued for this client and hello by the current or the previous key. Throws a RangeError
   * as {@link encodeCookieInput}.
   */
  verify(input: CookieInput, cookie: Uint8Array): boolean {
    // The length is no secret: every cookie this class issues has the same one.
    if (cookie.length !== COOKIE_LENGTH) return false;
    const period = this.#period();
    encodeCookieInputInto(input, this.#input);
    sipHash24Into(this.#key(period), this.#input, this.#current);
    sipHash24Into(this.#key(period - 1), this.#input, this.#previous);
    // Both keys are always tried, so the time taken does not tell which one matched.
    const current = timingSafeEqual(this.#current, cookie);
    const previous = timingSafeEqual(this.#previous, cookie);
    return current || previous;
  }

  /**
   * The keys `issue` and `verify` use now, for a program that must compute the same cookies (copies: changing them
   * changes nothing here). Read them again within {@link msUntilRotation}.
   */
  periodKeys(): CookiePeriodKeys {
    const period = this.#period();
    return { period, current: this.#key(period).slice(), previous: this.#key(period - 1).slice() };
  }

  /** Milliseconds from now until the next period starts and the keys change; at least 1. */
  msUntilRotation(): number {
    const now = this.#now();
    const next = (Math.floor(now / this.rotationMs) + 1) * this.rotationMs;
    return Math.max(1, Math.ceil(next - now));
  }

  #period(): number {
    return Math.floor(this.#now() / this.rotationMs);
  }

  #key(period: number): Uint8Array {
    let key = this.#keys.get(period);
    if (key === undefined) {
      const counter = Buffer.alloc(8);
      counter.writeBigInt64BE(BigInt(period));
      const mac = createHmac('sha256', this.#secret).update(KEY_LABEL).update(counter).digest();
      key = new Uint8Array(mac.subarray(0, SIPHASH_KEY_LENGTH));
      // Only the current and previous periods are ever asked for again.
      for (const old of this.#keys.keys()) if (old < period - 1) this.#keys.delete(old);
      this.#keys.set(period, key);
    }
    return key;
  }
}

/**
 * The 80 bytes a cookie is the SipHash of. An XDP program builds the same bytes from the packet, so this layout is
 * fixed:
 *
 * - 0..3: the client's IPv4 address, in network order (192.0.2.7 is `c0 00 02 07`);
 * - 4..5: the client's UDP port, big-endian;
 * - 6..7: the ClientHello's client_version, big-endian (`fe fd` for DTLS 1.2);
 * - 8..39: the ClientHello's random, 32 bytes;
 * - 40: the length of the ClientHello's session_id, 0 to 32;
 * - 41..72: the session_id, followed by zeros up to 32 bytes;
 * - 73..79: zeros (the length a multiple of 8, so SipHash has no partial word but its own length block).
 *
 * Fixed offsets need no length prefix to tell fields apart; the session_id's own length keeps a session_id that
 * ends in zeros apart from a shorter one.
 *
 * Throws a RangeError for an address that is not a dotted IPv4 quad, a port or client_version that is not an
 * integer from 0 to 65535, a random that is not 32 bytes or a session_id over 32.
 */
export function encodeCookieInput(input: CookieInput): Uint8Array {
  return encodeCookieInputInto(input, new Uint8Array(COOKIE_INPUT_LENGTH));
}

/** {@link encodeCookieInput} into `out` (80 bytes, every one of them written), for a caller that reuses it. */
function encodeCookieInputInto(input: CookieInput, out: Uint8Array): Uint8Array {
  const { port, clientVersion, random, sessionId } = input;
  if (!isUint16(port)) throw new RangeError(`a port is an integer from 0 to 65535, got ${String(port)}`);
  if (!isUint16(clientVersion)) {
    throw new RangeError(`a client_version is an integer from 0 to 65535, got ${String(clientVersion)}`);
  }
  if (random.length !== RANDOM_LENGTH) {
    throw new RangeError(`a ClientHello random has ${RANDOM_LENGTH} bytes, got ${random.length}`);
  }
  if (sessionId.length > MAX_SESSION_ID_LENGTH) {
    throw new RangeError(`a session_id has at most ${MAX_SESSION_ID_LENGTH} bytes, got ${sessionId.length}`);
  }
  putIpv4(input.address, out);
  out[4] = port >>> 8;
  out[5] = port;
  out[6] = clientVersion >>> 8;
  out[7] = clientVersion;
  out.set(random, 8);
  out[40] = sessionId.length;
  out.set(sessionId, 41);
  out.fill(0, 41 + sessionId.length);
  return out;
}

function isUint16(n: number): boolean {
  return Number.isInteger(n) && n >= 0 && n <= 0xffff;
}

/**
 * Writes a dotted quad into out[0..3]: four decimal parts from 0 to 255, without leading zeros (which some parsers
 * read as octal), as a socket reports an address. Read by hand because this runs for every hello.
 */
function putIpv4(address: string, out: Uint8Array): void {
  let part = 0;
  let value = 0;
  let digits = 0;
  for (let i = 0; i <= address.length; i++) {
    const c = i < address.length ? address.charCodeAt(i) : 0x2e; // a '.' closes the last part
    if (c === 0x2e) {
      if (digits === 0 || part > 3) break;
      out[part++] = value;
      value = 0;
      digits = 0;
    } else if (c >= 0x30 && c <= 0x39 && !(digits === 1 && value === 0)) {
      value = value * 10 + (c - 0x30);
      digits++;
      if (value > 255) break;
    } else {
      break;
    }
    if (i === address.length && part === 4) return;
  }
  throw new RangeError(`a cookie is bound to an IPv4 address as a dotted quad, got ${JSON.stringify(address)}`);
}
