import { createHmac, randomBytes, timingSafeEqual } from 'node:crypto';

/**
 * Bytes of a cookie: a truncated HMAC-SHA256. 128 bits leave a forger no useful chance within a secret's lifetime,
 * and keep the HelloVerifyRequest that carries it at 44 bytes, far below any ClientHello.
 */
export const COOKIE_LENGTH = 16;

/** How long a secret is the current one, unless configured otherwise. */
export const DEFAULT_COOKIE_ROTATION_MS = 60_000;

/** A shared secret shorter than this is a configuration mistake, not a secret. */
export const MIN_COOKIE_SECRET_LENGTH = 16;

/**
 * What a cookie is bound to: the client's address and the ClientHello fields that RFC 6347 §4.2.1 requires the
 * client to repeat unchanged when it answers a HelloVerifyRequest. Extensions are left out on purpose: clients
 * may change them in the retry.
 */
export interface CookieInput {
  address: string;
  port: number;
  clientVersion: number;
  random: Uint8Array;
  sessionId: Uint8Array;
  cipherSuites: readonly number[];
  compressionMethods: Uint8Array;
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
 * Issues and checks stateless DTLS cookies. The key changes every `rotationMs`; keys are derived from the secret
 * and the number of the period, so that processes sharing the secret derive the same keys without talking to each
 * other. A cookie made with the current or the previous period's key is accepted; an older one is not.
 */
export class HelloCookies {
  readonly rotationMs: number;
  readonly #secret: Buffer;
  readonly #now: () => number;
  /** The two keys in use, by period; recomputed only when the period changes. */
  #keys = new Map<number, Buffer>();

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

  /** The cookie for this client and hello, made with the current key. */
  issue(input: CookieInput): Uint8Array {
    return this.#mac(this.#key(this.#period()), input);
  }

  /** Whether `cookie` was issued for this client and hello by the current or the previous key. */
  verify(input: CookieInput, cookie: Uint8Array): boolean {
    // The length is no secret: every cookie this class issues has the same one.
    if (cookie.length !== COOKIE_LENGTH) return false;
    const period = this.#period();
    const given = Buffer.from(cookie.buffer, cookie.byteOffset, cookie.byteLength);
    // Both keys are always tried, so the time taken does not tell which one matched.
    const current = timingSafeEqual(this.#mac(this.#key(period), input), given);
    const previous = timingSafeEqual(this.#mac(this.#key(period - 1), input), given);
    return current || previous;
  }

  #period(): number {
    return Math.floor(this.#now() / this.rotationMs);
  }

  #key(period: number): Buffer {
    let key = this.#keys.get(period);
    if (key === undefined) {
      const counter = Buffer.alloc(8);
      counter.writeBigInt64BE(BigInt(period));
      key = createHmac('sha256', this.#secret).update(KEY_LABEL).update(counter).digest();
      // Only the current and previous periods are ever asked for again.
      for (const old of this.#keys.keys()) if (old < period - 1) this.#keys.delete(old);
      this.#keys.set(period, key);
    }
    return key;
  }

  #mac(key: Buffer, input: CookieInput): Buffer {
    return createHmac('sha256', key).update(encodeCookieInput(input)).digest().subarray(0, COOKIE_LENGTH);
  }
}

/**
 * The bytes the MAC covers. Every variable-length field carries its length, so that no two different inputs
 * encode alike (moving a byte from session_id to random, say).
 */
export function encodeCookieInput(input: CookieInput): Buffer {
  const address = Buffer.from(input.address, 'utf8');
  const suites = input.cipherSuites;
  const size =
    2 + address.length + 2 + 2 + 1 + input.random.length + 1 + input.sessionId.length + 2 + suites.length * 2 + 1 +
    input.compressionMethods.length;
  const out = Buffer.alloc(size);
  let pos = 0;
  pos = out.writeUInt16BE(address.length & 0xffff, pos);
  pos += address.copy(out, pos);
  pos = out.writeUInt16BE(input.port & 0xffff, pos);
  pos = out.writeUInt16BE(input.clientVersion & 0xffff, pos);
  pos = putShortVector(out, pos, input.random);
  pos = putShortVector(out, pos, input.sessionId);
  pos = out.writeUInt16BE((suites.length * 2) & 0xffff, pos);
  for (const suite of suites) pos = out.writeUInt16BE(suite & 0xffff, pos);
  putShortVector(out, pos, input.compressionMethods);
  return out;
}

function putShortVector(out: Buffer, pos: number, bytes: Uint8Array): number {
  out[pos] = bytes.length & 0xff;
  out.set(bytes, pos + 1);
  return pos + 1 + bytes.length;
}
