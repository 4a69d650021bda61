// New DTLS flows per second through the balancer (userspace datapath, loopback, no privileges), against the built
// packages (run `pnpm build` first). Two measurements:
//
// 1. Replay: the real ClientHello captures (every datagram of each), each from a client endpoint of its own, sent
//    by a separate generator process that keeps a fixed number of clients waiting for their first echo; the
//    balancer routes them with a DtlsSniMapper to UDP echo backends. Flows installed per second come from the
//    balancer's own flow-created events.
// 2. Handshakes: `openssl s_client` full handshakes one after another against an `openssl s_server`, through the
//    balancer and directly, for a few seconds each way; the ratios are what the balancer costs a real handshake.
//
// The generator and the echo backends are this same file run with --replay / --echo.
import { spawn } from 'node:child_process';
import dgram from 'node:dgram';
import { existsSync, readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { dtlsCapture } from '@flowlb/testkit';

const CAPTURES = ['ossl_foo', 'gnutls_bar', 'ossl_mtu', 'ossl_cookie'];

const VIP = { address: '127.79.0.1', port: 4433 };
const SNAT = '127.79.0.2';
const SNAT_PORTS = { min: 10000, max: 31999 };
const ECHO = [
  { address: '127.79.0.10', port: 7000 },
  { address: '127.79.0.11', port: 7000 },
];
const DTLS_SERVER = { address: '127.79.0.20', port: 4433 };

const FLOWS_PER_ROUND = Number(process.env.BENCH_FLOWS ?? 8000);
const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 3);
const WINDOW = Number(process.env.BENCH_WINDOW ?? 64);
const HANDSHAKE_MS = Number(process.env.BENCH_HANDSHAKE_MS ?? 4000);

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

function bindSocket(address, port) {
  return new Promise((resolve, reject) => {
    const s = dgram.createSocket('udp4');
    s.once('error', reject);
    s.bind({ address, port, exclusive: true }, () => {
      s.removeListener('error', reject);
      s.on('error', () => {});
      resolve(s);
    });
  });
}

// ---------------------------------------------------------------------------------------------------------------
// Child roles

/** UDP echo backends: answer every datagram with itself, silently. */
async function echoMain(binds) {
  for (const b of binds) {
    const s = await bindSocket(b.address, b.port);
    s.on('message', (msg, rinfo) => s.send(msg, rinfo.port, rinfo.address));
  }
  process.stdout.write('ready\n');
  process.stdin.resume();
  process.stdin.on('end', () => process.exit(0));
  setTimeout(() => process.exit(0), 120_000).unref();
}

/**
 * Sends each capture's datagrams from a client endpoint that is used once, and waits for the first echo to come
 * back through the balancer (the flow is installed and forwards both ways) before that client is done. `window`
 * clients run at a time: a closed loop, so the offered load follows what the balancer sustains instead of
 * overflowing its socket buffer. Client endpoints are (address, port) pairs given out in order, so no two flows
 * share one, even across rounds.
 */
async function replayMain({ vip, captures, flows, window, sources, portBase, replyTimeoutMs }) {
  const packets = captures.map((lines) => lines.map((h) => Buffer.from(h, 'hex')));
  let next = 0;
  let answered = 0;
  let unanswered = 0;
  let bindFailed = 0;
  const t0 = performance.now();
  const worker = async () => {
    for (;;) {
      const i = next++;
      if (i >= flows) return;
      const address = sources[i % sources.length];
      const port = portBase + Math.floor(i / sources.length);
      let s;
      try {
        s = await bindSocket(address, port);
      } catch {
        bindFailed++;
        continue;
      }
      const reply = new Promise((resolve) => {
        const timer = setTimeout(() => resolve(false), replyTimeoutMs);
        s.once('message', () => {
          clearTimeout(timer);
          resolve(true);
        });
      });
      for (const p of packets[i % packets.length]) {
        await new Promise((resolve) => s.send(p, vip.port, vip.address, resolve));
      }
      if (await reply) answered++;
      else unanswered++;
      s.close();
    }
  };
  await Promise.all(Array.from({ length: window }, worker));
  process.stdout.write(`${JSON.stringify({ answered, unanswered, bindFailed, ms: performance.now() - t0 })}\n`);
}

