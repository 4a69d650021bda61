import { execFileSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, afterEach, beforeAll, expect, it } from 'vitest';
import { describePrivileged, dtlsCapture, runUdpClient, startUdpEcho, twoArmedTopology, type TwoArmed, type UdpEcho } from '@flowlb/testkit';
import { cliBin } from '../test-support/cli.js';
import { LbProcess } from '../test-support/lb-process.js';
import { twoArmedConfigLines } from '../test-support/two-armed-run.js';

const PORT = 4433;
const BACKEND_PORT = 7000;
/** The first datagram a real client sent: its whole ClientHello. */
function clientHello(name: string): Uint8Array {
  return dtlsCapture(name)[0]!;
}

/** Routes each client address to the backend a JSON file names; reload() re-reads the file. */
const ROUTING_MAPPER = `
import { readFileSync } from 'node:fs';
export default async function make(ctx) {
  const file = new URL('./routes.json', import.meta.url);
  let routes = JSON.parse(readFileSync(file, 'utf8'));
  ctx.log.info({ routes: Object.keys(routes).length }, 'routes loaded');
  return {
    findFlow(client) {
      const to = routes[client.address];
      if (!to) return { action: 'drop', reason: 'no route for ' + client.address };
      return { action: 'forward', flow: { dstAddr: { address: to, port: ${BACKEND_PORT} } } };
    },
    reload() {
      routes = JSON.parse(readFileSync(file, 'utf8'));
    },
  };
}
`;

