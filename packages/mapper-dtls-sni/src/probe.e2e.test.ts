import { randomBytes } from 'node:crypto';
import { createSocket } from 'node:dgram';
import { join } from 'node:path';
import { afterAll, beforeAll, expect, it } from 'vitest';
import {
  createDtlsCertificates,
  describeWithDtlsTools,
  run,
  runOpensslDtlsClient,
  startDtlsServer,
  type DtlsCertificates,
  type DtlsCredentials,
  type DtlsServer,
} from '@flowlb/testkit';
import { buildClientHello, CLIENT_HELLO_CIPHER_SUITES } from './client-hello-builder.js';
import { startGnutlsServ, type GnutlsServ } from './e2e/gnutls-serv.js';
import { HandshakeType, parseHandshakeFragments } from './handshake.js';
import { dtlsProbe } from './probe.js';
import { ContentType, parseRecords } from './record.js';

// The probe against stock DTLS servers on loopback, no privileges needed.
//
// openssl s_server serves one client at a time with one connection object: it answers a hello with a
// HelloVerifyRequest and waits for the retry, and the probe carries its handshake to the ServerHello and then ends it
// with an alert, so that the server starts afresh. Every check that goes past the HelloVerifyRequest leaves a
// handshake half done, so it gets a server of its own.
//
// gnutls-serv binds every local address and answers from 127.0.0.1, where it must be reached.
type DtlsProbeOutcomeLike = { ok: true } | { ok: false; reason: string };
const NAME = 'probe.e2e.example';
const OPENSSL = {
  single: { address: '127.79.41.11', port: 14811 },
  ecdsa: { address: '127.79.41.12', port: 14812 },
  rsa: { address: '127.79.41.13', port: 14813 },
} as const;
const GNUTLS = {
  ecdsa: { address: '127.0.0.1', port: 14820 },
  rsa: { address: '127.0.0.1', port: 14821 },
} as const;


type Target = { address: string; port: number };

/** A self-signed RSA certificate beside the testkit's P-256 ones, for the suites only RSA keys can use. */
async function issueRsa(certs: DtlsCertificates, name: string): Promise<DtlsCredentials> {
  const creds = { name, cert: join(certs.dir, `${name}.crt`), key: join(certs.dir, `${name}.key`) };
  await run(
    'openssl',
    ['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-days', '1', '-subj', `/CN=${name}`, '-keyout', creds.key, '-out', creds.cert],
    { timeoutMs: 30_000 },
  );
  return creds;
}

type Answer =
  | { kind: 'hello-verify'; cookie: Uint8Array }
  | { kind: 'server-hello'; cipherSuite: number }
  | { kind: 'alert'; level: number; description: number };

/** The first HelloVerifyRequest, ServerHello or alert in a datagram. */
function answerIn(datagram: Uint8Array): Answer | undefined {
  const layer = parseRecords(datagram);
  if (!layer.ok) return undefined;
  for (const record of layer.records) {
    if (record.epoch !== 0) continue;
    if (record.contentType === ContentType.Alert && record.fragment.length === 2) {
      return { kind: 'alert', level: record.fragment[0]!, description: record.fragment[1]! };
    }
    if (record.contentType !== ContentType.Handshake) continue;
    const handshake = parseHandshakeFragments(record.fragment);
    if (!handshake.ok) continue;
    for (const { msgType, fragmentOffset, body } of handshake.fragments) {
      if (fragmentOffset !== 0) continue;
      if (msgType === HandshakeType.HelloVerifyRequest && body.length >= 3) {
        return { kind: 'hello-verify', cookie: Uint8Array.from(body.subarray(3, 3 + body[2]!)) };
      }
      // server_version(2) random(32) session_id<0..32> cipher_suite(2)
      if (msgType === HandshakeType.ServerHello && body.length >= 35) {
        const at = 35 + body[34]!;
        if (body.length >= at + 2) return { kind: 'server-hello', cipherSuite: (body[at]! << 8) | body[at + 1]! };
      }
    }
  }
  return undefined;
}

/**
 * Goes one step further than the probe: answers the HelloVerifyRequest with the same hello and the cookie, as a
 * client would, and returns what the server says to that. A ServerHello there means the server found the cipher
 * suites, groups and signature algorithms of the built hello usable; the cookie exchange alone never looks at them.
 */
async function helloWithCookie(target: Target, timeoutMs = 5000): Promise<Answer[]> {
  const socket = createSocket('udp4');
  const answers: Answer[] = [];
  try {
    return await new Promise<Answer[]>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`no ServerHello within ${timeoutMs} ms: ${JSON.stringify(answers)}`)), timeoutMs);
      const random = randomBytes(32);
      socket.on('error', (error) => {
        clearTimeout(timer);
        reject(error);
      });
      socket.on('message', (datagram) => {
        const answer = answerIn(datagram);
        if (answer === undefined) return;
        answers.push(answer);
        if (answer.kind === 'hello-verify' && answers.length === 1) {
          socket.send(buildClientHello({ serverName: NAME, random, cookie: answer.cookie, messageSeq: 1, recordSequence: 1 }));
        } else if (answer.kind !== 'hello-verify') {
          clearTimeout(timer);
          resolve(answers);
        }
      });
      socket.connect(target.port, target.address, () => socket.send(buildClientHello({ serverName: NAME, random })));
    });
  } finally {
    socket.close();
  }
}