// ---------------------------------------------------------------------------------------------------------------
// Bench

function readCapture(name) {
  return dtlsCapture(name).map((d) => Buffer.from(d).toString('hex'));
}

function self(args) {
  return spawn(process.execPath, [fileURLToPath(import.meta.url), ...args], { stdio: ['pipe', 'pipe', 'inherit'] });
}

function firstLine(child, what, timeoutMs) {
  return new Promise((resolve, reject) => {
    let buf = '';
    const timer = setTimeout(() => reject(new Error(`${what}: nothing after ${timeoutMs} ms`)), timeoutMs);
    child.stdout.on('data', (d) => {
      buf += d;
      const nl = buf.indexOf('\n');
      if (nl >= 0) {
        clearTimeout(timer);
        resolve(buf.slice(0, nl));
      }
    });
    child.once('exit', (code) => {
      clearTimeout(timer);
      reject(new Error(`${what} exited (${code}) early`));
    });
  });
}

async function until(check, timeoutMs, what) {
  const end = Date.now() + timeoutMs;
  while (!check()) {
    if (Date.now() > end) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await sleep(5);
  }
}

/** The namespace's count of UDP datagrams dropped for a full socket buffer (0 where /proc cannot tell). */
function udpRcvbufErrors() {
  try {
    const lines = readFileSync('/proc/net/snmp', 'utf8').split('\n').filter((l) => l.startsWith('Udp:'));
    const names = lines[0].split(/\s+/);
    const values = lines[1].split(/\s+/);
    return Number(values[names.indexOf('RcvbufErrors')] ?? 0);
  } catch {
    return 0;
  }
}

const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
const fmt = (n, w = 10) => Math.round(n).toLocaleString('en-US').padStart(w);

async function replayBench({ LoadBalancer, DtlsSniMapper, mappingsFromObject }) {
  const captures = CAPTURES.map((name) => [name, readCapture(name)]);
  const table = mappingsFromObject({
    sniMappings: [
      { fqdn: 'foo.example', ipv4: ECHO[0].address, port: ECHO[0].port },
      { fqdn: 'bar.example', ipv4: ECHO[1].address, port: ECHO[1].port },
      { fqdn: '*.example.org', ipv4: ECHO[0].address, port: ECHO[0].port },
      { fqdn: 'cookie.example', ipv4: ECHO[1].address, port: ECHO[1].port },
    ],
    default: 'drop',
  });
  const echo = self(['--echo', JSON.stringify(ECHO)]);
  try {
    await firstLine(echo, 'echo backends', 10_000);
    console.log(
      `replay: ${captures.map(([n, c]) => `${n} (${c.length} datagrams)`).join(', ')}; ` +
        `${FLOWS_PER_ROUND} clients per round, ${WINDOW} at a time, ${ROUNDS} rounds, a fresh balancer each round`,
    );
    const rates = [];
    const sources = Array.from({ length: 50 }, (_, i) => `127.79.1.${i + 1}`);
    for (let round = 0; round < ROUNDS; round++) {
      const mapper = new DtlsSniMapper({ mappings: table });
      let created = 0;
      let first = 0;
      let last = 0;
      const lb = new LoadBalancer({
        vip: VIP,
        snatAddress: SNAT,
        snatPorts: SNAT_PORTS,
        mapper,
        datapath: 'userspace',
        receiveBufferBytes: 8 * 1024 * 1024,
        limits: { maxPendingClients: 50_000, maxFlows: 50_000 },
        onEvent: (e) => {
          if (e.type !== 'flow-created') return;
          const now = performance.now();
          if (created++ === 0) first = now;
          last = now;
        },
      });
      await lb.start();
      const rcvbuf0 = udpRcvbufErrors();
      let gen;
      try {
        gen = self([
          '--replay',
          JSON.stringify({
            vip: VIP,
            captures: captures.map(([, c]) => c),
            flows: FLOWS_PER_ROUND,
            window: WINDOW,
            sources,
            replyTimeoutMs: 2000,
            portBase: 40000 + round * Math.ceil(FLOWS_PER_ROUND / sources.length),
          }),
        ]);
        const report = JSON.parse(await firstLine(gen, 'replay generator', 60_000));
        // Done when every client either has a flow or was dropped, or nothing changes any more.
        let settled = -1;
        await until(() => {
          const s = lb.stats();
          const quiet = s.pending.clients === 0 && s.flows.created === settled;
          settled = s.flows.created;
          return quiet;
        }, 20_000, 'the balancer to settle');
        const s = lb.stats();
        const m = mapper.stats();
        const rate = created > 1 ? ((created - 1) * 1000) / (last - first) : 0;
        rates.push(rate);
        const drops = Object.entries(s.drops).filter(([, n]) => n > 0).map(([r, n]) => `${r} ${n}`).join(', ') || 'none';
        const rcvbufErrors = udpRcvbufErrors() - rcvbuf0;
        console.log(
          `  round ${round + 1}: ${fmt(report.answered, 6)} clients answered (${report.unanswered} not), ` +
            `${fmt(s.flows.created, 6)} flows installed at ${fmt(rate, 7)}/s; mapper: ${m.hellos} hellos, ` +
            `${m.needMore} waits; drops: ${drops}; UDP receive-buffer overflows: ${rcvbufErrors}`,
        );
      } finally {
        gen?.kill();
        await lb.stop();
      }
    }
    console.log(`new DTLS flows per second (median of ${ROUNDS}): ${fmt(median(rates), 0)}`);
  } finally {
    echo.stdin.end();
    echo.kill();
  }
}

