import { createSocket, type RemoteInfo, type Socket } from 'node:dgram';
import { getEventListeners } from 'node:events';
import { setImmediate as nextTurn } from 'node:timers/promises';
import { afterEach, describe, expect, it } from 'vitest';
import { helloVerifyRequest } from './hello-verify.js';
import { parseClientHello } from './parser.js';
import { dtlsProbe, MAX_IGNORED_DATAGRAMS, readDtlsReply, socketErrorReason, type DtlsProbeOutcome } from './probe.js';
import type { HelloResult } from './result.js';
import { concat, handshakeFragment, record, u16 } from './test-support.js';

const COOKIE = Uint8Array.from({ length: 20 }, (_, i) => 0xc0 + i);

function serverHello(): Uint8Array {
  const body = concat([0xfe, 0xfd], new Uint8Array(32).fill(0x5a), [0], u16(0xc02b), [0]);
  return record(handshakeFragment(body, { msgType: 2 }), { version: 0xfefd });
}

function alert(level: number, description: number): Uint8Array {
  return record([level, description], { type: 21, version: 0xfefd });
}

function hvrFor(hello: HelloResult): Uint8Array {
  return helloVerifyRequest(COOKIE, { recordSequence: hello.recordSequence, messageSeq: hello.messageSeq });
}

/** Datagrams that a probe must ignore, one of each kind. */
const UNDECISIVE: Uint8Array[] = [
  new Uint8Array(0),
  new Uint8Array(Buffer.from('HTTP/1.1 400 Bad Request\r\n\r\n')),
  Uint8Array.from([22, 0xfe, 0xfd, 0]),
  record([1], { type: 20 }),
  record(handshakeFragment(new Uint8Array(10), { msgType: 11 })),
  record(handshakeFragment(new Uint8Array(10), { msgType: 3 }).subarray(0, 15)),
  record([2, 40, 0], { type: 21 }),
  record([2, 40], { type: 21, epoch: 1 }),
  record(handshakeFragment(new Uint8Array(3), { msgType: 3 }), { epoch: 1 }),
  record(new Uint8Array(40), { type: 23, epoch: 1 }),
  Uint8Array.from([0x2f, 0x00, 0x01, 0x02]),
  Uint8Array.from([25, 0xfe, 0xfd, 0, 1]),
  record(handshakeFragment(new Uint8Array(3), { msgType: 3 }), { version: 0x0303 }),
];

type Answer = (hello: HelloResult, from: RemoteInfo) => Uint8Array[];

interface FakeServer {
  address: string;
  port: number;
  hellos: { hello: HelloResult; from: RemoteInfo }[];
  /** Alert records the probe sent: level, description and record sequence number. */
  alerts: { level: number; description: number; recordSequence: number }[];
  close(): void;
}

const sockets: Socket[] = [];

afterEach(() => {
  for (const s of sockets.splice(0)) {
    try {
      s.close();
    } catch {
      // closed by the test
    }
  }
});

async function udpSocket(address = '127.0.0.1', port = 0): Promise<Socket> {
  const socket = createSocket('udp4');
  sockets.push(socket);
  await new Promise<void>((resolve, reject) => {
    socket.once('error', reject);
    socket.bind(port, address, () => {
      socket.off('error', reject);
      resolve();
    });
  });
  return socket;
}

/** A loopback UDP socket that reads each datagram as a ClientHello and sends back what `answer` makes of it. */
async function fakeServer(answer: Answer): Promise<FakeServer> {
  const socket = await udpSocket();
  const hellos: FakeServer['hellos'] = [];
  const alerts: FakeServer['alerts'] = [];
  socket.on('message', (datagram, from) => {
    if (datagram[0] === 21 && datagram.length === 15) {
      alerts.push({ level: datagram[13]!, description: datagram[14]!, recordSequence: datagram.readUIntBE(5, 6) });
      return;
    }
    const parsed = parseClientHello(datagram);
    if (parsed.kind !== 'hello') throw new Error(`the probe sent something else: ${JSON.stringify(parsed)}`);
    hellos.push({ hello: parsed, from });
    for (const reply of answer(parsed, from)) socket.send(reply, from.port, from.address);
  });
  const { address, port } = socket.address();
  return { address, port, hellos, alerts, close: () => socket.close() };
}

