// Over a million inputs through the mapper and the flight reader: random bytes, mutations of valid protected
// flights, random frame payloads and mutated ClientHellos encrypted properly (so that they reach the frame parser,
// the reassembler and @flowlb/tls-hello rather than stopping at the AEAD). Deterministic: a seeded generator.
//
// Checked on every input with plain comparisons (expect() would dominate the run time at these counts): nothing
// throws, every decision is well formed, the read state stays within its bounds, no input is written to, and the
// mapper reading datagrams one call at a time decides as a fresh read of the same datagrams does.
import type { Decision, UdpEndpoint } from '@flowlb/mapper-api';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { readInitialFlight, type FlightResult } from './flight-reader.js';
import { deriveInitialKeys, type InitialKeys } from './keys.js';
import { QuicSniMapper } from './mapper.js';
import { QUIC_DROP_REASONS } from './reasons.js';
import { staticRoutes } from './routes.js';
import {
  ackFrame,
  buildClientInitial,
  connectionCloseFrame,
  cryptoFrame,
  PING_FRAME,
  protectInitialPacket,
  RFC_DCID,
  type ClientInitialOptions,
} from './testing/initial-builder.js';
import { V1_CLIENT_INITIAL, V2_CLIENT_INITIAL } from './testing/rfc-samples.js';
import { concat, hex, tlsClientHello } from './testing/tls-client-hello.js';
import { QUIC_V1, QUIC_V2 } from './versions.js';

/** mulberry32: small, fast, and the same sequence on every run. */
function generator(seed: number) {
  let a = seed >>> 0;
  const next = (): number => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
  const int = (n: number): number => Math.floor(next() * n);
  const bytes = (n: number): Uint8Array => {
    const out = new Uint8Array(n);
    for (let i = 0; i < n; i++) out[i] = int(256);
    return out;
  };
  const pick = <T>(xs: readonly T[]): T => xs[int(xs.length)]!;
  return { next, int, bytes, pick };
}
type Rng = ReturnType<typeof generator>;

const TARGETS = { 'example.com': { address: '10.0.0.1', port: 443 }, 'pq.example': { address: '10.0.0.2', port: 443 } };
const TARGET_ADDRESSES = new Set(Object.values(TARGETS).map((t) => t.address));
const REASONS: ReadonlySet<string> = new Set(QUIC_DROP_REASONS);
const FLIGHT_REASONS: ReadonlySet<string> = new Set([
  'not-quic-initial',
  'unsupported-version',
  'decrypt-failed',
  'protocol-violation',
  'crypto-conflict',
  'not-client-hello',
  'too-large',
]);
const CLIENT_STATE = { maxClients: 64, maxBytes: 1024 * 1024 };
/** What one client's read state may hold at most: its crypto buffer and flags at the limit, and its key sets. */
const MAX_CLIENT_BYTES = 2 * 64 * 1024 + 4 * 64;

function checkDecision(d: Decision): void {
  if (d.action === 'forward') {
    if (!TARGET_ADDRESSES.has(d.flow.dstAddr.address) || Object.keys(d).length !== 2) throw new Error(`bad forward ${JSON.stringify(d)}`);
  } else if (d.action === 'drop') {
    if (!REASONS.has(d.reason)) throw new Error(`unknown reason ${d.reason}`);
  } else if (d.action !== 'wait' || Object.keys(d).length !== 1) {
    throw new Error(`unexpected decision ${JSON.stringify(d)}`);
  }
}

function checkFlight(r: FlightResult): void {
  if (r.kind === 'invalid') {
    if (!FLIGHT_REASONS.has(r.reason) || typeof r.detail !== 'string') throw new Error(`bad invalid ${JSON.stringify(r)}`);
  } else if (r.kind === 'client-hello') {
    if (!(r.body instanceof Uint8Array) || (r.version !== QUIC_V1 && r.version !== QUIC_V2)) throw new Error('bad hello');
  } else if (r.kind !== 'need-more') {
    throw new Error(`unexpected result ${JSON.stringify(r)}`);
  }
}

