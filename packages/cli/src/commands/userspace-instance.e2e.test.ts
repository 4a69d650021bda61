import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, afterEach, beforeAll, expect, it } from 'vitest';
import { describePrivileged, runUdpClient, startUdpEcho, Topology, type UdpEcho } from '@flowlb/testkit';
import { runCliIn } from '../test-support/cli.js';
import { LbProcess } from '../test-support/lb-process.js';

const VIP = '127.0.0.1:4433';
const BACKEND = { address: '127.0.0.2', port: 7000 };

/** Every client to the one backend: the flows are what is looked at here, not the choice. */
const MAPPER = `
export default {
  findFlow() {
    return { action: 'forward', flow: { dstAddr: ${JSON.stringify(BACKEND)} } };
  },
};
`;

interface FlowsJson {
  pinPath: string | null;
  source: string;
  datapath: string;
  count: number;
  truncated: boolean;
  flows: Array<{ client: { address: string; port: number }; target: unknown; snat: { address: string; port: number }; vip: unknown; kind: string; idleMs: number }>;
}

// A userspace run pins no maps: `flowlb flows` and `flowlb stats` ask the running process over its metrics server.
describePrivileged('flows and stats of a userspace run, over its metrics server', () => {
  let topo: Topology;
  let ns: string;
  let dir: string;
  let echo: UdpEcho;
  let lb: LbProcess | undefined;
  let env: NodeJS.ProcessEnv;

  const cli = (args: string[]) => runCliIn(topo, ns, args, { env });
  const httpIn = async (path: string, url: string): Promise<{ status: number; body: string }> => {
    const { stdout } = await topo.exec(ns, 'curl', ['-s', '-m', '5', '-w', '\n%{http_code}', `${url}${path}`]);
    const nl = stdout.lastIndexOf('\n');
    return { status: Number(stdout.slice(nl + 1)), body: stdout.slice(0, nl) };
  };
  const writeConfig = (name: string, extra: string[]): string => {
    const file = join(dir, name);
    writeFileSync(file, ['port: 4433', 'addr: 127.0.0.1', 'mode: userspace', 'snat_ports: 20000-20099', ...extra, ''].join('\n'));
    return file;
  };
  const start = async (config: string): Promise<LbProcess> => {
    lb = new LbProcess(topo, ns, ['--config', config, '--mapper', join(dir, 'mapper.mjs')], env);
    await lb.running();
    return lb;
  };
  const send = (port: number) =>
    runUdpClient(topo, ns, { target: VIP, bind: `127.0.0.1:${port}`, count: 3, payload: 'hello {seq}', lockstep: true, timeoutMs: 1500 });

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'flowlb-userspace-'));
    writeFileSync(join(dir, 'mapper.mjs'), MAPPER);
    // No pins can be found under this root, and the run files of other tests are elsewhere.
    env = { FLOWLB_RUN_DIR: join(dir, 'run'), FLOWLB_PIN_ROOT: join(dir, 'pins') };
    topo = new Topology({ prefix: 'cliusr' });
    ns = await topo.addNamespace('lb');
    echo = await startUdpEcho(topo, ns, { addr: BACKEND.address, port: BACKEND.port, prefix: 'b|' });
  }, 60_000);

  afterEach(async () => {
    if (lb) await lb.proc.stop(2000);
    lb = undefined;
  });

  afterAll(async () => {
    await echo?.stop().catch(() => undefined);
    await topo?.destroy();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it('lists the flows and counters the running process reports, by any selector', async () => {
    const config = writeConfig('metrics.yaml', ['metrics_addr: "127.0.0.1:0"']);
    const run = await start(config);
    const state = JSON.parse(readFileSync(join(dir, 'run', '127_0_0_1-4433.json'), 'utf8')) as { metricsUrl: string; pinPath: string | null };
    expect(state.pinPath).toBeNull();
    const url = state.metricsUrl;
    expect(url).toMatch(/^http:\/\/127\.0\.0\.1:\d+$/);

    const [a, b] = [await send(40001), await send(40002)];
    for (const r of [a!, b!]) {
      expect(r.lostSeqs).toEqual([]);
      expect(r.replies.map((x) => x.data)).toEqual(['b|hello 0', 'b|hello 1', 'b|hello 2']);
    }

    const flows = await cli(['flows', '--json']);
    expect(flows.stderr).toBe('');
    expect(flows.code).toBe(0);
    const listed = JSON.parse(flows.stdout) as FlowsJson;
    expect(listed).toMatchObject({ pinPath: null, source: `${url}/flows`, datapath: 'userspace', count: 2, truncated: false });
    expect(listed.flows.map((f) => ({ client: f.client, target: f.target, vip: f.vip, kind: f.kind, snat: f.snat.address })).sort((x, y) => x.client.port - y.client.port)).toEqual(
      [40001, 40002].map((port) => ({
        client: { address: '127.0.0.1', port },
        target: BACKEND,
        vip: { address: '127.0.0.1', port: 4433 },
        kind: 'pair',
        snat: '127.0.0.1',
      })),
    );
    for (const f of listed.flows) {
      expect(f.snat.port).toBeGreaterThanOrEqual(20000);
      expect(f.snat.port).toBeLessThanOrEqual(20099);
      expect(f.idleMs).toBeGreaterThanOrEqual(0);
    }

    const text = await cli(['flows']);
    expect(text.code).toBe(0);
    const lines = text.stdout.trimEnd().split('\n');
    expect(lines[0]).toMatch(/^CLIENT\s+TARGET\s+SNAT\s+IDLE\s+NOTE$/);
    expect(lines.slice(1, 3).map((l) => l.split(/\s+/).slice(0, 2).join(' ')).sort()).toEqual([
      '127.0.0.1:40001 127.0.0.2:7000',
      '127.0.0.1:40002 127.0.0.2:7000',
    ]);
    expect(lines[3]).toBe(`2 flows on VIP 127.0.0.1:4433 (userspace datapath, from ${url}/flows)`);

    // Every way of naming the instance finds the same process.
    for (const sel of [['--instance', VIP], ['--config', config]]) {
      const r = await cli(['flows', '--json', ...sel]);
      expect(r.stderr).toBe('');
      expect((JSON.parse(r.stdout) as FlowsJson).count).toBe(2);
    }

    const stats = await cli(['stats', '--json']);
    expect(stats.stderr).toBe('');
    expect(stats.code).toBe(0);
    const s = JSON.parse(stats.stdout) as {
      pinPath: string | null;
      xdp: unknown;
      balancerSource: string;
      balancer: { datapath: string; flows: { active: number; created: number }; datagrams: { slowPathIn: number }; classification: { calls: number } };
    };
    expect(s.pinPath).toBeNull();
    expect(s.xdp).toBeNull();
    expect(s.balancerSource).toBe(`${url}/stats`);
    expect(s.balancer.datapath).toBe('userspace');
    expect(s.balancer.flows).toMatchObject({ active: 2, created: 2 });
    expect(s.balancer.classification.calls).toBe(2);
    const statsText = await cli(['stats', '--instance', VIP]);
    expect(statsText.code).toBe(0);
    expect(statsText.stdout).toMatch(/^XDP program: none at \S+; the userspace datapath passes every datagram through the balancer's sockets$/m);
    expect(statsText.stdout).toContain(`balancer (${url}/stats), userspace datapath\n`);
    expect(statsText.stdout).toMatch(/^ {2}flows active\s+2$/m);

    // The endpoint answers in bounded pages: the most recently used flows first, and says what it left out.
    const page = await httpIn('/flows?limit=1', url);
    expect(page.status).toBe(200);
    const one = JSON.parse(page.body) as FlowsJson;
    expect(one).toMatchObject({ vip: VIP, datapath: 'userspace', count: 2, truncated: true });
    expect(one.flows.map((f) => f.client.port)).toEqual([40002]);
    for (const bad of ['0', '10001', 'many']) {
      const r = await httpIn(`/flows?limit=${bad}`, url);
      expect(r.status).toBe(400);
      expect(JSON.parse(r.body)).toEqual({ error: `limit: expected an integer from 1 to 10000, got "${bad}"` });
    }

    run.signal('SIGTERM');
    expect(await run.exit()).toEqual({ code: 0, signal: null });
    lb = undefined;
    const gone = await cli(['flows']);
    expect(gone.code).toBe(1);
    expect(gone.stderr).toMatch(new RegExp(`^flowlb: no flowlb instance has maps pinned under ${join(dir, 'pins')}, and no running \`flowlb run\` left its run file in ${join(dir, 'run')}; `));
  }, 90_000);

  it('says what to set when the running process pins nothing and serves no metrics', async () => {
    await start(writeConfig('quiet.yaml', []));
    for (const command of ['flows', 'stats']) {
      const r = await cli([command]);
      expect(r.code).toBe(1);
      expect(r.stdout).toBe('');
      expect(r.stderr).toMatch(
        /^flowlb: the flowlb run for 127\.0\.0\.1:4433 \(pid \d+, userspace datapath\) pins no maps and serves no metrics: set metrics_addr in its config \(e\.g\. "127\.0\.0\.1:9100"\) and start it again, so that it can be asked over HTTP\n$/,
      );
    }
  }, 60_000);
});
