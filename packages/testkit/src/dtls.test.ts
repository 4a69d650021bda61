import dgram from 'node:dgram';
import { existsSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  SServerLogParser,
  createDtlsCertificates,
  describeWithDtlsTools,
  dtlsToolsCheck,
  hostNameFromServerNameExtension,
  parseGnutlsClientOutput,
  parseOpensslClientOutput,
  runGnutlsDtlsClient,
  runOpensslDtlsClient,
  startDtlsServer,
  type DtlsCertificates,
  type DtlsServer,
} from './dtls.js';
import { run } from './exec.js';
import { Topology } from './netns.js';
import { describePrivileged } from './privileges.js';

// Loopback addresses of their own, so that other suites running at the same time never collide with these ports.
const ALPHA = { addr: '127.81.0.10', port: 4433 };
const BETA = { addr: '127.81.0.11', port: 4433 };
const NOBODY = '127.81.0.99:4433';

describeWithDtlsTools('DTLS peers on loopback', () => {
  let certs: DtlsCertificates;
  let alpha: DtlsServer;
  let beta: DtlsServer;

  beforeAll(async () => {
    certs = await createDtlsCertificates();
    const [a, b] = await Promise.all([certs.issue('alpha'), certs.issue('beta')]);
    alpha = await startDtlsServer(null, null, { ...ALPHA, ...a });
    beta = await startDtlsServer(null, null, { ...BETA, ...b });
  });

  afterAll(async () => {
    await alpha?.stop();
    await beta?.stop();
    await certs?.remove();
  });

  it('issues self-signed certificates whose subject is the name, in a folder that remove() deletes', async () => {
    const scratch = await createDtlsCertificates();
    const c = await scratch.issue('gamma');
    const { stdout } = await run('openssl', ['x509', '-in', c.cert, '-noout', '-subject', '-issuer']);
    expect(stdout).toMatch(/^subject=CN = gamma$/m);
    expect(stdout).toMatch(/^issuer=CN = gamma$/m);
    await expect(scratch.issue('bad/name')).rejects.toThrow(/certificate name/);
    await scratch.remove();
    expect(existsSync(scratch.dir)).toBe(false);
  });

  it('openssl s_client completes a handshake, names the server, and gets its message echoed', async () => {
    const r = await runOpensslDtlsClient(null, null, {
      connect: `${ALPHA.addr}:${ALPHA.port}`,
      servername: 'alpha.example',
      message: 'hello from openssl',
      timeoutMs: 10_000,
    });
    expect(r.ok, r.stdout + r.stderr).toBe(true);
    expect(r).toMatchObject({ tool: 'openssl', handshake: true, protocol: 'DTLSv1.2', peerCn: 'alpha', verifyReturnCode: 18 });
    expect(r.cipher).toMatch(/^ECDHE-ECDSA-/);
    expect(r.reply).toBe('alpha echo hello from openssl');
    const conn = await alpha.waitForConnection((c) => c.received.includes('hello from openssl'));
    expect(conn).toMatchObject({ sni: 'alpha.example', handshake: true });
    expect(conn.cipher).toBe(r.cipher);
    await alpha.waitForConnection((c) => c.received.includes('hello from openssl') && c.closed);
    expect(beta.connections()).toEqual([]);
  });

  it('gnutls-cli completes a handshake with its own SNI and gets its message echoed', async () => {
    const r = await runGnutlsDtlsClient(null, null, {
      connect: `${BETA.addr}:${BETA.port}`,
      servername: 'beta.example',
      message: 'hello from gnutls',
      timeoutMs: 10_000,
    });
    expect(r.ok, r.stdout + r.stderr).toBe(true);
    expect(r).toMatchObject({ tool: 'gnutls', handshake: true, protocol: 'DTLSv1.2', peerCn: 'beta' });
    expect(r.reply).toBe('beta echo hello from gnutls');
    const conn = await beta.waitForConnection((c) => c.received.includes('hello from gnutls'));
    expect(conn.sni).toBe('beta.example');
  });

  it('with -mtu 256 the ClientHello really is split into fragments, and the handshake still completes', async () => {
    // First, what the client puts on the wire: its first datagram to a plain UDP socket.
    const sink = dgram.createSocket('udp4');
    await new Promise<void>((resolve) => sink.bind(0, '127.81.0.20', resolve));
    const first = new Promise<Buffer>((resolve) => sink.once('message', (m) => resolve(m)));
    const name = 'a-rather-long-name.for-fragmentation.alpha.example';
    const probe = runOpensslDtlsClient(null, null, {
      connect: `127.81.0.20:${sink.address().port}`,
      servername: name,
      mtu: 256,
      timeoutMs: 1500,
    });
    const datagram = await first;
    const unanswered = await probe;
    sink.close();
    expect(unanswered.ok).toBe(false);
    expect(datagram.length).toBeLessThanOrEqual(256);
    // Record header (13 bytes), then the handshake header: type, length (3), message_seq (2), offset (3), fragment length (3).
    expect(datagram[13]).toBe(1);
    const length = datagram.readUIntBE(14, 3);
    const fragmentLength = datagram.readUIntBE(22, 3);
    expect(datagram.readUIntBE(19, 3)).toBe(0);
    expect(fragmentLength).toBeLessThan(length);

    const r = await runOpensslDtlsClient(null, null, {
      connect: `${ALPHA.addr}:${ALPHA.port}`,
      servername: name,
      mtu: 256,
      message: 'fragmented hello',
      timeoutMs: 10_000,
    });
    expect(r.ok, r.stdout + r.stderr).toBe(true);
    expect(r.peerCn).toBe('alpha');
    expect((await alpha.waitForConnection((c) => c.received.includes('fragmented hello'))).sni).toBe(name);
  });

  it('a client that sends no name shows up without one; clients are served one after another', async () => {
    const before = alpha.serverNames().length;
    const plain = await runOpensslDtlsClient(null, null, { connect: `${ALPHA.addr}:${ALPHA.port}`, timeoutMs: 10_000 });
    const gnutls = await runGnutlsDtlsClient(null, null, { connect: `${ALPHA.addr}:${ALPHA.port}`, timeoutMs: 10_000 });
    const named = await runOpensslDtlsClient(null, null, {
      connect: `${ALPHA.addr}:${ALPHA.port}`,
      servername: 'third.example',
      timeoutMs: 10_000,
    });
    expect([plain.ok, gnutls.ok, named.ok]).toEqual([true, true, true]);
    await alpha.waitForConnection((c) => c.sni === 'third.example' && c.handshake);
    expect(alpha.serverNames().slice(before)).toEqual(['', '', 'third.example']);
  });

  it('reports a failed run instead of throwing, within its deadline', async () => {
    const r = await runOpensslDtlsClient(null, null, { connect: NOBODY, servername: 'x.example', timeoutMs: 1500 });
    expect(r.ok).toBe(false);
    expect(r.handshake).toBe(false);
    expect(r.peerCn).toBeUndefined();
    const g = await runGnutlsDtlsClient(null, null, { connect: NOBODY, servername: 'x.example', timeoutMs: 1500 });
    expect(g.ok).toBe(false);
    expect(g.handshake).toBe(false);
    await expect(runGnutlsDtlsClient(null, null, { connect: NOBODY, bind: '127.0.0.1', timeoutMs: 100 })).rejects.toThrow(/bind/);
  });

  it('fails to start a server on a port that is taken', async () => {
    const c = await certs.issue('alpha');
    await expect(startDtlsServer(null, null, { ...ALPHA, ...c, name: 'again', readyTimeoutMs: 3000 })).rejects.toThrow(
      /s_server 'again'.*127.81.0.10:4433 is already bound/,
    );
  });
});