/**
 * One full handshake: a new `openssl s_client` process that quits once connected (stdin is at EOF). Resolves when
 * the server has closed the connection, so the next client finds it free; the s_client process itself lingers half
 * a second after its close_notify, which is no part of a handshake, and is left to exit on its own. `wireMs` is
 * from the client's first ClientHello (its -msg trace) to the end of its handshake, without process start-up.
 */
async function oneHandshake(server, connect, servername, lingering) {
  const index = server.connections().length;
  const [cmd, args] = stdbufPath()
    ? ['stdbuf', ['-oL', 'openssl', 's_client', '-dtls1_2', '-msg', '-connect', connect, '-servername', servername]]
    : ['openssl', ['s_client', '-dtls1_2', '-msg', '-connect', connect, '-servername', servername]];
  const child = spawn(cmd, args, { stdio: ['ignore', 'pipe', 'ignore'] });
  lingering.push(new Promise((resolve) => child.once('exit', resolve)));
  let helloAt;
  let doneAt;
  let buf = '';
  child.stdout.setEncoding('utf8');
  child.stdout.on('data', (chunk) => {
    buf += chunk;
    let nl;
    while ((nl = buf.indexOf('\n')) >= 0) {
      const line = buf.slice(0, nl);
      buf = buf.slice(nl + 1);
      // OpenSSL 3.0 prints DTLS records as "Not TLS data"; the first thing sent is the ClientHello all the same.
      if (helloAt === undefined && line.startsWith(">>> ")) helloAt = performance.now();
      if (doneAt === undefined && /^(New|Reused), /.test(line)) doneAt = performance.now();
    }
  });
  try {
    await until(() => server.connections()[index]?.closed === true, 10_000, 'the handshake');
  } catch {
    child.kill('SIGKILL');
    return { ok: false };
  }
  // The client prints its summary right after its Finished; give the pipe a moment to deliver it.
  await until(() => doneAt !== undefined, 2000, 'the client summary').catch(() => undefined);
  const ok = server.connections()[index].handshake && doneAt !== undefined && helloAt !== undefined;
  return ok ? { ok, wireMs: doneAt - helloAt } : { ok: false };
}

let stdbuf;
function stdbufPath() {
  if (stdbuf === undefined) {
    stdbuf = ['/usr/bin/stdbuf', '/bin/stdbuf'].some((p) => existsSync(p));
  }
  return stdbuf;
}

