import { execFileSync } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { importXdpCore } from '@flowlb/balancer';
import type { Io } from '../cli/io.js';
import { readFlows } from '../maps/flows.js';
import { readXdpStats } from '../maps/stats.js';
import type { Cleanup } from './cleanup.js';
import type { Prefix } from './dtls.js';
import { createNamespaces, deleteNamespaces, deleteNamespacesSync, NET, removeHosts, setHosts } from './netns.js';
import { sh } from './proc.js';
import type { QuicTools } from './quic.js';
import { CLIENTS, mappingsYaml, ROUTES_SUMMARY } from './scenario.js';
import { flowsTable, runClients, runQuicClients, say, startBackends, startBalancer, stopBalancer } from './support.js';

/** DTLS and QUIC clients share the VIP's port; a backend's two servers cannot share one. */
const VIP_PORT = 4433;
const BACKEND_PORT = 4433;
const QUIC_BACKEND_PORT = 4434;

/** Why the namespace variant cannot run here, or undefined when it can. */
export async function netnsObstacle(): Promise<string | undefined> {
  if (process.platform !== 'linux') return `network namespaces need Linux, this is ${process.platform}`;
  if (process.getuid?.() !== 0) return 'network namespaces and XDP need root';
  for (const [tool, args] of [
    ['ip', ['-V']],
    ['ethtool', ['--version']],
    ['mount', ['--version']],
  ] as const) {
    try {
      await sh(tool, [...args]);
    } catch {
      return `${tool} is not installed`;
    }
  }
  try {
    await importXdpCore();
  } catch (error) {
    return (error as Error).message.split('\n')[0];
  }
  return undefined;
}

/** `quic` adds QUIC servers and clients beside the DTLS ones. */
export async function netnsDemo(io: Io, opts: { keep?: boolean }, cleanup: Cleanup, tmp: string, quic: QuicTools | undefined): Promise<boolean> {
  const core = await import('@flowlb/xdp-core');
  const prefix = `flowlb-demo-${process.pid}`;
  const created: string[] = [];
  cleanup.add(
    'network namespaces',
    () => (opts.keep ? undefined : deleteNamespaces({ all: created })),
    () => (opts.keep ? undefined : deleteNamespacesSync({ all: created })),
  );
  const ns = await createNamespaces(prefix, created);
  const inNs = (name: string): Prefix => ['ip', 'netns', 'exec', name];

  const bpffs = join(tmp, 'bpffs');
  mkdirSync(bpffs);
  await sh('mount', ['-t', 'bpf', 'bpf', bpffs]);
  cleanup.add('bpffs mount', () => sh('umount', [bpffs]), () => execFileSync('umount', ['-l', bpffs], { stdio: 'ignore', timeout: 5000 }));

  // XDP_TX and redirects out of a veth are delivered only when its peer has an XDP program; the flowlb program
  // with an empty flow table passes everything, so it serves.
  for (const name of [ns.client, ns.back]) {
    const pass = await core.XdpForwarder.load({ netns: name, flowsMaxEntries: 16 });
    cleanup.add(`XDP program in ${name}`, () => pass.close());
    pass.attach(['eth0'], { mode: 'native', sysctls: false });
  }

  say(io, 'topology (network namespaces joined by veth pairs):');
  say(io, `  client    ${NET.client.padEnd(36)} ${ns.client}`);
  say(io, `  balancer  ${`${NET.front} (front) | ${NET.back} (back)`.padEnd(36)} ${ns.lb}`);
  say(io, `  backends  ${`${NET.backends[0]} (a), ${NET.backends[1]} (b)`.padEnd(36)} ${ns.back}`);
  say(io);

  const targets = NET.backends.map((address) => ({ address, port: BACKEND_PORT }));
  const quicTargets = NET.backends.map((address) => ({ address, port: QUIC_BACKEND_PORT }));
  await startBackends(io, cleanup, tmp, inNs(ns.back), targets, quic && { tools: quic, targets: quicTargets });

  const config = join(tmp, 'config.yaml');
  writeFileSync(
    config,
    [
      `port: ${VIP_PORT}`,
      `addr: "${NET.front}"`,
      'interface: "front"',
      'interfaces: ["back"]',
      `snat_addr: "${NET.back}"`,
      'mode: xdp',
      'xdp_mode: native',
      'conn_ttl_sec: 60',
      `pin_path: "${bpffs}/demo"`,
      'debug: true',
      '',
    ].join('\n'),
  );
  const mappings = join(tmp, 'mappings.yaml');
  writeFileSync(mappings, mappingsYaml(targets, quic && quicTargets));
  say(io, `mappings: ${ROUTES_SUMMARY}`);
  if (quic) say(io, `  each name twice: protocols [dtls] to port ${BACKEND_PORT}, protocols [quic] with alpn [h3] to port ${QUIC_BACKEND_PORT}`);

  const lb = await startBalancer(inNs(ns.lb), config, mappings, tmp);
  cleanup.add('flowlb run', () => lb.child.stop());
  say(io, `flowlb run: XDP datapath on front and back (native mode), maps pinned at ${bpffs}/demo`);
  say(io);

  const vip = `${NET.front}:${VIP_PORT}`;
  let { ok } = await runClients(io, inNs(ns.client), vip, NET.client, 50_000);
  if (quic) {
    // Removed also with --keep: `ip netns del`, all that a kept namespace should need, leaves /etc/netns alone.
    cleanup.add('hosts file of the client namespace', () => removeHosts(ns.client), () => removeHosts(ns.client));
    setHosts(ns.client, Object.fromEntries(CLIENTS.map((c) => [c.name, NET.front])));
    ok = (await runQuicClients(io, quic, inNs(ns.client), { address: NET.front, port: VIP_PORT }, NET.client, tmp)).ok && ok;
  }

  const flowsMap = core.BpfMap.openPinned(`${bpffs}/demo/flows`);
  const statsMap = core.BpfMap.openPinned(`${bpffs}/demo/stats`);
  try {
    const rows = readFlows(flowsMap);
    say(io, `flows in the XDP map (what \`flowlb flows\` shows):`);
    io.out(rows.length > 0 ? flowsTable(rows) : '  none\n');
    say(io);
    const s = readXdpStats(statsMap);
    const fast = s.fwdHit + s.revHit;
    const slow = s.miss + s.fibNoNeigh;
    say(io, 'what took the fast path (XDP counters, what `flowlb stats` shows):');
    say(io, `  ${fast} datagrams forwarded in the kernel (${s.fwdHit} client to backend, ${s.revHit} backend to client)`);
    const firsts = quic ? "ClientHellos and QUIC Initials that opened a flow (and the dropped clients')" : "ClientHellos that opened a flow (and the dropped client's)";
    say(io, `  ${s.miss} reached the balancer's socket: the ${firsts}`);
    if (s.fibNoNeigh > 0) say(io, `  ${s.fibNoNeigh} went through the kernel once while the next hop's ARP entry was resolved`);
    say(io, `  ${fast + slow > 0 ? Math.round((100 * fast) / (fast + slow)) : 0} % of the ${quic ? 'DTLS and QUIC' : 'DTLS'} datagrams took the fast path`);
    say(io);
  } finally {
    flowsMap.close();
    statsMap.close();
  }
  const stopped = await stopBalancer(io, lb);
  return ok && stopped;
}
