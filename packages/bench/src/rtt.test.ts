import { execFile, execFileSync } from 'node:child_process';
import { createSocket } from 'node:dgram';
import { existsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Topology, describePrivileged, spawnLocal, type Spawned } from '@flowlb/testkit';
import { RTT_EXIT_LOST, RttError, UDP_RTT, measureRtt, startUdpEcho } from './rtt.js';

const PACKAGE_DIR = join(dirname(fileURLToPath(import.meta.url)), '..');

beforeAll(() => {
  if (!existsSync(UDP_RTT)) execFileSync('make', ['-s', '-C', 'tools'], { cwd: PACKAGE_DIR, stdio: 'pipe' });
}, 60_000);

interface Run {
  code: number | null;
  stdout: string;
  stderr: string;
}

function runTool(args: string[], timeoutMs = 10_000): Promise<Run> {
  return new Promise((resolve) => {
    execFile(UDP_RTT, args, { timeout: timeoutMs, killSignal: 'SIGKILL', encoding: 'utf8' }, (err, stdout, stderr) => {
      const code = err ? (typeof err.code === 'number' ? err.code : null) : 0;
      resolve({ code, stdout, stderr });
    });
  });
}

async function waitReady(proc: Spawned, timeoutMs = 5000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!/^ready$/m.test(proc.output().stdout)) {
    if (Date.now() > deadline) throw new Error(`echo not ready: ${proc.output().stderr}`);
    if (proc.child.exitCode !== null) throw new Error(`echo exited: ${proc.output().stderr}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

describe('udp-rtt arguments', () => {
  const cases: [string, string[], RegExp][] = [
    ['no mode', [], /missing mode/],
    ['an unknown mode', ['pong'], /unknown mode 'pong'/],
    ['echo without a port', ['echo', '127.0.0.1'], /echo takes exactly/],
    ['echo with port 0', ['echo', '127.0.0.1', '0'], /port: 0 is out of range/],
    ['ping without --count', ['ping', '127.0.0.1', '9', '--payload', '64'], /needs --count/],
    ['ping without --payload', ['ping', '127.0.0.1', '9', '--count', '5'], /needs --payload/],
    ['a payload too small for the sequence number', ['ping', '127.0.0.1', '9', '--count', '5', '--payload', '4'], /--payload: 4 is out of range/],
    ['a count that is not a number', ['ping', '127.0.0.1', '9', '--count', '5x', '--payload', '64'], /--count: expected a number/],
    ['a negative warm-up', ['ping', '127.0.0.1', '9', '--count', '5', '--payload', '64', '--warmup', '-1'], /--warmup: expected a number/],
    ['an option without its value', ['ping', '127.0.0.1', '9', '--count', '5', '--payload'], /--payload needs a value/],
    ['an unknown option', ['ping', '127.0.0.1', '9', '--count', '5', '--payload', '64', '--fast'], /unknown option '--fast'/],
    ['a host name instead of an address', ['ping', 'localhost', '9', '--count', '5', '--payload', '64'], /bad address 'localhost'/],
    ['a bad --bind', ['ping', '127.0.0.1', '9', '--count', '5', '--payload', '64', '--bind', '127.0.0.1:x'], /--bind port/],
  ];
  for (const [what, args, message] of cases) {
    it(`rejects ${what} with exit 64 and the usage`, async () => {
      const r = await runTool(args);
      expect(r.code).toBe(64);
      expect(r.stdout).toBe('');
      expect(r.stderr).toMatch(message);
      expect(r.stderr).toMatch(/^usage: udp-rtt echo/m);
    });
  }

  it('prints the usage on --help and exits 0', async () => {
    const r = await runTool(['--help']);
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/^usage: udp-rtt echo/);
  });
});

describe('udp-rtt on loopback', () => {
  let echo: Spawned | undefined;
  let port = 0;

  beforeAll(async () => {
    // A port that was free a moment ago: a fixed one could be taken by a parallel run.
    const probe = createSocket('udp4');
    await new Promise<void>((resolve) => probe.bind(0, '127.0.0.1', resolve));
    port = probe.address().port;
    await new Promise<void>((resolve) => probe.close(() => resolve()));
  });

  afterAll(async () => {
    await echo?.stop();
  });

  it('echoes, measures and exits 0 on SIGTERM', async () => {
    echo = spawnLocal(UDP_RTT, ['echo', '127.0.0.1', String(port)]);
    await waitReady(echo);
    const r = await runTool(['ping', '127.0.0.1', String(port), '--count', '200', '--payload', '100', '--warmup', '10']);
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    const s = JSON.parse(r.stdout) as Record<string, number>;
    expect(Object.keys(s)).toEqual(['count', 'lost', 'minUs', 'p50Us', 'p90Us', 'p99Us', 'p999Us', 'maxUs', 'meanUs']);
    expect(s).toMatchObject({ count: 200, lost: 0 });
    expect(s.minUs).toBeGreaterThan(0);

    const status = await echo.stop();
    expect(status).toMatchObject({ code: 0, signal: null });
  });
});

describePrivileged('udp-rtt between network namespaces', () => {
  let topo: Topology;
  let client = '';
  let server = '';
  const SERVER = '10.231.0.2';
  const CLIENT = '10.231.0.1';

  beforeAll(async () => {
    topo = new Topology({ prefix: 'rtt' });
    [client, server] = await Promise.all([topo.addNamespace('cli'), topo.addNamespace('srv')]);
    await topo.addVethPair(client, 'eth0', server, 'eth0', { addrA: `${CLIENT}/24`, addrB: `${SERVER}/24` });
  });

  afterAll(async () => {
    await topo?.destroy();
  });

  it('measures 500 exchanges over a veth pair without loss', async () => {
    const echo = await startUdpEcho(topo, server, SERVER, 7000);
    try {
      const s = await measureRtt(topo, client, { address: SERVER, port: 7000 }, { count: 500, payload: 64, bind: CLIENT });
      expect(s.count).toBe(500);
      expect(s.lost).toBe(0);
      expect(s.p50Us).toBeGreaterThan(0);
      expect(s.minUs).toBeLessThanOrEqual(s.p50Us);
      expect(s.p50Us).toBeLessThanOrEqual(s.p90Us);
      expect(s.p90Us).toBeLessThanOrEqual(s.p99Us);
      expect(s.p99Us).toBeLessThanOrEqual(s.p999Us);
      expect(s.p999Us).toBeLessThanOrEqual(s.maxUs);
      expect(s.meanUs).toBeGreaterThanOrEqual(s.minUs);
      expect(s.meanUs).toBeLessThanOrEqual(s.maxUs);
    } finally {
      await echo.stop();
    }
  });

  it('fails an echo that cannot bind, with the reason', async () => {
    await expect(startUdpEcho(topo, server, '10.231.9.9', 7001)).rejects.toThrow(/ended before it was ready.*bind: Cannot assign requested address/);
  });

  it('gives up on a port with nothing behind it instead of hanging', async () => {
    const t0 = Date.now();
    const err = await measureRtt(topo, client, { address: SERVER, port: 7002 }, { count: 100, payload: 64, timeoutMs: 100 }).catch(
      (e: unknown) => e,
    );
    expect(err).toBeInstanceOf(RttError);
    expect((err as RttError).exitCode).toBe(RTT_EXIT_LOST);
    expect((err as RttError).message).toMatch(/no reply .* 11 probes in a row.*Connection refused/);
    expect(Date.now() - t0).toBeLessThan(5000);
  });

  it('gives up on a path that drops everything instead of hanging', async () => {
    const t0 = Date.now();
    // Nobody owns this address: ARP never resolves, so the probes vanish without an answer.
    const err = await measureRtt(topo, client, { address: '10.231.0.99', port: 7000 }, { count: 100, payload: 64, timeoutMs: 100 }).catch(
      (e: unknown) => e,
    );
    expect(err).toBeInstanceOf(RttError);
    expect((err as RttError).exitCode).toBe(RTT_EXIT_LOST);
    expect((err as RttError).message).toMatch(/no reply .* 11 probes in a row/);
    expect(Date.now() - t0).toBeLessThan(5000);
  });
});
