// Forwards real UDP through the flowlb XDP program between network namespaces and tells what happened:
// two clients, a balancer with a client-side and a backend-side interface, two backends.
import { XdpForwarder, withNetns, xdpAttachment } from '../packages/xdp-core/dist/index.js';
import { runUdpClient, startUdpEcho, twoArmedTopology } from '../packages/testkit/dist/index.js';

const VIP_PORT = 5000;
const BACKEND_PORT = 7000;
const say = (s = '') => console.log(s);

if (process.getuid?.() !== 0) {
  console.error('the demo builds network namespaces and attaches XDP: run it as root');
  process.exit(1);
}

const net = await twoArmedTopology({ clients: 2, backends: 2, xdpPassOnPeers: 'native' });
let fwd;
const echoes = [];
try {
  const vip = { address: net.lb.front.addr, port: VIP_PORT };
  say('topology (each box is a network namespace):');
  for (const c of net.clients) say(`  client   ${c.addr.padEnd(12)} ${c.ns}`);
  say(`  balancer ${net.lb.front.addr} (${net.lb.front.ifname}) | ${net.lb.back.addr} (${net.lb.back.ifname})  ${net.lb.ns}`);
  for (const b of net.backends) say(`  backend  ${b.addr.padEnd(12)} ${b.ns}`);
  say();

  fwd = await XdpForwarder.load({ netns: net.lb.ns, flowsMaxEntries: 1024 });
  fwd.attach([net.lb.front.ifname, net.lb.back.ifname], { mode: 'native' });
  withNetns(net.lb.ns, () => {
    for (const a of fwd.attachments) {
      const q = xdpAttachment(a.ifindex);
      say(`attached ${fwd.program.name} (prog id ${q.progId}) to ${a.iface} in ${q.mode} mode`);
    }
  });

  for (const b of net.backends) {
    echoes.push(await startUdpEcho(net.topology, b.ns, { addr: b.addr, port: BACKEND_PORT, prefix: `echo from ${b.addr}: ` }));
  }

  const pairs = net.clients.map((c, i) => ({
    client: { address: c.addr, port: 40000 + i },
    vip,
    snat: { address: net.lb.back.addr, port: 20000 + i },
    target: { address: net.backends[i].addr, port: BACKEND_PORT },
  }));
  for (const p of pairs) {
    fwd.table.installPair(p, process.hrtime.bigint());
    say(
      `flow: ${p.client.address}:${p.client.port} -> VIP ${vip.address}:${vip.port}  =>  ` +
        `${p.snat.address}:${p.snat.port} -> backend ${p.target.address}:${p.target.port}`,
    );
  }
  say();

  const results = await Promise.all(
    net.clients.map((c, i) =>
      runUdpClient(net.topology, c.ns, {
        target: vip,
        bind: `${c.addr}:${pairs[i].client.port}`,
        count: 10,
        lockstep: true,
        timeoutMs: 2000,
        payload: `hello {seq} from ${c.addr}`,
      }),
    ),
  );
  results.forEach((r, i) => {
    const first = r.replies[0];
    say(`client ${net.clients[i].addr}: sent ${r.sent}, got ${r.received} replies back`);
    if (first) say(`  first reply from ${first.from}: "${first.data}"`);
  });
  echoes.forEach((e, i) => {
    const lines = e.lines();
    say(`backend ${net.backends[i].addr}: received ${lines.length} datagrams, from ${[...new Set(lines.map((l) => l.from))].join(', ')}`);
  });
  say();

  const s = fwd.stats();
  say('XDP counters:');
  for (const [k, v] of Object.entries(s)) if (v) say(`  ${k.padEnd(12)} ${v}`);
  const fast = s.fwdHit + s.revHit;
  const total = results.reduce((n, r) => n + r.sent + r.received, 0);
  say();
  say(`${fast} of ${total} datagrams were forwarded inside the kernel by XDP.`);
  if (s.fibNoNeigh) {
    say(`${s.fibNoNeigh} went through the kernel's own forwarding, rewritten, while it resolved the next hop's MAC`);
    say('address (fibNoNeigh); the flow took the fast path from then on.');
  }
  const ok = results.every((r) => r.lostSeqs.length === 0);
  process.exitCode = ok ? 0 : 1;
} finally {
  for (const e of echoes) await e.stop().catch(() => {});
  fwd?.close();
  await net.destroy();
  say('cleaned up: detached XDP and removed the namespaces');
}