/**
 * Open UDP sockets of this process. A closed socket's handle goes at the end of the event loop turn it was closed
 * in, so the count is read two turns later.
 */
async function udpHandles(): Promise<number> {
  await nextTurn();
  await nextTurn();
  return process.getActiveResourcesInfo().filter((r) => r === 'UDPWrap').length;
}

/**
 * Runs one probe call and checks that it left nothing behind: its socket closed, its abort listener removed and,
 * when the server saw it, its port free again.
 */
async function probeOnce(
  server: { address: string; port: number; hellos?: FakeServer['hellos'] },
  options: Parameters<typeof dtlsProbe>[0] = {},
  call: { timeoutMs?: number; signal?: AbortSignal } = {},
): Promise<DtlsProbeOutcome> {
  const before = await udpHandles();
  const signal = call.signal ?? new AbortController().signal;
  const outcome = await dtlsProbe(options)(
    { address: server.address, port: server.port },
    { timeoutMs: call.timeoutMs ?? 3000, signal },
  );
  expect(await udpHandles()).toBe(before);
  expect(getEventListeners(signal, 'abort')).toHaveLength(0);
  const from = server.hellos?.at(-1)?.from;
  if (from !== undefined) {
    // Binding the probe's own address and port, without sharing, works only once its socket is gone.
    await udpSocket(from.address === '127.0.0.1' ? '0.0.0.0' : from.address, from.port);
  }
  return outcome;
}