// `flowlb run` as an operator runs it: its own process inside the balancer's namespace, real datagrams through it.
describePrivileged('flowlb run end to end', () => {
  let net: TwoArmed;
  let bpffs: string;
  let dir: string;
  const echoes: UdpEcho[] = [];
  let lb: LbProcess | undefined;
  let vip: string;

  const httpIn = async (path: string): Promise<{ status: number; body: string }> => {
    const { stdout } = await net.topology.exec(net.lb.ns, 'curl', ['-s', '-m', '5', '-w', '\n%{http_code}', `http://127.0.0.1:9100${path}`]);
    const nl = stdout.lastIndexOf('\n');
    return { status: Number(stdout.slice(nl + 1)), body: stdout.slice(0, nl) };
  };

  const writeConfig = (name: string, extra: string[] = []): string => {
    const file = join(dir, name);
    writeFileSync(
      file,
      [
        ...twoArmedConfigLines(net, PORT),
        `pin_path: ${bpffs}/lb1`,
        'metrics_addr: 127.0.0.1:9100',
        'conn_ttl_sec: 30',
        ...extra,
        '',
      ].join('\n'),
    );
    return file;
  };

  const send = (client: number, port: number, payloads?: Uint8Array[]) =>
    runUdpClient(net.topology, net.clients[client]!.ns, {
      target: vip,
      bind: `${net.clients[client]!.addr}:${port}`,
      ...(payloads ? { payloads } : { count: 4, payload: `hello {seq}` }),
      lockstep: true,
      timeoutMs: 1500,
    });

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'flowlb-run-'));
    net = await twoArmedTopology({ prefix: 'clirun', clients: 2, backends: 2, xdpPassOnPeers: 'native' });
    bpffs = await net.topology.mountBpffs();
    vip = `${net.lb.front.addr}:${PORT}`;
    for (const b of net.backends) {
      echoes.push(await startUdpEcho(net.topology, b.ns, { addr: b.addr, port: BACKEND_PORT, prefix: `${b.addr}|` }));
    }
    writeFileSync(join(dir, 'mapper.mjs'), ROUTING_MAPPER);
  }, 60_000);

  afterEach(async () => {
    // A test that failed half-way must not leave its balancer running for the next one.
    if (lb) await lb.proc.stop(2000);
    lb = undefined;
  });

  afterAll(async () => {
    for (const e of echoes) await e.stop().catch(() => undefined);
    await net?.destroy();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it('runs a --mapper module on the XDP datapath, serves metrics and health, reloads on SIGHUP and stops on SIGTERM', async () => {
    const routes = join(dir, 'routes.json');
    writeFileSync(routes, JSON.stringify({ [net.clients[0]!.addr]: net.backends[0]!.addr, [net.clients[1]!.addr]: net.backends[1]!.addr }));
    lb = new LbProcess(net.topology, net.lb.ns, ['--config', writeConfig('xdp.yaml', ['debug: true']), '--mapper', join(dir, 'mapper.mjs')], {
      FLOWLB_RUN_DIR: dir,
    });
    const running = await lb.running();
    expect(running).toMatchObject({ pinPath: `${bpffs}/lb1`, interfaces: ['front', 'back'], xdpMode: 'native' });
    expect(lb.lines.find((l) => l.msg === 'datapath chosen')).toMatchObject({ datapath: 'xdp' });
    expect(lb.lines.find((l) => l.msg === 'routes loaded')).toMatchObject({ routes: 2, mapper: join(dir, 'mapper.mjs') });

    const [r0, r1] = await Promise.all([send(0, 40000), send(1, 40001)]);
    for (const [r, b] of [
      [r0!, 0],
      [r1!, 1],
    ] as const) {
      expect(r.lostSeqs).toEqual([]);
      expect(r.replies.map((x) => x.from)).toEqual(Array(4).fill(vip));
      expect(r.replies.map((x) => x.data)).toEqual([0, 1, 2, 3].map((i) => `${net.backends[b]!.addr}|hello ${i}`));
    }
    // debug: true logs every decision.
    await lb.waitForLog((l) => l.msg === 'mapper decision' && l.client === `${net.clients[0]!.addr}:40000`);
    expect(lb.lines.find((l) => l.msg === 'flow created' && l.client === `${net.clients[1]!.addr}:40001`)).toMatchObject({
      target: `${net.backends[1]!.addr}:${BACKEND_PORT}`,
      level: 'debug',
    });

    // The flows, read from the pinned map by another process, in this test's own namespace.
    const flows = JSON.parse(execFileSync(process.execPath, [cliBin(), 'flows', '--pin-path', `${bpffs}/lb1`, '--json'], { encoding: 'utf8' })) as {
      flows: Array<{ client: { address: string }; target: { address: string }; kind: string }>;
    };
    expect(flows.flows.map((f) => [f.client.address, f.target.address, f.kind]).sort()).toEqual([
      [net.clients[0]!.addr, net.backends[0]!.addr, 'pair'],
      [net.clients[1]!.addr, net.backends[1]!.addr, 'pair'],
    ]);

    const metrics = await httpIn('/metrics');
    expect(metrics.status).toBe(200);
    const value = (line: string): number => {
      const m = new RegExp(`^${line.replace(/[{}"+.]/g, '\\$&')} (\\S+)$`, 'm').exec(metrics.body);
      if (!m) throw new Error(`${line} is not in /metrics:\n${metrics.body}`);
      return Number(m[1]);
    };
    expect(value('flowlb_flows_active')).toBe(2);
    expect(value('flowlb_flows_created_total')).toBe(2);
    expect(value('flowlb_snat_ports_in_use')).toBe(2);
    expect(value('flowlb_classification_seconds_count')).toBe(2);
    expect(value('flowlb_classification_seconds_bucket{le="+Inf"}')).toBe(2);
    expect(value('flowlb_mapper_calls_total')).toBe(2);
    expect(value('flowlb_datagrams_total{path="slow_path_in"}')).toBe(2);
    // Everything after each client's first datagram takes the fast path, both ways.
    expect(value('flowlb_xdp_packets_total{outcome="fwd_hit"}') + value('flowlb_xdp_packets_total{outcome="fib_no_neigh"}')).toBeGreaterThanOrEqual(6);
    expect(value('flowlb_xdp_packets_total{outcome="rev_hit"}')).toBeGreaterThanOrEqual(6);
    expect(value('flowlb_xdp_packets_total{outcome="miss"}')).toBe(2);
    expect(metrics.body).toMatch(/^flowlb_info\{vip="[\d.]+:4433",datapath="xdp",version="[^"]+"\} 1$/m);
    expect(metrics.body).toMatch(/^process_cpu_seconds_total /m);

    const health = await httpIn('/healthz');
    expect(health.status).toBe(200);
    expect(JSON.parse(health.body)).toMatchObject({
      status: 'ok',
      state: 'running',
      datapath: 'xdp',
      checks: [
        { name: 'vip-socket', ok: true, detail: `bound on ${vip}` },
        { name: 'xdp:front', ok: true },
        { name: 'xdp:back', ok: true },
      ],
      warnings: [],
    });
    const stats = JSON.parse((await httpIn('/stats')).body) as { flows: { active: number }; xdp: { revHit: number } };
    expect(stats.flows.active).toBe(2);
    expect(stats.xdp.revHit).toBeGreaterThan(0);

    // SIGHUP: client 0 now goes to backend 1 (a new flow; the installed one keeps its backend).
    writeFileSync(routes, JSON.stringify({ [net.clients[0]!.addr]: net.backends[1]!.addr }));
    lb.signal('SIGHUP');
    await lb.waitForLog((l) => l.msg === 'mappings reloaded');
    const moved = await send(0, 40010);
    expect(moved.replies.map((x) => x.data)[0]).toBe(`${net.backends[1]!.addr}|hello 0`);
    const kept = await send(0, 40000);
    expect(kept.replies.map((x) => x.data)[0]).toBe(`${net.backends[0]!.addr}|hello 0`);
    // A reload that fails keeps what is in force and says why.
    writeFileSync(routes, '{ not json');
    lb.signal('SIGHUP');
    const failed = await lb.waitForLog((l) => l.msg.startsWith('reload failed'));
    expect(failed).toMatchObject({ level: 'error' });
    expect(String(failed.error)).toMatch(new RegExp(`^${join(dir, 'mapper.mjs').replace(/[.]/g, '\\.')}: reload\\(\\) failed: `));
    expect((await send(0, 40011)).replies[0]?.data).toBe(`${net.backends[1]!.addr}|hello 0`);
    const reloads = await httpIn('/metrics');
    expect(reloads.body).toMatch(/^flowlb_mapper_reloads_total\{result="ok"\} 1$/m);
    expect(reloads.body).toMatch(/^flowlb_mapper_reloads_total\{result="failed"\} 1$/m);

    lb.signal('SIGTERM');
    expect(await lb.exit()).toEqual({ code: 0, signal: null });
    expect(lb.lines.at(-1)).toMatchObject({ msg: 'stopped', errors: 0 });
    expect(lb.lines.find((l) => l.msg.startsWith('the XDP program stays attached'))).toMatchObject({ interfaces: ['front', 'back'] });
    // Without --detach-on-exit the program stays attached through its pinned links, forwarding the flows in the
    // pinned map, for the next run to take over.
    const progIds = await Promise.all(['front', 'back'].map(async (iface) => (await net.topology.link(net.lb.ns, iface)).xdp?.progId));
    expect(progIds[0]).toBeGreaterThan(0);
    expect(progIds[1]).toBe(progIds[0]);
    for (const pin of ['flows', 'stats', 'prog', 'link-front', 'link-back']) expect(existsSync(`${bpffs}/lb1/${pin}`)).toBe(true);
    expect((await send(1, 40001)).replies[0]?.data).toBe(`${net.backends[1]!.addr}|hello 0`);
    lb = undefined;
  }, 90_000);

  it('adopts the pinned flows when started again, and --detach-on-exit leaves nothing behind', async () => {
    writeFileSync(join(dir, 'routes.json'), '{}');
    lb = new LbProcess(net.topology, net.lb.ns, ['--config', writeConfig('xdp2.yaml'), '--mapper', join(dir, 'mapper.mjs'), '--detach-on-exit'], { FLOWLB_RUN_DIR: dir });
    await lb.running();
    expect(lb.lines.find((l) => l.msg === 'flows adopted from the pinned map')?.count).toBeGreaterThanOrEqual(2);
    expect(lb.lines.filter((l) => l.msg.startsWith('took over the pinned XDP link')).map((l) => l.iface)).toEqual(['front', 'back']);
    // An adopted flow keeps forwarding without asking the mapper, which has no routes any more.
    expect((await send(1, 40001)).replies[0]?.data).toBe(`${net.backends[1]!.addr}|hello 0`);
    lb.signal('SIGINT');
    expect(await lb.exit()).toEqual({ code: 0, signal: null });
    expect(lb.lines.find((l) => l.msg.startsWith('XDP program detached and every pin removed'))).toMatchObject({ interfaces: ['back', 'front'] });
    expect(existsSync(`${bpffs}/lb1`)).toBe(false);
    for (const iface of ['front', 'back']) expect((await net.topology.link(net.lb.ns, iface)).xdp).toBeUndefined();
    lb = undefined;
  }, 60_000);

  it('routes DTLS by SNI with --mappings; a bad mappings file on SIGHUP keeps the old ones; saving the file reloads it', async () => {
    const mappings = join(dir, 'mappings.yaml');
    const write = (backend: number) =>
      writeFileSync(mappings, `sniMappings:\n  - fqdn: "foo.example"\n    ipv4: "${net.backends[backend]!.addr}"\n    port: ${BACKEND_PORT}\n`);
    write(0);
    lb = new LbProcess(net.topology, net.lb.ns, ['--config', writeConfig('sni.yaml', ['mode: userspace']), '--mappings', mappings], {
      FLOWLB_RUN_DIR: dir,
    });
    await lb.running();
    expect(lb.lines.find((l) => l.msg === 'starting')?.mapper).toBe(`sni ${mappings}, DTLS and QUIC (1 name)`);
    expect(lb.lines.find((l) => l.msg === 'XDP datapath not used')?.reason).toBe('mode: userspace');
    const hello = clientHello('ossl_foo');
    const first = await send(0, 41000, [hello]);
    expect(first.replies[0]?.from).toBe(vip);
    expect(Buffer.from(first.replies[0]!.hex, 'hex').subarray(0, net.backends[0]!.addr.length + 1).toString()).toBe(`${net.backends[0]!.addr}|`);

    write(1);
    lb.signal('SIGHUP');
    expect(await lb.waitForLog((l) => l.msg === 'mappings reloaded')).toMatchObject({ detail: `${mappings}: 1 name` });
    const after = await send(0, 41001, [hello]);
    expect(Buffer.from(after.replies[0]!.hex, 'hex').toString('latin1').startsWith(`${net.backends[1]!.addr}|`)).toBe(true);

    writeFileSync(mappings, 'sniMappings:\n  - fqdn: "foo.example"\n    ipv4: "10.0.0.300"\n    port: 7000\n');
    lb.signal('SIGHUP');
    const failed = await lb.waitForLog((l) => l.msg.startsWith('reload failed'));
    expect(failed.error).toBe(
      `${mappings}:3: sniMappings[0] (fqdn "foo.example"): ipv4: must be an IPv4 address like "192.0.2.10", got "10.0.0.300"`,
    );
    const still = await send(0, 41002, [hello]);
    expect(Buffer.from(still.replies[0]!.hex, 'hex').toString('latin1').startsWith(`${net.backends[1]!.addr}|`)).toBe(true);

    // Saving the file is enough: no signal needed.
    const seen = lb.lines.length;
    write(0);
    const isNew = (l: { msg: string }) => lb!.lines.indexOf(l as never) >= seen;
    await lb.waitForLog((l) => isNew(l) && l.msg === 'mappings file changed: reloading');
    expect(await lb.waitForLog((l) => isNew(l) && l.msg === 'mappings reloaded')).toMatchObject({ detail: `${mappings}: 1 name` });
    const saved = await send(0, 41003, [hello]);
    expect(Buffer.from(saved.replies[0]!.hex, 'hex').toString('latin1').startsWith(`${net.backends[0]!.addr}|`)).toBe(true);

    lb.signal('SIGTERM');
    expect(await lb.exit()).toEqual({ code: 0, signal: null });
    lb = undefined;
  }, 60_000);

  it('refuses to start with the exit code that says why', async () => {
    const start = async (args: string[]) => {
      const p = new LbProcess(net.topology, net.lb.ns, args, { FLOWLB_RUN_DIR: dir });
      const status = await p.exit();
      return { code: status.code, stderr: p.proc.output().stderr };
    };
    writeFileSync(join(dir, 'routes.json'), '{}');
    const noIf = writeConfig('no-if.yaml', ['mode: xdp']);
    writeFileSync(noIf, readFileSync(noIf, 'utf8').replace('interfaces: [back]', 'interfaces: [nosuch0]'));
    const r1 = await start(['--config', noIf, '--mapper', join(dir, 'mapper.mjs')]);
    expect(r1.code).toBe(3);
    expect(r1.stderr).toMatch(/^flowlb: .*ENODEV: no such device, if_nametoindex 'nosuch0'/);

    const r2 = await start(['--config', noIf]);
    expect(r2.code).toBe(2);
    expect(r2.stderr).toBe('flowlb: run needs a mapper: --mappings FILE (route DTLS by SNI) or --mapper MODULE (your own FlowMapper)\n');

    const badMappings = join(dir, 'bad-mappings.yaml');
    writeFileSync(badMappings, 'sniMappings: 5\n');
    const r3 = await start(['--config', noIf, '--mappings', badMappings]);
    expect(r3.code).toBe(2);
    expect(r3.stderr).toBe(`flowlb: ${badMappings}:1: sniMappings: must be a list of entries (it may be empty), got 5\n`);

    const wrongAddr = writeConfig('wrong-addr.yaml', ['mode: userspace']);
    writeFileSync(wrongAddr, readFileSync(wrongAddr, 'utf8').replace(`addr: ${net.lb.front.addr}`, 'addr: 192.0.2.77'));
    const r4 = await start(['--config', wrongAddr, '--mapper', join(dir, 'mapper.mjs')]);
    expect(r4.code).toBe(3);
    expect(r4.stderr).toMatch(/cannot bind the VIP 192\.0\.2\.77:4433 \(EADDRNOTAVAIL\)/);
  }, 60_000);
});
