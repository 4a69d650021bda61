import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { Topology, describePrivileged } from '@flowlb/testkit';
import { BpfObject, XDP_PASS_BPF_OBJECT, XDP_PASS_PROGRAM, withNetns, xdpAttachment, type Program } from './index.js';

const dist = join(import.meta.dirname, '..', 'dist', 'index.js');

describePrivileged('how long an XDP link lasts', () => {
  let topo: Topology;
  let ns: string;
  let prog: Program;

  beforeAll(async () => {
    topo = new Topology({ prefix: 'xlink' });
    ns = await topo.addNamespace('life');
    await topo.addVethPair(ns, 'life0', ns, 'life1');
    const obj = BpfObject.open(XDP_PASS_BPF_OBJECT);
    try {
      await obj.load();
      prog = obj.program(XDP_PASS_PROGRAM);
    } finally {
      obj.close();
    }
  });

  afterAll(async () => {
    prog?.close();
    await topo?.destroy();
  });

  const attached = (): number => withNetns(ns, () => xdpAttachment('life0').progId);

  it('a link nobody references stays attached through garbage collection, until the process ends', () => {
    const script = `
      import(${JSON.stringify(dist)}).then(async (m) => {
        const obj = m.BpfObject.open(m.XDP_PASS_BPF_OBJECT);
        await obj.load();
        const prog = obj.program(m.XDP_PASS_PROGRAM);
        obj.close();
        // The link is dropped at once.
        m.withNetns(${JSON.stringify(ns)}, () => { prog.attachXdp('life0', { mode: 'generic' }); });
        const progId = prog.id;
        prog.close();
        for (let i = 0; i < 10; i++) { global.gc(); await new Promise((r) => setTimeout(r, 20)); }
        const after = m.withNetns(${JSON.stringify(ns)}, () => m.xdpAttachment('life0').progId);
        console.log(JSON.stringify({ progId, after }));
      }).catch((e) => { console.error(e); process.exit(2); });`;
    const r = spawnSync(process.execPath, ['--expose-gc', '-e', script], { encoding: 'utf8', timeout: 30_000 });
    expect(r.status, r.stderr).toBe(0);
    const out = JSON.parse(r.stdout.trim().split('\n').pop() ?? '{}') as { progId?: number; after?: number };
    expect(out.progId).toBeGreaterThan(0);
    expect(out.after).toBe(out.progId);
    // The process is gone, and its descriptor with it: the kernel detached the link.
    expect(attached()).toBe(0);
  });

  it('close() detaches a link that is not pinned', () => {
    const link = withNetns(ns, () => prog.attachXdp('life0', { mode: 'generic' }));
    expect(attached()).toBe(prog.id);
    link.close();
    expect(attached()).toBe(0);
    link.close();
  });

  it('detach() ends the attachment and leaves the handle to close', () => {
    const link = withNetns(ns, () => prog.attachXdp('life0', { mode: 'generic' }));
    expect(attached()).toBe(prog.id);
    link.detach();
    expect(attached()).toBe(0);
    // A detached XDP link has no interface any more.
    expect(link.info().ifindex).toBe(0);
    link.close();
    expect(() => link.info()).toThrow(/closed/);
  });
});