/**
 * Runs inputs through one long-lived mapper the way the balancer calls it: one growing list of the same datagram
 * objects per client, until a decision (some clients are left waiting, which the state's bounds must absorb).
 */
class Harness {
  readonly mapper = new QuicSniMapper({ routes: staticRoutes(TARGETS), clientState: CLIENT_STATE });
  inputs = 0;
  slowest = 0;
  private port = 0;

  run(rng: Rng, flight: readonly Uint8Array[]): void {
    this.inputs++;
    const client: UdpEndpoint = { address: '198.51.100.7', port: 1 + (this.port++ % 200) };
    const m = this.mapper;
    const audit = rng.int(16) === 0;
    const copies = audit ? flight.map((d) => d.slice()) : undefined;
    const started = performance.now();
    let decision: Decision = { action: 'wait' };
    let calls = 0;
    const abandon = rng.int(8) === 0 ? 1 + rng.int(Math.max(1, flight.length)) : Infinity;
    for (let i = 1; i <= flight.length && i <= abandon; i++) {
      calls = i;
      decision = m.findFlow(client, flight.slice(0, i));
      checkDecision(decision);
      if (decision.action !== 'wait') break;
    }
    if (calls === 0) {
      decision = m.findFlow(client, []);
      checkDecision(decision);
    }
    this.slowest = Math.max(this.slowest, performance.now() - started);
    const pending = m.pending;
    if (pending.clients > CLIENT_STATE.maxClients || pending.bytes > CLIENT_STATE.maxBytes) throw new Error(`state ${JSON.stringify(pending)}`);
    if (pending.bytes > pending.clients * MAX_CLIENT_BYTES) throw new Error(`per-client state ${JSON.stringify(pending)}`);
    if (audit) {
      // One datagram at a time or all at once: the same answer.
      const fresh = new QuicSniMapper({ routes: staticRoutes(TARGETS) }).findFlow(client, flight.slice(0, Math.max(calls, 0)));
      if (calls > 0 && JSON.stringify(fresh) !== JSON.stringify(decision)) {
        throw new Error(`incremental ${JSON.stringify(decision)} but fresh ${JSON.stringify(fresh)}`);
      }
      checkFlight(readInitialFlight(flight));
      flight.forEach((d, i) => {
        if (Buffer.compare(d, copies![i]!) !== 0) throw new Error(`datagram ${i} was written to`);
      });
    }
    if (decision.action === 'wait' && rng.int(2) === 0) m.release(client);
  }
}

// The valid flights mutations start from.
const KEYS_V1 = deriveInitialKeys(QUIC_V1, RFC_DCID);
const KEYS_V2 = deriveInitialKeys(QUIC_V2, RFC_DCID);
const keysOf = (version: number): InitialKeys => (version === QUIC_V2 ? KEYS_V2 : KEYS_V1);
const HELLO = tlsClientHello();
const LARGE = tlsClientHello({ sni: 'pq.example', keyShareLength: 1200 });
const RFC_HELLO = (() => {
  const r = readInitialFlight([V1_CLIENT_INITIAL]);
  if (r.kind !== 'client-hello') throw new Error('RFC sample does not read');
  return concat(hex('010000ed'), r.body);
})();
const HELLOS = [HELLO, LARGE, RFC_HELLO, tlsClientHello({ sni: null }), tlsClientHello({ sni: 'pq.example', alpn: ['h3', 'doq'] })];
const n = HELLO.length;
const CORPUS: Uint8Array[][] = [
  [V1_CLIENT_INITIAL],
  [V2_CLIENT_INITIAL],
  buildClientInitial(HELLO, { keys: KEYS_V1 }),
  buildClientInitial(HELLO, { version: QUIC_V2, keys: KEYS_V2, padTo: 0 }),
  buildClientInitial(LARGE, { keys: KEYS_V1 }),
  buildClientInitial(LARGE, { version: QUIC_V2, keys: KEYS_V2 }),
  buildClientInitial(HELLO, { pieces: [[0, 50], [50, 120], [120, n]], framesPerPacket: 1, packetsPerDatagram: 3, keys: KEYS_V1 }),
  buildClientInitial(HELLO, { pieces: [[120, n], [0, 80], [40, 120]], pnLength: 1, keys: KEYS_V1 }),
  buildClientInitial(HELLO, { token: hex('746f6b656e'), scid: hex('0102'), leadingFrames: concat(PING_FRAME, ackFrame(5, 2)), keys: KEYS_V1 }),
  [...buildClientInitial(LARGE, { pieces: [[0, 700]], keys: KEYS_V1 }), ...buildClientInitial(LARGE, { dcid: hex('f067a5502a4262b5'), firstPacketNumber: 1 })],
];

