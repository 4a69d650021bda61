/**
 * The program's own DTLS HelloVerifyRequest, frame by frame under BPF_PROG_TEST_RUN: which ClientHellos to a VIP
 * it answers, every byte of the answer (built here from scratch, with checksums computed from nothing and the
 * cookie from a SipHash written apart from any the project ships), and which it leaves to the control plane.
 */
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { buildUdpFrame, describePrivileged, dtlsCapture, verifyChecksums, type UdpFrameSpec } from '@flowlb/testkit';
import { XDP_PASS, XDP_TX, XdpForwarder, type HelloVerifyKeys, type StatName, type XdpStats } from './index.js';
import { sipHash24Reference } from './testing/siphash-reference.js';

const VIP = { address: '192.0.2.10', port: 4433 };
const CLIENT = { address: '198.51.100.7', port: 40123 };
const CLIENT_MAC = '02:00:00:00:0c:01';
const ROUTER_MAC = '02:00:00:00:0c:02';
const KEYS: HelloVerifyKeys = {
  keys: [Buffer.alloc(16, 0x11), Buffer.from('000102030405060708090a0b0c0d0e0f', 'hex')],
  current: 0,
};

interface Hello {
  /** Record sequence number (48 bits). */
  recordSeq?: number;
  messageSeq?: number;
  version?: number;
  random?: Buffer;
  sessionId?: Buffer;
  cookie?: Buffer;
  /** The rest of the body after the cookie: suites, compression, extensions; arbitrary here. */
  rest?: Buffer;
  /** A fragment of the body: [offset, bytes]; default the whole body. */
  fragment?: { offset: number; length: number };
  /** Overrides of the record and handshake length fields. */
  recordLength?: number;
  fragmentLength?: number;
  contentType?: number;
  handshakeType?: number;
}

const RANDOM = Buffer.from(Array.from({ length: 32 }, (_, i) => (i * 7 + 3) & 0xff));
const REST = Buffer.from('0004c02bc02f0100000400170000', 'hex');

/** The body of a ClientHello: version, random, session_id, cookie, then `rest`. */
function helloBody(h: Hello): Buffer {
  const sid = h.sessionId ?? Buffer.alloc(0);
  const cookie = h.cookie ?? Buffer.alloc(0);
  return Buffer.concat([
    Buffer.from([(h.version ?? 0xfefd) >> 8, (h.version ?? 0xfefd) & 0xff]),
    h.random ?? RANDOM,
    Buffer.from([sid.length]),
    sid,
    Buffer.from([cookie.length]),
    cookie,
    h.rest ?? REST,
  ]);
}

/** One DTLS record holding one ClientHello fragment. */
function helloRecord(h: Hello): Buffer {
  const body = helloBody(h);
  const frag = h.fragment ?? { offset: 0, length: body.length };
  const piece = body.subarray(frag.offset, frag.offset + frag.length);
  const hs = Buffer.alloc(12);
  hs[0] = h.handshakeType ?? 1;
  hs.writeUIntBE(body.length, 1, 3);
  hs.writeUInt16BE(h.messageSeq ?? 0, 4);
  hs.writeUIntBE(frag.offset, 6, 3);
  hs.writeUIntBE(h.fragmentLength ?? piece.length, 9, 3);
  const rec = Buffer.alloc(13);
  rec[0] = h.contentType ?? 22;
  rec.writeUInt16BE(0xfeff, 1);
  rec.writeUIntBE(h.recordSeq ?? 0, 5, 6);
  rec.writeUInt16BE(h.recordLength ?? hs.length + piece.length, 11);
  return Buffer.concat([rec, hs, piece]);
}

function frame(payload: Uint8Array, over: Partial<UdpFrameSpec> = {}): Buffer {
  return buildUdpFrame({
    eth: { src: CLIENT_MAC, dst: ROUTER_MAC },
    ip: { src: CLIENT.address, dst: VIP.address, ttl: 57, id: 0x1234 },
    udp: { srcPort: CLIENT.port, dstPort: VIP.port },
    payload,
    ...over,
  });
}

