import { randomBytes } from 'node:crypto';
import { createSocket, type Socket } from 'node:dgram';
import { isIPv4 } from 'node:net';
import { buildClientHello } from './client-hello-builder.js';
import { HandshakeType, parseHandshakeFragments } from './handshake.js';
import { ContentType, parseRecords } from './record.js';

/** Where a probe is sent. */
export interface DtlsProbeTarget {
  address: string;
  port: number;
}

/** Per-call limits; the caller aborts `signal` when it gives up, its own timeout included. */
export interface DtlsProbeCallOptions {
  timeoutMs: number;
  signal: AbortSignal;
}

export type DtlsProbeOutcome = { ok: true } | { ok: false; reason: string };

/** One health check of one backend. Never rejects: every outcome is a value. */
export type DtlsProbe = (target: DtlsProbeTarget, options: DtlsProbeCallOptions) => Promise<DtlsProbeOutcome>;

export interface DtlsProbeOptions {
  /** server_name to send, for backends that pick a certificate (or refuse) by name; none by default. */
  serverName?: string;
  /**
   * Local IPv4 address to send from (default 0.0.0.0). The port is always an ephemeral one, which keeps probes
   * apart from the balancer's SNAT ports.
   */
  bindAddress?: string;
}

/**
 * How many datagrams that settle nothing a probe ignores; the next one ends it. Enough for stray traffic and
 * retransmissions, few enough that a peer spraying datagrams cannot keep a probe busy until its timeout.
 */
export const MAX_IGNORED_DATAGRAMS = 16;

/** setTimeout fires at once for delays that do not fit in 32 bits. */
const MAX_TIMER_MS = 2 ** 31 - 1;

/** What one reply datagram says about the peer; undefined when it says nothing. */
export type DtlsReply =
  /** A ServerHello: the server holds a handshake for the hello now. */
  | { ok: true; started: true }
  /** A HelloVerifyRequest, with its cookie (empty when the message is cut short). */
  | { ok: true; started: false; cookie: Uint8Array }
  | { ok: false; alertLevel: number; alertDescription: number };

/**
 * Reads a datagram received in answer to a ClientHello. A HelloVerifyRequest or a ServerHello shows a DTLS
 * server that read the hello; an alert shows one that refused it. The first of these in the datagram counts.
 * Anything else, including bytes that are not DTLS at all, is undefined. Never throws.
 */
export function readDtlsReply(datagram: Uint8Array): DtlsReply | undefined {
  const layer = parseRecords(datagram);
  if (!layer.ok) return undefined;
  for (const record of layer.records) {
    // Records of later epochs are encrypted; none can be an answer to a first hello.
    if (record.epoch !== 0) continue;
    if (record.contentType === ContentType.Alert) {
      if (record.fragment.length !== 2) continue;
      return { ok: false, alertLevel: record.fragment[0]!, alertDescription: record.fragment[1]! };
    }
    if (record.contentType !== ContentType.Handshake) continue;
    const handshake = parseHandshakeFragments(record.fragment);
    if (!handshake.ok) continue;
    for (const fragment of handshake.fragments) {
      if (fragment.msgType === HandshakeType.ServerHello) return { ok: true, started: true };
      if (fragment.msgType === HandshakeType.HelloVerifyRequest) {
        // server_version (2), then the cookie with its one-byte length.
        const b = fragment.body;
        const cookie = b.length >= 3 && b.length >= 3 + b[2]! ? b.subarray(3, 3 + b[2]!) : new Uint8Array(0);
        return { ok: true, started: false, cookie };
      }
    }
  }
  return undefined;
}

const UNREACHABLE: Record<string, string> = {
  // ICMP errors, which Linux reports on the next receive of a connected UDP socket.
  ECONNREFUSED: 'port unreachable',
  EHOSTUNREACH: 'host unreachable',
  ENETUNREACH: 'network unreachable',
};

/** The failure reason for a socket error: what ICMP said, or the error's own message. */
export function socketErrorReason(error: unknown): string {
  const code = (error as { code?: unknown } | null)?.code;
  const known = typeof code === 'string' ? UNREACHABLE[code] : undefined;
  if (known !== undefined) return known;
  if (error instanceof Error) return error.message || error.name;
  return String(error);
}

function isSameEndpoint(socket: Socket, address: string, port: number): boolean {
  try {
    const remote = socket.remoteAddress();
    return remote.address === address && remote.port === port;
  } catch {
    return false;
  }
}


/**
 * A fatal user_canceled alert (RFC 5246 §7.2.2) in epoch 0, after the hellos' records: what a client sends to give
 * up on a handshake it started.
 */
function cancelAlert(recordSequence: number): Uint8Array {
  return Uint8Array.from([ContentType.Alert, 0xfe, 0xfd, 0, 0, 0, 0, 0, 0, 0, recordSequence, 0, 2, 2, 90]);
}

