import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { itPrivileged } from '@flowlb/testkit';
import {
  applyAttachSysctls,
  applyInterfaceSysctls,
  currentNetnsId,
  effectiveRpFilter,
  neededSysctls,
  readSysctlState,
  releaseAttachSysctls,
  restorePinnedSysctls,
  restoreSysctlChanges,
  settleAttachSysctls,
  sysctlStateDir,
  sysctlStateFile,
  writeSysctlState,
  type SysctlState,
} from './sysctls.js';

// The logic on a tree laid out like /proc/sys/net/ipv4; the kernel's own files are in sysctls.e2e.test.ts.
let root: string;
let proc: string;
let stateDir: string;

type Conf = { forwarding?: string; accept_local?: string; rp_filter?: string };

function layout(conf: Record<string, Conf>): void {
  for (const [iface, values] of Object.entries(conf)) {
    const dir = join(proc, 'conf', iface);
    mkdirSync(dir, { recursive: true });
    const v = { forwarding: '0', accept_local: '0', rp_filter: '0', ...values };
    for (const [k, value] of Object.entries(v)) writeFileSync(join(dir, k), `${value}\n`);
  }
}

function values(iface: string): Conf {
  const read = (k: string): string => readFileSync(join(proc, 'conf', iface, k), 'utf8').trim();
  return { forwarding: read('forwarding'), accept_local: read('accept_local'), rp_filter: read('rp_filter') };
}

beforeEach(() => {
  root = mkdtempSync(join(tmpdir(), 'flowlb-sysctls-'));
  proc = join(root, 'ipv4');
  stateDir = join(root, 'run', 'sysctls');
});

afterEach(() => {
  rmSync(root, { recursive: true, force: true });
});

describe('what an interface needs', () => {
  it('forwarding and accept_local of the interface, and loose rp_filter only where the larger of all and its own is strict', () => {
    const cases: Array<[Conf, Conf, string[]]> = [
      [{}, {}, ['conf/eth0/forwarding=1', 'conf/eth0/accept_local=1']],
      [{}, { forwarding: '1', accept_local: '1' }, []],
      // accept_local counts when either is on; forwarding only per device.
      [{ accept_local: '1', forwarding: '1' }, {}, ['conf/eth0/forwarding=1']],
      [{}, { forwarding: '1', accept_local: '1', rp_filter: '1' }, ['conf/eth0/rp_filter=2']],
      [{ rp_filter: '1' }, { forwarding: '1', accept_local: '1' }, ['conf/eth0/rp_filter=2']],
      [{ rp_filter: '1' }, { forwarding: '1', accept_local: '1', rp_filter: '2' }, []],
      [{ rp_filter: '2' }, { forwarding: '1', accept_local: '1', rp_filter: '1' }, []],
      [{ rp_filter: '0' }, { forwarding: '1', accept_local: '1', rp_filter: '2' }, []],
    ];
    for (const [all, own, want] of cases) {
      rmSync(proc, { recursive: true, force: true });
      layout({ all, eth0: own });
      expect(neededSysctls('eth0', proc).map((n) => `${n.key}=${n.value}`), JSON.stringify({ all, own })).toEqual(want);
    }
    expect(effectiveRpFilter('eth0', proc)).toEqual({ all: 0, own: 2, effective: 2 });
  });

  it('an interface without IPv4 settings is an error that names it', () => {
    layout({ all: {} });
    expect(() => neededSysctls('nope0', proc)).toThrow(/no IPv4 interface nope0 in this network namespace/);
  });
});

describe('applying and restoring', () => {
  it('writes only what differs, and restores only what still holds the written value', () => {
    layout({ all: { rp_filter: '1' }, eth0: { accept_local: '1' }, eth1: {} });
    const changes = applyInterfaceSysctls('eth0', proc);
    expect(changes).toEqual([
      { key: 'conf/eth0/forwarding', previous: '0', written: '1' },
      { key: 'conf/eth0/rp_filter', previous: '0', written: '2' },
    ]);
    expect(values('eth0')).toEqual({ forwarding: '1', accept_local: '1', rp_filter: '2' });
    expect(values('eth1')).toEqual({ forwarding: '0', accept_local: '0', rp_filter: '0' });
    expect(readFileSync(join(proc, 'conf/all/rp_filter'), 'utf8').trim()).toBe('1');

    // Someone else turned rp_filter off meanwhile: that is theirs now.
    writeFileSync(join(proc, 'conf/eth0/rp_filter'), '0\n');
    const report = restoreSysctlChanges(changes, proc);
    expect(report.restored.map((c) => c.key)).toEqual(['conf/eth0/forwarding']);
    expect(report.left).toEqual([{ key: 'conf/eth0/rp_filter', previous: '0', written: '2', current: '0', why: 'it was changed to 0 since' }]);
    expect(values('eth0')).toEqual({ forwarding: '0', accept_local: '1', rp_filter: '0' });

    // An interface that is gone has nothing left to restore.
    rmSync(join(proc, 'conf/eth0'), { recursive: true });
    expect(restoreSysctlChanges(changes, proc).left.map((l) => l.why)).toEqual([
      'it no longer exists (the interface is gone)',
      'it no longer exists (the interface is gone)',
    ]);
  });

  itPrivileged('all or nothing: a write that fails puts back the ones before it', () => {
    layout({ all: {}, eth0: { rp_filter: '1' } });
    const target = join(proc, 'conf/eth0/rp_filter');
    // Root writes anything but an immutable file.
    execFileSync('chattr', ['+i', target]);
    try {
      expect(() => applyInterfaceSysctls('eth0', proc)).toThrow(/EPERM|operation not permitted/i);
      expect(values('eth0')).toEqual({ forwarding: '0', accept_local: '0', rp_filter: '1' });
    } finally {
      execFileSync('chattr', ['-i', target]);
    }
  });
});