/** The 80 bytes the cookie covers, laid out as bpf/include/hello_verify.h and encodeCookieInput do. */
function cookieInput(client: { address: string; port: number }, h: Hello): Buffer {
  const sid = h.sessionId ?? Buffer.alloc(0);
  const b = Buffer.alloc(80);
  Buffer.from(client.address.split('.').map(Number)).copy(b, 0);
  b.writeUInt16BE(client.port, 4);
  b.writeUInt16BE(h.version ?? 0xfefd, 6);
  (h.random ?? RANDOM).copy(b, 8);
  b[40] = sid.length;
  sid.copy(b, 41);
  return b;
}

function cookieFor(h: Hello, key: Uint8Array, client = CLIENT): Buffer {
  return sipHash24Reference(key, cookieInput(client, h));
}

/** The whole frame the program must send back for `h`, from `client`, with the cookie of `key`. */
function expectedAnswer(h: Hello, key: Uint8Array, client = CLIENT): Buffer {
  const cookie = cookieFor(h, key, client);
  const dtls = Buffer.alloc(13 + 12 + 3 + cookie.length);
  dtls[0] = 22;
  dtls.writeUInt16BE(0xfeff, 1);
  dtls.writeUIntBE(h.recordSeq ?? 0, 5, 6);
  dtls.writeUInt16BE(12 + 3 + cookie.length, 11);
  dtls[13] = 3;
  dtls.writeUIntBE(3 + cookie.length, 14, 3);
  dtls.writeUInt16BE(h.messageSeq ?? 0, 17);
  dtls.writeUIntBE(3 + cookie.length, 22, 3);
  dtls.writeUInt16BE(0xfeff, 25);
  dtls[27] = cookie.length;
  cookie.copy(dtls, 28);
  return buildUdpFrame({
    eth: { src: ROUTER_MAC, dst: CLIENT_MAC },
    ip: { src: VIP.address, dst: client.address, ttl: 64, id: 0 },
    udp: { srcPort: VIP.port, dstPort: client.port },
    payload: dtls,
  });
}

describe('the reference SipHash-2-4 the cases use', () => {
  it('gives the published test vectors (key 00..0f, messages 00.. of lengths 0, 1, 2, 15, 63)', () => {
    const key = Uint8Array.from({ length: 16 }, (_, i) => i);
    const of = (n: number): string => sipHash24Reference(key, Uint8Array.from({ length: n }, (_, i) => i)).toString('hex');
    expect([0, 1, 2, 15, 63].map(of)).toEqual([
      '310e0edd47db6f72',
      'fd67dc93c539f874',
      '5a4fa9d909806c0d',
      'e545be4961ca29a1',
      '724506eb4c328a95',
    ]);
  });
});

