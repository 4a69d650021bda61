// New flows per second through the slow path, and the control plane's memory with 100,000 flows in XDP mode.
//
//   node bench/flows.bench.mjs            userspace on loopback; then, as root, XDP in a network namespace
//   node bench/flows.bench.mjs --quick    smaller numbers, for a smoke run
//
// Runs against dist/ (build first). Every flow goes through LoadBalancer's own slow path: a datagram from a new
// client, the mapper, a SNAT port, the flow install, the first datagram sent on from SNAT:P.
import { execFileSync, fork } from 'node:child_process';
import dgram from 'node:dgram';
import { fileURLToPath } from 'node:url';
import { hashMapper } from '@flowlb/mapper-api';
import { LoadBalancer } from '../dist/index.js';

const script = fileURLToPath(import.meta.url);
const quick = process.argv.includes('--quick');
const role = process.argv[2];

// Rendezvous hashing of the client endpoint over the targets: cheap, and spreads flows evenly.
const trivialMapper = (targets) => hashMapper(targets);

const mib = (bytes) => `${(bytes / 1048576).toFixed(1)} MiB`;
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

function bindSocket(address, port = 0) {
  return new Promise((resolve, reject) => {
    const s = dgram.createSocket('udp4');
    s.once('error', reject);
    s.bind({ address, port }, () => {
      s.removeListener('error', reject);
      s.on('error', () => {});
      resolve(s);
    });
  });
}

// --- userspace on loopback: real clients in a second process, each one new flow -------------------------------

async function peers() {
  const { vip, targets, flows, window } = JSON.parse(process.argv[3]);
  const backends = await Promise.all(targets.map((t) => bindSocket(t.address, t.port)));
  for (const b of backends) b.on('message', (msg, rinfo) => b.send(msg, rinfo.port, rinfo.address));
  process.send({ ready: true });
  await new Promise((resolve) => process.once('message', resolve));

  let next = 0;
  let ok = 0;
  let lost = 0;
  const started = performance.now();
  const one = async (i) => {
    // Every client a distinct ip:port, so every one of them is a new flow.
    const c = await bindSocket(`127.88.1.${1 + (i % 200)}`, 40000 + Math.floor(i / 200));
    const replied = new Promise((resolve) => {
      const timer = setTimeout(() => resolve(false), 3000);
      c.once('message', () => {
        clearTimeout(timer);
        resolve(true);
      });
    });
    c.send('hello', vip.port, vip.address);
    if (await replied) ok++;
    else lost++;
    c.close();
  };
  const worker = async () => {
    while (next < flows) await one(next++);
  };
  await Promise.all(Array.from({ length: window }, worker));
  process.send({ ok, lost, ms: performance.now() - started });
  for (const b of backends) b.close();
}

async function userspace() {
  const flows = quick ? 2000 : 8000;
  const vip = { address: '127.88.0.1', port: 5000 };
  const targets = [
    { address: '127.88.0.2', port: 7000 },
    { address: '127.88.0.3', port: 7000 },
  ];
  const lb = new LoadBalancer({
    vip,
    mapper: trivialMapper(targets),
    datapath: 'userspace',
    receiveBufferBytes: 8 << 20,
    limits: { maxFlows: 50_000 },
  });
  await lb.start();
  const child = fork(script, ['peers', JSON.stringify({ vip, targets, flows, window: 128 })]);
  await new Promise((resolve) => child.once('message', resolve));
  child.send('go');
  const result = await new Promise((resolve) => child.once('message', resolve));
  const s = lb.stats();
  await lb.stop();
  child.kill();
  return {
    datapath: 'userspace (loopback, real client sockets, 128 clients in flight)',
    flows: s.flows.created,
    repliesLost: result.lost,
    flowsPerSec: Math.round(s.flows.created / (result.ms / 1000)),
    p50ClassifyMs: percentile(s.classification, 0.5),
  };
}

function percentile(h, q) {
  const want = h.count * q;
  for (const b of h.buckets) if (b.count >= want) return b.le;
  return '+Inf';
}

// --- XDP in a network namespace: synthetic clients through LoadBalancer.receive -----------------------------------