function probe(target: Target, serverName: string | undefined = NAME, timeoutMs = 3000) {
  return dtlsProbe(serverName === undefined ? {} : { serverName })(target, {
    timeoutMs,
    signal: AbortSignal.timeout(timeoutMs + 2000),
  });
}

describeWithDtlsTools('dtlsProbe against openssl s_server and gnutls-serv on loopback', () => {
  let certs: DtlsCertificates;
  const openssl: Partial<Record<keyof typeof OPENSSL, DtlsServer>> = {};
  const gnutls: Partial<Record<keyof typeof GNUTLS, GnutlsServ>> = {};

  beforeAll(async () => {
    certs = await createDtlsCertificates('flowlb-dtls-probe-');
    const ecdsa = await certs.issue('probe-ecdsa');
    const rsa = await issueRsa(certs, 'probe-rsa');
    for (const [which, spec] of Object.entries(OPENSSL) as [keyof typeof OPENSSL, (typeof OPENSSL)[keyof typeof OPENSSL]][]) {
      const { cert, key } = which === 'rsa' ? rsa : ecdsa;
      openssl[which] = await startDtlsServer(null, null, {
        name: `probe-${which}`,
        addr: spec.address,
        port: spec.port,
        cert,
        key,
        echo: false,
      });
    }
    for (const [which, target] of Object.entries(GNUTLS) as [keyof typeof GNUTLS, Target][]) {
      const { cert, key } = which === 'rsa' ? rsa : ecdsa;
      gnutls[which] = await startGnutlsServ({ port: target.port, cert, key });
    }
  });

  afterAll(async () => {
    await Promise.all([...Object.values(openssl), ...Object.values(gnutls)].map((s) => s?.stop()));
    await certs?.remove();
  });

  it('openssl s_server -dtls1_2: ok, with a name and without, probe after probe, and a real client is served after them', async () => {
    for (let i = 0; i < 3; i++) {
      expect(await probe(OPENSSL.single)).toEqual({ ok: true });
      expect(await probe(OPENSSL.single, undefined)).toEqual({ ok: true });
    }
    const client = await runOpensslDtlsClient(null, null, { connect: `${OPENSSL.single.address}:${OPENSSL.single.port}`, servername: NAME, timeoutMs: 5000 });
    expect(client.ok, client.stderr).toBe(true);
    expect(await probe(OPENSSL.single)).toEqual({ ok: true });
  });

  it('gnutls-serv --udp: ok, with a name and without, probe after probe', async () => {
    for (let i = 0; i < 3; i++) {
      expect(await probe(GNUTLS.ecdsa)).toEqual({ ok: true });
      expect(await probe(GNUTLS.ecdsa, undefined)).toEqual({ ok: true });
    }
  });

  it('side by side: both servers probed at the same time, each one probe after another as a checker does', async () => {
    const series = async (target: Target): Promise<DtlsProbeOutcomeLike[]> => {
      const out: DtlsProbeOutcomeLike[] = [];
      for (let i = 0; i < 4; i++) out.push(await probe(target));
      return out;
    };
    const [a, b] = await Promise.all([series(OPENSSL.single), series(GNUTLS.ecdsa)]);
    expect([...a, ...b]).toEqual(Array.from({ length: 8 }, () => ({ ok: true })));
  });

  it.each([
    ['openssl s_server, ECDSA certificate', OPENSSL.ecdsa, 'ecdsa'],
    ['openssl s_server, RSA certificate', OPENSSL.rsa, 'rsa'],
    ['gnutls-serv, ECDSA certificate', GNUTLS.ecdsa, undefined],
    ['gnutls-serv, RSA certificate', GNUTLS.rsa, undefined],
  ] as const)('%s: the built hello, with the cookie, gets a ServerHello with one of its suites', async (_what, target, which) => {
    const answers = await helloWithCookie(target);
    expect(answers[0]?.kind).toBe('hello-verify');
    const last = answers.at(-1)!;
    expect(last.kind, JSON.stringify(last)).toBe('server-hello');
    expect(CLIENT_HELLO_CIPHER_SUITES).toContain(last.kind === 'server-hello' ? last.cipherSuite : -1);
    if (which !== undefined) await openssl[which]!.waitForConnection((c) => c.sni === NAME, 3000);
  });

  it('openssl s_server stopped: port unreachable', async () => {
    await openssl.single!.stop();
    expect(await probe(OPENSSL.single)).toEqual({ ok: false, reason: 'port unreachable' });
  });

  it('gnutls-serv stopped: port unreachable', async () => {
    await gnutls.ecdsa!.stop();
    expect(await probe(GNUTLS.ecdsa)).toEqual({ ok: false, reason: 'port unreachable' });
  });
});