describe('dtlsProbe against a crafted server on loopback', () => {
  it('answers a HelloVerifyRequest with the hello again, with its cookie, and ends the ServerHello that follows with an alert', async () => {
    const server = await fakeServer((hello) => [hello.cookie.length === 0 ? hvrFor(hello) : serverHello()]);
    expect(await probeOnce(server, { serverName: 'probe.example' })).toEqual({ ok: true });
    expect(server.hellos).toHaveLength(2);
    const [first, retry] = server.hellos.map((h) => h.hello);
    expect(first).toMatchObject({ sni: 'probe.example', messageSeq: 0, recordSequence: 0 });
    expect(first!.cookie.length).toBe(0);
    // The retry repeats the hello (its random too) with the cookie, numbered as a client numbers it.
    expect(retry).toMatchObject({ sni: 'probe.example', messageSeq: 1, recordSequence: 1 });
    expect(Buffer.from(retry!.cookie)).toEqual(Buffer.from(COOKIE));
    expect(Buffer.from(retry!.random)).toEqual(Buffer.from(first!.random));
    // A fatal user_canceled, in the record after the retry's.
    await new Promise((r) => setTimeout(r, 50));
    expect(server.alerts).toEqual([{ level: 2, description: 90, recordSequence: 2 }]);
  });

  it('is ok with a second HelloVerifyRequest (a refused cookie: the server is there), and sends no alert', async () => {
    const server = await fakeServer((hello) => [hvrFor(hello)]);
    expect(await probeOnce(server)).toEqual({ ok: true });
    expect(server.hellos).toHaveLength(2);
    await new Promise((r) => setTimeout(r, 50));
    expect(server.alerts).toEqual([]);
  });

  it('sends no name when given none', async () => {
    const server = await fakeServer((hello) => [hvrFor(hello)]);
    expect(await probeOnce(server)).toEqual({ ok: true });
    expect(server.hellos[0]!.hello.sni).toBeUndefined();
  });

  it('is ok when a ServerHello comes back, and ends that handshake with an alert after the hello', async () => {
    const server = await fakeServer(() => [serverHello()]);
    expect(await probeOnce(server, { serverName: 'probe.example' })).toEqual({ ok: true });
    await new Promise((r) => setTimeout(r, 50));
    expect(server.alerts).toEqual([{ level: 2, description: 90, recordSequence: 1 }]);
  });

  it.each([
    [2, 40, 'alert 2/40'],
    [2, 112, 'alert 2/112'],
    [1, 0, 'alert 1/0'],
  ])('fails with the level and description of an alert (%i/%i)', async (level, description, reason) => {
    const server = await fakeServer(() => [alert(level, description)]);
    expect(await probeOnce(server, { serverName: 'probe.example' })).toEqual({ ok: false, reason });
  });

  it(`ignores ${MAX_IGNORED_DATAGRAMS} datagrams that settle nothing, then takes the HelloVerifyRequest`, async () => {
    const junk = Array.from({ length: MAX_IGNORED_DATAGRAMS }, (_, i) => UNDECISIVE[i % UNDECISIVE.length]!);
    const server = await fakeServer((hello) => (hello.cookie.length === 0 ? [...junk, hvrFor(hello)] : [serverHello()]));
    expect(await probeOnce(server)).toEqual({ ok: true });
  });

  it('gives up on one datagram more than that', async () => {
    const junk = Array.from({ length: MAX_IGNORED_DATAGRAMS + 1 }, (_, i) => UNDECISIVE[i % UNDECISIVE.length]!);
    const server = await fakeServer((hello) => [...junk, hvrFor(hello)]);
    expect(await probeOnce(server)).toEqual({ ok: false, reason: 'no DTLS answer' });
  });

  it('times out when nothing comes back', async () => {
    const server = await fakeServer(() => []);
    const t0 = performance.now();
    expect(await probeOnce(server, {}, { timeoutMs: 100 })).toEqual({ ok: false, reason: 'timeout' });
    expect(performance.now() - t0).toBeGreaterThanOrEqual(90);
    expect(server.hellos).toHaveLength(1);
  });

  it('ignores an answer from another address or port', async () => {
    const stranger = await udpSocket();
    const server = await fakeServer((hello, from) => {
      stranger.send(hvrFor(hello), from.port, from.address);
      return [];
    });
    expect(await probeOnce(server, {}, { timeoutMs: 300 })).toEqual({ ok: false, reason: 'timeout' });
  });

  it('fails with port unreachable for a port nobody listens on', async () => {
    const closed = await udpSocket();
    const { address, port } = closed.address();
    closed.close();
    expect(await probeOnce({ address, port })).toEqual({ ok: false, reason: 'port unreachable' });
  });

  it('resolves aborted, without a socket, for a signal aborted already', async () => {
    const server = await fakeServer((hello) => [hvrFor(hello)]);
    const before = await udpHandles();
    expect(await dtlsProbe()(server, { timeoutMs: 1000, signal: AbortSignal.abort() })).toEqual({
      ok: false,
      reason: 'aborted',
    });
    expect(process.getActiveResourcesInfo().filter((r) => r === 'UDPWrap')).toHaveLength(before);
    expect(server.hellos).toHaveLength(0);
  });

  it('resolves aborted as soon as the signal fires', async () => {
    const server = await fakeServer(() => []);
    const controller = new AbortController();
    setTimeout(() => controller.abort(), 50);
    const t0 = performance.now();
    expect(await probeOnce(server, {}, { timeoutMs: 10_000, signal: controller.signal })).toEqual({
      ok: false,
      reason: 'aborted',
    });
    expect(performance.now() - t0).toBeLessThan(2000);
  });

  it("resolves aborted when the caller's own timeout signal fires first", async () => {
    const server = await fakeServer(() => []);
    expect(await probeOnce(server, {}, { timeoutMs: 10_000, signal: AbortSignal.timeout(50) })).toEqual({
      ok: false,
      reason: 'aborted',
    });
  });

  it('sends from the bind address', async () => {
    const server = await fakeServer((hello) => [hvrFor(hello)]);
    expect(await probeOnce(server, { bindAddress: '127.0.0.2' })).toEqual({ ok: true });
    expect(server.hellos[0]!.from.address).toBe('127.0.0.2');
  });

  it('fails, rather than throws, for a bind address this host does not have', async () => {
    const server = await fakeServer((hello) => [hvrFor(hello)]);
    const outcome = await probeOnce(server, { bindAddress: '192.0.2.1' });
    expect(outcome.ok).toBe(false);
    expect(!outcome.ok && outcome.reason).toMatch(/EADDRNOTAVAIL/);
  });

  it('fails, rather than throws, for a port no socket can connect to', async () => {
    const outcome = await probeOnce({ address: '127.0.0.1', port: 0 });
    expect(outcome).toMatchObject({ ok: false, reason: expect.stringMatching(/port/i) });
  });

  it.each(['::1', 'localhost', ''])('fails, without a socket, for a target address %j that is not IPv4', async (address) => {
    const before = await udpHandles();
    const outcome = await dtlsProbe()({ address, port: 4433 }, { timeoutMs: 1000, signal: new AbortController().signal });
    expect(outcome).toEqual({ ok: false, reason: `target address ${JSON.stringify(address)} is not an IPv4 address` });
    expect(process.getActiveResourcesInfo().filter((r) => r === 'UDPWrap')).toHaveLength(before);
  });

  it.each(['::', 'localhost', '127.0.0.1:0'])('throws a TypeError for a bind address %j that is not IPv4', (bindAddress) => {
    expect(() => dtlsProbe({ bindAddress })).toThrow(TypeError);
  });

  it('runs calls side by side, each on a socket of its own', async () => {
    const server = await fakeServer((hello) => [hvrFor(hello)]);
    const probe = dtlsProbe({ serverName: 'probe.example' });
    const signal = new AbortController().signal;
    const outcomes = await Promise.all(Array.from({ length: 8 }, () => probe(server, { timeoutMs: 3000, signal })));
    expect(outcomes).toEqual(Array.from({ length: 8 }, () => ({ ok: true })));
    expect(new Set(server.hellos.map((h) => h.from.port)).size).toBe(8);
  });

  it('throws a RangeError for a name no ClientHello can carry when it is made, not when it runs', () => {
    expect(() => dtlsProbe({ serverName: `${'a'.repeat(250)}.example` })).toThrow(RangeError);
    expect(() => dtlsProbe({ serverName: 'no spaces.example' })).toThrow(RangeError);
  });
});

