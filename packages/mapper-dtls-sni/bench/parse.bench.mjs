// ClientHellos per second on one core, for each real capture, against the built package (run `pnpm build` first).
// Each case parses the datagrams a mapper holds at the moment it can decide: the first datagram for a whole hello,
// the first two for a hello split in two.
import { dtlsCapture } from '@flowlb/testkit';
import { DtlsSniMapper, mappingsFromObject, parseClientHello } from '../dist/index.js';

const cases = [];
function add(label, name, pick) {
  cases.push({ label, packets: pick(dtlsCapture(name)) });
}
add('ossl_foo     (OpenSSL, 1 datagram)', 'ossl_foo', (p) => p.slice(0, 1));
add('gnutls_bar   (GnuTLS, 1 datagram)', 'gnutls_bar', (p) => p.slice(0, 1));
add('ossl_mtu     (2 fragments, 2 datagrams)', 'ossl_mtu', (p) => p.slice(0, 2));
add('ossl_cookie  (first hello)', 'ossl_cookie', (p) => p.slice(0, 1));
add('ossl_cookie  (retry with cookie alone)', 'ossl_cookie', (p) => p.slice(1, 2));
add('ossl_cookie  (both hellos)', 'ossl_cookie', (p) => p.slice(0, 2));
add('gnutls_mtu   (2 fragments, GnuTLS)', 'gnutls_mtu', (p) => p.slice(0, 2));

const table = mappingsFromObject({
  sniMappings: [
    { fqdn: 'foo.example', ipv4: '10.0.0.1', port: 4433 },
    { fqdn: 'bar.example', ipv4: '10.0.0.2', port: 4433 },
    { fqdn: '*.example.org', targets: [{ ipv4: '10.0.1.1', port: 4433 }, { ipv4: '10.0.1.2', port: 4433 }] },
    { fqdn: 'cookie.example', ipv4: '10.0.0.3', port: 4433 },
  ],
  default: { ipv4: '10.0.9.9', port: 4433 },
});
const mapper = new DtlsSniMapper({ mappings: table });
const client = { address: '192.0.2.1', port: 50000 };

const DURATION_MS = Number(process.env.BENCH_MS ?? 400);
const ROUNDS = 5;

/**
 * Operations per second of CPU time (user + system) of this process, median of ROUNDS. CPU time rather than wall
 * time, so that other work on the machine does not count against the parser: the figure is what one core does.
 */
function measure(fn) {
  for (let i = 0; i < 20000; i++) fn();
  const rates = [];
  for (let r = 0; r < ROUNDS; r++) {
    let n = 0;
    const wallEnd = process.hrtime.bigint() + BigInt(DURATION_MS) * 1_000_000n;
    const cpu0 = process.cpuUsage();
    do {
      for (let i = 0; i < 1000; i++) fn();
      n += 1000;
    } while (process.hrtime.bigint() < wallEnd);
    const cpu = process.cpuUsage(cpu0);
    rates.push(n / ((cpu.user + cpu.system) / 1e6));
  }
  rates.sort((a, b) => a - b);
  return rates[Math.floor(ROUNDS / 2)];
}

const fmt = (n) => Math.round(n).toLocaleString('en-US').padStart(12);

console.log(`node ${process.version}, one thread; per second of CPU time, median of ${ROUNDS} rounds of ${DURATION_MS} ms`);
console.log(`${'capture'.padEnd(44)} ${'parse/s'.padStart(12)} ${'findFlow/s'.padStart(12)}  result`);
for (const c of cases) {
  const result = parseClientHello(c.packets);
  if (result.kind !== 'hello') throw new Error(`${c.label}: expected a hello, got ${JSON.stringify(result)}`);
  const parseRate = measure(() => parseClientHello(c.packets));
  const mapRate = measure(() => mapper.findFlow(client, c.packets));
  const decision = mapper.findFlow(client, c.packets);
  const where = decision.action === 'forward' ? `${decision.flow.dstAddr.address}:${decision.flow.dstAddr.port}` : decision.action;
  console.log(`${c.label.padEnd(44)} ${fmt(parseRate)} ${fmt(mapRate)}  ${result.sni ?? '(no name)'} -> ${where}`);
}