describe('DTLS output parsers', () => {
  it('reads the host name of a server_name extension, and nothing from a malformed one', () => {
    const name = [...Buffer.from('foo.example')];
    expect(hostNameFromServerNameExtension([0, name.length + 3, 0, 0, name.length, ...name])).toBe('foo.example');
    expect(hostNameFromServerNameExtension([0, 40, 0, 0, 30, 1, 2])).toBeUndefined();
    expect(hostNameFromServerNameExtension([0, 4, 1, 0, 1, 9])).toBeUndefined();
    expect(hostNameFromServerNameExtension([])).toBeUndefined();
  });

  it('splits s_server output into connections, reading names from the hex columns only', () => {
    const p = new SServerLogParser();
    const lines = [
      'ACCEPT',
      'TLS client extension "server name" (id=0), len=19',
      '0000 - 00 11 00 00 0e 61 62 63-64 65 66 2e 65 78 61 6d   .....abcdef.exam',
      '0010 - 70 6c 65                                          ple',
      'TLS client extension "EC point formats" (id=11), len=4',
      '0000 - 03 00 01 02                                       ....',
      'CIPHER is ECDHE-ECDSA-AES256-GCM-SHA384',
      'Secure Renegotiation IS supported',
      'first line',
      'CIPHER is not a cipher line once data flows',
      'DONE',
      'shutting down SSL',
      'CONNECTION CLOSED',
      'TLS client extension "supported_groups" (id=10), len=2',
      '0000 - 00 17                                             ..',
      'shutting down SSL',
      'CONNECTION CLOSED',
    ];
    const data = lines.map((l) => p.push(l)).filter((d) => d !== undefined);
    p.finish();
    expect(data).toEqual(['first line', 'CIPHER is not a cipher line once data flows']);
    expect(p.connections).toEqual([
      {
        sni: 'abcdef.example',
        handshake: true,
        cipher: 'ECDHE-ECDSA-AES256-GCM-SHA384',
        received: ['first line', 'CIPHER is not a cipher line once data flows'],
        closed: true,
      },
      { handshake: false, received: [], closed: true },
    ]);
  });

  it('tells a completed openssl handshake from a failed one', () => {
    const ok = [
      'subject=CN = alpha',
      'New, TLSv1.2, Cipher is ECDHE-ECDSA-AES256-GCM-SHA384',
      '    Protocol  : DTLSv1.2',
      '    Verify return code: 18 (self-signed certificate)',
    ].join('\n');
    expect(parseOpensslClientOutput(ok)).toEqual({
      handshake: true,
      protocol: 'DTLSv1.2',
      cipher: 'ECDHE-ECDSA-AES256-GCM-SHA384',
      peerCn: 'alpha',
      verifyReturnCode: 18,
    });
    const failed = ['New, (NONE), Cipher is (NONE)', '    Protocol  : DTLSv1.2', '    Verify return code: 0 (ok)'].join('\n');
    expect(parseOpensslClientOutput(failed)).toEqual({ handshake: false, protocol: 'DTLSv1.2', verifyReturnCode: 0 });
  });

  it('reads gnutls-cli output', () => {
    const out = [
      " - subject `O=x,CN=beta', issuer `CN=beta', serial 0x01",
      '- Description: (DTLS1.2-X.509)-(ECDHE-SECP256R1)-(ECDSA-SHA256)-(AES-256-GCM)',
      '- Handshake was completed',
    ].join('\n');
    expect(parseGnutlsClientOutput(out)).toEqual({
      handshake: true,
      protocol: 'DTLSv1.2',
      cipher: '(ECDHE-SECP256R1)-(ECDSA-SHA256)-(AES-256-GCM)',
      peerCn: 'beta',
    });
    expect(parseGnutlsClientOutput('*** Fatal error: Error in the pull function.\n').handshake).toBe(false);
  });
});