function mutateBytes(rng: Rng, d: Uint8Array): Uint8Array {
  // Half the edits land in the first 64 bytes, where the header and the sample are.
  const at = (len: number): number => (rng.int(2) === 0 ? rng.int(Math.min(64, len + 1)) : rng.int(len + 1));
  switch (rng.int(7)) {
    case 0: {
      const c = d.slice();
      if (c.length > 0) c[at(c.length - 1)] = rng.pick([0x00, 0x01, 0x40, 0x7f, 0x80, 0xc0, 0xff, rng.int(256)]);
      return c;
    }
    case 1: {
      const c = d.slice();
      if (c.length > 0) c[at(c.length - 1)]! ^= 1 << rng.int(8);
      return c;
    }
    case 2:
      return d.slice(0, at(d.length));
    case 3: {
      const i = at(d.length);
      return concat(d.subarray(0, i), rng.bytes(1 + rng.int(24)), d.subarray(i));
    }
    case 4: {
      const i = at(d.length);
      return concat(d.subarray(0, i), d.subarray(i + 1 + rng.int(24)));
    }
    case 5: {
      // A varint length field rewritten: the Length, token length and connection ID lengths live here.
      const c = d.slice();
      const i = 5 + rng.int(40);
      if (i < c.length) c[i] = rng.pick([0x00, 0x14, 0x15, 0x3f, 0x40, 0x7f, 0x80, 0xbf, 0xc0, 0xff]);
      return c;
    }
    default:
      return concat(d, rng.bytes(rng.int(64)));
  }
}

function mutateFlight(rng: Rng, flight: readonly Uint8Array[]): Uint8Array[] {
  const out = flight.slice();
  const edits = 1 + rng.int(3);
  for (let e = 0; e < edits; e++) {
    const i = rng.int(out.length);
    switch (rng.int(10)) {
      case 0:
        out.push(out[i]!);
        break;
      case 1: {
        const j = rng.int(out.length);
        [out[i], out[j]] = [out[j]!, out[i]!];
        break;
      }
      case 2:
        if (out.length > 1) out.splice(i, 1);
        break;
      default:
        out[i] = mutateBytes(rng, out[i]!);
    }
  }
  return out;
}

/** A random but mostly well-formed Initial payload: frames of every allowed kind, CRYPTO pieces of a real hello. */
function randomPayload(rng: Rng, message: Uint8Array): Uint8Array {
  const frames: Uint8Array[] = [];
  const count = 1 + rng.int(6);
  for (let f = 0; f < count; f++) {
    const kind = rng.int(20);
    if (kind < 11) {
      const start = rng.int(message.length);
      const end = Math.min(message.length, start + 1 + rng.int(message.length));
      const data = rng.int(30) === 0 ? rng.bytes(end - start) : message.subarray(start, end);
      frames.push(cryptoFrame(rng.int(40) === 0 ? rng.int(70_000) : start, data));
    } else if (kind < 13) frames.push(new Uint8Array(rng.int(40)));
    else if (kind < 15) frames.push(PING_FRAME);
    else if (kind < 17) {
      const largest = rng.int(1000);
      frames.push(ackFrame(largest, rng.int(largest + 2), rng.int(3) === 0 ? [[rng.int(5), rng.int(5)]] : [], rng.int(2) ? [1, 2, 3] : undefined));
    } else if (kind < 18) frames.push(connectionCloseFrame(rng.int(20), 'x'));
    else if (kind < 19) frames.push(cryptoFrame(0, message));
    else frames.push(rng.bytes(1 + rng.int(8)));
  }
  const payload = concat(...frames);
  // Now and then one byte is wrong: a frame type, a length.
  if (rng.int(6) === 0 && payload.length > 0) payload[rng.int(payload.length)] = rng.int(256);
  return payload;
}