describePrivileged('the XDP program answers ClientHellos without a valid cookie (BPF_PROG_TEST_RUN)', () => {
  let fwd: XdpForwarder | undefined;

  beforeAll(async () => {
    const objectPath = process.env.FLOWLB_BPF_OBJECT_UNDER_TEST;
    fwd = await XdpForwarder.load({ flowsMaxEntries: 64, ...(objectPath ? { objectPath } : {}) });
    fwd.setVips([VIP]);
    fwd.setHelloVerify(VIP, KEYS);
  });
  afterAll(() => fwd?.close());
  afterEach(() => {
    fwd!.setHelloVerify(VIP, KEYS);
    fwd!.setNewClientLimits({});
    for (const k of [...fwd!.flows.keys()]) fwd!.flows.delete(k);
  });

  const run = (data: Buffer): { retval: number; data: Buffer } => fwd!.program.testRun({ data });
  const moved = (before: XdpStats): Partial<Record<StatName, number>> => {
    const after = fwd!.stats();
    return Object.fromEntries(Object.entries(after).filter(([k, v]) => v !== before[k as StatName]).map(([k, v]) => [k, v - before[k as StatName]]));
  };

  const answered: { name: string; hello: Hello }[] = [
    { name: 'a first hello (no session id, no cookie)', hello: {} },
    { name: 'a retry whose message_seq and record sequence are repeated', hello: { messageSeq: 1, recordSeq: 0x0102030405 } },
    { name: 'a hello with a 32-byte session id', hello: { sessionId: Buffer.alloc(32, 0xab) } },
    { name: 'a hello of DTLS 1.0', hello: { version: 0xfeff } },
    { name: 'a cookie of another length (someone else\'s)', hello: { cookie: Buffer.alloc(16, 0x55), messageSeq: 1 } },
    { name: 'an 8-byte cookie that is not ours', hello: { cookie: Buffer.alloc(8, 0x55), messageSeq: 1 } },
    {
      name: 'the first fragment of a fragmented hello, cut right after the cookie length',
      hello: { fragment: { offset: 0, length: 2 + 32 + 1 + 1 } },
    },
  ];
  for (const { name, hello } of answered) {
    it(`answers ${name}: every byte of the HelloVerifyRequest`, () => {
      const before = fwd!.stats();
      const out = run(frame(helloRecord(hello)));
      expect(out.retval).toBe(XDP_TX);
      expect(out.data.toString('hex')).toBe(expectedAnswer(hello, KEYS.keys[0]).toString('hex'));
      expect(verifyChecksums(out.data)).toMatchObject({ ip: true, udp: true });
      expect(moved(before)).toEqual({ helloVerify: 1 });
    });
  }

  it('makes new cookies with the key `current` names, and still accepts those of the other', () => {
    fwd!.setHelloVerify(VIP, { ...KEYS, current: 1 });
    expect(run(frame(helloRecord({}))).data.toString('hex')).toBe(expectedAnswer({}, KEYS.keys[1]).toString('hex'));
    const before = fwd!.stats();
    for (const key of KEYS.keys) {
      const withCookie: Hello = { messageSeq: 1, cookie: cookieFor({}, key) };
      const input = frame(helloRecord(withCookie));
      const out = run(input);
      expect(out.retval).toBe(XDP_PASS);
      expect(out.data.equals(input)).toBe(true);
    }
    expect(moved(before)).toEqual({ miss: 2 });
  });

  it('binds the cookie to the client: the same hello from another port or address is answered anew', () => {
    const cookie = cookieFor({}, KEYS.keys[0]);
    const hello: Hello = { messageSeq: 1, cookie };
    for (const client of [
      { address: CLIENT.address, port: CLIENT.port + 1 },
      { address: '198.51.100.8', port: CLIENT.port },
    ]) {
      const out = run(frame(helloRecord(hello), { ip: { src: client.address, dst: VIP.address, ttl: 57 }, udp: { srcPort: client.port, dstPort: VIP.port } }));
      expect(out.retval).toBe(XDP_TX);
      expect(out.data.toString('hex')).toBe(expectedAnswer(hello, KEYS.keys[0], client).toString('hex'));
    }
    // A changed random is another hello.
    const changed = Buffer.from(RANDOM);
    changed[31] = changed[31]! ^ 1;
    expect(run(frame(helloRecord({ ...hello, random: changed }))).retval).toBe(XDP_TX);
  });

  const passed: { name: string; payload: () => Buffer; over?: Partial<UdpFrameSpec> }[] = [
    { name: 'a later fragment of a hello', payload: () => helloRecord({ fragment: { offset: 40, length: 20 } }) },
    { name: 'application data', payload: () => helloRecord({ contentType: 23 }) },
    { name: 'another handshake message', payload: () => helloRecord({ handshakeType: 2 }) },
    { name: 'a client_version that is not DTLS', payload: () => helloRecord({ version: 0x0303 }) },
    { name: 'a session id longer than 32 bytes', payload: () => helloRecord({ sessionId: Buffer.alloc(33, 1) }) },
    {
      name: 'a datagram that ends before the cookie length',
      payload: () => helloRecord({ fragment: { offset: 0, length: 2 + 32 + 1 } }),
    },
    { name: 'a record whose length ends before the cookie length', payload: () => helloRecord({ recordLength: 12 + 2 + 32 + 1 }) },
    { name: 'a fragment length that ends before the cookie length', payload: () => helloRecord({ fragmentLength: 2 + 32 + 1 }) },
    { name: 'an 8-byte cookie cut short by the fragment', payload: () => helloRecord({ cookie: Buffer.alloc(8, 1), fragment: { offset: 0, length: 2 + 32 + 1 + 1 + 4 } }) },
    { name: 'a hello to another port of the VIP address', payload: () => helloRecord({}), over: { udp: { srcPort: CLIENT.port, dstPort: VIP.port + 1 } } },
    {
      name: 'a hello in an IPv4 header with options',
      payload: () => helloRecord({}),
      over: { ip: { src: CLIENT.address, dst: VIP.address, ttl: 57, options: Buffer.from([1, 1, 1, 1]) } },
    },
    { name: 'a truncated record header', payload: () => helloRecord({}).subarray(0, 10) },
  ];
  for (const { name, payload, over } of passed) {
    it(`leaves ${name} to the kernel untouched`, () => {
      const input = frame(payload(), over);
      const before = fwd!.stats();
      const out = run(input);
      expect(out.retval).toBe(XDP_PASS);
      expect(out.data.equals(input)).toBe(true);
      expect(moved(before)).toEqual({ miss: 1 });
    });
  }

  it('answers for a VIP that is not among the rate-limited ones', () => {
    fwd!.setVips([]);
    try {
      expect(run(frame(helloRecord({}))).retval).toBe(XDP_TX);
    } finally {
      fwd!.setVips([VIP]);
    }
  });

  it('answers nothing for a VIP whose entry is removed', () => {
    fwd!.setHelloVerify(VIP, undefined);
    const input = frame(helloRecord({}));
    const out = run(input);
    expect(out.retval).toBe(XDP_PASS);
    expect(out.data.equals(input)).toBe(true);
  });

  it('forwards a known flow\'s datagrams whatever they look like', () => {
    const key = Buffer.alloc(16);
    key.writeUInt32BE(0xc000020a, 0);
    key.writeUInt32BE(0xc6336407, 4);
    key.writeUInt16BE(VIP.port, 8);
    key.writeUInt16BE(CLIENT.port, 10);
    const value = Buffer.alloc(24);
    value.writeUInt32BE(0xc0000214, 0);
    value.writeUInt32BE(0xc000020b, 4);
    value.writeUInt16BE(5000, 8);
    value.writeUInt16BE(20000, 10);
    fwd!.flows.update(key, value);
    const before = fwd!.stats();
    run(frame(helloRecord({})));
    expect(moved(before).helloVerify).toBeUndefined();
  });

  it('answers before the new-client rate limits, which count only what goes on to the control plane', () => {
    fwd!.setNewClientLimits({ perSource: { rate: 1, burst: 1 } });
    const before = fwd!.stats();
    for (let i = 0; i < 3; i++) expect(run(frame(helloRecord({}))).retval).toBe(XDP_TX);
    const good = frame(helloRecord({ messageSeq: 1, cookie: cookieFor({}, KEYS.keys[0]) }));
    expect(run(good).retval).toBe(XDP_PASS);
    expect(run(good).retval).not.toBe(XDP_PASS);
    expect(moved(before)).toEqual({ helloVerify: 3, miss: 1, rateLimited: 1 });
  });

  it('answers the first datagram of real clients\' captures: a whole hello and the first of two fragments', () => {
    for (const capture of ['ossl_foo', 'ossl_mtu']) {
      const first = Buffer.from(dtlsCapture(capture)[0]!);
      const out = run(frame(first));
      expect(out.retval, capture).toBe(XDP_TX);
      const sidLength = first[13 + 12 + 34]!;
      const hello: Hello = {
        recordSeq: first.readUIntBE(5, 6),
        messageSeq: first.readUInt16BE(17),
        version: first.readUInt16BE(25),
        random: first.subarray(27, 59),
        sessionId: first.subarray(60, 60 + sidLength),
      };
      expect(out.data.toString('hex'), capture).toBe(expectedAnswer(hello, KEYS.keys[0]).toString('hex'));
    }
  });

  it('refuses keys it cannot use', () => {
    expect(() => fwd!.setHelloVerify(VIP, { keys: [Buffer.alloc(15), Buffer.alloc(16)], current: 0 })).toThrow(RangeError);
    expect(() => fwd!.setHelloVerify(VIP, { ...KEYS, current: 2 as 0 })).toThrow(RangeError);
    expect(() => fwd!.setHelloVerify({ address: VIP.address, port: 0 }, KEYS)).toThrow(RangeError);
  });
});
