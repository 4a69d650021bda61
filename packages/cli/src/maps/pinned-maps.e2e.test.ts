import { execFileSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { forwardEntry, reverseEntry, type FlowPair } from '@flowlb/flow-table';
import { buildArpFrame, buildUdpFrame, describePrivileged } from '@flowlb/testkit';
import { XdpForwarder } from '@flowlb/xdp-core';
import { runCli } from '../test-support/cli.js';

const vip = { address: '192.0.2.1', port: 4433 };
const snat = '198.51.100.1';

const pairs: FlowPair[] = [
  { client: { address: '203.0.113.5', port: 40001 }, vip, snat: { address: snat, port: 10001 }, target: { address: '10.0.0.10', port: 7000 } },
  { client: { address: '203.0.113.6', port: 40002 }, vip, snat: { address: snat, port: 10002 }, target: { address: '10.0.0.11', port: 7000 } },
];
const half: FlowPair = {
  client: { address: '203.0.113.7', port: 40003 },
  vip,
  snat: { address: snat, port: 10003 },
  target: { address: '10.0.0.12', port: 7001 },
};

// `flowlb flows` and `flowlb stats` read the maps that an XdpForwarder loaded here has pinned on a bpffs of its own.
describePrivileged('flows and stats from pinned maps', () => {
  let mnt: string;
  let pinPath: string;
  let fwd: XdpForwarder;
  let runDir: string;
  let server: Server | undefined;
  const sec = 1_000_000_000n;

  beforeAll(async () => {
    mnt = mkdtempSync(join(tmpdir(), 'flowlb-cli-bpffs-'));
    execFileSync('mount', ['-t', 'bpf', 'bpf', mnt]);
    pinPath = join(mnt, '192_0_2_1-4433');
    runDir = mkdtempSync(join(tmpdir(), 'flowlb-cli-run-'));
    fwd = await XdpForwarder.load({ pinDir: pinPath, flowsMaxEntries: 64 });
    const now = process.hrtime.bigint();
    // First flow: the client spoke 5 s ago, the backend 2 s ago. Second: 90 s of silence each way.
    for (const [key, value] of [forwardEntry(pairs[0]!, now - 5n * sec), reverseEntry(pairs[0]!, now - 2n * sec)]) {
      fwd.table.set(key, value);
    }
    for (const [key, value] of [forwardEntry(pairs[1]!, now - 90n * sec), reverseEntry(pairs[1]!, now - 95n * sec)]) {
      fwd.table.set(key, value);
    }
    const [k, v] = forwardEntry(half, now - 30n * sec);
    fwd.table.set(k, v);

    // Counters: three datagrams to the VIP without a flow (miss) and one ARP frame (not IPv4/UDP).
    const miss = buildUdpFrame({ ip: { src: '203.0.113.9', dst: vip.address }, udp: { srcPort: 5555, dstPort: vip.port }, payload: 'x' });
    for (let i = 0; i < 3; i++) fwd.program.testRun({ data: miss });
    fwd.program.testRun({ data: buildArpFrame({ senderMac: '02:00:00:00:00:01', senderIp: '203.0.113.9', targetIp: vip.address }) });
  });

  afterAll(async () => {
    fwd?.close();
    await new Promise<void>((r) => (server ? server.close(() => r()) : r()));
    try {
      execFileSync('umount', [mnt]);
    } finally {
      rmSync(mnt, { recursive: true, force: true });
      rmSync(runDir, { recursive: true, force: true });
    }
  });

  it('flows --json lists each flow with its idle time, most recent first', async () => {
    const r = await runCli(['flows', '--pin-path', pinPath, '--json']);
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    const out = JSON.parse(r.stdout) as { pinPath: string; count: number; flows: Array<Record<string, unknown>> };
    expect(out.pinPath).toBe(pinPath);
    expect(out.count).toBe(3);
    expect(out.flows.map((f) => ({ ...f, idleMs: undefined, forwardIdleMs: undefined, reverseIdleMs: undefined }))).toEqual([
      { ...pairs[0], kind: 'pair', idleMs: undefined, forwardIdleMs: undefined, reverseIdleMs: undefined },
      { ...half, kind: 'forward-only', idleMs: undefined, forwardIdleMs: undefined, reverseIdleMs: undefined },
      { ...pairs[1], kind: 'pair', idleMs: undefined, forwardIdleMs: undefined, reverseIdleMs: undefined },
    ]);
    const [a, b, c] = out.flows as Array<{ idleMs: number; forwardIdleMs: number; reverseIdleMs: number | null }>;
    // Idle since the more recent direction; the command ran a little after the entries were written.
    expect(a!.idleMs).toBeGreaterThanOrEqual(2000);
    expect(a!.idleMs).toBeLessThan(2000 + 20_000);
    expect(a!.forwardIdleMs - a!.reverseIdleMs!).toBeCloseTo(3000, -1);
    expect(b!.reverseIdleMs).toBeNull();
    expect(b!.idleMs).toBeGreaterThanOrEqual(30_000);
    expect(c!.idleMs).toBeGreaterThanOrEqual(90_000);
  });

  it('flows prints a table', async () => {
    const r = await runCli(['flows', '--pin-path', pinPath]);
    expect(r.code).toBe(0);
    const lines = r.stdout.trimEnd().split('\n');
    expect(lines[0]).toMatch(/^CLIENT\s+TARGET\s+SNAT\s+IDLE\s+NOTE$/);
    expect(lines[1]).toMatch(/^203\.0\.113\.5:40001\s+10\.0\.0\.10:7000\s+198\.51\.100\.1:10001\s+\d+\.\ds$/);
    expect(lines[2]).toMatch(/^203\.0\.113\.7:40003\s+10\.0\.0\.12:7001\s+198\.51\.100\.1:10003\s+\d+\.\ds\s+reverse entry missing$/);
    expect(lines[3]).toMatch(/^203\.0\.113\.6:40002\s+10\.0\.0\.11:7000\s+198\.51\.100\.1:10002\s+1m3\ds$/);
    expect(lines[4]).toBe(`3 flows on VIP 192.0.2.1:4433 (pinned at ${pinPath})`);
  });

  it('finds the only instance under the pin root, or asks which one', async () => {
    const env = { FLOWLB_PIN_ROOT: mnt };
    const one = await runCli(['flows', '--json'], { env });
    expect(one.code).toBe(0);
    expect((JSON.parse(one.stdout) as { pinPath: string }).pinPath).toBe(pinPath);
    const byName = await runCli(['flows', '--json', '--instance', '192.0.2.1:4433'], { env });
    expect((JSON.parse(byName.stdout) as { count: number }).count).toBe(3);

    const missing = await runCli(['flows', '--instance', '192.0.2.9:1'], { env });
    expect(missing.code).toBe(1);
    expect(missing.stderr).toBe(
      `flowlb: no flows map is pinned at ${mnt}/192_0_2_9-1/flows: is \`flowlb run\` running with pin_path ${mnt}/192_0_2_9-1? ` +
        '(it mounts bpffs where there is none, in its own mount namespace: inside `ip netns exec` run this from the same one, or pass --pin-path)\n',
    );

    const other = await XdpForwarder.load({ pinDir: join(mnt, 'lb2'), flowsMaxEntries: 8 });
    try {
      const two = await runCli(['flows'], { env });
      expect(two.code).toBe(2);
      expect(two.stderr).toBe(`flowlb: 2 instances are pinned under ${mnt} (192_0_2_1-4433, lb2); choose one with --instance\n`);
    } finally {
      other.close();
      rmSync(join(mnt, 'lb2'), { recursive: true, force: true });
    }
    const none = await runCli(['flows'], { env: { FLOWLB_PIN_ROOT: join(runDir, 'nothing'), FLOWLB_RUN_DIR: join(runDir, 'nothing') } });
    expect(none.code).toBe(1);
    expect(none.stderr).toMatch(/^flowlb: no flowlb instance has maps pinned under /);
  });

  it('stats sums the per-CPU counters', async () => {
    const r = await runCli(['stats', '--pin-path', pinPath, '--json'], { env: { FLOWLB_RUN_DIR: runDir } });
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    const s = JSON.parse(r.stdout) as { xdp: Record<string, number>; balancer: unknown; balancerError: string };
    expect(s.xdp).toEqual({
      fwdHit: 0,
      revHit: 0,
      miss: 3,
      fragment: 0,
      ttl: 0,
      fibNoNeigh: 0,
      fibUnreachable: 0,
      fibNotFwded: 0,
      fibFragNeeded: 0,
      fibOther: 0,
      malformed: 0,
      notIpv4Udp: 1,
      rateLimited: 0,
      helloVerify: 0,
      fragmentFwd: 0,
      egressNoXdp: 0,
    });
    expect(s.balancer).toBeNull();
    expect(s.balancerError).toBe('no running `flowlb run` found for this pin path');

    const text = await runCli(['stats', '--pin-path', pinPath], { env: { FLOWLB_RUN_DIR: runDir } });
    expect(text.stdout).toMatch(/^ {2}miss\s+3\s+no flow yet: passed to the balancer \(slow path\)$/m);
    expect(text.stdout).toMatch(/^ {2}fast path: 0 of 4 packets \(0\.0 %\)$/m);
    expect(text.stdout).toMatch(/^balancer counters: unavailable: no running `flowlb run` found for this pin path$/m);
  });

  it("stats adds the balancer's counters from the metrics server a running instance announced", async () => {
    const balancer = {
      datapath: 'xdp',
      flows: { active: 2, created: 5, expired: 3, unconfirmedExpired: 2, evictedUnderPressure: 1, pressureEpisodes: 4, refused: 0, adopted: 0 },
      pending: { clients: 0, datagrams: 0, bytes: 0, held: 0 },
      datagrams: { slowPathIn: 9, forwardedNew: 7, forwardedLate: 0, userspaceForward: 0, userspaceReverse: 0, dropped: 2 },
      drops: { 'mapper-drop': 2 },
      classification: { calls: 6, inFlight: 0, errors: 0, timeouts: 0, replies: 3, count: 6, sumMs: 1, buckets: [] },
      snat: { portsInUse: 2, pools: 2, quarantined: 1, quarantinedTotal: 3, range: { min: 10000, max: 29999 } },
    };
    server = createServer((req, res) => {
      res.writeHead(req.url === '/stats' ? 200 : 404, { 'content-type': 'application/json' });
      res.end(JSON.stringify(balancer));
    });
    await new Promise<void>((r) => server!.listen(0, '127.0.0.1', () => r()));
    const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
    mkdirSync(runDir, { recursive: true });
    writeFileSync(
      join(runDir, '192_0_2_1-4433.json'),
      JSON.stringify({ pid: process.pid, instance: '192_0_2_1-4433', vip: '192.0.2.1:4433', pinPath, metricsUrl: url, datapath: 'xdp', startedAt: '' }),
    );
    const r = await runCli(['stats', '--pin-path', pinPath, '--json'], { env: { FLOWLB_RUN_DIR: runDir } });
    const s = JSON.parse(r.stdout) as { balancer: unknown; balancerSource: string };
    expect(s.balancer).toEqual(balancer);
    expect(s.balancerSource).toBe(`${url}/stats`);
    const text = await runCli(['stats', '--pin-path', pinPath], { env: { FLOWLB_RUN_DIR: runDir } });
    expect(text.stdout).toContain(`balancer (${url}/stats), xdp datapath\n`);
    expect(text.stdout).toMatch(/^ {2}flows active\s+2$/m);
    expect(text.stdout).toMatch(/^ {4}of which the client never spoke again\s+2$/m);
    expect(text.stdout).toMatch(/^ {6}removed early under pressure\s+1$/m);
    expect(text.stdout).toMatch(/^ {4}times SNAT ports or table entries ran short\s+4$/m);
    expect(text.stdout).toMatch(/^ {2}clients answered by the mapper \(stateless challenge\)\s+3$/m);
    expect(text.stdout).toMatch(/^ {2} {2}dropped: mapper-drop\s+2$/m);
    expect(text.stdout).toMatch(/^ {2}SNAT ports set aside \(held by others\)\s+1 now, 3 since start$/m);
  });

  it('stats --watch repeats with rates, --json one object per line', async () => {
    const r = await runCli(['stats', '--pin-path', pinPath, '--json', '--watch', '0.2', '--count', '3'], {
      env: { FLOWLB_RUN_DIR: join(runDir, 'none') },
    });
    expect(r.code).toBe(0);
    const lines = r.stdout.trim().split('\n');
    expect(lines).toHaveLength(3);
    for (const l of lines) expect((JSON.parse(l) as { xdp: { miss: number } }).xdp.miss).toBe(3);
    const text = await runCli(['stats', '--pin-path', pinPath, '--watch', '0.2', '--count', '2'], { env: { FLOWLB_RUN_DIR: join(runDir, 'none') } });
    expect(text.stdout).toMatch(/^ {2}miss\s+3\s+0\/s\s+no flow yet/m);
    const bad = await runCli(['stats', '--pin-path', pinPath, '--watch', 'often']);
    expect(bad.code).toBe(2);
    expect(bad.stderr).toBe('flowlb: --watch: expected seconds (at least 0.1), got "often"\n');
  });
});
