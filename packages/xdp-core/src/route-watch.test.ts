import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Topology, describePrivileged } from '@flowlb/testkit';
import { watchRoutes, type RouteChangeKind, type RouteWatch } from './index.js';

/** Long enough for a loaded machine; a working watcher answers in milliseconds. */
const WAIT_MS = 10_000;

describe('watchRoutes arguments', () => {
  it('wants a function', () => {
    expect(() => watchRoutes(undefined as unknown as () => void)).toThrow(TypeError);
  });
});

describePrivileged('watchRoutes: rtnetlink changes of a network namespace', () => {
  let topo: Topology;
  let ns: string;
  let other: string;
  let watch: RouteWatch | undefined;
  /** Every call of the callback, in order. */
  const calls: RouteChangeKind[][] = [];
  let waiter: { kind: RouteChangeKind; resolve: () => void } | undefined;

  function onChange(kinds: RouteChangeKind[]): void {
    calls.push(kinds);
    if (waiter && kinds.includes(waiter.kind)) {
      waiter.resolve();
      waiter = undefined;
    }
  }

  /** Runs `change`, then waits for a callback that reports `kind`. */
  async function expectKind(kind: RouteChangeKind, change: () => Promise<unknown> | unknown): Promise<void> {
    let timer: NodeJS.Timeout | undefined;
    const seen = new Promise<void>((resolve, reject) => {
      waiter = { kind, resolve };
      timer = setTimeout(() => reject(new Error(`no '${kind}' change within ${WAIT_MS} ms; calls: ${JSON.stringify(calls)}`)), WAIT_MS);
    });
    try {
      await change();
      await seen;
    } finally {
      clearTimeout(timer);
      waiter = undefined;
    }
  }

  async function operstate(ifname: string): Promise<string> {
    const { stdout } = await topo.ip(ns, '-j', 'link', 'show', 'dev', ifname);
    return (JSON.parse(stdout) as Array<{ operstate?: string }>)[0]?.operstate ?? '';
  }

  beforeAll(async () => {
    topo = new Topology({ prefix: 'xrtw' });
    ns = await topo.addNamespace('rtw');
    other = await topo.addNamespace('rtwo');
    await topo.addVethPair(ns, 'rw0', ns, 'rw1', { addrA: '10.66.0.1/24', addrB: '10.66.0.2/24' });
    // Carrier comes up a moment after the link is set up, with a link notification of its own: let it pass before
    // watching, so that it cannot pass for the link change below.
    for (let i = 0; i < 100 && ((await operstate('rw0')) !== 'UP' || (await operstate('rw1')) !== 'UP'); i++) {
      await new Promise((r) => setTimeout(r, 50));
    }
    watch = watchRoutes(onChange, { netns: ns });
  });

  afterAll(async () => {
    watch?.close();
    await topo?.destroy();
  });

  it('reports a neighbour change', async () => {
    await expectKind('neigh', () => topo.ip(ns, 'neigh', 'replace', '10.66.0.9', 'lladdr', '02:00:00:66:00:09', 'dev', 'rw0'));
  });

  it('reports a route added and a route removed', async () => {
    await expectKind('route', () => topo.ip(ns, 'route', 'add', '10.67.0.0/24', 'via', '10.66.0.2', 'dev', 'rw0'));
    await expectKind('route', () => topo.ip(ns, 'route', 'del', '10.67.0.0/24'));
  });

  it('reports an address added', async () => {
    await expectKind('addr', () => topo.ip(ns, 'addr', 'add', '10.68.0.1/24', 'dev', 'rw0'));
  });

  it('reports a link set down', async () => {
    await expectKind('link', () => topo.ip(ns, 'link', 'set', 'dev', 'rw1', 'down'));
    await topo.ip(ns, 'link', 'set', 'dev', 'rw1', 'up');
  });

  it('lists each kind once per call, in a fixed order', () => {
    const order: RouteChangeKind[] = ['link', 'neigh', 'addr', 'route', 'overrun'];
    expect(calls.length).toBeGreaterThan(0);
    for (const kinds of calls) {
      expect(kinds.length).toBeGreaterThan(0);
      expect([...kinds].sort((a, b) => order.indexOf(a) - order.indexOf(b))).toEqual(kinds);
      expect(new Set(kinds).size).toBe(kinds.length);
    }
  });

  it("reports 'overrun' when changes come faster than the process reads them", async () => {
    const dir = mkdtempSync(join(tmpdir(), 'xdp-core-rtw-'));
    try {
      const batch = join(dir, 'neigh.batch');
      const lines: string[] = [];
      for (let i = 0; i < 1000; i++) {
        lines.push(`neigh replace 10.66.${16 + (i >> 8)}.${i & 0xff} lladdr 02:00:00:66:${(i >> 8).toString(16).padStart(2, '0')}:${(i & 0xff).toString(16).padStart(2, '0')} dev rw0 nud permanent`);
      }
      writeFileSync(batch, `${lines.join('\n')}\n`);
      await topo.ip(ns, 'route', 'add', '10.66.16.0/20', 'dev', 'rw0');
      // Synchronous on purpose: the event loop is blocked while the kernel sends thousands of notifications, which
      // overflow the socket's receive buffer.
      await expectKind('overrun', () => {
        try {
          execFileSync('ip', ['-n', ns, '-force', '-batch', batch], { stdio: 'pipe', timeout: WAIT_MS });
        } catch {
          // A few entries refused make no difference: the flood is what matters.
        }
      });
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('calls back no more once closed, and closing twice is harmless', async () => {
    const seen: RouteChangeKind[][] = [];
    const w = watchRoutes((kinds) => seen.push(kinds), { netns: ns });
    await topo.ip(ns, 'neigh', 'replace', '10.66.0.10', 'lladdr', '02:00:00:66:00:0a', 'dev', 'rw0');
    for (let i = 0; i < 200 && seen.length === 0; i++) await new Promise((r) => setTimeout(r, 50));
    expect(seen.flat()).toContain('neigh');
    w.close();
    expect(w.closed).toBe(true);
    const before = seen.length;
    await topo.ip(ns, 'neigh', 'replace', '10.66.0.10', 'lladdr', '02:00:00:66:00:0b', 'dev', 'rw0');
    // The open watcher hears this change; the closed one must not.
    await expectKind('neigh', () => topo.ip(ns, 'neigh', 'replace', '10.66.0.11', 'lladdr', '02:00:00:66:00:0c', 'dev', 'rw0'));
    await new Promise((r) => setTimeout(r, 200));
    expect(seen.length).toBe(before);
    w.close();
    w[Symbol.dispose]();
    expect(w.ref()).toBe(w);
    expect(w.unref()).toBe(w);
  });

  it('watches the namespace it was opened in, and no other', async () => {
    const seen: RouteChangeKind[][] = [];
    const w = watchRoutes((kinds) => seen.push(kinds), { netns: other });
    try {
      await expectKind('neigh', () => topo.ip(ns, 'neigh', 'replace', '10.66.0.12', 'lladdr', '02:00:00:66:00:0d', 'dev', 'rw0'));
      await new Promise((r) => setTimeout(r, 200));
      expect(seen.flat()).not.toContain('neigh');
    } finally {
      w.close();
    }
  });

  it('does not keep the process alive unless ref() is called', () => {
    const dist = join(import.meta.dirname, '..', 'dist', 'index.js');
    const run = (extra: string): { code: number | null; signal: string | null } => {
      try {
        execFileSync(process.execPath, ['-e', `import(${JSON.stringify(dist)}).then((m) => { const w = m.watchRoutes(() => {}); ${extra} });`], {
          stdio: 'pipe',
          timeout: 3000,
        });
        return { code: 0, signal: null };
      } catch (e) {
        const err = e as { status: number | null; signal: string | null };
        return { code: err.status, signal: err.signal };
      }
    };
    expect(run('')).toEqual({ code: 0, signal: null });
    // Still running when the timeout kills it.
    expect(run('w.ref();')).toEqual({ code: null, signal: 'SIGTERM' });
    expect(run('w.ref(); w.unref();')).toEqual({ code: 0, signal: null });
  });
});
