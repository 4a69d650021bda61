import { existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { CommandError, Topology, describePrivileged } from '@flowlb/testkit';

const DIST = join(import.meta.dirname, '..', 'dist', 'index.js');
const BPF_FS_MAGIC = 'cafe4a11';
const SYSFS_MAGIC = '62656572';

/**
 * Runs inside `ip netns exec`, whose fresh mount namespace has /sys remounted and so no bpffs on /sys/fs/bpf. It
 * mounts, pins, finds the pins again and unmounts everything it mounted before it reports, so nothing outlives it.
 */
const PIN_SCRIPT = `
import { execFileSync } from 'node:child_process';
import { existsSync, statfsSync } from 'node:fs';
const m = await import(${JSON.stringify(DIST)});
const scratch = process.argv[2];
const fsType = (p) => statfsSync(p).type.toString(16);
const out = { before: fsType('/sys/fs/bpf') };
const mounted = [];
try {
  const pinDir = '/sys/fs/bpf/flowlb/192_0_2_1-4433';
  out.first = m.ensureBpffsDir(pinDir, { mount: true });
  if (out.first.mounted) mounted.push(out.first.mounted);
  out.after = fsType('/sys/fs/bpf');
  const key = Buffer.alloc(16, 7);
  const value = Buffer.alloc(24, 9);
  const fwd = await m.XdpForwarder.load({ pinDir, flowsMaxEntries: 16 });
  fwd.flows.update(key, value);
  const id = fwd.flows.id;
  fwd.close();
  out.second = m.ensureBpffsDir(pinDir, { mount: true });
  const again = m.BpfMap.openPinned(pinDir + '/flows');
  out.reopened = { sameMap: again.id === id, value: again.lookup(key)?.toString('hex') };
  again.close();
  const reloaded = await m.XdpForwarder.load({ pinDir, flowsMaxEntries: 16 });
  out.reloaded = { sameMap: reloaded.flows.id === id, value: reloaded.flows.lookup(key)?.toString('hex') };
  reloaded.close();

  const elsewhere = m.ensureBpffsDir(scratch + '/pins/lb1', { mount: true });
  if (elsewhere.mounted) mounted.push(elsewhere.mounted);
  out.elsewhere = { ...elsewhere, type: fsType(scratch + '/pins/lb1') };
  try {
    m.ensureBpffsDir(scratch + '/full', { mount: true });
    out.full = 'mounted';
  } catch (e) {
    out.full = { code: e.code, message: e.message };
  }
} finally {
  for (const dir of mounted.reverse()) execFileSync('umount', [dir]);
  out.unmounted = { sys: fsType('/sys/fs/bpf'), pinsLeft: existsSync(scratch + '/pins/lb1') };
  console.log(JSON.stringify(out));
}
`;

/** Tries to mount without CAP_SYS_ADMIN and reports the error as JSON. */
const REFUSED_SCRIPT = `
const m = await import(${JSON.stringify(DIST)});
const scratch = process.argv[2];
const report = (e) => ({ code: e.code, errno: e.errno, syscall: e.syscall, message: e.message });
const out = {};
for (const [name, dir] of [['sys', '/sys/fs/bpf/flowlb/x'], ['created', scratch + '/new/x']]) {
  try {
    m.ensureBpffsDir(dir, { mount: true });
    out[name] = 'mounted';
  } catch (e) {
    out[name] = { ...report(e), cause: e.cause && report(e.cause) };
  }
}
console.log(JSON.stringify(out));
`;

describePrivileged('ensureBpffsDir mounts bpffs where there is none', () => {
  let topo: Topology;
  let ns: string;
  let dir: string;

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'flowlb-bpffs-mount-'));
    writeFileSync(join(dir, 'pin.mjs'), PIN_SCRIPT);
    writeFileSync(join(dir, 'refused.mjs'), REFUSED_SCRIPT);
    topo = new Topology({ prefix: 'xbpffs' });
    ns = await topo.addNamespace('pin');
  });

  afterAll(async () => {
    await topo?.destroy();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it('inside `ip netns exec` it mounts /sys/fs/bpf, pins there, and the pins are found again', async () => {
    const scratch = mkdtempSync(join(dir, 'scratch-'));
    mkdirSync(join(scratch, 'full'));
    writeFileSync(join(scratch, 'full', 'keep'), 'a file the mount must not hide');
    const { stdout } = await topo.exec(ns, process.execPath, [join(dir, 'pin.mjs'), scratch], { timeoutMs: 30_000 });
    const out = JSON.parse(stdout.trim().split('\n').at(-1)!) as Record<string, unknown>;
    expect(out).toEqual({
      before: SYSFS_MAGIC,
      first: { dir: '/sys/fs/bpf/flowlb/192_0_2_1-4433', mounted: '/sys/fs/bpf' },
      after: BPF_FS_MAGIC,
      second: { dir: '/sys/fs/bpf/flowlb/192_0_2_1-4433' },
      reopened: { sameMap: true, value: '09'.repeat(24) },
      reloaded: { sameMap: true, value: '09'.repeat(24) },
      // Outside /sys/fs/bpf the first folder that did not exist is made for the mount, never one that holds files.
      elsewhere: { dir: `${scratch}/pins/lb1`, mounted: `${scratch}/pins`, type: BPF_FS_MAGIC },
      full: {
        code: 'ERR_FLOWLB_NOT_BPFFS',
        message: expect.stringMatching(
          new RegExp(`^${scratch}/full is not on a bpffs mount \\(${scratch}/full has filesystem type 0x[0-9a-f]+\\), and ${scratch}/full exists and holds files, so no bpffs is mounted over it`),
        ),
      },
      unmounted: { sys: SYSFS_MAGIC, pinsLeft: false },
    });
  });

  it('without CAP_SYS_ADMIN it says what is missing and what to do, and leaves no folder behind', async () => {
    const scratch = mkdtempSync(join(dir, 'scratch-'));
    let stdout: string;
    try {
      ({ stdout } = await topo.exec(ns, 'setpriv', ['--bounding-set=-sys_admin', process.execPath, join(dir, 'refused.mjs'), scratch], { timeoutMs: 30_000 }));
    } catch (error) {
      throw error instanceof CommandError ? new Error(`${error.message}\n${error.stdout}`) : error;
    }
    const out = JSON.parse(stdout.trim().split('\n').at(-1)!) as Record<string, { code: string; message: string; cause: unknown }>;
    const hint = (dir: string): string => `(mounting bpffs needs CAP_SYS_ADMIN: run as root, or have it mounted beforehand with mount -t bpf bpf ${dir})`;
    expect(out.sys).toEqual({
      code: 'ERR_FLOWLB_NOT_BPFFS',
      message: `/sys/fs/bpf/flowlb/x is not on a bpffs mount (/sys/fs/bpf has filesystem type 0x${SYSFS_MAGIC}), and mounting one on /sys/fs/bpf failed: EPERM: operation not permitted, mount '/sys/fs/bpf' ${hint('/sys/fs/bpf')}`,
      cause: { code: 'EPERM', errno: -1, syscall: 'mount', message: `EPERM: operation not permitted, mount '/sys/fs/bpf' ${hint('/sys/fs/bpf')}` },
    });
    expect(out.created).toMatchObject({ code: 'ERR_FLOWLB_NOT_BPFFS', cause: { code: 'EPERM', syscall: 'mount' } });
    expect(out.created!.message).toContain(`mounting one on ${scratch}/new failed: EPERM`);
    expect(existsSync(join(scratch, 'new'))).toBe(false);
  });
});