async function xdpInner() {
  const flows = quick ? 20_000 : 100_000;
  const targets = Array.from({ length: 10 }, (_, i) => ({ address: `10.98.0.${10 + i}`, port: 7000 }));
  const gc = globalThis.gc ?? (() => {});
  gc();
  const base = process.memoryUsage();
  const lb = new LoadBalancer({
    vip: { address: '10.99.0.1', port: 5000 },
    mapper: trivialMapper(targets),
    datapath: 'xdp',
    interfaces: ['a0'],
    xdp: { mode: 'native' },
    limits: { maxFlows: 150_000, maxPendingClients: 200_000 },
    connTtlSec: 3600,
  });
  await lb.start();
  gc();
  const started = process.memoryUsage();
  const payload = Buffer.from('first datagram of a new flow');
  const t0 = performance.now();
  const batch = 500;
  for (let i = 0; i < flows; i += batch) {
    for (let j = i; j < Math.min(flows, i + batch); j++) {
      lb.receive(payload, { address: `10.97.${(j >> 8) & 255}.${j & 255}`, port: 1024 + (j >> 16) });
    }
    // Keep a bounded number of installs (each binds a short-lived socket) in progress.
    while (lb.stats().pending.clients > 2000) await new Promise((r) => setImmediate(r));
  }
  for (let i = 0; i < 2000 && lb.stats().flows.created + lb.stats().flows.refused < flows; i++) await sleep(5);
  const ms = performance.now() - t0;
  const s = lb.stats();
  gc();
  await sleep(200);
  gc();
  const after = process.memoryUsage();
  const tableEntries = lb.table.count();
  const poolBytes = lb.pools.footprint;
  await lb.stop();
  process.send({
    datapath: 'xdp (network namespace, synthetic clients via receive())',
    flows: s.flows.created,
    refused: s.flows.refused,
    flowsPerSec: Math.round(s.flows.created / (ms / 1000)),
    tableEntries,
    snatPortsInUse: s.snat.portsInUse,
    snatPools: s.snat.pools,
    snatPoolBytes: poolBytes,
    forwardedNew: s.datagrams.forwardedNew,
    sendFailed: s.drops['send-failed'],
    memory: {
      rssBeforeStart: mib(base.rss),
      rssStarted: mib(started.rss),
      rssWithFlows: mib(after.rss),
      heapUsedStarted: mib(started.heapUsed),
      heapUsedWithFlows: mib(after.heapUsed),
      externalWithFlows: mib(after.external),
      heapBytesPerFlow: Math.round((after.heapUsed - started.heapUsed) / s.flows.created),
    },
  });
}

async function xdp() {
  if (process.getuid?.() !== 0) return { skipped: 'XDP part needs root' };
  const ns = `lbbench-${process.pid}`;
  const ip = (...args) => execFileSync('ip', args, { stdio: 'pipe' });
  const inNs = (...args) => execFileSync('ip', ['netns', 'exec', ns, ...args], { stdio: 'pipe' });
  try {
    ip('netns', 'add', ns);
    inNs('ip', 'link', 'set', 'lo', 'up');
    inNs('ip', 'link', 'add', 'a0', 'type', 'veth', 'peer', 'name', 'a1');
    inNs('ip', 'addr', 'add', '10.99.0.1/16', 'dev', 'a0');
    inNs('ip', 'link', 'set', 'a0', 'up');
    inNs('ip', 'link', 'set', 'a1', 'up');
    // Targets on a0 with permanent neighbour entries: sends to them leave at once, with no ARP to wait for, and
    // the peer end drops them.
    inNs('ip', 'addr', 'add', '10.98.0.1/16', 'dev', 'a0');
    for (let i = 0; i < 10; i++) {
      inNs('ip', 'neigh', 'replace', `10.98.0.${10 + i}`, 'lladdr', '02:00:00:00:00:01', 'dev', 'a0', 'nud', 'permanent');
    }
    const child = fork(script, ['xdp-inner', ...(quick ? ['--quick'] : [])], {
      execPath: 'ip',
      execArgv: ['netns', 'exec', ns, process.execPath, '--expose-gc'],
      stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
    });
    const result = await new Promise((resolve, reject) => {
      child.once('message', resolve);
      child.once('exit', (code) => reject(new Error(`XDP bench exited with ${code}`)));
    });
    child.kill();
    return result;
  } finally {
    try {
      ip('netns', 'del', ns);
    } catch {
      // already gone
    }
  }
}

if (role === 'peers') {
  await peers();
} else if (role === 'xdp-inner') {
  await xdpInner();
  process.exit(0);
} else {
  const results = [];
  results.push(await userspace());
  results.push(await xdp());
  for (const r of results) {
    console.log(`\n${r.datapath ?? 'xdp'}`);
    for (const [k, v] of Object.entries(r)) {
      if (k === 'datapath') continue;
      if (typeof v === 'object') for (const [k2, v2] of Object.entries(v)) console.log(`  ${k2.padEnd(20)} ${v2}`);
      else console.log(`  ${k.padEnd(20)} ${v}`);
    }
  }
  console.log(`\n${JSON.stringify(results)}`);
}
