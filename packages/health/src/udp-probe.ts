import { createSocket } from 'node:dgram';
import { isIP } from 'node:net';
import type { Probe, ProbeOutcome } from './types.js';

export interface UdpProbeOptions {
  /** Sent once per probe. A string is sent as latin1, one byte per character, so `'\xff'` is the byte 0xff. */
  payload: string | Uint8Array;
  /** When given, only a reply whose bytes, read as latin1, match it is a success. */
  expect?: RegExp;
  /**
   * Local address of the probe's socket. Default `0.0.0.0` for IPv4 targets and `::` for IPv6 ones; when given,
   * it must be of the target's family.
   */
  bindAddress?: string;
}

const ERROR_REASONS: Record<string, string> = {
  // What an ICMP destination unreachable turns into on a connected socket.
  ECONNREFUSED: 'port unreachable',
  EHOSTUNREACH: 'host unreachable',
  ENETUNREACH: 'network unreachable',
};

function reasonOf(error: unknown): string {
  const code = (error as { code?: unknown } | null)?.code;
  if (typeof code === 'string' && ERROR_REASONS[code] !== undefined) return ERROR_REASONS[code];
  if (error instanceof Error) return error.message || error.name;
  return String(error);
}

/**
 * A probe that sends `payload` to the target from a fresh UDP socket and waits for a datagram back: success on any
 * reply, or with `expect`, on a reply that matches it (any other reply fails as `unexpected reply`). An ICMP
 * unreachable fails at once as `port unreachable`, `host unreachable` or `network unreachable`.
 *
 * Each probe binds port 0, a port of the kernel's ephemeral range, which lies outside flowlb's default SNAT ports,
 * and connects the socket to the target, so that only the target's datagrams (and its ICMP errors) reach it. The
 * socket is closed before the probe settles, whatever the outcome; it keeps the process alive only while the
 * probe runs.
 */
export function udpProbe(options: UdpProbeOptions): Probe {
  if (typeof options !== 'object' || options === null) throw new TypeError('udpProbe: options must be an object');
  const { payload, expect, bindAddress } = options;

  let bytes: Uint8Array;
  if (typeof payload === 'string') {
    // Buffer.from(…, 'latin1') silently keeps only the low byte of wider characters, which would send other bytes than written.
    if (/[^\x00-\xff]/.test(payload)) {
      throw new RangeError('udpProbe: a string payload may only hold characters \\x00 to \\xff; pass a Uint8Array for other bytes');
    }
    bytes = Buffer.from(payload, 'latin1');
  } else if (payload instanceof Uint8Array) {
    // Copied, so that a caller reusing its buffer cannot change what later probes send.
    bytes = Uint8Array.from(payload);
  } else {
    throw new TypeError('udpProbe: payload must be a string or a Uint8Array');
  }

  let matcher: RegExp | undefined;
  if (expect !== undefined) {
    if (!(expect instanceof RegExp)) throw new TypeError('udpProbe: expect must be a RegExp');
    // Without the g and y flags, so that test() does not carry lastIndex from one reply to the next.
    matcher = new RegExp(expect.source, expect.flags.replace(/[gy]/g, ''));
  }

  const bindFamily = bindAddress === undefined ? 0 : isIP(bindAddress);
  if (bindAddress !== undefined && bindFamily === 0) {
    throw new TypeError(`udpProbe: bindAddress ${JSON.stringify(bindAddress)} is not an IPv4 or IPv6 address`);
  }

  return (target, { timeoutMs, signal }) =>
    new Promise<ProbeOutcome>((resolve) => {
      if (signal.aborted) {
        resolve({ ok: false, reason: 'aborted' });
        return;
      }
      const family = isIP(target.address);
      if (family === 0) {
        resolve({ ok: false, reason: `target address ${JSON.stringify(target.address)} is not an IPv4 or IPv6 address` });
        return;
      }
      if (bindFamily !== 0 && bindFamily !== family) {
        resolve({ ok: false, reason: `bindAddress ${bindAddress!} cannot reach an IPv${family} target` });
        return;
      }

      const socket = createSocket(family === 6 ? 'udp6' : 'udp4');
      let done = false;
      const finish = (outcome: ProbeOutcome): void => {
        if (done) return;
        done = true;
        clearTimeout(timer);
        signal.removeEventListener('abort', onAbort);
        // Settles only once the handle is gone, so that a settled probe holds nothing.
        try {
          socket.close(() => resolve(outcome));
        } catch {
          resolve(outcome);
        }
      };
      const onAbort = (): void => finish({ ok: false, reason: 'aborted' });
      // Its own deadline as well as the caller's signal, so that the probe honours timeoutMs when used on its own.
      const timer = setTimeout(() => finish({ ok: false, reason: 'timeout' }), timeoutMs);

      signal.addEventListener('abort', onAbort, { once: true });
      socket.on('error', (error) => finish({ ok: false, reason: reasonOf(error) }));
      socket.on('message', (message) => {
        if (matcher === undefined || matcher.test(message.toString('latin1'))) finish({ ok: true });
        else finish({ ok: false, reason: 'unexpected reply' });
      });
      socket.bind({ port: 0, address: bindAddress ?? (family === 6 ? '::' : '0.0.0.0'), exclusive: true }, () => {
        if (done) return;
        try {
          socket.connect(target.port, target.address, (error?: Error) => {
            if (done) return;
            if (error) {
              finish({ ok: false, reason: reasonOf(error) });
              return;
            }
            socket.send(bytes, (sendError) => {
              if (sendError) finish({ ok: false, reason: reasonOf(sendError) });
            });
          });
        } catch (error) {
          finish({ ok: false, reason: reasonOf(error) });
        }
      });
    });
}