function randomProtectedFlight(rng: Rng): Uint8Array[] {
  const version = rng.int(3) === 0 ? QUIC_V2 : QUIC_V1;
  const message = rng.pick(HELLOS);
  const datagrams: Uint8Array[] = [];
  let pn = rng.int(4) === 0 ? rng.int(100_000) : 0;
  const count = 1 + rng.int(3);
  for (let d = 0; d < count; d++) {
    const packets: Uint8Array[] = [];
    const perDatagram = 1 + rng.int(3);
    for (let p = 0; p < perDatagram; p++) {
      const pnLength = (1 + rng.int(4)) as 1 | 2 | 3 | 4;
      packets.push(
        protectInitialPacket(randomPayload(rng, message), {
          version,
          keys: keysOf(version),
          packetNumber: pn++,
          pnLength,
          reservedBits: rng.int(50) === 0 ? 1 + rng.int(3) : 0,
        }),
      );
    }
    datagrams.push(concat(...packets));
  }
  return datagrams;
}

function mutatedHelloFlight(rng: Rng): Uint8Array[] {
  let message = rng.pick(HELLOS);
  const edits = 1 + rng.int(3);
  for (let e = 0; e < edits; e++) {
    const m = message.slice();
    const i = 4 + rng.int(m.length - 4);
    switch (rng.int(4)) {
      case 0:
        m[i] = rng.pick([0x00, 0x01, 0x10, 0x7f, 0x80, 0xff, rng.int(256)]);
        message = m;
        break;
      case 1:
        message = m.subarray(0, i);
        break;
      case 2:
        message = concat(m.subarray(0, i), rng.bytes(1 + rng.int(8)), m.subarray(i));
        break;
      default:
        message = concat(m.subarray(0, i), m.subarray(Math.min(m.length, i + 1 + rng.int(8))));
    }
  }
  // The header's length follows the body most of the time, so that the body reaches the ClientHello parser.
  if (rng.int(4) !== 0) {
    const length = message.length - 4;
    message = concat(hex('01'), [(length >> 16) & 0xff, (length >> 8) & 0xff, length & 0xff], message.subarray(4));
  }
  const version = rng.int(2) === 0 ? QUIC_V2 : QUIC_V1;
  const options: ClientInitialOptions = { version, keys: keysOf(version), padTo: rng.int(2) === 0 ? 0 : 1200 };
  if (rng.int(2) === 0 && message.length > 2) {
    const cut = 1 + rng.int(message.length - 1);
    options.pieces = rng.int(2) === 0 ? [[0, cut], [cut, message.length]] : [[cut, message.length], [0, cut]];
    options.framesPerPacket = 1;
  }
  return buildClientInitial(message, options);
}

/** Random bytes; some behind a first byte and version that get them past the version check. */
function randomFlight(rng: Rng): Uint8Array[] {
  const count = 1 + rng.int(3);
  const out: Uint8Array[] = [];
  for (let d = 0; d < count; d++) {
    const body = rng.bytes(rng.int(4) === 0 ? rng.int(1300) : rng.int(80));
    const head = rng.int(3);
    if (head === 0) out.push(body);
    else {
      const version = head === 1 ? hex('00000001') : hex('6b3343cf');
      const first = rng.pick([0xc0, 0xc3, 0xd0, 0xd3, 0x80, 0xe0, rng.int(256)]);
      out.push(concat([first], version, rng.int(2) ? hex('08') : [], body));
    }
  }
  return out;
}