/**
 * A health probe for DTLS backends, shaped like a `Probe` of `@flowlb/health`: each call sends one ClientHello
 * from a fresh UDP socket connected to the target and reports whether a DTLS server answered it.
 *
 * - ok: a ServerHello came back, to the hello or to its retry with the cookie of a HelloVerifyRequest (a second
 *   HelloVerifyRequest, or one without a cookie, is ok too: the server is there).
 * - `alert <level>/<description>`: the server refused the hello.
 * - `port unreachable`, `host unreachable`, `network unreachable`: ICMP said so.
 * - `timeout` after `timeoutMs`, `aborted` when the signal fires, `no DTLS answer` once more than
 *   {@link MAX_IGNORED_DATAGRAMS} datagrams have settled nothing.
 *
 * The hello is record 0, as a client's first is. A HelloVerifyRequest is answered with the hello again carrying
 * its cookie, and the ServerHello that follows with a fatal user_canceled alert, as a client giving up would: the
 * probe then shows a server that would take a handshake, and leaves it no state. A server that keeps one connection
 * object per socket (`openssl s_server` without `-listen`) needs that: left waiting for the retry, it would take the
 * next probe's hello, record 0 again, for a replay. A lost datagram is one failed check, which a checker's failure
 * threshold absorbs.
 *
 * The options are checked here, so that a bad serverName (RangeError) or bindAddress (TypeError) throws when the
 * probe is made rather than failing every call.
 */
export function dtlsProbe(options: DtlsProbeOptions = {}): DtlsProbe {
  const { serverName } = options;
  const bindAddress = options.bindAddress ?? '0.0.0.0';
  if (!isIPv4(bindAddress)) throw new TypeError(`bindAddress ${JSON.stringify(bindAddress)} is not an IPv4 address`);
  buildClientHello({ serverName });
  return (target, call) =>
    new Promise<DtlsProbeOutcome>((resolve) => {
      if (call.signal.aborted) {
        resolve({ ok: false, reason: 'aborted' });
        return;
      }
      if (!isIPv4(target.address)) {
        resolve({ ok: false, reason: `target address ${JSON.stringify(target.address)} is not an IPv4 address` });
        return;
      }
      const socket = createSocket({ type: 'udp4' });
      let done = false;
      let ignored = 0;
      let timer: NodeJS.Timeout | undefined;

      const finish = (outcome: DtlsProbeOutcome): void => {
        if (done) return;
        done = true;
        clearTimeout(timer);
        call.signal.removeEventListener('abort', onAbort);
        // Settles once the socket has closed, so that a settled probe holds nothing.
        try {
          socket.close(() => resolve(outcome));
        } catch {
          resolve(outcome);
        }
      };
      const onAbort = (): void => finish({ ok: false, reason: 'aborted' });

      const fail = (error: unknown): void => finish({ ok: false, reason: socketErrorReason(error) });
      const guard = (step: () => void): void => {
        if (done) return;
        try {
          step();
        } catch (error) {
          fail(error);
        }
      };

      // The retry repeats the first hello's random, as RFC 6347 §4.2.1 has a client do.
      const hello = { ...(serverName === undefined ? {} : { serverName }), random: randomBytes(32) };
      let retried = false;
      socket.on('error', fail);
      socket.on('message', (datagram, from) => {
        if (done) return;
        // Datagrams that reached the socket between bind() and connect() are still queued: only the target counts.
        if (!isSameEndpoint(socket, from.address, from.port)) return;
        const reply = readDtlsReply(datagram);
        if (reply === undefined) {
          if (++ignored > MAX_IGNORED_DATAGRAMS) finish({ ok: false, reason: 'no DTLS answer' });
        } else if (reply.ok && reply.started) {
          // The server holds a handshake for the probe now: a fatal alert ends it, so that a server that serves
          // one client at a time (openssl s_server) starts afresh for the next probe or client.
          socket.send(cancelAlert(retried ? 2 : 1), () => finish({ ok: true }));
        } else if (reply.ok && !retried && reply.cookie.length > 0) {
          // The hello again with the cookie, as a client would, up to the ServerHello: a server that keeps state
          // from its HelloVerifyRequest on (openssl s_server without -listen) would otherwise hold the probe's
          // record number 0 and take the next probe's hello, record 0 again, for a replay.
          retried = true;
          guard(() =>
            socket.send(buildClientHello({ ...hello, cookie: reply.cookie, messageSeq: 1, recordSequence: 1 }), (error) => {
              if (error) fail(error);
            }),
          );
        } else if (reply.ok) {
          // A second HelloVerifyRequest (the cookie was refused) or one without a cookie: the server is there.
          finish({ ok: true });
        } else {
          finish({ ok: false, reason: `alert ${reply.alertLevel}/${reply.alertDescription}` });
        }
      });
      call.signal.addEventListener('abort', onAbort, { once: true });
      if (Number.isFinite(call.timeoutMs)) {
        const ms = Math.min(Math.max(call.timeoutMs, 0), MAX_TIMER_MS);
        timer = setTimeout(() => finish({ ok: false, reason: 'timeout' }), ms);
      }

      const send = (): void => {
        socket.send(buildClientHello(hello), (error) => {
          if (error) fail(error);
        });
      };
      // Bad ports and malformed addresses throw rather than emit; they fail the call like any socket error.
      guard(() =>
        socket.bind({ address: bindAddress, port: 0 }, () =>
          guard(() =>
            socket.connect(target.port, target.address, (error?: Error) => {
              if (error) fail(error);
              else guard(send);
            }),
          ),
        ),
      );
    });
}