/**
 * Sequential handshakes direct and through the balancer, in alternating one-second slices so that whatever else
 * the machine does falls on both alike.
 */
async function handshakeRuns(server, paths, totalMs) {
  const lingering = [];
  const results = paths.map(() => ({ ok: 0, failed: 0, ms: 0, wire: [] }));
  const slices = Math.max(1, Math.round(totalMs / 1000));
  for (let slice = 0; slice < slices; slice++) {
    for (const [i, path] of paths.entries()) {
      const r = results[i];
      const begin = performance.now();
      while (performance.now() - begin < totalMs / slices) {
        const h = await oneHandshake(server, path.connect, path.servername, lingering);
        if (h.ok) {
          r.ok++;
          r.wire.push(h.wireMs);
        } else r.failed++;
      }
      r.ms += performance.now() - begin;
    }
  }
  await Promise.race([Promise.all(lingering), sleep(5000)]);
  return results.map((r) => ({ ...r, perSecond: (r.ok * 1000) / r.ms, wireMs: r.wire.length ? median(r.wire) : NaN }));
}

async function handshakeBench({ LoadBalancer, DtlsSniMapper, mappingsFromObject }, testkit) {
  const certs = await testkit.createDtlsCertificates('flowlb-bench-');
  let server;
  let lb;
  try {
    const creds = await certs.issue('bench');
    server = await testkit.startDtlsServer(null, null, { addr: DTLS_SERVER.address, port: DTLS_SERVER.port, ...creds, echo: false });
    const mapper = new DtlsSniMapper({
      mappings: mappingsFromObject({ sniMappings: [{ fqdn: 'bench.example', ipv4: DTLS_SERVER.address, port: DTLS_SERVER.port }] }),
    });
    lb = new LoadBalancer({ vip: VIP, snatAddress: SNAT, snatPorts: SNAT_PORTS, mapper, datapath: 'userspace' });
    await lb.start();
    const [direct, through] = await handshakeRuns(
      server,
      [
        { connect: `${DTLS_SERVER.address}:${DTLS_SERVER.port}`, servername: 'bench.example' },
        { connect: `${VIP.address}:${VIP.port}`, servername: 'bench.example' },
      ],
      HANDSHAKE_MS,
    );
    const flows = lb.stats().flows.created;
    const row = (label, r) =>
      `  ${label.padEnd(22)} ${fmt(r.perSecond, 6)}/s   ${r.wireMs.toFixed(2).padStart(6)} ms  (${r.ok} ok, ${r.failed} failed)`;
    console.log(
      `openssl s_client full handshakes one after another, ${HANDSHAKE_MS} ms each way (a new process per handshake;
` +
        `wire time is the median from the first ClientHello to the end of the handshake, without process start-up):
` +
        `  ${''.padEnd(22)} ${'handshakes'.padStart(8)}   ${'wire'.padStart(6)}
` +
        `${row('direct to s_server', direct)}
` +
        `${row('through the balancer', through)}  ${flows} flows
` +
        `  ratio (through/direct)  ${(through.perSecond / direct.perSecond).toFixed(2).padStart(6)}    ` +
        `${(through.wireMs / direct.wireMs).toFixed(2).padStart(6)}`,
    );
  } finally {
    await lb?.stop();
    await server?.stop();
    await certs.remove();
  }
}

async function main() {
  const [mode, arg] = process.argv.slice(2);
  if (mode === '--echo') return echoMain(JSON.parse(arg));
  if (mode === '--replay') return replayMain(JSON.parse(arg));

  const { LoadBalancer } = await import('@flowlb/balancer');
  const sni = await import('../dist/index.js');
  const testkit = await import('@flowlb/testkit');
  const cpus = (await import('node:os')).cpus().length;
  console.log(`\nDTLS flows through the balancer: node ${process.version}, userspace datapath on loopback, ${cpus} CPUs`);
  await replayBench({ LoadBalancer, ...sni });
  await handshakeBench({ LoadBalancer, ...sni }, testkit);
}

main().catch((error) => {
  console.error(error);
  process.exitCode = 1;
});