describe('the state file beside the pins', () => {
  it('is named by the pin folder, replaced in one rename, and removed once empty', () => {
    expect(sysctlStateDir({})).toBe('/run/flowlb/sysctls');
    expect(sysctlStateDir({ FLOWLB_RUN_DIR: '/tmp/x' })).toBe('/tmp/x/sysctls');
    const a = sysctlStateFile('/sys/fs/bpf/flowlb/a', stateDir);
    expect(a).toMatch(new RegExp(`^${stateDir}/[0-9a-f]{32}\\.json$`));
    expect(sysctlStateFile('/sys/fs/bpf/flowlb/a/', stateDir)).toBe(a);
    expect(sysctlStateFile('/sys/fs/bpf/flowlb/b', stateDir)).not.toBe(a);

    const state: SysctlState = {
      version: 1,
      pinDir: '/sys/fs/bpf/flowlb/a',
      interfaces: [{ iface: 'eth0', ifindex: 2, netns: { id: '4:1' }, changes: [{ key: 'conf/eth0/forwarding', previous: '0', written: '1' }] }],
    };
    writeSysctlState(state, stateDir);
    expect(readdirSync(stateDir)).toEqual([a.slice(stateDir.length + 1)]);
    expect(readSysctlState('/sys/fs/bpf/flowlb/a', stateDir)).toEqual(state);
    expect(readSysctlState('/sys/fs/bpf/flowlb/b', stateDir)).toBeUndefined();

    // What is not ours, or names a file outside conf/, is not trusted.
    writeFileSync(a, JSON.stringify({ ...state, pinDir: '/elsewhere' }));
    expect(readSysctlState('/sys/fs/bpf/flowlb/a', stateDir)).toBeUndefined();
    const outside = { ...state.interfaces[0]!, changes: [{ key: 'conf/../../kernel/x', previous: '0', written: '1' }] };
    writeFileSync(a, JSON.stringify({ ...state, interfaces: [outside] }));
    expect(readSysctlState('/sys/fs/bpf/flowlb/a', stateDir)).toBeUndefined();
    writeFileSync(a, '{"version": 1, "pinDir"');
    expect(readSysctlState('/sys/fs/bpf/flowlb/a', stateDir)).toBeUndefined();

    writeSysctlState({ ...state, interfaces: [] }, stateDir);
    expect(readdirSync(stateDir)).toEqual([]);
  });
});

