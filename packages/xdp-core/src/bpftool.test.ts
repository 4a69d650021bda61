import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { encodeKey, encodeValue, forwardEntry, reverseEntry, type FlowPair } from '@flowlb/flow-table';
import { buildUdpFrame, describePrivileged, findExecutable, isCi, parseFrame, verifyChecksums } from '@flowlb/testkit';
import { FLOWLB_BPF_OBJECT, STAT_NAMES } from './index.js';
import { LINKS, NEIGHBOURS, createFibFixture, type FibFixture } from './testing/fib-fixture.js';

const hexBytes = (b: Uint8Array): string[] => [...b].map((x) => x.toString(16).padStart(2, '0'));

// Operators debug with the standard tools: the object must load, fill and run with bpftool alone, no flowlb code.
describePrivileged('the object with bpftool alone', () => {
  const bpftool = findExecutable('bpftool');
  if (!bpftool && !isCi()) return it.skip('bpftool is not installed');

  let fx: FibFixture;
  let dir: string;
  const bpf = (...args: string[]): string => execFileSync(bpftool ?? 'bpftool', args, { encoding: 'utf8', timeout: 20_000 });

  beforeAll(async () => {
    if (!bpftool) throw new Error('bpftool is missing: scripts/quickstart.sh installs it');
    fx = await createFibFixture('bpftool');
    dir = mkdtempSync(join(tmpdir(), 'flowlb-bpftool-'));
    execFileSync('mount', ['-t', 'bpf', 'bpf', dir]);
  });

  afterAll(async () => {
    if (dir) {
      execFileSync('umount', [dir]);
      rmSync(dir, { recursive: true, force: true });
    }
    await fx?.destroy();
  });

  it('loadall, map update and prog run forward a datagram', () => {
    bpf('prog', 'loadall', FLOWLB_BPF_OBJECT, join(dir, 'progs'), 'pinmaps', join(dir, 'maps'));
    const pair: FlowPair = {
      client: { address: NEIGHBOURS.client.addr, port: 40000 },
      vip: { address: LINKS.lan.addr, port: 5000 },
      snat: { address: LINKS.srv.addr, port: 20000 },
      target: { address: NEIGHBOURS.srvBackend.addr, port: 7000 },
    };
    for (const [key, value] of [forwardEntry(pair), reverseEntry(pair)]) {
      bpf('map', 'update', 'pinned', join(dir, 'maps', 'flows'), 'key', 'hex', ...hexBytes(encodeKey(key)), 'value', 'hex', ...hexBytes(encodeValue(value)));
    }

    // The backend's link as a tx port, as attach() makes it: the devmap resolves the ifindex in the writer's netns.
    const port = Buffer.alloc(8);
    port.writeUInt32LE(fx.ifindex.srv, 0);
    const portKey = hexBytes(port.subarray(0, 4));
    execFileSync('ip', ['netns', 'exec', fx.ns, bpftool!, 'map', 'update', 'pinned', join(dir, 'maps', 'tx_ports'), 'key', 'hex', ...portKey, 'value', 'hex', ...hexBytes(port)], {
      timeout: 20_000,
    });

    const frame = buildUdpFrame({
      eth: { dst: LINKS.lan.mac, src: NEIGHBOURS.client.mac },
      ip: { src: pair.client.address, dst: pair.vip.address, ttl: 64 },
      udp: { srcPort: pair.client.port, dstPort: pair.vip.port },
      payload: 'through bpftool',
    });
    const ctx = Buffer.alloc(24); // struct xdp_md: data, data_end, data_meta, ingress_ifindex, rx_queue_index, egress_ifindex
    ctx.writeUInt32LE(frame.length, 4);
    ctx.writeUInt32LE(fx.ifindex.lan, 12);
    const files = { in: `${dir}-in`, out: `${dir}-out`, ctx: `${dir}-ctx` };
    writeFileSync(files.in, frame);
    writeFileSync(files.ctx, ctx);
    try {
      const out = execFileSync(
        'ip',
        ['netns', 'exec', fx.ns, bpftool!, 'prog', 'run', 'pinned', join(dir, 'progs', 'flowlb_xdp'), 'data_in', files.in, 'data_out', files.out, 'ctx_in', files.ctx],
        { encoding: 'utf8', timeout: 20_000 },
      );
      expect(out).toMatch(/Return value: 4\b/); // XDP_REDIRECT to the backend link
      const sent = parseFrame(readFileSync(files.out));
      expect(sent.ipv4?.src).toBe(pair.snat.address);
      expect(sent.ipv4?.dst).toBe(pair.target.address);
      expect(sent.udp?.srcPort).toBe(pair.snat.port);
      expect(sent.udp?.dstPort).toBe(pair.target.port);
      expect(sent.eth.dst).toBe(NEIGHBOURS.srvBackend.mac);
      expect(verifyChecksums(readFileSync(files.out))).toEqual({ ip: true, udp: true });
    } finally {
      for (const f of Object.values(files)) rmSync(f, { force: true });
    }

    // With BTF, bpftool prints each entry decoded under `formatted`.
    const dump = JSON.parse(bpf('-j', 'map', 'dump', 'pinned', join(dir, 'maps', 'stats'))) as Array<{
      formatted: { key: number; values: Array<{ cpu: number; value: number }> };
    }>;
    const total = (name: (typeof STAT_NAMES)[number]): number =>
      dump.find((e) => e.formatted.key === STAT_NAMES.indexOf(name))!.formatted.values.reduce((n, v) => n + v.value, 0);
    expect(total('fwdHit')).toBe(1);
    expect(STAT_NAMES.filter((n) => n !== 'fwdHit').map(total)).toEqual(STAT_NAMES.slice(1).map(() => 0));
  });
});
