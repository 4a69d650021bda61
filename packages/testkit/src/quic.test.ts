import { afterAll, beforeAll, expect, it } from 'vitest';
import { createDtlsCertificates, type DtlsCertificates } from './dtls.js';
import { describeWithQuicTools, runQuicClient, startQuicServer, type QuicServer } from './quic.js';

// Loopback, this process's own namespace: the peers themselves, before any balancer stands between them.
describeWithQuicTools('QUIC peers on loopback', () => {
  let certs: DtlsCertificates;
  let server: QuicServer | undefined;
  const port = 14860 + (process.pid % 100);

  beforeAll(async () => {
    certs = await createDtlsCertificates('flowlb-quic-');
    server = await startQuicServer(null, null, { ...(await certs.issue('alpha')), addr: '127.0.0.1', port, name: 'alpha' });
  });

  afterAll(async () => {
    await server?.stop();
    await certs?.remove();
  });

  it('completes a handshake and an HTTP/3 request, and the body names the server', async () => {
    const r = await runQuicClient(null, null, { host: '127.0.0.1', port, timeoutMs: 5000 });
    expect(r).toMatchObject({ ok: true, body: 'alpha', handshake: true, alpn: 'h3' });
  });

  it('says so when nothing answers, within its deadline', async () => {
    const r = await runQuicClient(null, null, { host: '127.0.0.1', port: port + 1, timeoutMs: 1000 });
    expect(r.ok).toBe(false);
    expect(r.handshake).toBe(false);
  });

  it('refuses a port that is already bound', async () => {
    await expect(startQuicServer(null, null, { ...(await certs.issue('beta')), addr: '127.0.0.1', port, name: 'beta' })).rejects.toThrow(/already bound/);
  });
});