describe('what one forwarder changed, until it detaches', () => {
  const pinDir = '/sys/fs/bpf/flowlb/test';

  it('without pins: in memory, restored by the detach of that interface alone', () => {
    layout({ all: {}, eth0: {}, eth1: { rp_filter: '1' } });
    const owner = {};
    expect(applyAttachSysctls(owner, { iface: 'eth0', ifindex: 2, procRoot: proc, stateDir })).toHaveLength(2);
    expect(applyAttachSysctls(owner, { iface: 'eth1', ifindex: 3, procRoot: proc, stateDir })).toHaveLength(3);
    expect(existsSync(stateDir)).toBe(false);

    const r = releaseAttachSysctls(owner, { iface: 'eth0', ifindex: 2 });
    expect(r?.restored).toHaveLength(2);
    expect(values('eth0')).toEqual({ forwarding: '0', accept_local: '0', rp_filter: '0' });
    expect(values('eth1')).toEqual({ forwarding: '1', accept_local: '1', rp_filter: '2' });
    // Twice is nothing.
    expect(releaseAttachSysctls(owner, { iface: 'eth0', ifindex: 2 })).toBeUndefined();
    releaseAttachSysctls(owner, { iface: 'eth1', ifindex: 3 });
    expect(values('eth1')).toEqual({ forwarding: '0', accept_local: '0', rp_filter: '1' });
  });

  it('with pins: in the state file, which a later forwarder ends with its detach', () => {
    layout({ all: {}, eth0: {}, eth1: { forwarding: '1', accept_local: '1', rp_filter: '1' } });
    const first = {};
    applyAttachSysctls(first, { iface: 'eth0', ifindex: 2, pinDir, procRoot: proc, stateDir });
    applyAttachSysctls(first, { iface: 'eth1', ifindex: 3, pinDir, procRoot: proc, stateDir });
    const recorded = readSysctlState(pinDir, stateDir)!;
    expect(recorded.interfaces.map((e) => [e.iface, e.ifindex, e.netns.id, e.changes.map((c) => `${c.key}:${c.previous}>${c.written}`)])).toEqual([
      ['eth0', 2, currentNetnsId(), ['conf/eth0/forwarding:0>1', 'conf/eth0/accept_local:0>1']],
      ['eth1', 3, currentNetnsId(), ['conf/eth1/rp_filter:1>2']],
    ]);

    // The first process ends with its links pinned; the next one finds everything set and changes nothing.
    const second = {};
    expect(applyAttachSysctls(second, { iface: 'eth0', ifindex: 2, pinDir, procRoot: proc, stateDir })).toEqual([]);
    // Someone turned forwarding off since: it is set again, but what goes back later is the value from before flowlb.
    writeFileSync(join(proc, 'conf/eth1/forwarding'), '0\n');
    expect(applyAttachSysctls(second, { iface: 'eth1', ifindex: 3, pinDir, procRoot: proc, stateDir })).toEqual([
      { key: 'conf/eth1/forwarding', previous: '0', written: '1' },
    ]);
    expect(readSysctlState(pinDir, stateDir)!.interfaces[1]!.changes.map((c) => c.key)).toEqual(['conf/eth1/rp_filter', 'conf/eth1/forwarding']);

    releaseAttachSysctls(second, { iface: 'eth0', ifindex: 2 }, pinDir);
    expect(values('eth0')).toEqual({ forwarding: '0', accept_local: '0', rp_filter: '0' });
    expect(readSysctlState(pinDir, stateDir)!.interfaces.map((e) => e.iface)).toEqual(['eth1']);

    const restored = restorePinnedSysctls(pinDir, { stateDir, procRoot: proc });
    expect(restored.map((r) => [r.iface, r.report.restored.length, r.report.left.length])).toEqual([['eth1', 2, 0]]);
    expect(values('eth1')).toEqual({ forwarding: '0', accept_local: '1', rp_filter: '1' });
    expect(readdirSync(stateDir)).toEqual([]);
    expect(restorePinnedSysctls(pinDir, { stateDir, procRoot: proc })).toEqual([]);
  });

  it('an interface of the same name made anew drops what was recorded for the old one', () => {
    layout({ all: {}, eth0: {} });
    applyAttachSysctls({}, { iface: 'eth0', ifindex: 2, pinDir, procRoot: proc, stateDir });
    rmSync(join(proc, 'conf/eth0'), { recursive: true });
    layout({ eth0: { accept_local: '1' } });
    applyAttachSysctls({}, { iface: 'eth0', ifindex: 9, pinDir, procRoot: proc, stateDir });
    expect(readSysctlState(pinDir, stateDir)!.interfaces).toMatchObject([{ iface: 'eth0', ifindex: 9, changes: [{ key: 'conf/eth0/forwarding' }] }]);
  });

  it('after a failed attach, what it set for interfaces left unattached goes back, and out of the state file', () => {
    layout({ all: {}, eth0: {}, eth1: {}, eth2: {} });
    const earlier = {};
    applyAttachSysctls(earlier, { iface: 'eth2', ifindex: 4, pinDir, procRoot: proc, stateDir });
    const owner = {};
    applyAttachSysctls(owner, { iface: 'eth0', ifindex: 2, pinDir, procRoot: proc, stateDir });
    applyAttachSysctls(owner, { iface: 'eth1', ifindex: 3, pinDir, procRoot: proc, stateDir });
    settleAttachSysctls(owner, [2]);
    expect(values('eth0')).toEqual({ forwarding: '1', accept_local: '1', rp_filter: '0' });
    expect(values('eth1')).toEqual({ forwarding: '0', accept_local: '0', rp_filter: '0' });
    expect(readSysctlState(pinDir, stateDir)!.interfaces.map((e) => e.iface)).toEqual(['eth2', 'eth0']);
  });

  it('a state file that cannot be written leaves the sysctls as they were and says what to do', () => {
    layout({ all: {}, eth0: {} });
    mkdirSync(join(root, 'run'), { recursive: true });
    // A file where the folder should be.
    writeFileSync(stateDir, '');
    expect(() => applyAttachSysctls({}, { iface: 'eth0', ifindex: 2, pinDir, procRoot: proc, stateDir })).toThrow(
      /^cannot keep the previous sysctl values of eth0 in .*; set FLOWLB_RUN_DIR to a writable folder, or attach with sysctls: false$/,
    );
    expect(values('eth0')).toEqual({ forwarding: '0', accept_local: '0', rp_filter: '0' });
  });
});