// Both conditions apply; the tools' check speaks first when they are missing.
(dtlsToolsCheck().ok ? describePrivileged : describeWithDtlsTools)('DTLS peers in network namespaces', () => {
  let topo: Topology;
  let certs: DtlsCertificates;
  let server: DtlsServer;
  let serverNs: string;
  let clientNs: string;

  beforeAll(async () => {
    topo = new Topology({ prefix: 'tkd' });
    certs = await createDtlsCertificates();
    const [sns, cns] = await Promise.all([topo.addNamespace('srv'), topo.addNamespace('cli')]);
    serverNs = sns;
    clientNs = cns;
    await topo.addVethPair(clientNs, 'eth0', serverNs, 'eth0', { addrA: '10.203.0.2/24', addrB: '10.203.0.1/24' });
    server = await startDtlsServer(topo, serverNs, { addr: '10.203.0.1', port: 4433, ...(await certs.issue('nsbackend')) });
  });

  afterAll(async () => {
    await server?.stop();
    await topo?.destroy();
    await certs?.remove();
  });

  it('openssl (whole and fragmented hello) and gnutls complete handshakes across namespaces', async () => {
    const common = { connect: '10.203.0.1:4433', timeoutMs: 10_000 };
    const a = await runOpensslDtlsClient(topo, clientNs, { ...common, servername: 'one.example', message: 'm1' });
    const b = await runOpensslDtlsClient(topo, clientNs, { ...common, servername: 'two.example', mtu: 256, message: 'm2' });
    const c = await runGnutlsDtlsClient(topo, clientNs, { ...common, servername: 'three.example', message: 'm3' });
    for (const r of [a, b, c]) {
      expect(r.ok, r.stdout + r.stderr).toBe(true);
      expect(r.peerCn).toBe('nsbackend');
    }
    expect([a.reply, b.reply, c.reply]).toEqual(['nsbackend echo m1', 'nsbackend echo m2', 'nsbackend echo m3']);
    await server.waitForConnection((x) => x.sni === 'three.example' && x.received.includes('m3'));
    expect(server.serverNames()).toEqual(['one.example', 'two.example', 'three.example']);
  });

  it('runs server and client under a prefix command when given one', async () => {
    const pinned = await startDtlsServer(topo, serverNs, {
      addr: '10.203.0.1',
      port: 4434,
      ...(await certs.issue('pinned')),
      name: 'pinned',
      prefix: ['taskset', '-c', '0'],
    });
    try {
      const r = await runOpensslDtlsClient(topo, clientNs, { connect: '10.203.0.1:4434', servername: 'p.example', timeoutMs: 10_000, prefix: ['taskset', '-c', '0'] });
      expect(r.ok, r.stdout + r.stderr).toBe(true);
      expect(r.peerCn).toBe('pinned');
      const affinity = await run('taskset', ['-p', String(pinned.process.pid)]);
      expect(affinity.stdout).toMatch(/affinity mask: 1$/m);
    } finally {
      await pinned.stop();
    }
  });

  it('a client in a namespace gives up within its deadline when nothing answers', async () => {
    const r = await runOpensslDtlsClient(topo, clientNs, { connect: '10.203.0.1:4999', servername: 'x.example', timeoutMs: 1500 });
    expect(r.ok).toBe(false);
  });
});
