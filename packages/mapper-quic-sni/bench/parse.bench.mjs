// ClientHellos per second on one core, against the built package (run `pnpm build` first: the inputs come from
// the test-support builders in dist-testing/). Each case is what a mapper holds when it can decide: one datagram
// for a ClientHello that fits in it, two for one with a post-quantum key share. Every hello read here costs what
// a new client costs: the keys of its DCID derived, header protection removed, each packet decrypted.
import { parseClientHelloBody } from '@flowlb/tls-hello';
import { QUIC_V1, QUIC_V2, QuicSniMapper, readInitialFlight, staticRoutes } from '../dist/index.js';
import { buildClientInitial, cryptoFrame, paddingFrames, PING_FRAME, protectInitialPacket, concat, tlsClientHello, V1_CLIENT_INITIAL, V2_CLIENT_INITIAL } from '../dist-testing/testing.js';

const small = tlsClientHello({ sni: 'small.example', alpn: ['h3'] });
const large = tlsClientHello({ sni: 'pq.example', alpn: ['h3'], keyShareLength: 1216 });
// Chrome sends its CRYPTO frames out of order, between PINGs and PADDING.
const shuffled = protectInitialPacket(
  concat(PING_FRAME, cryptoFrame(120, small.subarray(120)), paddingFrames(9), cryptoFrame(0, small.subarray(0, 120)), PING_FRAME, paddingFrames(900)),
);

const cases = [
  { label: 'RFC 9001 sample    (v1, 1 datagram)', datagrams: [V1_CLIENT_INITIAL] },
  { label: 'RFC 9369 sample    (v2, 1 datagram)', datagrams: [V2_CLIENT_INITIAL] },
  { label: 'small hello        (v1, 1 datagram)', datagrams: buildClientInitial(small, { version: QUIC_V1 }) },
  { label: 'shuffled frames    (v1, 1 datagram)', datagrams: [shuffled] },
  { label: 'post-quantum hello (v1, 2 datagrams)', datagrams: buildClientInitial(large, { version: QUIC_V1 }) },
  { label: 'post-quantum hello (v2, 2 datagrams)', datagrams: buildClientInitial(large, { version: QUIC_V2 }) },
];

const routes = staticRoutes({
  'example.com': { address: '10.0.0.1', port: 443 },
  'small.example': { address: '10.0.0.2', port: 443 },
  'pq.example': { address: '10.0.0.3', port: 443 },
});
const mapper = new QuicSniMapper({ routes });
const client = { address: '192.0.2.1', port: 50000 };

const DURATION_MS = Number(process.env.BENCH_MS ?? 400);
const ROUNDS = 5;

/**
 * Operations per second of CPU time (user + system) of this process, median of ROUNDS. CPU time rather than wall
 * time, so that other work on the machine does not count against the parser: the figure is what one core does.
 */
function measure(fn) {
  for (let i = 0; i < 5000; i++) fn();
  const rates = [];
  for (let r = 0; r < ROUNDS; r++) {
    let n = 0;
    const wallEnd = process.hrtime.bigint() + BigInt(DURATION_MS) * 1_000_000n;
    const cpu0 = process.cpuUsage();
    do {
      for (let i = 0; i < 200; i++) fn();
      n += 200;
    } while (process.hrtime.bigint() < wallEnd);
    const cpu = process.cpuUsage(cpu0);
    rates.push(n / ((cpu.user + cpu.system) / 1e6));
  }
  rates.sort((a, b) => a - b);
  return rates[Math.floor(ROUNDS / 2)];
}

/** Reads the datagrams from scratch and parses the ClientHello: the work of one new client. */
function readHello(datagrams) {
  const flight = readInitialFlight(datagrams);
  if (flight.kind !== 'client-hello') throw new Error(`expected a ClientHello, got ${JSON.stringify(flight)}`);
  const hello = parseClientHelloBody(flight.body, 'tls');
  if ('kind' in hello) throw new Error(`${hello.reason}: ${hello.detail}`);
  return hello;
}

/** As the balancer calls the mapper: one call per datagram, the same datagram objects each time, then the decision. */
function mapHello(datagrams) {
  let decision;
  for (let i = 1; i <= datagrams.length; i++) decision = mapper.findFlow(client, i === datagrams.length ? datagrams : datagrams.slice(0, i));
  return decision;
}

const fmt = (n) => Math.round(n).toLocaleString('en-US').padStart(10);

console.log(`node ${process.version}, one thread; ClientHellos per second of CPU time, median of ${ROUNDS} rounds of ${DURATION_MS} ms`);
console.log(`${'case'.padEnd(38)} ${'bytes'.padStart(6)} ${'read/s'.padStart(10)} ${'findFlow/s'.padStart(10)}  result`);
for (const c of cases) {
  const hello = readHello(c.datagrams);
  const decision = mapHello(c.datagrams);
  if (decision.action !== 'forward') throw new Error(`${c.label}: expected a forward, got ${JSON.stringify(decision)}`);
  const readRate = measure(() => readHello(c.datagrams));
  const mapRate = measure(() => mapHello(c.datagrams));
  const bytes = c.datagrams.reduce((n, d) => n + d.length, 0);
  const where = `${decision.flow.dstAddr.address}:${decision.flow.dstAddr.port}`;
  console.log(`${c.label.padEnd(38)} ${String(bytes).padStart(6)} ${fmt(readRate)} ${fmt(mapRate)}  ${hello.sni} -> ${where}`);
}
