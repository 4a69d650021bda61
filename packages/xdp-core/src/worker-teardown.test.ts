import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { describePrivileged } from '@flowlb/testkit';

const dist = join(import.meta.dirname, '..', 'dist', 'index.js');

// A worker that ends while the verifier runs on the libuv pool: the load's completion then meets an environment that
// can no longer run JavaScript, and the object it loads is closed by the environment's teardown.
describePrivileged('a BPF object load pending when its environment goes away', () => {
  it('a worker terminated mid-load crashes nothing, and loads go on working', () => {
    const script = `
      const { Worker } = require('node:worker_threads');
      const dist = ${JSON.stringify(dist)};
      const worker = \`import(\${JSON.stringify(dist)}).then((m) => {
        m.BpfObject.open(m.FLOWLB_BPF_OBJECT).load().catch(() => {});
        require('node:worker_threads').parentPort.postMessage('loading');
      });\`;
      (async () => {
        // Right away, and after delays that land before, during and after the verifier's run.
        for (const delay of [0, 0, 0, 1, 5, 20, 60, 150]) {
          const w = new Worker(worker, { eval: true });
          await new Promise((resolve, reject) => { w.once('message', resolve); w.once('error', reject); });
          if (delay) await new Promise((r) => setTimeout(r, delay));
          await w.terminate();
        }
        const m = await import(dist);
        const obj = m.BpfObject.open(m.FLOWLB_BPF_OBJECT);
        await obj.load();
        console.log('loaded', obj.loaded);
        obj.close();
      })().catch((e) => { console.error(e); process.exit(2); });`;
    const r = spawnSync(process.execPath, ['-e', script], { encoding: 'utf8', timeout: 60_000 });
    expect(r.signal, r.stderr).toBeNull();
    expect(r.status, r.stderr).toBe(0);
    expect(r.stdout.trim()).toBe('loaded true');
  });
});

// Sockets polled on a worker's event loop: closing their libuv handle completes in a callback that is code of the
// addon, which Node unloads with the worker's environment, so the environment must wait for it.
describe('sockets open when a worker ends', () => {
  it('a worker terminated while a UdpSocket receives or a route watch runs crashes nothing', () => {
    const script = `
      const { Worker } = require('node:worker_threads');
      const worker = \`import(\${JSON.stringify(${JSON.stringify(dist)})}).then((m) => {
        const s = m.UdpSocket.bind({ address: '127.0.0.1', port: 0 });
        s.receive(() => {});
        const closed = m.UdpSocket.bind({ address: '127.0.0.1', port: 0 });
        closed.receive(() => {});
        closed.close();
        m.watchRoutes(() => {}).ref();
        require('node:worker_threads').parentPort.postMessage('open');
      });\`;
      (async () => {
        for (const delay of [0, 0, 5]) {
          const w = new Worker(worker, { eval: true });
          await new Promise((resolve, reject) => { w.once('message', resolve); w.once('error', reject); });
          if (delay) await new Promise((r) => setTimeout(r, delay));
          await w.terminate();
        }
        console.log('alive');
      })().catch((e) => { console.error(e); process.exit(2); });`;
    const r = spawnSync(process.execPath, ['-e', script], { encoding: 'utf8', timeout: 60_000 });
    expect(r.signal, r.stderr).toBeNull();
    expect(r.status, r.stderr).toBe(0);
    expect(r.stdout.trim()).toBe('alive');
  });
});
