import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { BpfMap, STAT_NAMES, XdpForwarder, sumPerCpu } from '@flowlb/xdp-core';
import { encodeKey, encodeValue, forwardEntry, formatIPv4, parseIPv4, reverseEntry, type FlowPair } from '@flowlb/flow-table';
import { BenchPrograms, type ClientSpread } from '../bench-object.js';
import { DIST_DIR } from '../context.js';
import type { BenchTopology } from '../topology.js';
import { waitForOutput, type RunningSystem, type StartOptions, type SystemUnderTest } from './system.js';
import { attachBench } from './xdp-helpers.js';

export const FLOWLB_BIN = join(dirname(fileURLToPath(import.meta.resolve('@flowlb/cli/package.json'))), 'dist', 'bin.js');

/** SNAT ports per backend: the whole range above the well-known ports the backends' host does not use. */
const SNAT_PORTS = '10000-60999';
const SNAT_FIRST_PORT = 10_000;

function configYaml(t: BenchTopology, opts: StartOptions, datapath: 'xdp' | 'userspace', pinPath: string): string {
  return [
    `addr: ${t.vip.address}`,
    `port: ${t.vip.port}`,
    `interface: ${t.net.lb.front.ifname}`,
    `interfaces: [${t.net.lb.back.ifname}]`,
    `mode: ${datapath}`,
    'xdp_mode: native',
    'conn_ttl_sec: 3600',
    `snat_addr: ${t.net.lb.back.addr}`,
    `snat_ports: ${SNAT_PORTS}`,
    // The range overlaps the kernel's ephemeral ports; reserving them in the balancer's namespace is what a user
    // with this many flows per backend does.
    'reserve_snat_ports: true',
    `flow_table_size: ${Math.ceil(opts.maxFlows * 1.1)}`,
    'pending:',
    `  max_clients: ${Math.max(10_000, Math.min(opts.maxFlows, 200_000))}`,
    `pin_path: ${pinPath}`,
    '',
  ].join('\n');
}

/**
 * Writes the generator's clients straight into the pinned flow map, as the slow path would have: client i to backend
 * i mod n from its own SNAT port. For tables larger than the slow path fills in reasonable time.
 */
function prefillFlows(t: BenchTopology, flowsPin: string, clients: ClientSpread): void {
  const map = BpfMap.openPinned(flowsPin);
  try {
    const now = process.hrtime.bigint();
    const first = parseIPv4(clients.firstAddr);
    const n = t.backends.length;
    const BATCH = 8192;
    for (let start = 0; start < clients.flows; start += BATCH) {
      const keys: Buffer[] = [];
      const values: Buffer[] = [];
      for (let i = start; i < Math.min(clients.flows, start + BATCH); i++) {
        const target = t.backends[i % n];
        if (!target) throw new Error('no backend');
        const pair: FlowPair = {
          client: { address: formatIPv4(first + Math.floor(i / clients.portsPerAddr)), port: clients.firstPort + (i % clients.portsPerAddr) },
          vip: t.vip,
          snat: { address: t.net.lb.back.addr, port: SNAT_FIRST_PORT + Math.floor(i / n) },
          target,
        };
        for (const [k, v] of [reverseEntry(pair, now), forwardEntry(pair, now)]) {
          keys.push(encodeKey(k));
          values.push(encodeValue(v));
        }
      }
      const written = map.updateBatch(keys, values);
      if (written !== keys.length) throw new Error(`prefill wrote ${written} of ${keys.length} flow entries`);
    }
  } finally {
    map.close();
  }
}

function flowlbSystem(datapath: 'xdp' | 'userspace', nextHopCache = true): SystemUnderTest {
  return {
    name: datapath === 'userspace' ? 'flowlb-userspace' : nextHopCache ? 'flowlb-xdp' : 'flowlb-xdp-lookup',
    // About what its slow path takes in new clients per second here; faster only fills the VIP socket's queue.
    warmupPps: datapath === 'xdp' ? 5_000 : 2_500,
    runsIn: datapath === 'xdp' ? 'kernel' : 'process',
    socketPerFlow: datapath === 'userspace',
    async start(t: BenchTopology, opts: StartOptions): Promise<RunningSystem> {
      const dir = mkdtempSync(join(tmpdir(), 'flowlb-bench-'));
      const cleanups: (() => void | Promise<void>)[] = [() => rmSync(dir, { recursive: true, force: true })];
      const cleanup = async (): Promise<void> => {
        for (const c of cleanups.reverse()) await c();
      };
      try {
        const bpffs = await t.topo.mountBpffs();
        const pinPath = join(bpffs, 'bench');
        const config = join(dir, 'config.yaml');
        writeFileSync(config, configYaml(t, opts, datapath, pinPath));
        writeFileSync(join(dir, 'backends.json'), JSON.stringify(t.backends));
        if (datapath === 'userspace') {
          // Frames from the generator reach a veth's stack only through its XDP receive path.
          const progs = await BenchPrograms.load();
          cleanups.push(() => progs.close());
          const link = attachBench(progs, 'pass', t.lbNs, t.net.lb.front.ifname);
          cleanups.push(() => link.close());
        }
        const proc = t.topo.spawn(t.lbNs, 'taskset', [
          '-c',
          String(opts.cpu),
          process.execPath,
          FLOWLB_BIN,
          'run',
          '--config',
          config,
          '--mapper',
          join(DIST_DIR, 'hash-mapper.js'),
          '--detach-on-exit',
        ]);
        cleanups.push(async () => {
          await proc.stop(5000);
        });
        await waitForOutput(() => proc.output(), proc.exited, (out) => out.includes('"running; SIGINT'), 'flowlb run');
        // Through the pinned nexthop_ctl: the program runs in flowlb run's process.
        if (!nextHopCache) XdpForwarder.setPinnedNextHopCache(pinPath, false);
        let stats: BpfMap | undefined;
        if (datapath === 'xdp') {
          stats = BpfMap.openPinned(join(pinPath, 'stats'));
          cleanups.push(() => stats?.close());
        }
        const missKey = Buffer.alloc(4);
        missKey.writeUInt32LE(STAT_NAMES.indexOf('miss'));
        return {
          target: t.vip,
          slowPathDatagrams: stats ? () => sumPerCpu([stats?.lookup(missKey)]) : undefined,
          ...(datapath === 'xdp' ? { prefill: (clients: ClientSpread) => prefillFlows(t, join(pinPath, 'flows'), clients) } : {}),
          stop: cleanup,
        };
      } catch (err) {
        await cleanup();
        throw err;
      }
    },
  };
}

export const flowlbXdp = flowlbSystem('xdp');
/** The same program with its next-hop cache off: the forwarding rate the cache gains. */
export const flowlbXdpLookup = flowlbSystem('xdp', false);
export const flowlbUserspace = flowlbSystem('userspace');