describe('fuzz: over a million inputs, never a throw, never a malformed decision, state within bounds', () => {
  const harness = new Harness();
  const started = performance.now();

  it('random bytes, 450,000 flights', () => {
    const rng = generator(0x5eed_0001);
    for (let i = 0; i < 450_000; i++) harness.run(rng, randomFlight(rng));
  }, 120_000);

  it('byte-level mutations of valid protected flights, 430,000', () => {
    const rng = generator(0x5eed_0002);
    for (let i = 0; i < 430_000; i++) harness.run(rng, mutateFlight(rng, rng.pick(CORPUS)));
  }, 120_000);

  it('random frame payloads, encrypted, 70,000', () => {
    const rng = generator(0x5eed_0003);
    for (let i = 0; i < 70_000; i++) harness.run(rng, randomProtectedFlight(rng));
  }, 120_000);

  it('mutated ClientHellos, encrypted, 50,000', () => {
    const rng = generator(0x5eed_0004);
    for (let i = 0; i < 50_000; i++) harness.run(rng, mutatedHelloFlight(rng));
  }, 120_000);

  it('reached every outcome, within bounds, over more than a million inputs', () => {
    const stats = harness.mapper.stats();
    const seconds = (performance.now() - started) / 1000;
    console.log(
      `fuzz: ${harness.inputs.toLocaleString('en-US')} inputs in ${seconds.toFixed(1)} s, ` +
        `${stats.calls.toLocaleString('en-US')} findFlow calls, slowest input ${harness.slowest.toFixed(1)} ms; ` +
        `forwarded ${stats.forwarded}, drops ${JSON.stringify(stats.drops)}`,
    );
    expect(harness.inputs).toBeGreaterThanOrEqual(1_000_000);
    expect(stats.calls).toBe(stats.forwarded + stats.waited + stats.dropped);
    expect(stats.forwarded).toBeGreaterThan(0);
    for (const reason of QUIC_DROP_REASONS) expect(stats.drops[reason], reason).toBeGreaterThan(0);
    // Generous: an input that takes this long means a loop that does not belong.
    expect(harness.slowest).toBeLessThan(500);
  });
});

describe('fuzz: the way a hello is cut into frames, packets and datagrams never changes the answer', () => {
  it('any cover of a real hello by CRYPTO frames, in any order and grouping, gives its name', () => {
    const routes = staticRoutes(TARGETS);
    fc.assert(
      fc.property(
        fc.constantFrom(LARGE, RFC_HELLO),
        fc.array(fc.tuple(fc.nat(), fc.nat()), { minLength: 1, maxLength: 10 }),
        fc.integer({ min: 1, max: 4 }),
        fc.integer({ min: 1, max: 3 }),
        fc.constantFrom(QUIC_V1, QUIC_V2),
        (message, ranges, framesPerPacket, packetsPerDatagram, version) => {
          const length = message.length;
          const pieces: [number, number][] = ranges.map(([a, b]) => {
            const start = a % length;
            return [start, start + (b % Math.min(400, length - start + 1))];
          });
          // Plus what is needed to cover every byte, at the end: the order above is random enough.
          const covered = new Uint8Array(length);
          for (const [s, e] of pieces) covered.fill(1, s, e);
          for (let i = 0; i < length; ) {
            if (covered[i]) {
              i++;
              continue;
            }
            let j = i;
            while (j < length && !covered[j] && j - i < 400) j++;
            pieces.push([i, j]);
            i = j;
          }
          const datagrams = buildClientInitial(message, { pieces, framesPerPacket, packetsPerDatagram, version, keys: keysOf(version), padTo: 0 });
          // Tiny pieces one to a datagram can take more than the default 16 datagrams: this is about the cutting.
          const m = new QuicSniMapper({ routes, limits: { maxDatagrams: 64 } });
          const client = { address: '192.0.2.1', port: 1 };
          let decision: Decision = { action: 'wait' };
          for (let i = 1; i <= datagrams.length && decision.action === 'wait'; i++) decision = m.findFlow(client, datagrams.slice(0, i));
          const expected = message === LARGE ? TARGETS['pq.example'] : TARGETS['example.com'];
          expect(decision).toEqual({ action: 'forward', flow: { dstAddr: expected } });
        },
      ),
      { numRuns: 2000, seed: 0x5eed },
    );
  }, 120_000);
});