describe('readDtlsReply', () => {
  it('takes the first decisive record of a datagram', () => {
    const hvr = helloVerifyRequest(COOKIE, { recordSequence: 0, messageSeq: 0 });
    expect(readDtlsReply(concat(hvr, alert(2, 40)))).toEqual({ ok: true, started: false, cookie: COOKIE });
    expect(readDtlsReply(concat(alert(2, 40), hvr))).toEqual({ ok: false, alertLevel: 2, alertDescription: 40 });
    expect(readDtlsReply(concat(record([1], { type: 20 }), serverHello()))).toEqual({ ok: true, started: true });
  });

  it('finds a ServerHello after other messages in the same record', () => {
    const certificate = handshakeFragment(new Uint8Array(4), { msgType: 11 });
    const hello = handshakeFragment(new Uint8Array(40), { msgType: 2, messageSeq: 1 });
    expect(readDtlsReply(record(concat(certificate, hello)))).toEqual({ ok: true, started: true });
  });

  it.each(UNDECISIVE.map((d, i) => [i, d] as const))('says nothing about undecisive datagram %i', (_i, datagram) => {
    expect(readDtlsReply(datagram)).toBeUndefined();
  });

  it('never throws, whatever the bytes', () => {
    const seeds = [serverHello(), alert(2, 40), helloVerifyRequest(COOKIE, { recordSequence: 1, messageSeq: 0 })];
    let state = 0x1234_5678;
    const next = (): number => {
      state = (Math.imul(state, 1_103_515_245) + 12_345) >>> 0;
      return state >>> 16;
    };
    for (let i = 0; i < 5000; i++) {
      const seed = seeds[i % seeds.length]!;
      const datagram = Uint8Array.from(seed.subarray(0, next() % (seed.length + 1)));
      for (let flips = next() % 4; flips > 0; flips--) datagram[next() % Math.max(datagram.length, 1)] = next() & 0xff;
      expect(() => readDtlsReply(datagram)).not.toThrow();
    }
  });
});

describe('socketErrorReason', () => {
  it.each([
    ['ECONNREFUSED', 'port unreachable'],
    ['EHOSTUNREACH', 'host unreachable'],
    ['ENETUNREACH', 'network unreachable'],
  ])('names %s after the ICMP error behind it', (code, reason) => {
    expect(socketErrorReason(Object.assign(new Error(`recvmsg ${code}`), { code }))).toBe(reason);
  });

  it('keeps the message of anything else', () => {
    expect(socketErrorReason(Object.assign(new Error('bind EADDRNOTAVAIL 192.0.2.1'), { code: 'EADDRNOTAVAIL' }))).toBe(
      'bind EADDRNOTAVAIL 192.0.2.1',
    );
    expect(socketErrorReason(new TypeError())).toBe('TypeError');
    expect(socketErrorReason('odd')).toBe('odd');
  });
});
